"""Figures: the ablations against the paper, speed against accuracy, and qualitative comparisons."""

from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window (CI has no display)
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from k3dn.data.manifest import read_manifest
from k3dn.io import read_image


def _save(fig, out) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp" + out.suffix)
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, out)
    return out


def ablation_figure(tables: dict[str, str], out) -> Path:
    """One panel per ablation table: our PSNR and the paper's, per setting."""
    fig, axes = plt.subplots(1, len(tables), figsize=(4.2 * len(tables), 3.2), squeeze=False)
    for ax, (title, path) in zip(axes[0], tables.items()):
        df = pd.read_csv(path)
        x = np.arange(len(df))
        ax.plot(x, df["psnr_paper"], "o--", label="paper")
        ax.plot(x, df["psnr"], "s-", label="ours")
        ax.set_xticks(x, df["row"], rotation=30)
        ax.set_title(title)
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    return _save(fig, out)


def speed_accuracy_figure(accuracy_csv, speed_csv, out, psnr_col="combined_psnr") -> Path:
    """PSNR against seconds per image for the methods present in both tables."""
    acc, spd = pd.read_csv(accuracy_csv), pd.read_csv(speed_csv)
    if psnr_col not in acc.columns:
        psnr_col = "psnr"
    both = acc.merge(spd, on="row", suffixes=("", "_speed"))
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for _, r in both.iterrows():
        if math.isfinite(r[psnr_col]) and math.isfinite(r["seconds"]):
            ax.scatter(r["seconds"], r[psnr_col])
            ax.annotate(r["row"], (r["seconds"], r[psnr_col]), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel(f"seconds per image ({spd['device'].iloc[0] if 'device' in spd else ''})")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(alpha=0.3)
    return _save(fig, out)


def qualitative_figure(manifest, predictions: dict[str, str], out, index: int = 0, crop: int = 256) -> Path:
    """Blurry input, each method's output and the target, on the same centre crop of one test image."""
    row = read_manifest(manifest).iloc[index]
    protocol, ch = row["protocol"], 3
    panels = [("input (C)", read_image(row["center"] or row["left"], protocol, channels=ch))]
    for name, folder in predictions.items():
        panels.append((name, read_image(Path(folder) / f"{row['id']}.png", "16bit", channels=ch)))
    if row["target"]:
        panels.append(("target", read_image(row["target"], protocol, channels=ch)))
    h, w = panels[0][1].shape[:2]
    c = min(crop, h, w)
    y0, x0 = (h - c) // 2, (w - c) // 2
    fig, axes = plt.subplots(1, len(panels), figsize=(2.4 * len(panels), 2.6), squeeze=False)
    for ax, (name, img) in zip(axes[0], panels):
        ax.imshow(np.clip(img[y0:y0 + c, x0:x0 + c], 0, 1))
        ax.set_title(name, fontsize=8)
        ax.axis("off")
    return _save(fig, out)
