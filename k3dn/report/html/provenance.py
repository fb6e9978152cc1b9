"""The page's footer: the provenance columns of every table, summarised in a line each, every value behind a
toggle.
"""

from __future__ import annotations

import pandas as pd

from k3dn.report.html.text import _esc, _short, _unique, table_kind

#: Provenance columns summarised at the bottom of the page: their words, one and several.
PROVENANCE_COLUMNS = {
    # a paper table copies the commit of the evaluation that scored its metrics file, a speed table that of the
    # timing; protocol sensitivity and the defocus table record the commit they were scored at
    "git_commit": ("code commit (scoring and timing)", "code commits (scoring and timing)"),
    "predict_commit": ("code commit (predictions)", "code commits (predictions)"),
    "code_sha256": ("code checksum (predictions)", "code checksums (predictions)"),
    "config_hash": ("config hash", "config hashes"),
    "weights_sha256": ("weights checksum", "weights checksums"),
    "data_sha256": ("data checksum", "data checksums"),
    "device": ("device", "devices"),
    "dtype": ("dtype", "dtypes"),
    "protocol": ("protocol (paper tables)", "protocols (paper tables)"),
}

#: What the values of a provenance column stand for, said where there are many of them.
PROVENANCE_MANY = {
    "config_hash": "one per prediction setup: model, weights, settings",
    "weights_sha256": "one per weights file",
    "code_sha256": "one per model's code",
    "data_sha256": "each the checksum of one test set's target files, recorded when scored",
}
#: A column with more distinct values than this is summarised by their count.
LISTED = 4
#: Values that say a row has no such thing, counted apart and never as a value: ``none`` (a method without learned
#: weights), ``external`` (result images made outside the suite: no commit, code, weights, device or dtype of ours)
#: and ``unknown`` (predictions that recorded no commit or code checksum).
ABSENT = ("none", "external", "unknown")
#: The key of :func:`provenance_values`'s answer under which a column counts the rows that could record it.
ROWS = ""


def _carries(df: pd.DataFrame, c: str) -> bool:
    """Whether the table's column ``c`` is provenance: the protocol of protocol sensitivity (or of any table that
    is not a paper table) is what the row measures, not how its number was made."""
    return c in df.columns and not (c == "protocol" and table_kind(df) == "plain")


def provenance_values(frames: dict[str, pd.DataFrame]) -> dict[str, dict[str, dict[str, int]]]:
    """column -> value -> table -> number of rows carrying it (a ``|``-joined cell counts for each value); under
    the value :data:`ROWS`, the number of rows of each table that has the column."""
    out: dict[str, dict[str, dict[str, int]]] = {c: {} for c in PROVENANCE_COLUMNS}
    for name, df in frames.items():
        for c in PROVENANCE_COLUMNS:
            if not _carries(df, c):
                continue
            out[c].setdefault(ROWS, {})[name] = len(df)
            for v in df[c]:
                for value in _unique([v]):
                    where = out[c].setdefault(value, {})
                    where[name] = where.get(name, 0) + 1
    return out


def _rows(n: int) -> str:
    return f"{n} row" + ("" if n == 1 else "s")


def provenance_summary(values: dict[str, dict[str, dict[str, int]]]) -> list[tuple[str, str]]:
    """One line per provenance column. Checksums and config hashes (:data:`PROVENANCE_MANY`) by their count and
    what they stand for (``5 data checksums recorded (...)``); any other column by its one value
    (``one: 5cafc52 (in 40 of 44 rows)``), its few values with their row counts, or the count of many. The values of
    :data:`ABSENT` are counted apart (``; external: 1 row``) in every case."""
    lines = []
    for c, (one, several) in PROVENANCE_COLUMNS.items():
        seen = values.get(c, {})
        counts = {v: sum(t.values()) for v, t in seen.items() if v != ROWS}
        if not counts:
            continue
        total = sum(seen.get(ROWS, {}).values())
        of = f" of {total}" if total else ""
        present = {v: n for v, n in counts.items() if v not in ABSENT}
        absent = "".join(f"; {v}: {_rows(n)}" for v, n in counts.items() if v in ABSENT)
        k = len(present)
        if k == 0:
            text = "none recorded"
        elif k > LISTED or (c in PROVENANCE_MANY and (k > 1 or c == "data_sha256")):
            text = f"{k} {one if k == 1 else several}" + (" recorded" if c == "data_sha256" else "")
            text += f" ({PROVENANCE_MANY[c]})" if c in PROVENANCE_MANY else ""
        elif k == 1:
            ((v, n),) = present.items()
            text = f"one: {_short(v)} (in {n}{of} rows)"
        else:
            ranked = sorted(present.items(), key=lambda kv: (-kv[1], kv[0]))
            text = f"{k}: " + ", ".join(f"{_short(v)} (in {n}{of} rows)" for v, n in ranked)
        lines.append((one, text + absent))
    return lines


def provenance_html(values) -> str:
    parts = []
    for c, (one, _) in PROVENANCE_COLUMNS.items():
        seen = {v: where for v, where in values.get(c, {}).items() if v != ROWS}
        if not seen:
            continue
        rows = "".join(
            f"<tr><td class='text'>{_esc(v)}</td><td class='text'>"
            + _esc(", ".join(f"{t} ({n})" for t, n in where.items()))
            + "</td></tr>"
            for v, where in seen.items()
        )
        parts.append(
            f'<p class="block">{_esc(one)} (<code>{_esc(c)}</code>)</p><table class="view full prov">'
            '<colgroup><col style="width:45%"><col></colgroup>'
            f"<thead><tr><th>value</th><th>tables (rows)</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    return "".join(parts)
