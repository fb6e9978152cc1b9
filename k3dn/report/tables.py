"""The paper's tables, rebuilt from per-image metric files and set beside the published numbers.

A table spec (from the workflow config) names its test set, groups, metrics and rows::

    {"title": "...", "test": "dpdd_test", "groups": ["indoor", "outdoor", "combined"],
     "metrics": ["psnr", "ssim", "mae"], "published": "config/paper/table1_dpdd.csv",
     "rows": [{"label": "Ours (Tiny)", "method": "k3dn_tiny_dpdd"}, {"label": "Xin et al.", "method": null}]}

Each row becomes one line: our mean per (group, metric), the published value, their difference, and the
provenance of our number (:data:`PROVENANCE`: protocol, image count, code version, config hash, weights and
data checksums, device, dtype, label source); a metrics file without one of these columns is an error. A row
whose method is null is a published method the suite cannot run; it keeps its published values and an empty
"ours". A row the workflow left out (an input missing) says why in ``note`` (``not run: ...``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

#: Groups over which per-image metrics are averaged; "combined"/"all" take every image.
_ALL = ("combined", "all")
PROVENANCE = ["protocol", "n_images", "git_commit", "config_hash", "weights_sha256", "data_sha256", "device", "dtype",
              "label_source"]
SPEED_PROVENANCE = ["device", "git_commit", "size", "warmup", "runs", "dtype"]


def metrics_path(metrics_root, method: str, test: str) -> Path:
    return Path(metrics_root) / method / f"{test}.csv"


def speed_path(speed_root, method: str) -> Path:
    return Path(speed_root) / f"{method}.csv"


def summarise(per_image: pd.DataFrame, groups, metrics, source="metrics") -> dict:
    """Mean of each metric per group (the DPDD convention: the plain mean of per-image values)."""
    out = {}
    for g in groups:
        sel = per_image if g in _ALL else per_image[per_image["label"] == g]
        if sel.empty:
            raise ValueError(f"{source}: no image labelled {g!r} (labels: {sorted(set(per_image['label']))})")
        for m in metrics:
            if m not in sel.columns:
                raise ValueError(f"{source}: no column {m!r}")
            out[(g, m)] = float(pd.to_numeric(sel[m]).mean())
    return out


def _provenance(per_image: pd.DataFrame, columns, source) -> dict:
    missing = [c for c in columns if c != "n_images" and c not in per_image.columns]
    if missing:
        raise ValueError(f"{source}: provenance column(s) {missing} missing; rerun the job that wrote it")
    row = {"n_images": len(per_image)} if "n_images" in columns else {}
    for c in columns:
        if c != "n_images":
            vals = sorted(set(per_image[c].astype(str)))
            row[c] = vals[0] if len(vals) == 1 else "|".join(vals)
    return row


def read_published(path) -> pd.DataFrame:
    if not path:
        return pd.DataFrame(columns=["row", "group", "metric", "value", "source", "status"])
    df = pd.read_csv(path, dtype={"row": str, "group": str, "value": float}, keep_default_na=True)
    need = {"row", "group", "metric", "value", "source", "status"}
    if need - set(df.columns):
        raise ValueError(f"{path}: missing column(s) {sorted(need - set(df.columns))}")
    return df


def _col(group: str, metric: str, groups) -> str:
    return metric if len(groups) == 1 else f"{group}_{metric}"


def build_table(spec: dict, metrics_root="results/metrics", speed_root="results/speed") -> pd.DataFrame:
    groups, metrics = list(spec["groups"]), list(spec["metrics"])
    published = read_published(spec.get("published"))
    lines = []
    for row in spec["rows"]:
        label, method = row["label"], row.get("method")
        line = {"row": label, "method": method or ""}
        ours, prov = {}, {}
        if method:
            if spec.get("kind") == "speed":
                path = speed_path(speed_root, method)
                df = pd.read_csv(path)
                ours = {(groups[0], "seconds"): float(df["seconds_mean"].iloc[0])}
                prov = _provenance(df, SPEED_PROVENANCE, path)
            else:
                path = metrics_path(metrics_root, method, spec["test"])
                df = pd.read_csv(path, keep_default_na=False, dtype={"label": str})
                ours = summarise(df, groups, metrics, source=path)
                prov = _provenance(df, PROVENANCE, path)
        pub = published[published["row"] == label]
        sources, statuses = [], []
        for g in groups:
            for m in metrics:
                c = _col(g, m, groups)
                ours_v = ours.get((g, m), math.nan)
                hit = pub[(pub["group"] == g) & (pub["metric"] == m)]
                paper = float(hit["value"].iloc[0]) if len(hit) else math.nan
                line[c] = ours_v
                line[f"{c}_paper"] = paper
                line[f"{c}_diff"] = ours_v - paper
                for s, st in zip(hit["source"], hit["status"]):
                    if s not in sources:
                        sources.append(s)
                    if st not in statuses:
                        statuses.append(st)
        line["paper_status"] = "; ".join(statuses)
        line["paper_source"] = "; ".join(sources)
        line["note"] = row.get("not_run", "")
        line.update(prov)
        lines.append(line)
    return pd.DataFrame(lines)


def write_table(spec: dict, out, **roots) -> Path:
    df = build_table(spec, **roots)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    df.to_csv(tmp, index=False, float_format="%.6g")
    os.replace(tmp, out)
    return out


def check_table(path, spec: dict) -> list[str]:
    """Problems with a written table: missing rows, and non-finite values of rows the suite ran."""
    df = pd.read_csv(path, dtype={"row": str}, keep_default_na=True)
    problems = []
    want = [r["label"] for r in spec["rows"]]
    if list(df["row"]) != want:
        problems.append(f"{path}: rows {list(df['row'])} != expected {want}")
    metrics = ["seconds"] if spec.get("kind") == "speed" else spec["metrics"]
    cols = [_col(g, m, spec["groups"]) for g in spec["groups"] for m in metrics]
    for r in spec["rows"]:
        if not r.get("method"):
            continue
        got = df[df["row"] == r["label"]]
        for c in cols:
            if got.empty or c not in got.columns or not math.isfinite(float(got[c].iloc[0])):
                problems.append(f"{path}: row {r['label']!r} column {c!r} is not a finite number")
    return problems
