"""Header-level facts of an image file, read without decoding it: size, bit depth, channel count, truncation.

:func:`probe_image` reads only a file's header and tail (PNG IHDR + IEND, JPEG SOF + EOI, TIFF tags). The layout
adapters (``k3dn.data.layouts``) probe every file this way (cheap: a full DPDD pass reads a few MB), so a
truncated or non-image file fails the manifest step with its name; ``k3dn data check`` (``k3dn.data.check``) and
``k3dn predict`` use it too. It sits below all of them, so none has to import another for it.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

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
