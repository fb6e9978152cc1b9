"""Where the Pixel set's calibrated kernel pairs sit relative to its all-in-focus ground truth, measured through
the two-view Wiener baseline: tune the pair centroid on a few named scenes, report the others.

A convolution kernel whose centre of mass is off its centre tap shifts the image it blurs. The calibrated pairs'
mean centroid (of the left and right kernels) is about (-1, -1.4) px at blur size 1, so deconvolving with them
moves the result by that much times the blur size relative to the views. Whether the ground truth sits there
is a property of the data set, not of the method, so it is measured here: ``DPWiener(pair_centroid=(dy, dx))``
moves both kernels of every pair by the same amount so that their mean centroid is at (dy, dx) px (times the
blur size when scaled), and a grid of (dy, dx) is scored on the ``--tune`` scenes only. Then every variant is
reported on the other scenes: the blurry input (L+R)/2, the kernels as calibrated, the left and right kernels
swapped, the pairs centred (0, 0), and the tuned centroid.

By default on the central 336x336 of the 1008x1344 crop (the 2x2 calibration cells 19, 20, 27, 28, about 4 s a
variant and scene on 2 CPU cores); ``--full`` on the whole crop with all 48 cells (about a minute each).

    python scripts/pixel_wiener_centroid.py --pixel PATH/DP_data_pixel_4 [--tune 001 002 003 004] [--full]
        [--shifts] [--centroid DY DX] [--variants calibrated tuned] [--out results/pixel_wiener_centroid.csv]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from baselines.wiener import DPWiener
from k3dn.data.layouts.pixel import (
    PIXEL_BLACK,
    PIXEL_CROP,
    PIXEL_WHITE,
    _center_crop,
    _raw_linear,
    pixel_vignetting_ratio,
)
from k3dn.io import write_csv
from k3dn.metrics import psnr

CENTRAL = (slice(336, 672), slice(504, 840))  # rows 2-3, columns 3-4 of the 6 x 8 grid of 168-px cells
CENTRAL_CELLS = (19, 20, 27, 28)
GRID_DY = (0.0, 0.5, 1.0)
GRID_DX = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)


def load_scene(pixel: Path, scene: str, ratio: np.ndarray, full: bool):
    """Corrected views and ground truth of one scene (as the Pixel adapter makes them), cropped."""
    lp, rp = pixel / f"{scene}_left.png", pixel / f"{scene}_right.png"
    left, _ = _center_crop(_raw_linear(lp, PIXEL_BLACK, PIXEL_WHITE), PIXEL_CROP, lp)
    right, _ = _center_crop(_raw_linear(rp, PIXEL_BLACK, PIXEL_WHITE) * ratio, PIXEL_CROP, rp)
    right = np.clip(right, 0, 1)
    from k3dn.io import read_raw

    gt = read_raw(pixel / "gt_all_in_focus_im" / f"{scene}_gt.png")[..., 0].astype(np.float64) / 65535
    if full:  # the ground truth's 1-px border is 0: left out of the score
        inner = (slice(1, -1), slice(1, -1))
        return left, right, gt, inner
    return left[CENTRAL], right[CENTRAL], gt[CENTRAL], (slice(None), slice(None))


def view_displacement(data: dict, window: int = 96) -> dict:
    """The views' displacement from the ground truth, by phase correlation of textured ``window``-px windows:
    ``in_focus`` the median common displacement (dy, dx) where the two views agree (|disparity| <= 0.5 px) and
    ``per_disparity`` the median of (common displacement) / (disparity, right minus left) in x where they do
    not (|disparity| > 1 px), each with its number of windows. A kernel pair's common centroid moves the views
    by that centroid times the blur size: zero in focus, growing with the disparity."""
    from skimage.registration import phase_cross_correlation

    focus, ratios = [], []
    for left, right, gt, _ in data.values():
        h, w = gt.shape
        for y in range(8, h - window - 8, window):
            for x in range(8, w - window - 8, window):
                g, lv, rv = (a[y : y + window, x : x + window] for a in (gt, left, right))
                if g.std() < 0.02 * g.mean():
                    continue
                # the shift that moves a view onto the ground truth is minus its displacement
                dl = -phase_cross_correlation(g, lv, upsample_factor=10)[0]
                dr = -phase_cross_correlation(g, rv, upsample_factor=10)[0]
                if max(abs(dl[0]), abs(dr[0])) > 2:
                    continue
                d = dr[1] - dl[1]
                if abs(d) <= 0.5:
                    focus.append((dl + dr) / 2)
                elif abs(d) > 1:
                    ratios.append((dl[1] + dr[1]) / 2 / d)
    return {
        "in_focus": np.median(focus, axis=0) if focus else np.full(2, np.nan),
        "n_in_focus": len(focus),
        "per_disparity": float(np.median(ratios)) if ratios else float("nan"),
        "n_defocused": len(ratios),
    }


def variants(kernels, full: bool, centroid):
    left, right = kernels
    cells = slice(None) if full else list(CENTRAL_CELLS)
    grid = (6, 8) if full else (2, 2)
    out = {
        "calibrated": dict(kernels=(left[cells], right[cells]), grid=grid),
        "swapped": dict(kernels=(right[cells], left[cells]), grid=grid),
        "centred": dict(kernels=(left[cells], right[cells]), grid=grid, pair_centroid=(0.0, 0.0)),
    }
    if centroid is not None:
        out["tuned"] = dict(kernels=(left[cells], right[cells]), grid=grid, pair_centroid=centroid)
    return out


def score(model: DPWiener, scene) -> float:
    left, right, gt, inner = scene
    with torch.no_grad():
        out = model.deblur(torch.from_numpy(left)[None, None].float(), torch.from_numpy(right)[None, None].float())[0]
    return psnr(out[0, 0].clamp(0, 1).double().numpy()[inner], gt[inner])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pixel", type=Path, required=True, help="the DP_data_pixel_4 folder")
    ap.add_argument("--tune", nargs="+", default=["001", "002", "003", "004"])
    ap.add_argument("--full", action="store_true", help="the whole 1008x1344 crop (48 cells)")
    ap.add_argument("--shifts", action="store_true", help="first measure the views' displacement from the GT")
    ap.add_argument("--centroid", type=float, nargs=2, default=None, help="skip the tuning: use this (dy, dx)")
    ap.add_argument(
        "--variants",
        nargs="+",
        default=["calibrated", "swapped", "centred", "tuned"],
        choices=["calibrated", "swapped", "centred", "tuned"],
        help="what to report beside the blurry input",
    )
    ap.add_argument("--out", type=Path, default=Path("results/pixel_wiener_centroid.csv"))
    args = ap.parse_args(argv)
    cal = args.pixel / "calibration"
    scenes = sorted(p.name.split("_")[0] for p in args.pixel.glob("*_left.png"))
    if not scenes or not set(args.tune) <= set(scenes):
        sys.exit(f"{args.pixel}: scenes {scenes}, tune {args.tune}: not a Pixel folder holding the tuning scenes")
    kernels = tuple(np.load(cal / f"blur_kernels_{side}.npy").astype(np.float64) for side in ("left", "right"))
    ratio = pixel_vignetting_ratio(cal / "white_sheet_left.png", cal / "white_sheet_right.png")
    data = {s: load_scene(args.pixel, s, ratio, args.full) for s in scenes}
    t0 = time.perf_counter()
    if args.shifts:
        from baselines.wiener import centroid as com

        cl, cr = (np.mean([com(np.clip(k, 0, None)) for k in ks], axis=0) for ks in kernels)
        full = data if args.full else {s: load_scene(args.pixel, s, ratio, True) for s in scenes}
        m = view_displacement(full)
        print(
            f"views' common displacement from the ground truth, {len(scenes)} scenes: in focus "
            f"({m['n_in_focus']} windows) (dy, dx) = ({m['in_focus'][0]:+.2f}, {m['in_focus'][1]:+.2f}) px; out of "
            f"focus ({m['n_defocused']} windows) {m['per_disparity']:+.3f} x the disparity in x, where the stored "
            f"pairs predict {(cl[1] + cr[1]) / 2 / (cr[1] - cl[1]):+.3f}",
            flush=True,
        )

    centroid = args.centroid
    if centroid is None:
        cells = slice(None) if args.full else list(CENTRAL_CELLS)
        grid = (6, 8) if args.full else (2, 2)
        best = None
        for c in itertools.product(GRID_DY, GRID_DX):
            m = DPWiener(kernels=(kernels[0][cells], kernels[1][cells]), grid=grid, pair_centroid=c)
            mean = float(np.mean([score(m, data[s]) for s in args.tune]))
            print(f"tune ({c[0]:+.1f}, {c[1]:+.1f}): {mean:.2f} dB on {', '.join(args.tune)}", flush=True)
            if best is None or mean > best[0]:
                best = (mean, c)
        centroid = best[1]
    print(f"pair centroid (dy, dx) = ({centroid[0]:+.1f}, {centroid[1]:+.1f}) px at blur size 1", flush=True)

    rows = []
    for s in scenes:
        left, right, gt, inner = data[s]
        row = {
            "scene": s,
            "split": "tune" if s in args.tune else "held-out",
            "input": psnr((left + right)[inner] / 2, gt[inner]),
        }
        for name, kw in variants(kernels, args.full, centroid).items():
            if name in args.variants:
                row[name] = score(DPWiener(**kw), data[s])
        rows.append(row)
        print(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    df = pd.DataFrame(rows)
    df["pair_centroid"] = f"{centroid[0]:+.1f},{centroid[1]:+.1f}"
    df["region"] = "full 1008x1344" if args.full else "central 336x336"
    write_csv(df, args.out)
    cols = ["input", "calibrated", "swapped", "centred", "tuned"]
    print(df.groupby("split")[[c for c in cols if c in df]].mean().round(2).to_string())
    held = df[df.split == "held-out"]
    if "tuned" in df and len(held):
        print(f"held-out: tuned beats the input on {(held.tuned > held.input).sum()}/{len(held)} scenes")
    print(f"{time.perf_counter() - t0:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
