"""Xin et al. (ICCV 2021) Pixel 4 set: 14-bit single-channel raw views, corrected here (black level, white
level, vignetting from the white sheets) and centre-cropped; the calibrated per-patch blur kernels are
copied for the Wiener baseline."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from k3dn.data.adapters import ADAPTERS
from k3dn.data.layouts.common import (
    LayoutError,
    Scan,
    find_dirs,
    natural_key,
    probe,
    same_size,
)

PIXEL_COUNT = 17
_PROTOCOL = ADAPTERS["pixel"].protocol
PIXEL_BLACK = 1024
PIXEL_WHITE = 2**14 - 1
PIXEL_CROP = (1008, 1344)  # 6 x 8 patches of 168 px
PIXEL_GRID = (6, 8)
PIXEL_PATCH = 168
PIXEL_WINDOW = 101


def _pixel_root(root: Path) -> Path:
    hits = find_dirs(root, lambda d: (d / "calibration").is_dir() and any(d.glob("*_left.png")), max_depth=3)
    if not hits:
        raise LayoutError(
            f"{root}: no Pixel (Xin et al.) layout found (expected DP_data_pixel_4/NNN_left.png, "
            "NNN_right.png, calibration/, gt_all_in_focus_im/)"
        )
    return hits[0]


def scan_pixel(root, *, expected_count: int | None = PIXEL_COUNT) -> Scan:
    """Xin et al. Pixel 4 set, raw files (no processing): ``NNN_left.png``, ``NNN_right.png`` (single-channel
    16-bit raw green, black level 1024), ``gt_all_in_focus_im/NNN_gt.png`` (linear, /65535),
    ``gt_defocus_map/NNN_gt.png`` (8-bit, min-max normalised), ``calibration/``. Rows point at the raw
    views; :func:`write_manifests` replaces them with the corrected crops."""
    base = _pixel_root(Path(root))
    scan = Scan("pixel", Path(root))
    ids = []
    for p in sorted(base.iterdir(), key=lambda p: natural_key(p.name)):
        m = re.fullmatch(r"(\d+)_left\.png", p.name)
        if m:
            ids.append(m.group(1))
        elif p.is_file() and not re.fullmatch(r"\d+_right\.png", p.name):
            scan.warn(f"{p}: not part of the Pixel layout, ignored")
    if expected_count is not None and len(ids) != expected_count:
        raise LayoutError(f"{base}: {len(ids)} scenes (NNN_left.png), expected {expected_count}")
    cal = base / "calibration"
    for name in ("white_sheet_left.png", "white_sheet_right.png", "blur_kernels_left.npy", "blur_kernels_right.npy"):
        if not (cal / name).is_file():
            raise LayoutError(f"{cal / name}: calibration file missing")
        scan.extra_files.append(("calibration", str(cal / name)))
    rows = []
    for i in ids:
        left, right = base / f"{i}_left.png", base / f"{i}_right.png"
        gt = base / "gt_all_in_focus_im" / f"{i}_gt.png"
        dmap = base / "gt_defocus_map" / f"{i}_gt.png"
        for p, what in ((right, "right view"), (gt, "all-in-focus ground truth")):
            if not p.is_file():
                raise LayoutError(f"{p}: {what} of scene {i} missing")
        infos = {"left": probe(left), "right": probe(right), "target": probe(gt)}
        same_size({"left": left, "right": right}, infos, f"pixel scene {i}")
        for k, p in (("left", left), ("right", right), ("target", gt)):
            if infos[k].channels != 1 or infos[k].bit_depth != 16:
                raise LayoutError(
                    f"{p}: {infos[k].channels}-channel {infos[k].bit_depth}-bit, expected single-channel 16-bit"
                )
        row = {
            "id": i,
            "dataset": "pixel",
            "split": "test",
            "left": str(left),
            "right": str(right),
            "target": str(gt),
            "protocol": _PROTOCOL,
            "channels": 1,
        }
        if dmap.is_file():
            probe(dmap)
            row["disparity"] = str(dmap)
        else:
            scan.warn(f"{dmap}: defocus-map ground truth missing; disparity left empty")
        rows.append(row)
    if not rows:
        raise LayoutError(f"{base}: no scenes")
    scan.splits["test"] = rows
    return scan


def _raw_linear(path: Path, black: int, white: int) -> np.ndarray:
    from k3dn.io import ImageError, read_raw

    try:
        raw = read_raw(path)
    except ImageError as e:
        raise LayoutError(str(e)) from e
    if raw.dtype != np.uint16 or raw.shape[-1] != 1:
        raise LayoutError(f"{path}: expected single-channel 16-bit raw, got {raw.shape[-1]} channel(s) {raw.dtype}")
    return np.clip(raw[..., 0].astype(np.float64) - black, 0, None) / white


def pixel_vignetting_ratio(
    white_left: Path,
    white_right: Path,
    *,
    black: int = PIXEL_BLACK,
    white: int = PIXEL_WHITE,
    window: int = PIXEL_WINDOW,
) -> np.ndarray:
    """Per-pixel left/right white-sheet ratio (both black-level corrected), then a ``window``-square box average
    with zero padding and a fixed divisor (what a 'SAME' average pool does). The right view is multiplied by it.
    Pixels whose right white-sheet value is at the black level give NaN, which only matters if it reaches the crop."""
    from scipy.ndimage import uniform_filter

    wl = _raw_linear(white_left, black, white)
    wr = _raw_linear(white_right, black, white)
    if wl.shape != wr.shape:
        raise LayoutError(f"{white_left} and {white_right} differ in size ({wl.shape} vs {wr.shape})")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(wr > 0, wl / np.where(wr > 0, wr, 1.0), np.nan)
    return uniform_filter(ratio, size=window, mode="constant", cval=0.0)


def _center_crop(a: np.ndarray, crop: tuple[int, int], what: Path) -> tuple[np.ndarray, tuple[int, int]]:
    h, w = a.shape[:2]
    ch, cw = crop
    if h < ch or w < cw:
        raise LayoutError(f"{what}: {w}x{h} is smaller than the {cw}x{ch} crop")
    oy, ox = (h - ch) // 2, (w - cw) // 2
    return a[oy : oy + ch, ox : ox + cw], (oy, ox)


def load_pixel_kernels(root, *, grid: tuple[int, int] = PIXEL_GRID, patch: int = PIXEL_PATCH) -> dict:
    """Calibrated per-patch DP blur kernels of the Pixel set, for the Wiener baseline.

    Returns ``dict(left=(48, 61, 61), right=(48, 61, 61), grid=(6, 8), patch=168)`` (float32; one kernel per
    168-px patch of the 6 x 8 grid of the centre crop, rows first)."""
    cal = _pixel_root(Path(root)) / "calibration"
    out = {"grid": tuple(grid), "patch": int(patch)}
    for side in ("left", "right"):
        p = cal / f"blur_kernels_{side}.npy"
        try:
            k = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise LayoutError(f"{p}: cannot read blur kernels ({e})") from e
        if k.ndim != 3 or k.shape[0] != grid[0] * grid[1] or k.shape[1] != k.shape[2] or k.shape[1] % 2 == 0:
            raise LayoutError(f"{p}: kernel array of shape {k.shape}, expected ({grid[0] * grid[1]}, F, F) with odd F")
        out[side] = k.astype(np.float32)
    if out["left"].shape != out["right"].shape:
        raise LayoutError(f"{cal}: left and right kernels differ in shape")
    return out


def process_pixel(
    scan: Scan,
    processed: Path,
    *,
    crop: tuple[int, int] = PIXEL_CROP,
    black: int = PIXEL_BLACK,
    white: int = PIXEL_WHITE,
    window: int = PIXEL_WINDOW,
    grid=PIXEL_GRID,
    patch: int | None = None,
    progress: bool = True,
) -> Scan:
    """Write the corrected, cropped views as 16-bit single-channel PNGs (value x 65535) and point the rows at them.

    left = clip(raw - 1024, 0) / (2^14 - 1); right = the same x :func:`pixel_vignetting_ratio`; both centre-cropped
    to ``crop`` (1008 x 1344 at offset y=252, x=336 for the 1512 x 2016 frames). The all-in-focus GT is already
    on that linear scale (GT / 65535) and is used as is. ``center`` = (left + right) / 2 of the corrected
    views: derived here (the set has no combined image) so single-image models can run; not an official
    view. Values above 1 after the vignetting gain are clipped (counted in a warning). The calibrated kernels go
    to ``processed/blur_kernels.npz`` (keys left, right).
    """
    from k3dn.io import write_png16

    base = _pixel_root(scan.root)
    cal = base / "calibration"
    ratio_full = pixel_vignetting_ratio(
        cal / "white_sheet_left.png", cal / "white_sheet_right.png", black=black, white=white, window=window
    )
    ratio, _ = _center_crop(ratio_full, crop, cal / "white_sheet_right.png")
    if not np.all(np.isfinite(ratio)) or np.any(ratio <= 0):
        raise LayoutError(
            f"{cal / 'white_sheet_right.png'}: vignetting ratio undefined inside the crop "
            "(white-sheet pixels at or below the black level)"
        )
    processed = Path(processed)
    rows = []
    for r in tqdm(scan.splits["test"], desc="pixel: correct + crop", unit="scene", disable=not progress):
        left_p, right_p = Path(r["left"]), Path(r["right"])
        left = _raw_linear(left_p, black, white)
        right = _raw_linear(right_p, black, white)
        if left.shape != ratio_full.shape:
            raise LayoutError(
                f"{left_p}: {left.shape[1]}x{left.shape[0]} differs from the white sheets "
                f"{ratio_full.shape[1]}x{ratio_full.shape[0]}"
            )
        left, _ = _center_crop(left, crop, left_p)
        right, _ = _center_crop(right, crop, right_p)
        right = right * ratio
        clipped = int(np.count_nonzero(right > 1.0))
        if clipped:
            scan.warn(f"{right_p}: {clipped} pixel(s) above 1 after the vignetting gain, clipped")
        gt_info = probe(Path(r["target"]))
        if (gt_info.height, gt_info.width) != tuple(crop):
            raise LayoutError(
                f"{r['target']}: ground truth is {gt_info.width}x{gt_info.height}, expected the "
                f"{crop[1]}x{crop[0]} crop"
            )
        out = {}
        for col, img in (("left", left), ("right", right), ("center", 0.5 * (left + np.clip(right, 0, 1)))):
            out[col] = str(write_png16(processed / col / f"{r['id']}.png", np.clip(img, 0.0, 1.0).astype(np.float32)))
        rows.append({**r, **out})
    if patch is None:
        # The calibration grid (6 x 8 cells) covers the crop, whatever its size.
        patch = crop[0] // grid[0]
    kernels = load_pixel_kernels(scan.root, grid=grid, patch=patch)
    processed.mkdir(parents=True, exist_ok=True)
    tmp = processed / "blur_kernels.tmp.npz"
    np.savez(tmp, left=kernels["left"], right=kernels["right"])
    os.replace(tmp, processed / "blur_kernels.npz")
    new = Scan(scan.dataset, scan.root, {"test": rows}, list(scan.warnings), list(scan.extra_files))
    return new
