"""``k3dn report check``: every CSV in the tables folder is checked against a schema of its own."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from k3dn.data.manifest import write_manifest
from k3dn.io import write_png16
from k3dn.report.check import SCHEMAS, check_extra_table, check_tables
from k3dn.report.sensitivity import write_sensitivity

RECORD = {"config_hash": "c", "weights_sha256": "w", "device": "cpu", "dtype": "float32", "size_mode": "pad"}


class _Plan:
    """The parts of :class:`k3dn.workflow.Plan` the check reads, over files in ``root``."""

    def __init__(self, root, entries, defocus=(), cluster_runs=()):
        self.tables, self.root = {}, root
        self._entries, self._defocus, self._runs = entries, list(defocus), list(cluster_runs)

    def extra_tables(self):
        return ["protocol_sensitivity"] + (["table7b_pixel_defocus"] if self._defocus else [])

    def sensitivity_entries(self):
        return self._entries

    def defocus_rows(self):
        return [{"label": label} for label in self._defocus]

    def figures(self):
        return {"disparity_clusters": {"spec": {"runs": self._runs}}} if self._runs else {}


def _predictions(root, rng, name="pred", n=2):
    """A 16-bit test set and a finished prediction folder of it."""
    rows = []
    (root / name).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        target = rng.random((8, 12, 3))
        write_png16(root / f"t{i}.png", target)
        write_png16(root / name / f"s{i}.png", np.clip(target + 0.05 * rng.standard_normal((8, 12, 3)), 0, 1))
        rows.append({"id": f"s{i}", "dataset": "dpdd", "split": "test", "protocol": "16bit", "channels": 3})
        rows[-1].update(left=str(root / f"t{i}.png"), right=str(root / f"t{i}.png"), target=str(root / f"t{i}.png"))
    (root / name / "predictions.json").write_text(json.dumps(RECORD))
    return write_manifest(rows, root / "dpdd_test.csv")


@pytest.fixture
def run(tmp_path, rng):
    """A tables folder holding the sensitivity table the suite writes for one method, and its plan."""
    manifest = _predictions(tmp_path, rng)
    entries = [{"method": "m", "test": "dpdd_test", "pred": str(tmp_path / "pred"), "manifest": str(manifest)}]
    entries[0]["variants"] = {"bf16": str(tmp_path / "absent")}  # not predicted: no row expected
    tables = tmp_path / "tables"
    write_sensitivity(entries, tables / "protocol_sensitivity.csv")
    return tables, _Plan(tmp_path, entries)


def test_the_tables_the_suite_writes_pass(run):
    tables, plan = run
    names, problems = check_tables(tables, plan)
    assert names == ["protocol_sensitivity"] and problems == []


def test_a_missing_row_a_non_finite_value_and_an_unknown_file_are_problems(run):
    tables, plan = run
    path = tables / "protocol_sensitivity.csv"
    df = pd.read_csv(path)
    df.iloc[1:].to_csv(path, index=False)  # the default 16bit row is gone
    [rows, *_] = check_tables(tables, plan)[1]
    assert "rows differ from the plan's: missing [('m', 'dpdd_test', 'default', '16bit')]" in rows
    df.assign(psnr=[df.loc[0, "psnr"], math.nan, *df["psnr"][2:]]).to_csv(path, index=False)
    [nan] = check_tables(tables, plan)[1]
    assert nan.endswith("column 'psnr' is not a finite number in row(s) [('m', 'dpdd_test', 'default', '8bit')]")
    df.to_csv(path, index=False)
    (tables / "leftover.csv").write_text("a\n1\n")
    [unknown] = check_tables(tables, plan)[1]
    assert unknown.endswith("leftover.csv: no schema checks it (not a table this workflow makes); remove it")


def test_a_variant_prediction_is_expected_once_it_exists(run, tmp_path, rng):
    tables, plan = run
    variant = tmp_path / "absent"
    _predictions(tmp_path, rng, name="absent")
    assert any("missing [('m', 'dpdd_test', 'bf16', '16bit')]" in p for p in check_tables(tables, plan)[1])
    write_sensitivity(plan.sensitivity_entries(), tables / "protocol_sensitivity.csv")
    assert check_tables(tables, plan)[1] == [] and variant.is_dir()


def test_rows_of_one_method_must_average_the_same_images(run):
    tables, plan = run
    path = tables / "protocol_sensitivity.csv"
    pd.read_csv(path).assign(n_images=[2, 1, 2]).to_csv(path, index=False)
    assert check_tables(tables, plan)[1] == [f"{path}: m on dpdd_test: rows average different image counts [2, 1, 2]"]


def test_a_planned_table_that_is_absent_is_named(run):
    tables, plan = run
    plan._defocus = ["Constant map"]
    assert check_tables(tables, plan)[1] == [
        f"{tables / 'table7b_pixel_defocus.csv'}: not found; run the workflow's tables (or give --tables-dir)"
    ]


def test_disparity_features_need_a_finite_spearman_exactly_where_there_is_a_true_disparity(tmp_path):
    row = {"id": "a", "dataset": "ddd_syn", "split": "test", "protocol": "8bit", "channels": 3, "target": "t.png"}
    with_truth = write_manifest([{**row, "disparity": "d.npy"}], tmp_path / "ddd_syn_test.csv")
    without = write_manifest([row], tmp_path / "dpdd_test.csv")
    runs = [{"run": "r/syn", "manifest": str(with_truth)}, {"run": "r/dpdd", "manifest": str(without)}]
    plan = _Plan(tmp_path, [], cluster_runs=runs)
    path = tmp_path / "disparity_features.csv"
    good = pd.DataFrame(
        {"run": ["r/syn", "r/dpdd"], "image_id": "a", "n_windows": 12, "spearman_pc1": [0.4, math.nan], "k": 4}
    )
    good.to_csv(path, index=False)
    assert check_extra_table(path, SCHEMAS["disparity_features"], plan) == []
    good.assign(spearman_pc1=[math.nan, math.nan]).to_csv(path, index=False)
    assert check_extra_table(path, SCHEMAS["disparity_features"], plan) == [
        f"{path}: run r/syn: spearman_pc1 is nan, want a finite value"
    ]
