"""The page itself: its template, the sections per test set, and :func:`build_report`, which reads the CSVs
and PNGs and writes the one self-contained file.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
from pathlib import Path

from k3dn.errors import InputError
from k3dn.report.html.pairwise import pairwise_view, read_pairwise
from k3dn.report.html.plots import psnr_plot, psnr_points
from k3dn.report.html.provenance import provenance_html, provenance_summary, provenance_values
from k3dn.report.html.text import (
    TEST_SETS,
    _text,
    _unique,
    is_external,
    partial_group,
    read_csv,
    short_name,
    table_kind,
    table_title,
)
from k3dn.report.html.views import TOLERANCE_DB, render_table, view_html

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

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1320px; padding: 0 1.5em; color: #222;
  line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
h3 { font-size: 1.05em; margin-bottom: .3em; }
section { margin-bottom: 2.2em; }
.name { color: #777; font-weight: normal; font-size: 12px; }
/* Auto layout sized to the content, never wider than the page: anywhere-wrapping keeps every column's
   smallest width small. Numbers of a headline stay on one line, so no row is stretched by a wrapped interval. */
table { border-collapse: collapse; table-layout: auto; width: auto; font-size: 13px;
  font-variant-numeric: tabular-nums; margin: .3em 0; }
table.headline { min-width: 48em; } table.headline td { white-space: nowrap; }
th, td { padding: 3px 8px; text-align: right; vertical-align: top; overflow-wrap: anywhere; }
thead th:first-child, th.text { text-align: left; }
thead th { border-bottom: 2px solid #444; border-top: 2px solid #444; font-weight: 600; vertical-align: bottom; }
tbody tr { border-bottom: 1px solid #e3e3e3; }
tbody th, td.text, .long td { text-align: left; font-weight: normal; } tbody th { min-width: 8em; }
td.disagree { background: #f8c9c4; }
td.resolved { background: #cfe3f7; }
td.nodiff { background: repeating-linear-gradient(45deg, #fff, #fff 4px, #f1f1f1 4px, #f1f1f1 8px); }
.muted, td.unresolved { color: #777; }
.ci { color: #666; font-size: 11px; white-space: nowrap; }
.badge { font-size: 10px; background: #fde7b0; border-radius: 3px; padding: 0 3px; }
sup { font-size: 9px; margin-left: 1px; }
ol.notes { font-size: 12px; color: #444; margin: .3em 0 .6em; padding-left: 2em; max-width: 1100px; }
ol.notes li { overflow-wrap: anywhere; }
details { margin: .4em 0; font-size: 12px; } summary { cursor: pointer; color: #225; }
table.full { font-size: 11px; } table.full.long { table-layout: fixed; width: 100%; }
p.block { margin: .8em 0 0; font-style: italic; color: #444; }
table.pairwise { font-size: 11px; table-layout: fixed; width: 100%; }
table.pairwise td, table.pairwise thead th { text-align: center; padding: 2px 1px; }
table.pairwise thead th:first-child { text-align: left; }
/* a long name is cut, whole in its title, so no row of the matrix is taller than the others */
table.pairwise tbody th { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
table.pairwise td.resolved.pos { background: #cde8cd; font-weight: 600; }
table.pairwise td.resolved.neg { background: #f6d2cd; font-weight: 600; }
table.pairwise td.diag { color: #bbb; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
.note { color: #444; font-size: 13px; max-width: 70em; }
footer { margin-top: 3em; font-size: 13px; color: #333; border-top: 1px solid #bbb; }
footer dl { display: grid; grid-template-columns: 19em 1fr; gap: 2px 1em; } footer dt { color: #666; }
footer dd { margin: 0; overflow-wrap: anywhere; }
code { overflow-wrap: anywhere; }
</style></head><body>
<h1>{{ title }}</h1>
{% if note %}<p class="note"><b>{{ note }}</b></p>{% endif %}
<p class="note">A quality table's headline shows our mean PSNR over every image of the table (its combined group)
{%- if partial %}, or, in a table with no such group, over the images of its last group, named in its PSNR column
({{ partial }}){% endif %}, with the 95% bootstrap interval of that mean, the published value and their difference
&Delta;, then the other metrics and &Delta; vs the reference K3DN row. A speed table's headline shows our time
beside the device it was measured on, the published time and their difference, the parameters and GMACs; any other
table shows its columns as written. A row of result images made outside the suite is marked
<span class="badge">external</span> in every table: re-scored here, it is not the suite's port of the method.
A difference from a published value is given only where both were measured under the same protocol (and for times
on the same device class); elsewhere its cell is empty and a footnote says why.
Published tables give means only, so a gap between a published number and ours has no paired interval: a PSNR gap
is <span style="background:#f8c9c4">marked</span> where it exceeds the &plusmn;{{ tolerance }} dB this reproduction
aims for (never on an external row, which is no reproduction). Our interval is the spread between images, which a
published and our number share, so it is not a yardstick for their gap. &Delta; vs the reference K3DN row is the
paired per-image difference over the same images as the mean: it is <span style="background:#cfe3f7">marked</span>
where its 95% paired bootstrap interval excludes 0.
Hover a cell for details; every column of a table (indoor/outdoor included) is under its &ldquo;All columns&rdquo;
toggle.</p>
<h2>Tables</h2>
{% for t in tables %}<section id="table-{{ t.name }}"><h3>{{ t.title }} <span class="name">({{ t.name }})</span></h3>
{{ t.html | safe }}</section>
{% endfor %}
{% if tests %}<h2>By test set</h2>
{% for s in tests %}<section id="testset-{{ s.test }}"><h3>{{ s.title }}</h3>
{% if s.plot %}<figure class="plot" id="psnr-{{ s.test }}"><img alt="mean PSNR per method on {{ s.test }}"
 src="data:image/png;base64,{{ s.plot }}"><figcaption>Mean PSNR of each method over the images of {{ s.words }}, with
its 95% bootstrap interval (blue); the published value (orange diamond: filled where measured under our protocol,
hollow where under another or an unstated one); the blurry input (dashed line) with its 95% bootstrap interval (grey
band).{% if s.partial %} A label naming a group ({{ s.partial }}) is that group's mean: its table has no group of
every image.{% endif %}{% if s.not_run %} A row marked &ldquo;(not run)&rdquo; was left out by the workflow: only
its published value is drawn, crossed out.{% endif %}</figcaption></figure>{% endif %}
{% if s.pairwise %}<div class="pairwise" id="pairwise-{{ s.test }}">
<p class="block">Pairwise: {{ s.pairwise_caption }}</p>
{{ s.pairwise | safe }}</div>{% endif %}
</section>
{% endfor %}{% endif %}
{% if figures %}<h2>Figures</h2>{% endif %}
{% for f in figures %}<figure id="figure-{{ f.name }}"><img alt="{{ f.name }}" src="data:image/png;base64,{{ f.data }}">
<figcaption><b>{{ f.name }}</b>: {{ f.caption }}</figcaption></figure>
{% endfor %}
<footer><h3>Provenance</h3><dl>
{% for k, v in provenance %}<dt>{{ k }}</dt><dd>{{ v }}</dd>
{% endfor %}</dl>
<details class="provenance"><summary>Every provenance value and the tables that carry it</summary>
{{ provenance_full | safe }}</details>
</footer>
<script>
/* The page measures itself once laid out, for a headless browser to read from the DOM (no network). */
addEventListener("load", function () {
  var widest = 0, where = "";
  document.querySelectorAll("table").forEach(function (t) {
    var w = t.getBoundingClientRect().width;
    if (w > widest) { widest = w; var s = t.closest("section, footer"); where = s ? (s.id || s.tagName) : ""; }
  });
  var d = document.body.dataset;
  d.scrollWidth = document.documentElement.scrollWidth;
  d.clientWidth = document.documentElement.clientWidth;  /* the visible width: the window's less its scrollbar */
  d.viewportWidth = window.innerWidth;
  d.widestTable = Math.ceil(widest);
  d.widestTableIn = where;
});
</script>
</body></html>
"""


def _check_spec_map(value, key: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError("must be a JSON object", where=f"--spec: key {key!r}")
    return value


def report_from_spec(spec: dict, out) -> Path:
    """``k3dn report html --spec``: ``{"tables", "figures", "note"}`` and the optional ``"table_specs"``
    ({name: the table's spec from the workflow config: its title, test, kind, groups}) and ``"pairwise"``
    ({test set: CSV of ``k3dn report pairwise``})."""
    table_specs = _check_spec_map(spec.get("table_specs"), "table_specs")
    pairwise = _check_spec_map(spec.get("pairwise"), "pairwise")
    for name, s in table_specs.items():
        if not isinstance(s, dict):
            raise InputError("must be a JSON object (a table spec)", where=f"--spec: table_specs.{name}")
    return build_report(
        spec["tables"],
        spec["figures"],
        out,
        note=spec.get("note", ""),
        table_specs=table_specs,
        pairwise=pairwise,
    )


def _test_sets(frames, table_specs, pairwise) -> list[dict]:
    """Per test set: its quality tables (in the page's order) and its pairwise CSV."""
    by_test: dict[str, list] = {}
    for name, df in frames.items():
        spec = table_specs.get(name, {})
        if table_kind(df) == "quality":
            by_test.setdefault(_text(spec.get("test")) or name, []).append((name, df, spec))
    for test in pairwise:
        by_test.setdefault(test, [])
    sets = []
    for test, tables in by_test.items():
        title = TEST_SETS.get(test) or (table_title(tables[0][0], tables[0][1], tables[0][2]) if tables else test)
        named = test in pairwise or any(_text(spec.get("test")) == test for *_, spec in tables)
        words = f"the {TEST_SETS[test]}" if test in TEST_SETS else f"test set {test}" if named else f"table {test}"
        s = {"test": test, "title": title, "words": words, "plot": "", "pairwise": "", "pairwise_caption": ""}
        points, blurry = psnr_points(tables)
        if points:
            png = psnr_plot(f"{title}: mean PSNR per method", points, blurry)
            s["plot"] = base64.b64encode(png).decode()
            s["not_run"] = any(p.not_run for p in points)
            s["partial"] = ", ".join(
                f"{short_name(n, spec)}: {partial_group(df, spec)}" for n, df, spec in tables if partial_group(df, spec)
            )
        if test in pairwise:
            matrix = read_pairwise(pairwise[test], test)
            labels, external = {}, set()
            # the rows of this test set's tables name its methods; without specs, any table's rows do
            for df in [df for _, df, _ in tables] or list(frames.values()):
                for r in df.to_dict("records") if "method" in df.columns and "row" in df.columns else []:
                    if _text(r.get("method")):
                        labels.setdefault(_text(r.get("method")), _text(r.get("row")))
                        if is_external(r):
                            external.add(_text(r.get("method")))
            s["pairwise"] = view_html(pairwise_view(matrix, labels, external), "pairwise", f"pw-{test}")
            metric = _text(matrix["metric"].iloc[0]) if "metric" in matrix.columns and len(matrix) else "psnr"
            n = _unique(matrix.get("n_images", []))
            s["pairwise_caption"] = (
                f"mean {metric.upper()} of the row's method minus the column's"
                + (f" over the same {n[0].split('.')[0]} images" if len(n) == 1 else "")
                + ", paired image by image; a shaded bold cell's 95% paired bootstrap interval excludes 0"
                " (green: the row is better, red: worse). Hover a cell for its interval and win/tie/loss rates."
            )
        sets.append(s)
    return sets


def build_report(
    tables: dict[str, str],
    figures: dict[str, str],
    out,
    title: str = "K3DN reproduction",
    note: str = "",
    table_specs: dict[str, dict] | None = None,
    pairwise: dict[str, str] | None = None,
) -> Path:
    """``tables``: name -> CSV; ``figures``: name -> PNG; ``table_specs``: name -> the table's spec (title, test);
    ``pairwise``: test set -> matrix CSV. Every file must exist."""
    import jinja2

    table_specs, pairwise = table_specs or {}, pairwise or {}
    frames = {}
    for name, path in tables.items():
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: table {name!r} not found; run the workflow's tables first")
        frames[name] = read_csv(path, f"table {name!r}")
    rendered = [
        {"name": n, "title": table_title(n, df, table_specs.get(n)), "html": render_table(df, n, table_specs.get(n))}
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
    values = provenance_values(frames)
    summary = provenance_summary(values)
    summary.append(("built", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")))
    partial = [
        f"{short_name(n, table_specs.get(n))}: {partial_group(df, table_specs.get(n))}"
        for n, df in frames.items()
        if table_kind(df) == "quality" and partial_group(df, table_specs.get(n))
    ]
    env = jinja2.Environment(autoescape=True)
    page = env.from_string(TEMPLATE).render(
        title=title,
        note=note,
        partial="; ".join(partial),
        tolerance=TOLERANCE_DB,
        tables=rendered,
        tests=_test_sets(frames, table_specs, pairwise),
        figures=figs,
        provenance=summary,
        provenance_full=provenance_html(values),
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page)
    os.replace(tmp, out)
    return out
