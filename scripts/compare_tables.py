"""Compare the tables of two workflow runs: every numeric cell (provenance columns aside), then the text columns.

    python scripts/compare_tables.py BEFORE_DIR AFTER_DIR     # each a workflow directory holding results/tables/

Rows are matched by their key (a paper table's ``row``; the sensitivity table's method, test, prediction and
protocol; ...), columns by name. A refactor should leave every number equal; a fix should change only what it
says. Printed per table: columns and rows only one side has, then per column the numeric cells that differ and
the text columns that differ.
"""

import pathlib
import sys

import numpy as np
import pandas as pd

KEYS = {
    "protocol_sensitivity": ["method", "test", "prediction", "protocol"],
    "disparity_features": ["run"],
}
PROV = {
    "git_commit",
    "predict_commit",
    "code_sha256",
    "config_hash",
    "weights_sha256",
    "manifest_sha256",
    "data_sha256",
    "device",
}

before, after = (pathlib.Path(a) / "results" / "tables" for a in sys.argv[1:3])
cells = differ = 0
for f in sorted(set(before.glob("*.csv")) | {before / p.name for p in after.glob("*.csv")}):
    if not f.is_file() or not (after / f.name).is_file():
        print(f"{f.name:28s} only in {'after' if not f.is_file() else 'before'}")
        continue
    key = KEYS.get(f.stem, ["row"])
    b, a = (pd.read_csv(p, dtype={k: str for k in key}).set_index(key) for p in (f, after / f.name))
    notes = []
    if set(b.columns) != set(a.columns):
        notes.append(f"columns only before {sorted(set(b.columns) - set(a.columns))}")
        notes.append(f"only after {sorted(set(a.columns) - set(b.columns))}")
    if set(b.index) != set(a.index):
        notes.append(f"rows only before {sorted(set(b.index) - set(a.index))}")
        notes.append(f"only after {sorted(set(a.index) - set(b.index))}")
    rows = [r for r in b.index if r in set(a.index)]
    cols = [c for c in b.columns if c in a.columns and c not in PROV]
    b, a = b.loc[rows, cols], a.loc[rows, cols]
    num = [c for c in cols if pd.api.types.is_numeric_dtype(b[c]) and pd.api.types.is_numeric_dtype(a[c])]
    out = []
    for c in num:
        x, y = b[c].to_numpy(float), a[c].to_numpy(float)
        same = (x == y) | (np.isnan(x) & np.isnan(y))
        cells, differ = cells + len(x), differ + int((~same).sum())
        if (~same).any():
            both = ~same & ~np.isnan(x) & ~np.isnan(y)
            biggest = f", max |d| {np.abs(x - y)[both].max():.3g}" if both.any() else ", NaN on one side"
            out.append(f"{c}: {(~same).sum()} cell(s){biggest}")
    text = [
        c
        for c in cols
        if c not in num and not b[c].astype("string").fillna("").equals(a[c].astype("string").fillna(""))
    ]
    print(f"{f.name:28s} numeric diffs: {out or 'none'}; text columns differing: {text}; {'; '.join(notes)}")
print(f"numeric cells {cells}, differing {differ}")
