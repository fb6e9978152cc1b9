"""The pairwise matrix of one test set (the CSV of ``k3dn report pairwise``): read, checked and made a view."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from k3dn.errors import InputError
from k3dn.report.html.text import _num, _text, read_csv
from k3dn.report.html.views import Cell, Column, View

#: The tag of an external method in the matrix: short, as the columns are narrow and the names are cut.
EXTERNAL_MARK = "ext."

#: Columns a matrix of `k3dn report pairwise` must have.
PAIRWISE_REQUIRED = ("a", "b", "mean_diff", "ci95_low", "ci95_high", "excludes_zero")


def read_pairwise(path, test: str) -> pd.DataFrame:
    """A matrix CSV of ``k3dn report pairwise`` (:func:`k3dn.report.compare.pairwise_matrix`), checked."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: pairwise matrix of {test!r} not found; run `k3dn report pairwise --test {test}` first"
        )
    df = read_csv(path, f"the pairwise matrix of {test!r}", labels=("a", "b"))
    missing = [c for c in PAIRWISE_REQUIRED if c not in df.columns]
    if missing:
        raise InputError(f"no column(s) {missing}; is this a matrix `k3dn report pairwise` wrote?", where=path)
    return df


def _true(v) -> bool:
    return _text(v).lower() in ("true", "1", "yes", "1.0")


def pairwise_view(
    matrix: pd.DataFrame, labels: dict[str, str] | None = None, external: set[str] | frozenset = frozenset()
) -> View:
    """Row ``a`` minus column ``b``: the mean difference, marked (``resolved pos``/``resolved neg``) where its
    paired 95% interval excludes 0; columns numbered (the row names carry the numbers), so 30 methods fit. A method
    in ``external`` (result images made outside the suite) is tagged before its row's name, which may be cut, and
    beside its column's number."""
    labels = labels or {}
    order = list(dict.fromkeys([*matrix["a"], *matrix["b"]]))
    metric = _text(matrix["metric"].iloc[0]) if "metric" in matrix.columns and len(matrix) else "psnr"
    unit = " dB" if metric == "psnr" else ""
    fmt = "{:+.2f}" if metric == "psnr" else "{:+.3f}"
    cells = {(r["a"], r["b"]): r for r in matrix.to_dict("records")}
    columns = [Column("row − column", f"mean {metric} of the row's method minus the column's", "16em")]
    ext = " (external: result images made outside the suite)"
    columns += [
        Column(str(i + 1), labels.get(m, m) + ext * (m in external), mark=EXTERNAL_MARK * (m in external))
        for i, m in enumerate(order)
    ]
    view = View(columns, [])
    for i, a in enumerate(order):
        name = labels.get(a, a)
        title = (f"{name} ({a})" if name != a else a) + ext * (a in external)
        row = [Cell(name, title=title, mark=EXTERNAL_MARK * (a in external), lead=f"{i + 1}. ")]
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
