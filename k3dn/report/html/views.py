"""A table as the page shows it: a :class:`View` (columns, rows of cells, footnotes), the headline view of a
quality or speed table, the plain view of any other CSV and its every column in blocks, and their HTML.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from k3dn.report.html.provenance import PROVENANCE_COLUMNS
from k3dn.report.html.text import (
    _HASH,
    METRICS,
    _esc,
    _fmt,
    _num,
    _short,
    _text,
    _unique,
    groups,
    headline_group,
    interval_applies,
    is_external,
    partial_group,
    table_kind,
)

#: The gap (dB) between a published PSNR and ours that this project aims to reproduce within.
TOLERANCE_DB = 0.1
#: Columns of our interval and of the paired difference from the reference row (one block of the full table).
UNCERTAINTY = [
    "psnr_ci95_low",
    "psnr_ci95_high",
    "vs_row",
    "psnr_vs_ref",
    "psnr_vs_ref_ci95_low",
    "psnr_vs_ref_ci95_high",
    "vs_ref_resolved",
]

#: A text cell longer than this goes to the notes block of the full table, never beside numbers.
LONG_TEXT = 40
#: Most columns of one table in the full view (plus the row name), so it fits the page.
MAX_COLUMNS = 12
#: Columns that tell the rows of a plain table apart (a protocol-sensitivity row is one protocol, dtype and
#: prediction of one method): its headline drops them last where it has more columns than it can show.
DISTINGUISHING = ("protocol", "dtype", "device", "prediction")
#: Marked on the row's first cell instead (the badge ``external``); the column is in the full table.
SOURCE_COLUMNS = ("prediction_source", "prediction_note")
#: The words of an external row's mark: its images were made outside the suite.
EXTERNAL = "external"


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
    mark: str = ""  # a tag before the text, visible where a cut text ends in an ellipsis
    lead: str = ""  # text before the mark (a pairwise row's number)
    notes: list[int] = field(default_factory=list)  # footnote numbers


@dataclass
class Column:
    label: str
    title: str = ""
    width: str = ""  # smallest CSS width of the column; empty: its content's
    css: str = ""  # "text": left-aligned like its cells
    mark: str = ""  # a tag after the label (a numbered pairwise column of an external method)


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
    if is_external(row):
        cell.badge = EXTERNAL
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
        # an external row re-scores images made elsewhere: its gap is no reproduction's, so it is never marked
        over = mark and abs(d) > TOLERANCE_DB and not is_external(row)
        title = "ours - published"
        if over:
            title += f"; beyond the ±{TOLERANCE_DB} dB this reproduction aims for"
        elif mark and is_external(row):
            title += "; external images, not a reproduction: not marked"
        return Cell(("+" if d > 0 else "") + fmt.format(d), title=title, css="disagree" * over)
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
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return Cell(f"{d:+.2f}", title="paired per-image difference; no interval", css="muted")
    resolved = _text(row.get("vs_ref_resolved")) == "yes"
    title = "paired per-image difference, 95% paired bootstrap interval " + ("excludes 0" if resolved else "includes 0")
    return Cell(f"{d:+.2f}", sub=f"[{lo:+.2f}, {hi:+.2f}]", title=title, css="resolved" * resolved)


def headline(df: pd.DataFrame, spec: dict | None = None) -> View:
    """The headline view of a quality or speed table (see the docstring of :mod:`k3dn.report.html`)."""
    g = headline_group(df)
    kind = table_kind(df)
    if kind == "plain":
        raise ValueError("a plain table has no headline view; use plain_view")
    metrics = groups(df)[g]
    rows = df.to_dict("records")
    where = g.rstrip("_")
    if kind == "quality":
        # the interval and the paired difference stand beside the mean only where they average its images
        interval = interval_applies(df, spec)
        part = partial_group(df, spec)
        over = f"the {part} images" if part else "the images"
        psnr = "PSNR (dB)" + (f", {part}" if part else "") + (" [95% CI]" if interval else "")
        columns = [
            Column("Method"),
            Column(psnr, f"our mean PSNR over {over}" + (", with its 95% bootstrap interval" if interval else "")),
            Column("Published PSNR", "the published value; its number points to the source"),
            Column(
                "Δ PSNR",
                f"ours - published, only where both were measured under the same protocol; marked "
                f"beyond ±{TOLERANCE_DB} dB",
            ),
        ]
        others = [m for m in metrics if m != "psnr"]
        columns += [Column(METRICS[m][0], f"ours over {over}; hover for the published value") for m in others]
        ref = next((_text(r.get("vs_row")) for r in rows if _text(r.get("vs_row"))), "")
        paired = interval and ref and "psnr_vs_ref" in df.columns
        if paired:
            columns.append(
                Column(f"Δ vs {ref} [95% CI]", f"paired per-image PSNR difference from the reference row over {over}")
            )
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


def plain_view(df: pd.DataFrame, columns: list[str], mark_external: bool = False) -> View:
    """``columns`` of ``df`` as they are: numbers to 4 significant digits, hashes shortened; with ``mark_external``,
    the first cell of an external row badged as in the headline of a quality table."""
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
        if mark_external and cells and is_external(r):
            cells[0].badge = EXTERNAL
            cells[0].title = "re-scored result images made outside the suite; not the suite's port of the method"
        rows.append(cells)
    return View(cols, rows)


def plain_headline_columns(df: pd.DataFrame) -> list[str]:
    """The columns of a plain table's headline: the row name (else the first column) first, then every column but
    long text and hashes; a provenance column only where its values tell the rows apart (more than one value: a
    protocol-sensitivity row is one protocol, dtype and prediction of one method). No more than
    :data:`MAX_COLUMNS` besides the first: columns of one value go first, then provenance other than
    :data:`DISTINGUISHING`, then the last ones."""
    # the row's name, however long (it wraps): without it the numbers name nothing
    first = ["row"] if "row" in df.columns else list(df.columns[:1])

    def shown(c: str) -> bool:
        if c in first or c in SOURCE_COLUMNS or _long(df, c) or _hash_col(df, c):
            return False
        return c not in PROVENANCE_COLUMNS or len(_unique(df[c])) > 1

    cols = first + [c for c in df.columns if shown(c)]
    for spare in (
        lambda c: c not in DISTINGUISHING and len(_unique(df[c])) <= 1,
        lambda c: c in PROVENANCE_COLUMNS and c not in DISTINGUISHING,
    ):
        for c in [c for c in reversed(cols[1:]) if spare(c)]:
            if len(cols) <= MAX_COLUMNS + 1:
                break
            cols.remove(c)
    return cols[: MAX_COLUMNS + 1]


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
    if cell.mark:
        inner = f'<span class="badge">{_esc(cell.mark)}</span> ' + inner
    inner = _esc(cell.lead) + inner
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
        f"<th{_attr('class', c.css)}{_attr('title', c.title)}>{_esc(c.label).replace('_', '_<wbr>')}"
        + (f' <span class="badge">{_esc(c.mark)}</span>' if c.mark else "")
        + "</th>"
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
        head = view_html(plain_view(df, plain_headline_columns(df), mark_external=True), "plain", anchor)
    else:
        head = view_html(headline(df, spec), f"headline {kind}", anchor)
    return head + full_table_html(df, name)


def _hash_col(df: pd.DataFrame, c: str) -> bool:
    return any(_HASH.match(_text(v)) for v in df[c])
