"""``k3dn data check``: what a data tree holds and what is wrong with it.

Two levels of inspection:

* :func:`probe_image` reads only a file's header and tail (PNG IHDR + IEND, JPEG SOF + EOI, TIFF tags): size,
  bit depth, channel count, truncation. The layout adapters probe every file this way (cheap: a full
  DPDD pass reads a few MB), so a truncated or non-image file fails the manifest step with its name.
* :func:`check_dataset` (the command) additionally decodes every file with :func:`k3dn.io.read_raw`, which
  catches corrupt compressed data behind a valid header, and verifies every file whose sha256 is known
  (published in the registry or recorded in ``CHECKSUMS.sha256`` on first download).

The report lists counts per split, image sizes, bit depths, channel counts and bytes per manifest column, then
every problem (missing, unreadable, inconsistent). Problems make the command exit with status 1.
"""

from __future__ import annotations

import os
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # colour type -> samples per pixel (palette decodes to RGB)


class ProbeError(ValueError):
    """A file that is not a readable image; the message names the file and the problem."""


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    bit_depth: int
    channels: int
    format: str

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


def _probe_png(path: Path, head: bytes, tail: bytes) -> ImageInfo:
    if len(head) < 29 or head[12:16] != b"IHDR":
        raise ProbeError(f"{path}: PNG without an IHDR header")
    w, h, depth, ctype = struct.unpack(">IIBB", head[16:26])
    if ctype not in _PNG_CHANNELS or w == 0 or h == 0:
        raise ProbeError(f"{path}: invalid PNG header (colour type {ctype}, size {w}x{h})")
    if b"IEND\xaeB`\x82" not in tail:
        raise ProbeError(f"{path}: truncated PNG (no IEND chunk at the end)")
    return ImageInfo(w, h, 8 if ctype == 3 else depth, _PNG_CHANNELS[ctype], "png")


def _probe_jpeg(path: Path, f, tail: bytes) -> ImageInfo:
    if b"\xff\xd9" not in tail:
        raise ProbeError(f"{path}: truncated JPEG (no end-of-image marker)")
    f.seek(2)
    while True:
        b = f.read(1)
        while b and b != b"\xff":
            b = f.read(1)
        while b == b"\xff":
            b = f.read(1)
        if not b:
            raise ProbeError(f"{path}: JPEG without a frame header")
        marker = b[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue
        seg = f.read(2)
        if len(seg) < 2:
            raise ProbeError(f"{path}: truncated JPEG header")
        n = struct.unpack(">H", seg)[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            data = f.read(6)
            if len(data) < 6:
                raise ProbeError(f"{path}: truncated JPEG frame header")
            depth, h, w, nc = struct.unpack(">BHHB", data)
            return ImageInfo(w, h, depth, nc, "jpeg")
        f.seek(n - 2, os.SEEK_CUR)


def _probe_tiff(path: Path) -> ImageInfo:
    try:
        import tifffile
    except ImportError:  # fall back to a full decode
        from k3dn.io import ImageError, read_raw

        try:
            raw = read_raw(path)
        except ImageError as e:
            raise ProbeError(str(e)) from e
        return ImageInfo(raw.shape[1], raw.shape[0], raw.dtype.itemsize * 8, raw.shape[2], "tiff")
    try:
        with tifffile.TiffFile(path) as tf:
            page = tf.pages[0]
            shape = page.shape
            h, w = page.imagelength, page.imagewidth
            c = page.samplesperpixel
            depth = page.bitspersample
            if page.databytecounts and page.dataoffsets:
                end = max(o + n for o, n in zip(page.dataoffsets, page.databytecounts))
                if end > path.stat().st_size:
                    raise ProbeError(
                        f"{path}: truncated TIFF (image data ends at byte {end}, file has {path.stat().st_size})"
                    )
    except ProbeError:
        raise
    except Exception as e:  # tifffile raises many types for garbage input
        raise ProbeError(f"{path}: not a readable TIFF ({type(e).__name__}: {e})") from e
    del shape
    return ImageInfo(w, h, depth, c, "tiff")


def probe_image(path: str | os.PathLike) -> ImageInfo:
    """Header-level facts of an image file; :class:`ProbeError` for a missing, empty, truncated or non-image file."""
    path = Path(path)
    if not path.is_file():
        raise ProbeError(f"{path}: file not found")
    size = path.stat().st_size
    if size == 0:
        raise ProbeError(f"{path}: empty file")
    with open(path, "rb") as f:
        head = f.read(64)
        f.seek(max(0, size - 1024))
        tail = f.read()
        if head.startswith(_PNG_SIG):
            return _probe_png(path, head, tail[-64:])
        if head.startswith(b"\xff\xd8"):
            return _probe_jpeg(path, f, tail)
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _probe_tiff(path)
    raise ProbeError(f"{path}: not a PNG, JPEG or TIFF file (unrecognised signature {head[:8]!r})")


# --------------------------------------------------------------------------------------------- the check
@dataclass
class ColumnStats:
    files: int = 0
    bytes: int = 0
    sizes: Counter = field(default_factory=Counter)  # (W, H)
    bit_depths: Counter = field(default_factory=Counter)
    channels: Counter = field(default_factory=Counter)


@dataclass
class CheckReport:
    dataset: str
    root: Path
    counts: dict[str, int] = field(default_factory=dict)  # split -> rows
    columns: dict[str, ColumnStats] = field(default_factory=dict)
    checksums: Counter = field(default_factory=Counter)  # status -> files
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self) -> str:
        out = [f"{self.dataset}: {self.root}"]
        for s, n in self.counts.items():
            out.append(f"  {s}: {n} samples")
        for c, st in self.columns.items():
            sizes = ", ".join(f"{w}x{h} ({n})" for (w, h), n in st.sizes.most_common(4))
            if len(st.sizes) > 4:
                sizes += f", ... {len(st.sizes)} sizes"
            out.append(
                f"  {c:9s} {st.files} files, {st.bytes / 2**20:.1f} MiB, WxH {sizes}; "
                f"bit depth {dict(st.bit_depths)}; channels {dict(st.channels)}"
            )
        if self.checksums:
            out.append(f"  checksums: {dict(self.checksums)}")
        for w in self.warnings:
            out.append(f"  warning: {w}")
        for p in self.problems:
            out.append(f"  PROBLEM: {p}")
        out.append("  OK" if self.ok else f"  {len(self.problems)} problem(s)")
        return "\n".join(out)


def _verify_checksums(name: str, root: Path, rep: CheckReport, registry) -> None:
    from k3dn.data.catalog import get_dataset
    from k3dn.data.downloads import ChecksumLock
    from k3dn.provenance import sha256_file

    expected: dict[Path, str] = {}
    try:
        ds = get_dataset(name, registry)
    except Exception as e:  # a broken registry must not hide the data check
        rep.warnings.append(f"registry not read ({e})")
        return
    # The tree may be the download folder itself or a folder inside it (e.g. .../pixel/DP_data_pixel_4).
    bases = [root, root.parent]
    for s in ds.sources:
        for f in s.files:
            if f.sha256:
                for b in bases:
                    if (b / f.path).is_file():
                        expected[b / f.path] = f.sha256
                        break
    for b in bases:
        try:
            for rel, sha in ChecksumLock(b).read().items():
                if (b / rel).is_file():
                    expected.setdefault(b / rel, sha)
        except Exception as e:
            rep.problems.append(str(e))
    for p, sha in tqdm(sorted(expected.items()), desc="sha256", unit="file", disable=len(expected) < 20):
        if sha256_file(p) == sha:
            rep.checksums["match"] += 1
        else:
            rep.checksums["MISMATCH"] += 1
            rep.problems.append(f"{p}: sha256 differs from the expected {sha}")


def check_dataset(
    name: str,
    root: str | os.PathLike,
    *,
    decode: bool = True,
    checksums: bool = True,
    registry=None,
    progress: bool = True,
    **adapter_kw,
) -> CheckReport:
    """Inspect the data tree of registered data set ``name`` at ``root`` (nothing is written)."""
    from k3dn.data import layouts
    from k3dn.io import ImageError, read_raw

    root = Path(root)
    rep = CheckReport(name, root)
    if not root.is_dir():
        rep.problems.append(f"{root}: folder not found")
        return rep
    if checksums:
        _verify_checksums(name, root, rep, registry)
    try:
        scan = layouts.scan(name, root, **adapter_kw)
    except (layouts.LayoutError, ProbeError) as e:
        rep.problems.append(str(e))
        return rep
    rep.warnings.extend(scan.warnings)
    files: list[tuple[str, str]] = []
    for split, rows in scan.splits.items():
        rep.counts[split] = len(rows)
        for r in rows:
            for col in ("left", "right", "center", "target", "disparity", "depth"):
                if r.get(col):
                    files.append((col, r[col]))
    for col, p in scan.extra_files:
        files.append((col, p))
    seen = set()
    for col, p in tqdm(files, desc=f"check {name}", unit="file", disable=not progress):
        if p in seen:
            continue
        seen.add(p)
        st = rep.columns.setdefault(col, ColumnStats())
        path = Path(p)
        st.files += 1
        if not path.is_file():
            rep.problems.append(f"{path}: missing")
            continue
        st.bytes += path.stat().st_size
        if path.suffix.lower() not in IMAGE_EXTS:
            continue  # .npy / .pfm ground truth: existence and size only
        try:
            if decode:
                raw = read_raw(path)
                h, w, c = raw.shape
                depth = raw.dtype.itemsize * 8
            else:
                info = probe_image(path)
                w, h, c, depth = info.width, info.height, info.channels, info.bit_depth
        except (ImageError, ProbeError) as e:
            rep.problems.append(str(e))
            continue
        st.sizes[(w, h)] += 1
        st.bit_depths[depth] += 1
        st.channels[c] += 1
    return rep
