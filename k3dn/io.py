"""Image files in and out, under the two DPDD reading protocols (see docs/DEVELOPING.md).

Reading goes through OpenCV with ``IMREAD_UNCHANGED`` (8- and 16-bit PNG, TIFF, JPEG), never Pillow, so
16-bit data are never silently reduced to 8 bits. Every image comes back as ``float32 (H, W, C)`` in
``[0, 1]``, channels in RGB order.

Protocols (the ``protocol`` argument):

``"16bit"``
    16-bit files / 65535, 8-bit files / 255 (Restormer-DP, DPDNet).
``"8bit"``
    the legacy protocol of IFAN / DRBNet / DDDNet / RDPD / Restormer-single: a 16-bit file is truncated to
    8 bits (``v >> 8``, what ``cv2.IMREAD_COLOR`` and Pillow's ``convert('RGB')`` do), then / 255;
    8-bit files / 255. So an 8-bit reading of a 16-bit value ``v`` is ``(v >> 8) / 255``.

Channels: grey files (the Pixel set is single-channel 16-bit) come back as ``(H, W, 1)``;
``channels=3`` replicates them to RGB, ``channels=1`` requires a single-channel file (an RGB file is an
error, never silently converted). Alpha: a BGRA / grey+alpha file whose alpha is fully opaque has its alpha
dropped; any other alpha channel is an error (compositing would be a guess).

Failures (missing, empty, truncated or undecodable file, unexpected channel count or dtype) raise
:class:`ImageError` with the file name and the problem.

Writing: :func:`write_png16` / :func:`write_png8` round and clip ``[0, 1]`` floats, and write
``<name>.tmp`` then rename it into place, so a reader never sees a partial file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from k3dn.errors import UserError

PROTOCOLS = ("16bit", "8bit")

# Files we accept and how a complete file ends (truncation is detected from the tail: libjpeg decodes a
# truncated JPEG into a grey-padded image with only a warning, so OpenCV alone does not catch it).
_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"
_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"


class ImageError(UserError, ValueError):
    """An image file that cannot be used; the message names the file and the problem."""


def _cv2():
    import cv2

    return cv2


def _check_complete(path: Path, buf: bytes) -> None:
    if not buf:
        raise ImageError(f"{path}: empty file")
    if buf.startswith(_PNG_SIG):
        if _PNG_IEND not in buf[-64:]:
            raise ImageError(f"{path}: truncated PNG (no IEND chunk at the end of the file)")
    elif buf.startswith(_JPEG_SOI):
        if _JPEG_EOI not in buf[-1024:]:
            raise ImageError(f"{path}: truncated JPEG (no end-of-image marker)")


def _decode(path: Path) -> np.ndarray:
    cv2 = _cv2()
    if not path.exists():
        raise ImageError(f"{path}: image file not found")
    if not path.is_file():
        raise ImageError(f"{path}: not a regular file")
    try:
        buf = path.read_bytes()
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e})") from e
    _check_complete(path, buf)
    try:
        img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as e:  # pragma: no cover - depends on the codec
        raise ImageError(f"{path}: cannot decode ({e})") from e
    if img is None or img.size == 0:
        raise ImageError(f"{path}: cannot decode (corrupt or unsupported image file)")
    return img


def _drop_alpha(path: Path, img: np.ndarray) -> np.ndarray:
    alpha = img[..., -1]
    full = np.iinfo(img.dtype).max
    if not np.all(alpha == full):
        raise ImageError(
            f"{path}: image has a non-opaque alpha channel ({img.shape[-1]} channels); refusing to composite it"
        )
    return img[..., :-1]


def read_raw(path: str | os.PathLike) -> np.ndarray:
    """The file's integer samples, ``(H, W, C)`` uint8/uint16, RGB order, opaque alpha dropped."""
    path = Path(path)
    img = _decode(path)
    if img.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"{path}: unsupported sample type {img.dtype} (expected 8- or 16-bit unsigned)")
    if img.ndim == 2:
        img = img[..., None]
    elif img.ndim != 3:
        raise ImageError(f"{path}: unexpected array shape {img.shape}")
    c = img.shape[-1]
    if c in (2, 4):
        img = _drop_alpha(path, img)
        c -= 1
    if c == 3:
        img = img[..., ::-1]  # BGR -> RGB
    elif c != 1:
        raise ImageError(f"{path}: unexpected channel count {c} (expected 1 or 3, optionally + alpha)")
    return np.ascontiguousarray(img)


def to_float(raw: np.ndarray, protocol: str = "16bit", path="<array>") -> np.ndarray:
    """Integer samples -> float32 in [0, 1] under ``protocol`` (see the module docstring)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if raw.dtype == np.uint8:
        return raw.astype(np.float32) / np.float32(255.0)
    if raw.dtype == np.uint16:
        if protocol == "16bit":
            return raw.astype(np.float32) / np.float32(65535.0)
        return (raw >> 8).astype(np.float32) / np.float32(255.0)
    raise ImageError(f"{path}: unsupported sample type {raw.dtype}")


def read_image(path: str | os.PathLike, protocol: str = "16bit", channels: int | None = None) -> np.ndarray:
    """Read an image as float32 ``(H, W, C)`` RGB in [0, 1].

    ``protocol``: ``"16bit"`` or ``"8bit"`` (legacy ``v >> 8`` truncation of 16-bit files).
    ``channels``: None = as stored (1 or 3); 3 = replicate grey to RGB; 1 = require one channel.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be None, 1 or 3, not {channels!r}")
    path = Path(path)
    raw = read_raw(path)
    c = raw.shape[-1]
    if channels == 1 and c != 1:
        raise ImageError(f"{path}: expected a single-channel image, got {c} channels")
    if channels == 3 and c == 1:
        raw = np.repeat(raw, 3, axis=-1)
    return to_float(raw, protocol, path)


def read_pair(
    left: str | os.PathLike, right: str | os.PathLike, protocol: str = "16bit", channels: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read two images that must have the same size (and channel count), e.g. a DP left/right pair."""
    a = read_image(left, protocol, channels)
    b = read_image(right, protocol, channels)
    if a.shape != b.shape:
        raise ImageError(
            f"size mismatch: {left} is {a.shape[1]}x{a.shape[0]}x{a.shape[2]} (WxHxC) but "
            f"{right} is {b.shape[1]}x{b.shape[0]}x{b.shape[2]}"
        )
    return a, b


def _quantise(path: Path, img, maxval: int, dtype) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[-1] == 3)):
        raise ImageError(f"{path}: cannot write an array of shape {img.shape} (expected (H,W), (H,W,1) or (H,W,3))")
    if img.dtype.kind not in "fiub":
        raise ImageError(f"{path}: cannot write an array of dtype {img.dtype}")
    img = img.astype(np.float64)
    if not np.all(np.isfinite(img)):
        raise ImageError(f"{path}: refusing to write an image with NaN or infinite values")
    q = np.rint(np.clip(img, 0.0, 1.0) * maxval).astype(dtype)
    if q.ndim == 3:
        q = np.ascontiguousarray(q[..., ::-1])  # RGB -> BGR for OpenCV
    return q


def _write_atomic(path: Path, q: np.ndarray) -> Path:
    cv2 = _cv2()
    ok, enc = cv2.imencode(".png", q)
    if not ok:
        raise ImageError(f"{path}: PNG encoding failed")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(enc.tobytes())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    return path


def write_png16(path: str | os.PathLike, img) -> Path:
    """Write float ``[0, 1]`` ``(H, W)`` / ``(H, W, 1)`` grey or ``(H, W, 3)`` RGB as a 16-bit PNG.

    Values are clipped to [0, 1] and rounded to the nearest of 0..65535; NaN/inf are an error. Atomic.
    """
    path = Path(path)
    return _write_atomic(path, _quantise(path, img, 65535, np.uint16))


def write_png8(path: str | os.PathLike, img) -> Path:
    """As :func:`write_png16`, 8-bit (0..255); for previews and 8-bit data sets."""
    path = Path(path)
    return _write_atomic(path, _quantise(path, img, 255, np.uint8))


def write_csv(df, path: str | os.PathLike, float_format: str | None = None) -> Path:
    """Write a pandas frame as CSV atomically (``<name>.tmp`` + rename): a reader never sees half a table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        df.to_csv(tmp, index=False, float_format=float_format)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
