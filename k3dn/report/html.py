"""``results/report.html``: every table and figure of a run in one self-contained page, read like a results section.

Each table (``results/tables/*.csv``) opens with its headline view: for the table's combined group, the method, our
mean PSNR with its 95% bootstrap interval, the published PSNR, their difference, the other metrics, and the paired
difference from the K3DN reference row; a speed table shows seconds beside the device they were measured on, the
parameters (M) and GMACs. Its title is the table spec's words with the image count and protocol of the CSV
(``n_images``, ``protocol``). Long text (sources, why a difference is missing, notes) becomes numbered footnotes,
and every CSV column, indoor/outdoor included, is one click away in a ``<details>`` element. Two comparisons,
two yardsticks:

* published against ours: a published table gives means only, no per-image values, so no paired interval exists
  for the gap. The image-to-image spread in our unpaired interval is shared by both numbers and says nothing
  about it. A PSNR gap is marked when it exceeds the reproduction tolerance, :data:`TOLERANCE_DB`.
* ours against ours (``psnr_vs_ref``, the K3DN row; the pairwise matrix of ``k3dn report pairwise``): both are
  scored on the same images, so the paired bootstrap interval of the per-image difference is the right
  yardstick; a difference is marked where it excludes 0.

Per test set (the tables' ``test`` in ``table_specs``), a plot of every row's mean PSNR with its interval, the
blurry input as a line and the published values marked, and, where the spec gives its CSV, the pairwise matrix.

Nothing runs off a 1400 px page: a table is never wider than the page (its cells may break anywhere, so its
smallest width is small; the pairwise matrix has a fixed layout), a headline's numbers stay on one line, and
hashes are shortened (the full value in the cell's ``title``). An inline script writes what the page measures on load into ``<body>``
(``data-scroll-width``, ``data-viewport-width``, ``data-widest-table``, ``data-widest-table-in``), so a headless
browser can check it (``tests/test_report_html.py``). Figures are embedded as base64 PNG, so the file
opens with no network and no other file. The footer summarises the provenance (commits, config hashes, data
checksums, devices, dtypes) with every value and where it is used behind a toggle.
"""

from __future__ import annotations

import base64
import datetime as dt
import html as _html
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from k3dn.errors import InputError

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

#: Titles of the tables the workflow makes besides the config's paper tables (those have a title in their spec).
EXTRA_TITLES = {
    "protocol_sensitivity": "Protocol sensitivity: mean PSNR and SSIM of each method read under each protocol and "
    "prediction variant",
    "table7b_pixel_defocus": "Supplement Table 7b: defocus-map accuracy on the Pixel DP set",
    "disparity_features": "Disparity features: rank correlation of their first principal component with the true "
    "disparity",
}

#: Test sets in words (a set not listed keeps its name).
TEST_SETS = {
    "dpdd_test": "DPD-blur test set",
    "pixel_test": "Pixel DP test set (Xin et al.)",
    "ddd_syn_test": "DDD-syn test set",
    "rdpd_test": "RDPD test set",
}

#: The gap (dB) between a published PSNR and ours that this project aims to reproduce within.
TOLERANCE_DB = 0.1

#: Provenance columns summarised at the bottom of the page, with their words.
PROVENANCE_COLUMNS = {
    "git_commit": "code commit (tables and metrics)",
    "predict_commit": "code commit (predictions)",
    "code_sha256": "code checksum (predictions)",
    "config_hash": "config hash",
    "weights_sha256": "weights checksum",
    "data_sha256": "data checksum",
    "device": "device",
    "dtype": "dtype",
    "protocol": "protocol",
}

#: Metric columns a table may have, with their headline header and format.
METRICS = {
    "psnr": ("PSNR (dB)", "{:.2f}"),
    "ssim": ("SSIM", "{:.3f}"),
    "mae": ("MAE", "{:.4f}"),
    "rmse": ("RMSE", "{:.4f}"),
    "lpips": ("LPIPS", "{:.3f}"),
    "seconds": ("Time (s)", "{:.3f}"),
    "params_m": ("Params (M)", "{:.2f}"),
    "gmacs": ("GMACs", "{:.1f}"),
}
SPEED = ("seconds", "params_m", "gmacs")
_COMBINED = ("combined", "all")
UNCERTAINTY = [
    "psnr_ci95_low",
    "psnr_ci95_high",
    "vs_row",
    "psnr_vs_ref",
    "psnr_vs_ref_ci95_low",
    "psnr_vs_ref_ci95_high",
    "vs_ref_resolved",
]
_HASH = re.compile(r"^[0-9a-f]{16,}$")
#: A text cell longer than this goes to the notes block of the full table, never beside numbers.
LONG_TEXT = 40
#: Most columns of one table in the full view (plus the row name), so it fits the page.
MAX_COLUMNS = 12


# ----------------------------------------------------------------------------------------------------------
# Values
# ----------------------------------------------------------------------------------------------------------


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _text(v) -> str:
    """A CSV cell as text: empty for NaN/None."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v).strip()


def _fmt(v, spec: str = "{:.6g}") -> str:
    x = _num(v)
    return spec.format(x) if math.isfinite(x) else ""


def _short(value: str) -> str:
    return value[:12] + "…" if _HASH.match(value) else value


def _esc(s) -> str:
    return _html.escape(str(s), quote=True)


def _unique(values) -> list[str]:
    """The distinct non-empty values, a ``|``-joined one split (a table joins a metrics file's several values)."""
    out = []
    for v in values:
        for part in _text(v).split("|"):
            part = part.strip()
            if part and part != "nan" and part not in out:
                out.append(part)
    return out


def protocol_words(protocol: str) -> str:
    return {"16bit": "16-bit", "8bit": "8-bit", "linear-raw": "16-bit linear raw"}.get(protocol, protocol)


# ----------------------------------------------------------------------------------------------------------
# The shape of a table: groups, metrics, kind
# ----------------------------------------------------------------------------------------------------------


def _metric_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if f"{c}_paper" in df.columns]


def _split(column: str) -> tuple[str, str] | None:
    """``(group prefix, metric)`` of a metric column: ``("combined_", "psnr")``, ``("", "psnr")`` for a table with
    one group (plain names)."""
    for m in METRICS:
        if column == m:
            return "", m
        if column.endswith(f"_{m}"):
            return column[: -len(m)], m
    return None


def groups(df: pd.DataFrame) -> dict[str, list[str]]:
    """Group prefix -> its metrics, in the CSV's order."""
    out: dict[str, list[str]] = {}
    for c in _metric_columns(df):
        gm = _split(c)
        if gm:
            out.setdefault(gm[0], []).append(gm[1])
    return out


def headline_group(df: pd.DataFrame) -> str | None:
    """The prefix of the group the headline shows: the combined one (``combined_``/``all_``, or ``""`` where the
    table has one group), else the last; None for a table without published metric columns."""
    gs = groups(df)
    for g in ("", *(f"{c}_" for c in _COMBINED)):
        if g in gs:
            return g
    return list(gs)[-1] if gs else None


def table_kind(df: pd.DataFrame) -> str:
    """``quality`` (a PSNR headline), ``speed`` or ``plain`` (any other CSV: rendered as it is, in parts)."""
    g = headline_group(df)
    if g is None or "row" not in df.columns:
        return "plain"
    metrics = groups(df)[g]
    if "psnr" in metrics:
        return "quality"
    return "speed" if any(m in SPEED for m in metrics) else "plain"


def table_title(name: str, df: pd.DataFrame, spec: dict | None = None) -> str:
    """The table's title in words: the spec's title (else one made from the name), then what the CSV says of the
    measurement: the image count and protocol of a quality table, the input size and dtype of a speed table."""
    spec = spec or {}
    title = _text(spec.get("title")) or EXTRA_TITLES.get(name)
    if not title:
        m = re.match(r"table(\d+)([a-z]?)_(.+)", name)
        title = f"Table {m[1]}{m[2]}: {m[3].replace('_', ' ')}" if m else name.replace("_", " ").capitalize()
    title = re.sub(r"\s+", " ", title).strip()
    kind = table_kind(df)
    facts = []
    if kind == "quality":
        n = sorted({int(x) for x in map(_num, df.get("n_images", [])) if math.isfinite(x)})
        if n:
            facts.append(f"{n[0]} images" if len(n) == 1 else f"{n[0]}-{n[-1]} images")
        protocols = _unique(df.get("protocol", []))
        if protocols:
            facts.append(", ".join(protocol_words(p) for p in protocols))
    elif kind == "speed":
        sizes, dtypes = _unique(df.get("size", [])), _unique(df.get("dtype", []))
        if sizes:
            facts.append("input " + ", ".join(sizes))
        facts += [", ".join(dtypes)] if dtypes else []
    return title + (", " + ", ".join(facts) if facts else "")


def short_name(name: str, spec: dict | None = None) -> str:
    """``Table 9`` from a title or name; else the name."""
    m = re.search(r"Table \d+[a-z]?", _text((spec or {}).get("title"))) or re.match(r"table(\d+[a-z]?)_", name)
    if m is None:
        return name
    return m[0] if m[0].startswith("Table") else f"Table {m[1]}"


# ----------------------------------------------------------------------------------------------------------
# The headline view
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Cell:
    text: str = ""
    title: str = ""
    css: str = ""
    sub: str = ""  # secondary text (an interval), smaller
    badge: str = ""  # a tag beside the text (external)
    notes: list[int] = field(default_factory=list)  # footnote numbers


@dataclass
class Column:
    label: str
    title: str = ""
    width: str = ""  # smallest CSS width of the column; empty: its content's
    css: str = ""  # "text": left-aligned like its cells


@dataclass
class View:
    """A table ready to render: its columns, rows of cells, and numbered footnotes."""

    columns: list[Column]
    rows: list[list[Cell]]
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> int:
        """The number of footnote ``text`` (the same text once per table)."""
        if text not in self.notes:
            self.notes.append(text)
        return self.notes.index(text) + 1

    def labels(self) -> list[str]:
        return [c.label for c in self.columns]


def _published_title(row, col: str, fmt: str) -> str:
    paper, diff = _num(row.get(f"{col}_paper")), _num(row.get(f"{col}_diff"))
    if not math.isfinite(paper):
        return "no published value"
    out = f"published {fmt.format(paper)}"
    if math.isfinite(diff):
        return out + f", ours - published {fmt.format(diff)}"
    why = _text(row.get("diff_note"))
    return out + (f"; no difference: {why}" if why else "")


def _method_cell(view: View, row) -> Cell:
    """The row's name; an external row (result images made elsewhere) says so beside it, never as the suite's
    port, and a note (``not run: ...``) becomes a footnote."""
    cell = Cell(_text(row.get("row")))
    note = _text(row.get("note"))
    how = ""
    if _text(row.get("prediction_source")) == "external" or note.startswith("external"):
        cell.badge = "external"
        how = _text(row.get("prediction_note")) or (note if note.startswith("external") else "")
        how = how or "result images made outside the suite"
        cell.title = f"re-scored {how}; not the suite's port of the method"
        cell.notes.append(view.note(f"{how[0].upper()}{how[1:]}: re-scored here, not the suite's port."))
    for part in (p.strip() for p in note.split(";")):
        if part and part not in how:
            cell.notes.append(view.note(part[0].upper() + part[1:]))
    return cell


def _ours_cell(row, col: str, fmt: str, interval: bool) -> Cell:
    v = _num(row.get(col))
    if math.isfinite(v):
        cell = Cell(fmt.format(v))
        lo, hi = _num(row.get("psnr_ci95_low")), _num(row.get("psnr_ci95_high"))
        if interval and math.isfinite(lo) and math.isfinite(hi):
            cell.sub = f"[{fmt.format(lo)}, {fmt.format(hi)}]"
            cell.title = "95% bootstrap interval of our mean over the images"
        return cell
    if _text(row.get("note")).startswith("not run"):  # the workflow left it out (an input is missing)
        return Cell("not run", title=_text(row.get("note")), css="muted")
    if not _text(row.get("method")):
        return Cell("–", title="published only: the suite does not run this method")
    return Cell("–", title="not measured")


def _paper_cell(view: View, row, col: str, fmt: str) -> Cell:
    p = _num(row.get(f"{col}_paper"))
    if not math.isfinite(p):
        return Cell()
    cell = Cell(fmt.format(p))
    status, protocol = _text(row.get("paper_status")), _text(row.get("paper_protocol"))
    cell.title = "; ".join(x for x in (f"status: {status}" if status else "", f"protocol: {protocol}") if x)
    source = _text(row.get("paper_source"))
    if source:
        cell.notes.append(view.note(f"Source: {source}"))
    return cell


def _diff_cell(view: View, row, col: str, fmt: str, mark: bool) -> Cell:
    d = _num(row.get(f"{col}_diff"))
    if math.isfinite(d):
        over = mark and abs(d) > TOLERANCE_DB
        title = f"ours - published; beyond the ±{TOLERANCE_DB} dB this reproduction aims for" if over else ""
        return Cell(("+" if d > 0 else "") + fmt.format(d), title=title or "ours - published", css="disagree" * over)
    ours, paper = _num(row.get(col)), _num(row.get(f"{col}_paper"))
    why = _text(row.get("diff_note"))
    if math.isfinite(ours) and math.isfinite(paper):
        why = why or "not measured the same way"
        return Cell("", title=f"no difference: {why}", css="nodiff", notes=[view.note(f"No difference: {why}.")])
    return Cell()


def _vs_ref_cell(row) -> Cell:
    d, lo, hi = (_num(row.get(c)) for c in ("psnr_vs_ref", "psnr_vs_ref_ci95_low", "psnr_vs_ref_ci95_high"))
    if _text(row.get("row")) == _text(row.get("vs_row")) and _text(row.get("row")):
        return Cell("reference", css="muted")
    if not math.isfinite(d):
        return Cell()
    resolved = _text(row.get("vs_ref_resolved")) == "yes"
    title = "paired per-image difference, 95% paired bootstrap interval " + ("excludes 0" if resolved else "includes 0")
    return Cell(f"{d:+.2f}", sub=f"[{lo:+.2f}, {hi:+.2f}]", title=title, css="resolved" * resolved)


def headline(df: pd.DataFrame, spec: dict | None = None) -> View:
    """The headline view of a quality or speed table (see the module docstring)."""
    g = headline_group(df)
    kind = table_kind(df)
    if kind == "plain":
        raise ValueError("a plain table has no headline view; use plain_view")
    metrics = groups(df)[g]
    rows = df.to_dict("records")
    where = g.rstrip("_")
    if kind == "quality":
        interval = g in ("", *(f"{c}_" for c in _COMBINED))  # the interval is over every image
        columns = [
            Column("Method"),
            Column("PSNR (dB) [95% CI]", "our mean PSNR over the images, with its 95% bootstrap interval"),
            Column("Published PSNR", "the published value; its number points to the source"),
            Column(
                "Δ PSNR",
                f"ours - published, only where both were measured under the same protocol; marked "
                f"beyond ±{TOLERANCE_DB} dB",
            ),
        ]
        others = [m for m in metrics if m != "psnr"]
        columns += [Column(METRICS[m][0], "ours; hover for the published value") for m in others]
        ref = next((_text(r.get("vs_row")) for r in rows if _text(r.get("vs_row"))), "")
        paired = ref and "psnr_vs_ref" in df.columns
        if paired:
            columns.append(Column(f"Δ vs {ref} [95% CI]", "paired per-image PSNR difference from the reference row"))
        if where:
            columns[1].title += f" ({where})"
        view = View(columns, [])
        for r in rows:
            fmt = METRICS["psnr"][1]
            cells = [
                _method_cell(view, r),
                _ours_cell(r, f"{g}psnr", fmt, interval),
                _paper_cell(view, r, f"{g}psnr", fmt),
                _diff_cell(view, r, f"{g}psnr", fmt, mark=True),
            ]
            for m in others:
                c = _ours_cell(r, f"{g}{m}", METRICS[m][1], False)
                if c.text and c.text not in ("–", "not run"):
                    c.title = _published_title(r, f"{g}{m}", METRICS[m][1])
                cells.append(c)
            if paired:
                cells.append(_vs_ref_cell(r))
            view.rows.append(cells)
        return view
    # speed: our time beside the device it was measured on; the published time is of the group's device
    device = _text((spec or {}).get("groups", [""])[0]) if spec and spec.get("groups") else where
    columns = [Column("Method")]
    for m in metrics:
        columns.append(Column(METRICS[m][0], "ours"))
        if m == "seconds":
            columns.append(Column("Device", "where our time was measured"))
            columns.append(Column(f"Published time (s){', ' + device if device else ''}", "the published value"))
            columns.append(Column("Δ time (s)", "ours - published, only on the same device class"))
    view = View(columns, [])
    for r in rows:
        cells = [_method_cell(view, r)]
        for m in metrics:
            fmt = METRICS[m][1]
            c = _ours_cell(r, f"{g}{m}", fmt, False)
            if m != "seconds" and c.text not in ("", "–", "not run"):
                c.title = _published_title(r, f"{g}{m}", fmt)
                if math.isfinite(_num(r.get(f"{g}{m}_paper"))) and not math.isfinite(_num(r.get(f"{g}{m}_diff"))):
                    c.notes.append(view.note(f"No difference: {_text(r.get('diff_note')) or 'counted otherwise'}."))
            cells.append(c)
            if m == "seconds":
                cells.append(Cell(_text(r.get("device")), css="text"))
                cells.append(_paper_cell(view, r, f"{g}{m}", fmt))
                cells.append(_diff_cell(view, r, f"{g}{m}", fmt, mark=False))
        view.rows.append(cells)
    return view


def plain_view(df: pd.DataFrame, columns: list[str]) -> View:
    """``columns`` of ``df`` as they are: numbers to 4 significant digits, hashes shortened."""
    cols = [Column(c, css="" if _numeric(df[c]) else "text") for c in columns]
    rows = []
    for r in df.to_dict("records"):
        cells = []
        for c in columns:
            v = r.get(c)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                cells.append(Cell(_fmt(v, "{:.4g}")))
            else:
                t = _text(v)
                cells.append(Cell(_short(t), title=t if _short(t) != t else "", css="text"))
        rows.append(cells)
    return View(cols, rows)


def _numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _long(df: pd.DataFrame, c: str) -> bool:
    return any(len(_text(v)) > LONG_TEXT and not _HASH.match(_text(v)) for v in df[c])


def _chunks(columns: list[str], n: int = MAX_COLUMNS) -> list[list[str]]:
    return [columns[i : i + n] for i in range(0, len(columns), n)] or [[]]


def column_blocks(df: pd.DataFrame) -> list[tuple[str, list[str]]]:
    """Every column of ``df`` but ``row``, once, in blocks a reader scans: each group's metrics (ours, published,
    difference), the uncertainty, long text, and the rest (provenance); none wider than :data:`MAX_COLUMNS`."""
    rest = [c for c in df.columns if c != "row"]
    blocks: list[tuple[str, list[str]]] = []
    taken: set[str] = set()
    for g, ms in groups(df).items():
        cols = [x for m in ms for x in (f"{g}{m}", f"{g}{m}_paper", f"{g}{m}_diff") if x in df.columns]
        blocks.append((f"{g.rstrip('_') or 'all images'}: ours, published, difference", cols))
        taken |= set(cols)
    unc = [c for c in UNCERTAINTY if c in df.columns]
    if unc:
        blocks.append(("uncertainty: our interval, and the paired difference from the reference row", unc))
        taken |= set(unc)
    long = [c for c in rest if c not in taken and _long(df, c)]
    if long:
        blocks.append(("notes and sources", long))
        taken |= set(long)
    other = [c for c in rest if c not in taken]
    if other:
        blocks.append(("provenance and other columns" if blocks else "columns", other))
    out = []
    for label, cols in blocks:
        n = 3 if label == "notes and sources" else MAX_COLUMNS
        parts = _chunks(cols, n)
        out += [(label + (f" ({i + 1}/{len(parts)})" if len(parts) > 1 else ""), p) for i, p in enumerate(parts)]
    return out


# ----------------------------------------------------------------------------------------------------------
# HTML of tables
# ----------------------------------------------------------------------------------------------------------


def _attr(name: str, value: str) -> str:
    return f' {name}="{_esc(value)}"' if value else ""


def _cell_html(cell: Cell, tag: str = "td", anchor: str = "") -> str:
    inner = _esc(cell.text)
    if cell.badge:
        inner += f' <span class="badge">{_esc(cell.badge)}</span>'
    if cell.sub:
        inner += f' <span class="ci">{_esc(cell.sub)}</span>'
    for n in cell.notes:
        inner += f'<sup><a href="#{anchor}-note-{n}">{n}</a></sup>'
    return f"<{tag}{_attr('class', cell.css)}{_attr('title', cell.title)}>{inner}</{tag}>"


def view_html(view: View, css: str = "", anchor: str = "") -> str:
    """A ``View`` as a fixed-layout table (column widths from ``Column.width``), then its footnotes."""
    cols = "".join(f"<col{_attr('style', f'width:{c.width}' if c.width else '')}>" for c in view.columns)
    # a CSV name breaks after its underscores, not inside a word
    head = "".join(
        f"<th{_attr('class', c.css)}{_attr('title', c.title)}>{_esc(c.label).replace('_', '_<wbr>')}</th>"
        for c in view.columns
    )
    body = "".join(
        "<tr>" + "".join(_cell_html(c, "th" if i == 0 else "td", anchor) for i, c in enumerate(r)) + "</tr>"
        for r in view.rows
    )
    out = f'<table class="{_esc(("view " + css).strip())}"><colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead>'
    out += f"<tbody>{body}</tbody></table>"
    if view.notes:
        items = "".join(f'<li id="{anchor}-note-{i + 1}">{_esc(t)}</li>' for i, t in enumerate(view.notes))
        out += f'<ol class="notes">{items}</ol>'
    return out


def full_table_html(df: pd.DataFrame, name: str = "") -> str:
    """Every column of the CSV, in blocks (:func:`column_blocks`), inside a closed ``<details>``."""
    blocks = column_blocks(df)
    parts = []
    for label, cols in blocks:
        view = plain_view(df, (["row"] if "row" in df.columns else []) + cols)
        css = "full" + (" long" if label.startswith("notes") else "")
        parts.append(f'<p class="block">{_esc(label)}</p>' + view_html(view, css))
    n = len(df.columns)
    return f'<details class="all"><summary>All {n} columns of {_esc(name)}.csv</summary>{"".join(parts)}</details>'


def render_table(df: pd.DataFrame, name: str = "table", spec: dict | None = None) -> str:
    """A table's headline view with its footnotes, then every column behind a toggle."""
    anchor = f"t-{name}"
    kind = table_kind(df)
    if kind == "plain":
        short = [c for c in df.columns if c not in PROVENANCE_COLUMNS and not _long(df, c) and not _hash_col(df, c)]
        short = ["row", *(c for c in short if c != "row")] if "row" in df.columns else short
        head = view_html(plain_view(df, short[: MAX_COLUMNS + 1]), "plain", anchor)
    else:
        head = view_html(headline(df, spec), f"headline {kind}", anchor)
    return head + full_table_html(df, name)


def _hash_col(df: pd.DataFrame, c: str) -> bool:
    return any(_HASH.match(_text(v)) for v in df[c])


# ----------------------------------------------------------------------------------------------------------
# Per test set: the PSNR plot and the pairwise matrix
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Point:
    label: str
    method: str
    ours: float
    low: float
    high: float
    paper: float
    same_protocol: bool


def _external_label(r: dict) -> str:
    """A row's label, marked where its images were made outside the suite (never to be read as a port)."""
    label = _text(r.get("row"))
    return f"{label} (external)" if _text(r.get("prediction_source")) == "external" else label


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


PAIRWISE_REQUIRED = ("a", "b", "mean_diff", "ci95_low", "ci95_high", "excludes_zero")


def read_pairwise(path, test: str) -> pd.DataFrame:
    """A matrix CSV of ``k3dn report pairwise`` (:func:`k3dn.report.compare.pairwise_matrix`), checked."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: pairwise matrix of {test!r} not found; run `k3dn report pairwise --test {test}` first"
        )
    df = pd.read_csv(path, dtype={"a": str, "b": str}, keep_default_na=True)
    missing = [c for c in PAIRWISE_REQUIRED if c not in df.columns]
    if missing:
        raise InputError(f"no column(s) {missing}; is this a matrix `k3dn report pairwise` wrote?", where=path)
    return df


def _true(v) -> bool:
    return _text(v).lower() in ("true", "1", "yes", "1.0")


def pairwise_view(matrix: pd.DataFrame, labels: dict[str, str] | None = None) -> View:
    """Row ``a`` minus column ``b``: the mean difference, marked (``resolved pos``/``resolved neg``) where its
    paired 95% interval excludes 0; columns numbered (the row names carry the numbers), so 30 methods fit."""
    labels = labels or {}
    order = list(dict.fromkeys([*matrix["a"], *matrix["b"]]))
    metric = _text(matrix["metric"].iloc[0]) if "metric" in matrix.columns and len(matrix) else "psnr"
    unit = " dB" if metric == "psnr" else ""
    fmt = "{:+.2f}" if metric == "psnr" else "{:+.3f}"
    cells = {(r["a"], r["b"]): r for r in matrix.to_dict("records")}
    columns = [Column("row − column", f"mean {metric} of the row's method minus the column's", "16em")]
    columns += [Column(str(i + 1), labels.get(m, m)) for i, m in enumerate(order)]
    view = View(columns, [])
    for i, a in enumerate(order):
        name = labels.get(a, a)
        row = [Cell(f"{i + 1}. {name}", title=f"{name} ({a})" if name != a else a)]
        for b in order:
            r = cells.get((a, b))
            if a == b:
                row.append(Cell("·", css="diag"))
                continue
            if r is None:
                row.append(Cell("", title="not in the matrix"))
                continue
            d, lo, hi = _num(r["mean_diff"]), _num(r["ci95_low"]), _num(r["ci95_high"])
            if not math.isfinite(d):
                row.append(Cell("n/a", title=_text(r.get("note")) or "no interval", css="muted"))
                continue
            resolved = _true(r["excludes_zero"])
            title = f"{labels.get(a, a)} − {labels.get(b, b)}: {fmt.format(d)}{unit}, 95% CI [{fmt.format(lo)}, "
            title += f"{fmt.format(hi)}]" + ("" if resolved else ", includes 0")
            rates = [_num(r.get(k)) for k in ("win_rate", "tie_rate", "loss_rate")]
            if all(math.isfinite(x) for x in rates):
                title += f"; wins {rates[0]:.0%}, ties {rates[1]:.0%}, losses {rates[2]:.0%}"
            if math.isfinite(_num(r.get("n_images"))):
                title += f"; {int(_num(r['n_images']))} images"
            css = ("resolved " + ("pos" if d > 0 else "neg")) if resolved else "unresolved"
            row.append(Cell(fmt.format(d), title=title, css=css))
        view.rows.append(row)
    return view


# ----------------------------------------------------------------------------------------------------------
# Provenance
# ----------------------------------------------------------------------------------------------------------


def provenance_values(frames: dict[str, pd.DataFrame]) -> dict[str, dict[str, dict[str, int]]]:
    """column -> value -> table -> number of rows carrying it (a ``|``-joined cell counts for each value)."""
    out: dict[str, dict[str, dict[str, int]]] = {c: {} for c in PROVENANCE_COLUMNS}
    for name, df in frames.items():
        for c in PROVENANCE_COLUMNS:
            if c not in df.columns:
                continue
            for v in df[c]:
                for value in _unique([v]):
                    where = out[c].setdefault(value, {})
                    where[name] = where.get(name, 0) + 1
    return out


#: What the values of a provenance column stand for, said where there are many of them.
PROVENANCE_MANY = {
    "config_hash": "one per prediction setup: model, weights, settings",
    "weights_sha256": "one per weights file",
    "code_sha256": "one per model's code",
    "data_sha256": "each the checksum of one test set's target files, recorded when scored",
}
#: A column with more distinct values than this is summarised by their count.
LISTED = 4
#: Values that say a row has no such thing (``none``: a method without learned weights).
ABSENT = ("none", "external")


def provenance_summary(values: dict[str, dict[str, dict[str, int]]]) -> list[tuple[str, str]]:
    """One line per provenance column. Checksums and config hashes (:data:`PROVENANCE_MANY`) by their count and
    what they stand for (``5 data checksums recorded (...)``); any other column by its one value
    (``one: 5cafc52 (all 40 rows)``), its few values with their row counts, or the count of many."""
    lines = []
    for c, words in PROVENANCE_COLUMNS.items():
        counts = {v: sum(t.values()) for v, t in values.get(c, {}).items()}
        if not counts:
            continue
        present = [v for v in counts if v not in ABSENT]
        absent = "".join(f"; {v}: {n} rows" for v, n in counts.items() if v in ABSENT)
        k = len(present)
        many = k > LISTED or (c in PROVENANCE_MANY and (len(counts) > 1 or c == "data_sha256"))
        if many:
            plural = words if k == 1 else ("config hashes" if c == "config_hash" else words + "s")
            text = f"{k} {plural}" + (" recorded" if c == "data_sha256" else "")
            text += f" ({PROVENANCE_MANY[c]})" if c in PROVENANCE_MANY else ""
            lines.append((words, text + absent))
        elif len(counts) == 1:
            ((v, n),) = counts.items()
            lines.append((words, f"one: {_short(v)} (all {n} rows)"))
        else:
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            lines.append((words, f"{len(counts)}: " + ", ".join(f"{_short(v)} ({n} rows)" for v, n in ranked)))
    return lines


def provenance_html(values) -> str:
    parts = []
    for c, words in PROVENANCE_COLUMNS.items():
        seen = values.get(c, {})
        if not seen:
            continue
        rows = "".join(
            f"<tr><td class='text'>{_esc(v)}</td><td class='text'>"
            + _esc(", ".join(f"{t} ({n})" for t, n in where.items()))
            + "</td></tr>"
            for v, where in seen.items()
        )
        parts.append(
            f'<p class="block">{_esc(words)} (<code>{_esc(c)}</code>)</p><table class="view full prov">'
            '<colgroup><col style="width:45%"><col></colgroup>'
            f"<thead><tr><th>value</th><th>tables (rows)</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    return "".join(parts)


# ----------------------------------------------------------------------------------------------------------
# The page
# ----------------------------------------------------------------------------------------------------------

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1320px; padding: 0 1.5em; color: #222;
  line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #bbb; } h3 { font-size: 1.05em; margin-bottom: .3em; }
section { margin-bottom: 2.2em; }
.name { color: #777; font-weight: normal; font-size: 12px; }
/* Auto layout sized to the content, never wider than the page: anywhere-wrapping keeps every column's
   smallest width small. Numbers of a headline stay on one line, so no row is stretched by a wrapped interval. */
table { border-collapse: collapse; table-layout: auto; width: auto; max-width: 100%; font-size: 13px;
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
<p class="note">Each table's headline shows, for all of its images, our mean with the 95% bootstrap interval of the
PSNR, the published value and their difference &Delta;. A difference is given only where both were measured under
the same protocol (and for times on the same device class); elsewhere its cell is empty and a footnote says why.
Published tables give means only, so a gap between a published number and ours has no paired interval: a PSNR gap
is <span style="background:#f8c9c4">marked</span> where it exceeds the &plusmn;{{ tolerance }} dB this reproduction
aims for. Our interval is the spread between images, which a published and our number share, so it is not a
yardstick for their gap. &Delta; vs the reference K3DN row is the paired per-image difference, scored on the same
images: it is <span style="background:#cfe3f7">marked</span> where its 95% paired bootstrap interval excludes 0.
Hover a cell for details; every column of a table (indoor/outdoor included) is under its &ldquo;All columns&rdquo;
toggle.</p>
<h2>Tables</h2>
{% for t in tables %}<section id="table-{{ t.name }}"><h3>{{ t.title }} <span class="name">({{ t.name }})</span></h3>
{{ t.html | safe }}</section>
{% endfor %}
{% if tests %}<h2>By test set</h2>
{% for s in tests %}<section id="testset-{{ s.test }}"><h3>{{ s.title }}</h3>
{% if s.plot %}<figure class="plot" id="psnr-{{ s.test }}"><img alt="mean PSNR per method on {{ s.test }}"
 src="data:image/png;base64,{{ s.plot }}"><figcaption>Mean PSNR over the {{ s.title }} images with its 95% bootstrap
interval (blue), the published value (orange diamond: filled where measured under our protocol, hollow where not),
and the blurry input (dashed line).</figcaption></figure>{% endif %}
{% if s.pairwise %}<div class="pairwise" id="pairwise-{{ s.test }}"><p class="block">Pairwise: {{ s.pairwise_caption }}</p>
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
        s = {"test": test, "title": title, "plot": "", "pairwise": "", "pairwise_caption": ""}
        points, blurry = psnr_points(tables)
        if points:
            png = psnr_plot(f"{title}: mean PSNR per method", points, blurry)
            s["plot"] = base64.b64encode(png).decode()
        if test in pairwise:
            matrix = read_pairwise(pairwise[test], test)
            labels = {}
            # the rows of this test set's tables name its methods; without specs, any table's rows do
            for df in [df for _, df, _ in tables] or list(frames.values()):
                for r in df.to_dict("records") if "method" in df.columns and "row" in df.columns else []:
                    if _text(r.get("method")):
                        labels.setdefault(_text(r.get("method")), _external_label(r))
            s["pairwise"] = view_html(pairwise_view(matrix, labels), "pairwise", f"pw-{test}")
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
        frames[name] = pd.read_csv(path, dtype={"row": str})
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
    env = jinja2.Environment(autoescape=True)
    page = env.from_string(TEMPLATE).render(
        title=title,
        note=note,
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
