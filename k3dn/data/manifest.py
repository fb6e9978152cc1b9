"""The one manifest format every data set is turned into (a CSV per data set and split).

Paths inside a manifest are stored relative to the manifest file's folder, so a data tree and its
manifests can move together; :func:`read_manifest` returns them absolute.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

#: Column order of every manifest. Empty string = not available for this data set.
COLUMNS = [
    "id",  # unique within the manifest; predictions are written as <id>.png
    "dataset",  # registry name: dpdd, pixel, dpd_disp, ddd_syn, rdpd, synth
    "split",  # train / val / test
    "left",
    "right",
    "center",
    "target",  # image paths
    "disparity",  # ground-truth signed disparity / defocus map (.npy or .tif), where known
    "depth",  # ground-truth depth (.npy, .tif, ...), where known
    "label",  # indoor / outdoor (DPDD), else empty
    "label_source",  # where the label came from: official / unverified-list / ...
    "protocol",  # how images are read: 16bit | 8bit  (see k3dn.io)
    "channels",  # 3 (RGB) or 1 (single-channel raw, e.g. the Pixel set)
]
PATH_COLUMNS = ["left", "right", "center", "target", "disparity", "depth"]
PROTOCOLS = ("16bit", "8bit")


class ManifestError(ValueError):
    pass


def write_manifest(rows: list[dict], path: str | os.PathLike) -> Path:
    """Write ``rows`` (absolute or cwd-relative paths) as a manifest at ``path``, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.parent.resolve()
    out = []
    for r in rows:
        unknown = set(r) - set(COLUMNS)
        if unknown:
            raise ManifestError(f"{path}: unknown manifest column(s) {sorted(unknown)}")
        row = {c: r.get(c, "") for c in COLUMNS}
        for c in PATH_COLUMNS:
            if row[c]:
                row[c] = os.path.relpath(Path(row[c]).resolve(), base)
        out.append(row)
    df = pd.DataFrame(out, columns=COLUMNS)
    _validate(df, path)
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read a manifest; path columns come back absolute, missing ones as empty strings."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"{path}: not a manifest, missing column(s) {missing}")
    base = path.parent.resolve()
    for c in PATH_COLUMNS:
        df[c] = [str((base / p).resolve()) if p else "" for p in df[c]]
    df["channels"] = df["channels"].astype(int)
    _validate(df, path)
    return df[COLUMNS]


def _validate(df: pd.DataFrame, path) -> None:
    if df.empty:
        raise ManifestError(f"{path}: manifest has no rows")
    dup = df["id"][df["id"].duplicated()].tolist()
    if dup:
        raise ManifestError(f"{path}: duplicate id(s) {dup[:5]}")
    bad = sorted(set(df["protocol"]) - set(PROTOCOLS))
    if bad:
        raise ManifestError(f"{path}: unknown protocol(s) {bad}; expected one of {PROTOCOLS}")
