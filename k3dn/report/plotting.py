"""What every figure module shares: the non-interactive backend, atomic PNG writing, checked reading of the tables,
manifests and images a figure draws, and one image panel.

:mod:`k3dn.report.figures` and :mod:`k3dn.report.model_figures` both import from here and never from each other's
helpers, so the figures that need torch stay in their own module. No torch here.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window (CI has no display)
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from k3dn.data.manifest import read_manifest
from k3dn.errors import InputError
from k3dn.io import read_image


def save_figure(fig, out) -> Path:
    """Write ``fig`` to ``out`` via ``<name>.tmp.png`` and a rename, so a killed job leaves no half PNG."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp" + out.suffix)
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, out)
    return out


def read_table(path, columns, what: str = "table") -> pd.DataFrame:
    """A CSV that must exist and have ``columns``; else an InputError naming the file and what is missing."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found; build it first, or fix its path in the figure's spec", where=path)
    df = pd.read_csv(path, keep_default_na=True, dtype={"row": str, "id": str})
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(
            f"{what} has no column(s) {missing} (columns: {list(df.columns)}); is the spec naming the right file?",
            where=path,
        )
    return df


def manifest_rows(manifest, n: int | None = None, need=()) -> list[dict]:
    """The first ``n`` rows of a manifest (all if None) as dicts; each must have the columns in ``need`` filled."""
    rows = read_manifest(manifest).to_dict("records")
    rows = rows if n is None else rows[: max(1, int(n))]
    if not rows:
        raise InputError("manifest has no rows; this figure needs at least one image", where=manifest)
    for c in need:
        empty = [r["id"] for r in rows if not r.get(c)]
        if empty:
            raise InputError(
                f"column {c!r} is empty for row(s) {empty[:5]}; this figure needs it (give a manifest that has it)",
                where=manifest,
            )
    return rows


def read_view(path, protocol: str = "16bit") -> np.ndarray:
    """An image as (H, W, 3) float in [0, 1]; a missing file is an InputError naming it."""
    if not path or not Path(path).is_file():
        raise InputError("image not found; check the manifest or the prediction folder", where=path or "<empty path>")
    return read_image(path, protocol, channels=3)


def show(ax, img, title: str = "", fontsize: int = 8) -> None:
    ax.imshow(np.clip(img, 0, 1), interpolation="nearest")
    ax.set_title(title, fontsize=fontsize)
    ax.axis("off")
