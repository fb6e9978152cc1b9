"""``k3dn report check``: every table file of a run, each against a schema of its own.

The paper tables (the workflow config's ``tables``) are checked by :func:`k3dn.report.tables.check_table`: their
rows in the config's order, and finite means and PSNR intervals for every row the suite ran. The tables the
workflow adds (:meth:`k3dn.workflow.Plan.extra_tables`) each have a :class:`Schema`: the columns they must have,
the rows the plan says they hold, and the columns that must be finite numbers. A CSV in the tables folder that no
schema covers is itself a problem: nothing unchecked sits beside the checked results.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Schema:
    #: columns the file must have
    columns: tuple[str, ...]
    #: the columns that name a row
    key: tuple[str, ...]
    #: ``rows(plan) -> [key tuple]``: the rows the plan says the file holds (in any order)
    rows: Callable
    #: columns that must be finite numbers on every row
    finite: tuple[str, ...] = ()
    #: ``rules(df, plan, path) -> [problem]``: what else must hold
    rules: Callable = field(default=lambda df, plan, path: [])


# ---- protocol_sensitivity.csv ----------------------------------------------------------------------------


def _sensitivity_rows(plan) -> list[tuple]:
    from k3dn.report.sensitivity import protocols_for

    rows = []
    for e in plan.sensitivity_entries():
        protocols = list(protocols_for(e["test"], e["manifest"]))
        rows += [(e["method"], e["test"], "default", p) for p in protocols]
        rows += [
            (e["method"], e["test"], v, protocols[0])
            for v, pred in e["variants"].items()
            if (Path(pred) / "predictions.json").is_file()
        ]
    return rows


def _sensitivity_rules(df: pd.DataFrame, plan, path) -> list[str]:
    problems = [
        f"{path}: {r.method} on {r.test}: n_images {r.n_images} (no image averaged)"
        for r in df.itertuples()
        if int(r.n_images) < 1
    ]
    for (method, test), rows in df.groupby(["method", "test"], sort=False):
        if len(set(rows["n_images"])) != 1:  # every row of a method and set averages the same images
            problems.append(f"{path}: {method} on {test}: rows average different image counts {list(rows['n_images'])}")
        first = rows.iloc[0]
        if first["prediction"] != "default" or first["psnr_change"] != 0 or first["ssim_change"] != 0:
            problems.append(f"{path}: {method} on {test}: the first row is not the default with zero change")
    return problems


# ---- table7b_pixel_defocus.csv ---------------------------------------------------------------------------


def _defocus_rows(plan) -> list[tuple]:
    return [(r["label"],) for r in plan.defocus_rows()]


# ---- disparity_features.csv ------------------------------------------------------------------------------


def _cluster_runs(plan) -> list[dict]:
    fig = plan.figures().get("disparity_clusters")
    return fig["spec"]["runs"] if fig else []


def _disparity_rules(df: pd.DataFrame, plan, path) -> list[str]:
    """|Spearman| is finite where the run's first test image has a true disparity, and absent where it has none."""
    from k3dn.data.manifest import read_manifest

    problems = []
    for spec in _cluster_runs(plan):
        got = df[df["run"].astype(str) == spec["run"]]
        if got.empty:
            continue
        has_truth = bool(read_manifest(spec["manifest"]).iloc[0].get("disparity"))
        rho = float(got["spearman_pc1"].iloc[0])
        if has_truth != math.isfinite(rho):
            want = "a finite" if has_truth else "no"
            problems.append(f"{path}: run {spec['run']}: spearman_pc1 is {rho}, want {want} value")
    return problems


SCHEMAS: dict[str, Schema] = {
    "protocol_sensitivity": Schema(
        columns=(
            "method",
            "test",
            "prediction",
            "protocol",
            "psnr",
            "ssim",
            "n_images",
            "n_exact",
            "psnr_change",
            "ssim_change",
            "dtype",
            "size_mode",
            "weights_sha256",
            "manifest_sha256",
            "git_commit",
            "backend",
        ),
        key=("method", "test", "prediction", "protocol"),
        rows=_sensitivity_rows,
        finite=("psnr", "ssim", "psnr_change", "ssim_change", "n_images", "n_exact"),
        rules=_sensitivity_rules,
    ),
    "table7b_pixel_defocus": Schema(
        columns=("row", "method", "kind", "aiwe1", "aiwe2", "one_minus_spearman", "n_images", "data_sha256"),
        key=("row",),
        rows=_defocus_rows,
        finite=("aiwe1", "aiwe2", "one_minus_spearman", "n_images"),
    ),
    "disparity_features": Schema(
        columns=("run", "image_id", "n_windows", "spearman_pc1", "k"),
        key=("run",),
        rows=lambda plan: [(r["run"],) for r in _cluster_runs(plan)],
        finite=("n_windows", "k"),
        rules=_disparity_rules,
    ),
}


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def check_extra_table(path, schema: Schema, plan) -> list[str]:
    """Problems of a table the workflow adds: unreadable, columns missing, rows other than the plan's, values
    that are not finite numbers, and what its own rules say."""
    try:
        df = pd.read_csv(path, keep_default_na=True)
    except (OSError, ValueError) as e:
        return [f"{path}: not a readable CSV ({e})"]
    missing = [c for c in schema.columns if c not in df.columns]
    if missing:
        return [f"{path}: column(s) {missing} missing"]
    keys = [tuple(str(v) for v in k) for k in df[list(schema.key)].itertuples(index=False)]
    want = [tuple(str(v) for v in k) for k in schema.rows(plan)]
    problems = []
    if sorted(keys) != sorted(want):
        extra, absent = sorted(set(keys) - set(want)), sorted(set(want) - set(keys))
        dup = sorted({k for k in keys if keys.count(k) > 1})
        problems.append(f"{path}: rows differ from the plan's: missing {absent}, unexpected {extra}, repeated {dup}")
    for c in schema.finite:
        bad = [k for k, v in zip(keys, df[c]) if not _finite(v)]
        if bad:
            problems.append(f"{path}: column {c!r} is not a finite number in row(s) {bad}")
    return problems + schema.rules(df, plan, path)


def check_tables(tables_dir, plan) -> tuple[list[str], list[str]]:
    """``(names checked, problems)`` for every table the plan makes and every CSV in ``tables_dir``."""
    from k3dn.report.tables import check_table

    tables_dir = Path(tables_dir)
    expected = {**plan.tables, **{n: SCHEMAS[n] for n in plan.extra_tables()}}
    problems = []
    for name, what in expected.items():
        path = tables_dir / f"{name}.csv"
        if not path.is_file():  # every missing table is listed, not only the first
            problems.append(f"{path}: not found; run the workflow's tables (or give --tables-dir)")
        elif isinstance(what, Schema):
            problems += check_extra_table(path, what, plan)
        else:
            problems += check_table(path, what)
    for path in sorted(tables_dir.glob("*.csv")):
        if path.stem not in expected:
            problems.append(f"{path}: no schema checks it (not a table this workflow makes); remove it")
    return list(expected), problems
