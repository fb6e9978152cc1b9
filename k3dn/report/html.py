"""``results/report.html``: every table and figure of a run in one self-contained page.

Tables are rendered by pandas (``Styler``) from ``results/tables/*.csv``: ours, the published value and their
difference per metric, the 95% bootstrap interval of the mean PSNR, the paired comparison with the K3DN row,
and why a difference is missing. Two comparisons, two yardsticks:

* published against ours: a published table gives means only, no per-image values, so no paired interval exists
  for the gap. The image-to-image spread in our unpaired interval is shared by both numbers and says nothing
  about it. A PSNR gap is marked when it exceeds the reproduction tolerance, :data:`TOLERANCE_DB`.
* ours against ours (``psnr_vs_ref``, the K3DN row): both are scored on the same images, so the paired bootstrap
  interval of the per-image difference is the right yardstick; a difference is marked where it excludes 0.

Figures are embedded as base64 PNG, so the file opens with no network and no other file. The footer holds the
provenance: code version, config hash, data checksums, devices, dtypes, and when it was built.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import os
from pathlib import Path

import pandas as pd

#: Captions of the figures the workflow draws (a figure without one gets its file name).
CAPTIONS = {
    "ablations": "Supplement Tables 9-11 as curves: PSNR of the window, kernel-size and PSF-block ablations.",
    "speed_accuracy": "Speed against accuracy (Table 12 against Table 1): ours, and the published A40 values.",
    "reblur": "Fig. 9: the reblurring path applied to K3DN's output, beside the real blurry view.",
    "psf_kernels": "Fig. 13: learned PSF kernel sets (left and right mirror each other) and the sub-kernel each "
    "region's disparity vector weights most.",
    "disparity_clusters": "Fig. 12: k-means over the disparity estimator's per-window features; on the synthetic "
    "set, against the true disparity.",
    "dpd_disp": "Fig. 11: the DPD-blur-trained models on DPD-disp scenes (no ground truth: qualitative).",
    "qualitative": "Figs. 14-18: per test set, the image with the largest K3DN gain over the blurry input and the "
    "median one, zoomed where K3DN gains most; PSNR on the crop.",
}

#: The gap (dB) between a published PSNR and ours that this project aims to reproduce within.
TOLERANCE_DB = 0.1

PROVENANCE_COLUMNS = ("git_commit", "config_hash", "data_sha256", "device", "dtype", "protocol")

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 12px; margin-bottom: 0.5em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f3f3f3; }
td.disagree { background: #f8c9c4; }
td.resolved { background: #cfe3f7; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
.note { color: #555; font-size: 13px; max-width: 70em; }
footer { margin-top: 3em; font-size: 12px; color: #444; }
</style></head><body>
<h1>{{ title }}</h1>
<p class="note">Each metric shows ours, the published value (<code>_paper</code>) and their difference
(<code>_diff</code>), given only where both were measured under the same protocol, and for times on the same device
(<code>diff_note</code> says why not elsewhere). Published tables give means only, so a gap between a published
number and ours has no paired interval: a PSNR gap is <span style="background:#f8c9c4">marked</span> where it exceeds
the &plusmn;{{ tolerance }} dB this reproduction aims for. <code>psnr_ci95_*</code> is the 95% bootstrap interval of our
mean over images; its width is the spread between images, which a published and our number share, so it is not a
yardstick for their gap. <code>psnr_vs_ref</code>: the paired per-image PSNR difference from the K3DN row, scored on
the same images, with its 95% paired bootstrap interval; it is <span style="background:#cfe3f7">marked</span> where
that interval excludes 0.</p>
{% if note %}<p class="note"><b>{{ note }}</b></p>{% endif %}
<h2>Tables</h2>
{% for t in tables %}<section id="table-{{ t.name }}"><h3>{{ t.name }}</h3>{{ t.html | safe }}</section>
{% endfor %}
<h2>Figures</h2>
{% for f in figures %}<figure id="figure-{{ f.name }}"><img alt="{{ f.name }}" src="data:image/png;base64,{{ f.data }}">
<figcaption><b>{{ f.name }}</b>: {{ f.caption }}</figcaption></figure>
{% endfor %}
<footer><h3>Provenance</h3><ul>
{% for k, v in provenance %}<li><b>{{ k }}</b>: {{ v }}</li>
{% endfor %}</ul></footer>
</body></html>
"""

# Columns shown per table, after the metric triples; the rest (provenance) goes to the footer.
SHOWN = [
    "psnr_ci95_low",
    "psnr_ci95_high",
    "vs_row",
    "psnr_vs_ref",
    "psnr_vs_ref_ci95_low",
    "psnr_vs_ref_ci95_high",
    "vs_ref_resolved",
    "diff_note",
    "note",
]


def _metric_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if f"{c}_paper" in df.columns]


def _disagreement(df: pd.DataFrame, tolerance: float = TOLERANCE_DB) -> pd.DataFrame:
    """CSS class per cell: ``disagree`` for a published-vs-ours PSNR gap beyond ``tolerance`` dB, ``resolved`` for
    a paired difference from the K3DN row whose interval excludes 0."""
    css = pd.DataFrame("", index=df.index, columns=df.columns)
    for c in df.columns:
        if c.endswith("psnr_diff"):
            css.loc[pd.to_numeric(df[c]).abs() > tolerance, c] = "disagree"
    if {"psnr_vs_ref", "vs_ref_resolved"} <= set(df.columns):
        css.loc[df["vs_ref_resolved"].astype(str) == "yes", "psnr_vs_ref"] = "resolved"
    return css


def render_table(df: pd.DataFrame) -> str:
    metrics = _metric_columns(df)
    cols = ["row"] + [x for c in metrics for x in (c, f"{c}_paper", f"{c}_diff")]
    if any(c.endswith("seconds") for c in metrics) and "device" in df:
        cols.append("device")  # a time means nothing without the device it was measured on
    view = df[cols + [c for c in SHOWN if c in df]].copy()
    css = _disagreement(view)
    styler = view.style.hide(axis="index").format(precision=4, na_rep="").set_td_classes(css)
    return styler.to_html()


def _provenance(tables: dict[str, pd.DataFrame]) -> list[tuple[str, str]]:
    seen: dict[str, set] = {c: set() for c in PROVENANCE_COLUMNS}
    for df in tables.values():
        for c in PROVENANCE_COLUMNS:
            if c in df.columns:
                seen[c] |= {str(v) for v in df[c].dropna() if str(v) not in ("", "nan")}
    items = [(c, ", ".join(sorted(v)) or "-") for c, v in seen.items()]
    items.append(("built", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")))
    return items


def build_report(
    tables: dict[str, str], figures: dict[str, str], out, title: str = "K3DN reproduction", note: str = ""
) -> Path:
    """``tables``: name -> CSV; ``figures``: name -> PNG. Every file must exist."""
    import jinja2

    frames = {}
    for name, path in tables.items():
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: table {name!r} not found; run the workflow's tables first")
        frames[name] = pd.read_csv(path, dtype={"row": str})
    rendered = [
        {
            "name": n,
            "html": render_table(df)
            if "row" in df.columns
            else df.to_html(index=False, float_format=lambda v: f"{v:.4g}" if math.isfinite(v) else ""),
        }
        for n, df in frames.items()
    ]
    figs = []
    for name, path in figures.items():
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: figure {name!r} not found; run the workflow's figures first")
        base = name.split("_", 1)[0] if name.startswith("qualitative") else name
        figs.append(
            {"name": name, "caption": CAPTIONS.get(base, p.name), "data": base64.b64encode(p.read_bytes()).decode()}
        )
    env = jinja2.Environment(autoescape=True)
    html = env.from_string(TEMPLATE).render(
        title=title, note=note, tolerance=TOLERANCE_DB, tables=rendered, figures=figs, provenance=_provenance(frames)
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html)
    os.replace(tmp, out)
    return out
