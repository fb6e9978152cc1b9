"""The page's footer: the provenance columns of every table, summarised in a line each, every value behind a
toggle.
"""

from __future__ import annotations

import pandas as pd

from k3dn.report.html.text import _esc, _short, _unique

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
