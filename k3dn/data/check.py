"""``k3dn data check``: what a data tree holds and what is wrong with it.

Two levels of inspection:

* :func:`k3dn.data.probe.probe_image` reads only a file's header and tail (PNG IHDR + IEND, JPEG SOF + EOI, TIFF
  tags): size, bit depth, channel count, truncation. The layout adapters probe every file this way (cheap: a
  full DPDD pass reads a few MB), so a truncated or non-image file fails the manifest step with its name.
* :func:`check_dataset` (the command) additionally decodes every file with :func:`k3dn.io.read_raw`, which
  catches corrupt compressed data behind a valid header, and verifies every file whose sha256 is known
  (published in the registry or recorded in ``CHECKSUMS.sha256`` on first download).

The report lists counts per split, image sizes, bit depths, channel counts and bytes per manifest column, then
every problem (missing, unreadable, inconsistent). Problems make the command exit with status 1.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from k3dn.data.probe import IMAGE_EXTS, ProbeError, probe_image


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
