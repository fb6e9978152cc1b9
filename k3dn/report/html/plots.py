"""The PSNR plot of one test set: every method's mean with its interval, the published values and the blurry
input, from the rows of that set's quality tables.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import pandas as pd

from k3dn.report.html.text import (
    _external_label,
    _num,
    _text,
    headline_group,
    interval_applies,
    partial_group,
    short_name,
)


@dataclass
class Point:
    label: str
    method: str
    ours: float
    low: float
    high: float
    paper: float
    same_protocol: bool
    not_run: bool = False  # the workflow left the row out: only its published value is drawn


def df_protocol(df: pd.DataFrame) -> str:
    """The protocol our rows were scored under (one per table)."""
    values = [v for v in (_text(v) for v in df.get("protocol", [])) if v]
    return values[0] if values else ""


def psnr_points(tables: list[tuple[str, pd.DataFrame, dict]]) -> tuple[list[Point], Point | None]:
    """Every row of the quality tables of one test set, once per method (its first table's label; a later table's
    row is named with its table, e.g. ``9x9 (Table 9)``, and a row of a table whose headline is one group of its
    images with that group, ``B (outdoor)``), and the blurry input apart. The interval is drawn only where it
    averages the images of the mean (:func:`~k3dn.report.html.text.interval_applies`)."""
    points, blurry, seen = [], None, set()
    # tables over every image first: a method (the blurry line too) is drawn at its mean over all of them
    tables = sorted(tables, key=lambda t: bool(partial_group(t[1], t[2])))
    for i, (name, df, spec) in enumerate(tables):
        g = headline_group(df)
        interval = interval_applies(df, spec)
        part = partial_group(df, spec)
        for r in df.to_dict("records"):
            method, label = _text(r.get("method")), _external_label(r)
            key = method or f"published:{label}"
            if key in seen:
                continue
            seen.add(key)
            not_run = _text(r.get("note")).startswith("not run")
            where = ", ".join(x for x in (short_name(name, spec) if i else "", part) if x)
            p = Point(
                label + (f" ({where})" if where else "") + (" (not run)" if not_run else ""),
                method,
                _num(r.get(f"{g}psnr")),
                _num(r.get("psnr_ci95_low")) if interval else math.nan,
                _num(r.get("psnr_ci95_high")) if interval else math.nan,
                _num(r.get(f"{g}psnr_paper")),
                # measured as we measure (the table's protocol), whether or not our row ran
                _text(r.get("paper_protocol")) == _text(spec.get("protocol") or r.get("protocol") or df_protocol(df)),
                not_run,
            )
            if method == "identity" or label == "Blurry input":
                blurry = blurry or p
            elif math.isfinite(p.ours) or math.isfinite(p.paper):
                points.append(p)
    return points, blurry


def psnr_plot(title: str, points: list[Point], blurry: Point | None) -> bytes:
    """Every method's mean PSNR with its 95% interval, the published value marked (filled: same protocol as ours,
    hollow: another), the blurry input a vertical line. PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")  # as k3dn.report.plotting: never a window
    import matplotlib.pyplot as plt

    n = max(len(points), 1)
    fig, ax = plt.subplots(figsize=(7.5, 1.4 + 0.24 * n), layout="constrained")
    ys = list(range(n))[::-1]
    for y, p in zip(ys, points):
        if math.isfinite(p.ours):
            err = None
            if math.isfinite(p.low) and math.isfinite(p.high):
                err = [[max(p.ours - p.low, 0)], [max(p.high - p.ours, 0)]]
            ax.errorbar(p.ours, y, xerr=err, fmt="o", ms=4, color="C0", ecolor="C0", capsize=2, lw=1, zorder=3)
        if math.isfinite(p.paper):
            face = "C1" if p.same_protocol else "none"
            ax.plot(p.paper, y, "D", ms=5, mfc=face, mec="C1", zorder=4)
        if p.not_run and math.isfinite(p.paper):  # unlike a published-only row: crossed out
            ax.plot(p.paper, y, "x", ms=7, color="0.3", zorder=5)
    handles = [ax.errorbar([], [], xerr=[], fmt="o", ms=4, color="C0", capsize=2, lw=1, label="ours, 95% CI")]
    for same, face, what in ((True, "C1", "same protocol"), (False, "none", "other or unstated protocol")):
        if any(math.isfinite(p.paper) and p.same_protocol == same for p in points):
            handles.append(ax.plot([], [], "D", ms=5, mfc=face, mec="C1", label=f"published, {what}")[0])
    if any(p.not_run for p in points):
        handles.append(ax.plot([], [], "x", ms=7, color="0.3", label="not run: published only")[0])
    if blurry is not None and math.isfinite(blurry.ours):
        handles.append(ax.axvline(blurry.ours, color="0.45", ls="--", lw=1, label=f"blurry input {blurry.ours:.2f}"))
        if math.isfinite(blurry.low) and math.isfinite(blurry.high):
            band = ax.axvspan(blurry.low, blurry.high, color="0.85", alpha=0.5, lw=0, label="blurry input, 95% CI")
            handles.append(band)
    # labels are the config's and a user's words: a "$" is a dollar sign, never TeX (which may not even parse)
    ax.set_yticks(ys, [p.label for p in points], fontsize=8, parse_math=False)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel("PSNR (dB)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title, fontsize=9, parse_math=False)
    legend = fig.legend(handles=handles, fontsize=7, loc="outside lower center", ncol=4, frameon=False)
    for text in legend.get_texts():
        text.set_parse_math(False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
