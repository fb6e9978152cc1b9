"""Compare the tables of two workflow runs: every numeric cell (provenance columns aside), then the text columns.

    python scripts/compare_tables.py BEFORE_DIR AFTER_DIR     # each a workflow directory holding results/tables/

A refactor should leave every number equal; what differs is printed per table and column.
"""

import pathlib
import sys

import numpy as np
import pandas as pd

before, after = (pathlib.Path(a) / "results" / "tables" for a in sys.argv[1:3])
prov = {"git_commit", "config_hash", "weights_sha256", "manifest_sha256", "data_sha256", "device"}
cells = differ = 0
for f in sorted(before.glob("*.csv")):
    b, a = pd.read_csv(f), pd.read_csv(after / f.name)
    assert list(b.columns) == list(a.columns) and b.shape == a.shape, f.name
    num = [c for c in b.columns if pd.api.types.is_numeric_dtype(b[c]) and c not in prov]
    out = []
    for c in num:
        x, y = b[c].to_numpy(float), a[c].to_numpy(float)
        same = (x == y) | (np.isnan(x) & np.isnan(y))
        cells, differ = cells + len(x), differ + int((~same).sum())
        if (~same).any():
            out.append(f"{c}: {(~same).sum()} cell(s), max |d| {np.nanmax(np.abs(x - y)[~same]):.3g}")
    text = [
        c for c in b.columns if c not in num and not b[c].fillna("").astype(str).equals(a[c].fillna("").astype(str))
    ]
    print(f"{f.name:28s} numeric diffs: {out or 'none'}; text columns differing: {text}")
print(f"numeric cells {cells}, differing {differ}")
