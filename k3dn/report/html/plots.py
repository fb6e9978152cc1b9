"""The PSNR plot of one test set: every method's mean with its interval, the published values and the blurry
input, from the rows of that set's quality tables.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import pandas as pd

from k3dn.report.html.text import _COMBINED, _external_label, _num, _text, headline_group, short_name


@dataclass
class Point:
    label: str
    method: str
    ours: float
    low: float
    high: float
    paper: float
    same_protocol: bool


def df_protocol(df: pd.DataFrame) -> str:
    """The protocol our rows were scored under (one per table)."""
    values = [v for v in (_text(v) for v in df.get("protocol", [])) if v]
    return values[0] if values else ""


def psnr_points(tables: list[tuple[str, pd.DataFrame, dict]]) -> tuple[list[Point], Point | None]:
    """Every row of the quality tables of one test set, once per method (its first table's label; a later table's
    row is named with its table, e.g. ``9x9 (Table 9)``), and the blurry input apart."""
    points, blurry, seen = [], None, set()
    for i, (name, df, spec) in enumerate(tables):
        g = headline_group(df)
        interval = g in ("", *(f"{c}_" for c in _COMBINED))
        for r in df.to_dict("records"):
            method, label = _text(r.get("method")), _external_label(r)
            key = method or f"published:{label}"
            if key in seen:
                continue
            seen.add(key)
            p = Point(
                label if i == 0 else f"{label} ({short_name(name, spec)})",
                method,
                _num(r.get(f"{g}psnr")),
                _num(r.get("psnr_ci95_low")) if interval else math.nan,
                _num(r.get("psnr_ci95_high")) if interval else math.nan,
                _num(r.get(f"{g}psnr_paper")),
                # measured as we measure (the table's protocol), whether or not our row ran
                _text(r.get("paper_protocol")) == _text(spec.get("protocol") or r.get("protocol") or df_protocol(df)),
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
    handles = [ax.errorbar([], [], xerr=[], fmt="o", ms=4, color="C0", capsize=2, lw=1, label="ours, 95% CI")]
    for same, face, what in ((True, "C1", "same protocol"), (False, "none", "other protocol")):
        if any(math.isfinite(p.paper) and p.same_protocol == same for p in points):
            handles.append(ax.plot([], [], "D", ms=5, mfc=face, mec="C1", label=f"published, {what}")[0])
    if blurry is not None and math.isfinite(blurry.ours):
        handles.append(ax.axvline(blurry.ours, color="0.45", ls="--", lw=1, label=f"blurry input {blurry.ours:.2f}"))
        if math.isfinite(blurry.low) and math.isfinite(blurry.high):
            ax.axvspan(blurry.low, blurry.high, color="0.85", alpha=0.5, lw=0)
    ax.set_yticks(ys, [p.label for p in points], fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel("PSNR (dB)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title, fontsize=9)
    fig.legend(handles=handles, fontsize=7, loc="outside lower center", ncol=4, frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
