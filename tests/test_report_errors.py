"""Expected failures of ``k3dn report``: one line ``error: <file or key>: ...``, a non-zero exit, no output left.

The fault table of ``tests/test_cli_errors.py`` for the report subcommands: each case sets up one fault in
``tmp_path`` and returns the argv; the command's output, if it has one, is ``tmp/out.<ext>``. Every subcommand of
``k3dn report`` must have a case (checked from the parser, so a new subcommand cannot be added without one).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from k3dn.cli import build_parser, main
from k3dn.io import write_png16
from k3dn.report.tables import PROVENANCE
from tests.conftest import one_error_line

H, W = 16, 24
PROV = {c: "x" for c in PROVENANCE if c != "n_images"} | {"protocol": "16bit"}


def _png(path: Path, seed: int = 0) -> Path:
    return write_png16(path, np.random.default_rng(seed).random((H, W, 3)))


def _manifest(tmp: Path, **extra) -> Path:
    from k3dn.data.manifest import write_manifest

    row = {
        "id": "a",
        "dataset": "dpdd",
        "split": "test",
        "protocol": "16bit",
        "channels": 3,
        "left": str(_png(tmp / "left.png", 1)),
        "right": str(_png(tmp / "right.png", 2)),
        "target": str(_png(tmp / "target.png", 3)),
        **extra,
    }
    return write_manifest([row], tmp / "test.csv")


def _table_spec(**kw) -> str:
    spec = {"test": "dpdd_test", "groups": ["combined"], "metrics": ["psnr"], "rows": [{"label": "A", "method": "m"}]}
    return json.dumps({**spec, **kw})


def _table(tmp: Path, spec: str) -> list[str]:
    return ["report", "table", "--spec", spec, "--out", str(tmp / "out.csv"), "--metrics-root", str(tmp / "metrics")]


def _metrics(tmp: Path, rows: list[dict]) -> None:
    (tmp / "metrics" / "m").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(tmp / "metrics" / "m" / "dpdd_test.csv", index=False)


def _sensitivity(tmp: Path, pred: Path) -> list[str]:
    spec = [{"method": "m", "test": "dpdd_test", "pred": str(pred), "manifest": str(_manifest(tmp))}]
    return ["report", "sensitivity", "--spec", json.dumps(spec), "--device", "cpu", "--out", str(tmp / "out.csv")]


def _defocus(tmp: Path, rows, manifest) -> list[str]:
    args = ["--manifest", str(manifest), "--device", "cpu", "--out", str(tmp / "out.csv")]
    return ["report", "defocus", "--rows", json.dumps(rows), *args]


def _figure(tmp: Path, name: str, spec) -> list[str]:
    spec = spec if isinstance(spec, str) else json.dumps(spec)
    return ["report", "figure", name, "--spec", spec, "--device", "cpu", "--out", str(tmp / "out.png")]


def _speed(tmp: Path, *extra) -> list[str]:
    return ["report", "speed", "--method", "x", *extra, "--device", "cpu", "--out", str(tmp / "out.csv")]


# --------------------------------------------------------------------------------------------- faults


def table_missing_metrics(tmp):
    return _table(tmp, _table_spec())


def table_without_provenance(tmp):
    _metrics(tmp, [{"id": "a", "label": "indoor", "psnr": 30.0}])
    return _table(tmp, _table_spec())


def table_empty_group(tmp):
    _metrics(tmp, [{"id": "a", "label": "indoor", "psnr": 30.0, **PROV}])
    return _table(tmp, _table_spec(groups=["outdoor"]))


def table_missing_key(tmp):
    return _table(tmp, json.dumps({"test": "dpdd_test"}))


def table_missing_published(tmp):
    _metrics(tmp, [{"id": "a", "label": "indoor", "psnr": 30.0, **PROV}])
    return _table(tmp, _table_spec(published=str(tmp / "paper.csv")))


def table_bad_json(tmp):
    return _table(tmp, "{'test': 'dpdd_test'}")  # Python's quotes, not JSON's


def check_missing_workflow(tmp):
    return ["report", "check", "--workflow", str(tmp / "nowhere.json"), "--tables-dir", str(tmp)]


def sensitivity_unfinished_predictions(tmp):
    (tmp / "pred").mkdir()
    _png(tmp / "pred" / "a.png")
    return _sensitivity(tmp, tmp / "pred")


def sensitivity_missing_image(tmp):
    (tmp / "pred").mkdir()
    (tmp / "pred" / "predictions.json").write_text(json.dumps({"dtype": "float32"}))
    return _sensitivity(tmp, tmp / "pred")


def sensitivity_not_a_list(tmp):
    spec = {"method": "m", "test": "dpdd_test", "pred": "p", "manifest": "m.csv"}
    return ["report", "sensitivity", "--spec", json.dumps(spec), "--device", "cpu", "--out", str(tmp / "out.csv")]


def html_missing_table(tmp):
    spec = {"tables": {"table1": str(tmp / "absent.csv")}, "figures": {}}
    return ["report", "html", "--spec", json.dumps(spec), "--out", str(tmp / "out.html")]


def html_missing_key(tmp):
    return ["report", "html", "--spec", json.dumps({"tables": {}}), "--out", str(tmp / "out.html")]


def defocus_unknown_kind(tmp):
    return _defocus(tmp, [{"label": "X", "kind": "depth"}], _manifest(tmp))


def defocus_no_ground_truth(tmp):
    return _defocus(tmp, [{"label": "floor", "kind": "constant"}], _manifest(tmp))


def defocus_missing_map(tmp):
    np.save(tmp / "a_gt.npy", np.zeros((H, W)))
    write_png16(tmp / "a_gt.png", np.full((H, W), 0.5))
    (tmp / "pred").mkdir()
    manifest = _manifest(tmp, disparity=str(tmp / "a_gt.png"))
    return _defocus(tmp, [{"label": "Xin", "kind": "maps", "pred": str(tmp / "pred")}], manifest)


def timings_no_benchmarks(tmp):
    return ["report", "timings", "--benchmarks", str(tmp / "benchmarks")]


def timings_not_a_benchmark(tmp):
    (tmp / "benchmarks" / "train").mkdir(parents=True)
    (tmp / "benchmarks" / "train" / "a.tsv").write_text("elapsed\n12\n")
    return ["report", "timings", "--benchmarks", str(tmp / "benchmarks")]


def speed_unknown_model(tmp):
    return _speed(tmp, "--model", "k3dn_tinny")


def speed_bad_override(tmp):
    return _speed(tmp, "--model", "identity", "--override", "window")


def speed_bad_device(tmp):
    return [
        "report",
        "speed",
        "--method",
        "x",
        "--model",
        "identity",
        "--device",
        "gpu0",
        "--out",
        str(tmp / "out.csv"),
    ]


def figure_bad_json(tmp):
    return _figure(tmp, "ablations", '{"tables": {"t9": "t9.csv"}')  # unclosed


def figure_missing_table(tmp):
    return _figure(tmp, "ablations", {"tables": {"table9": str(tmp / "absent.csv")}})


def figure_table_without_column(tmp):
    pd.DataFrame({"row": ["9x9"], "psnr": [25.0]}).to_csv(tmp / "t9.csv", index=False)
    return _figure(tmp, "ablations", {"tables": {"table9": str(tmp / "t9.csv")}})


def figure_missing_key(tmp):
    return _figure(tmp, "reblur", {"run": str(tmp / "run")})


def figure_missing_run(tmp):
    return _figure(tmp, "psf_kernels", {"run": str(tmp / "nowhere"), "manifest": str(_manifest(tmp))})


def figure_bad_number(tmp):
    return _figure(tmp, "dpd_disp", {"manifest": str(_manifest(tmp)), "predictions": {"a": str(tmp)}, "n": "two"})


def pairwise_different_images(tmp):
    for method, ids in (("a", ["x", "y"]), ("b", ["x", "z"])):
        (tmp / "metrics" / method).mkdir(parents=True)
        frame = pd.DataFrame({"id": ids, "label": "", "psnr": 25.0, "ssim": 0.8, **PROV})
        frame.to_csv(tmp / "metrics" / method / "dpdd_test.csv", index=False)
    return ["report", "pairwise", "--test", "dpdd_test", "--methods", "a", "b"] + [
        "--metrics-root",
        str(tmp / "metrics"),
        "--out",
        str(tmp / "out.csv"),
    ]


CASES = [
    (
        pairwise_different_images,
        r"metrics/a/dpdd_test\.csv: scores a different image set from .*metrics/b/dpdd_test\.csv: 1 id\(s\) only "
        r"here \(y\); 1 only there \(z\)",
    ),
    (
        table_missing_metrics,
        r"metrics/m/dpdd_test\.csv: per-image metrics of 'm' on dpdd_test not found; score its predictions "
        r"\(`k3dn evaluate`\), or give the right --metrics-root",
    ),
    (table_without_provenance, r"dpdd_test\.csv: provenance column\(s\) \['protocol', .*\] missing; rerun the job"),
    (
        table_empty_group,
        r"dpdd_test\.csv: no image labelled 'outdoor' \(labels: \['indoor'\]\); fix the table's groups",
    ),
    (table_missing_key, r"--spec: the spec lacks key\(s\) \['groups', 'metrics', 'rows'\]; a table spec has"),
    (table_missing_published, r"paper\.csv: published table not found; fix the spec's 'published'"),
    (table_bad_json, r"--spec: not valid JSON \(.*\); write it with double quotes, the whole value quoted"),
    (check_missing_workflow, r"nowhere\.json: cannot read the workflow config .*; run the workflow first"),
    (
        sensitivity_unfinished_predictions,
        r"pred/predictions\.json: missing; the predictions are incomplete or were not made by `k3dn predict`",
    ),
    (sensitivity_missing_image, r"pred/a\.png: image file not found"),
    (sensitivity_not_a_list, r"--spec: must be a JSON list, got dict; each entry is \{method, test, pred, manifest"),
    (html_missing_table, r"absent\.csv: table 'table1' not found; run the workflow's tables first"),
    (html_missing_key, r"--spec: the spec lacks key\(s\) \['figures'\]"),
    (defocus_unknown_kind, r"--rows: row 'X': unknown kind 'depth'; expected maps, k3dn or constant"),
    (defocus_no_ground_truth, r"test\.csv: rows \['a'\] have no ground-truth defocus map \(column disparity\)"),
    (defocus_missing_map, r"pred/a_defocus\.npy: missing; the method's predictions carry no defocus map"),
    (timings_no_benchmarks, r"benchmarks: benchmarks folder not found; run the workflow first, or give --benchmarks"),
    (timings_not_a_benchmark, r"train/a\.tsv: not a Snakemake benchmark file \(.*\); delete it and rerun its rule"),
    (speed_unknown_model, r"unknown model 'k3dn_tinny'; did you mean k3dn_tiny\b"),
    (speed_bad_override, r"--override 'window': not KEY=VALUE; write it as --override window=VALUE"),
    (speed_bad_device, r"--device 'gpu0': not a device; use auto, cpu, cuda or cuda:N"),
    (figure_bad_json, r"--spec: not valid JSON"),
    (figure_missing_table, r"absent\.csv: ablation table not found; build it first, or fix its path"),
    (figure_table_without_column, r"t9\.csv: ablation table has no column\(s\) \['psnr_paper'\]"),
    (figure_missing_key, r"figure reblur: the spec lacks key\(s\) \['manifest'\]; see `k3dn report figure --help`"),
    (figure_missing_run, r"nowhere: run folder not found; train it first"),
    (figure_bad_number, r"figure dpd_disp: key 'n': must be an integer, got 'two'"),
]


@pytest.mark.parametrize("fault, message", CASES, ids=[c[0].__name__ for c in CASES])
def test_expected_failure_is_one_line_and_leaves_no_output(fault, message, tmp_path, capsys):
    argv = fault(tmp_path)
    capsys.readouterr()
    rc = main(argv)
    line = one_error_line(capsys.readouterr().err)
    assert rc == 1
    assert re.search(message, line), line
    assert not list(tmp_path.glob("out*")), "an output was left behind"
    assert not list(tmp_path.rglob("*.tmp*"))


def _report_subcommands() -> set[str]:
    parser = build_parser(["report"])
    top = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    report = top.choices["report"]
    sub = next(a for a in report._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_every_report_subcommand_has_a_fault_case(tmp_path):
    covered = set()
    for fault, _ in CASES:
        folder = tmp_path / fault.__name__
        folder.mkdir()
        argv = fault(folder)
        assert argv[0] == "report", argv
        covered.add(argv[1])
    subcommands = _report_subcommands()
    assert {"table", "check", "sensitivity", "html", "defocus", "timings", "speed", "figure"} <= subcommands
    assert subcommands - covered == set(), f"k3dn report subcommands without a fault case: {subcommands - covered}"


def test_check_lists_every_missing_table(tmp_path, capsys):
    """A run that wrote no tables is one problem per table of the plan, not a stop at the first."""
    import yaml

    config = yaml.safe_load(Path(__file__).resolve().parent.parent.joinpath("config", "config.yaml").read_text())
    workflow = tmp_path / "workflow.json"
    workflow.write_text(json.dumps(config))
    tables = tmp_path / "tables"
    tables.mkdir()
    rc = main(["report", "check", "--workflow", str(workflow), "--tables-dir", str(tables)])
    cap = capsys.readouterr()
    assert rc == 1
    problems = cap.err.splitlines()
    # the paper tables, then the ones the workflow adds (sensitivity, disparity features, Table 7b)
    names = [*config["tables"], "protocol_sensitivity", "disparity_features", "table7b_pixel_defocus"]
    assert problems == [f"{tables / n}.csv: not found; run the workflow's tables (or give --tables-dir)" for n in names]
    assert cap.out == f"checked {len(names)} tables: {len(problems)} problem(s)\n"


def test_speed_needs_a_run_or_a_model(capsys):
    """Neither (or both) is a wrong command line: argparse's usage error, status 2, before any model is built."""
    for which in ([], ["--run", "r", "--model", "identity"]):
        with pytest.raises(SystemExit) as e:
            main(["report", "speed", "--method", "x", *which, "--out", "o.csv"])
        assert e.value.code == 2
        assert "--run" in capsys.readouterr().err


def test_bootstrap_refuses_non_finite_values_as_an_input_error():
    from k3dn.errors import InputError
    from k3dn.report.stats import mean_ci, paired_diff_ci

    with pytest.raises(InputError, match=r"^dpdd\.csv \(A\): 1 non-finite value\(s\)"):
        mean_ci([30.0, float("inf"), 28.0], name="dpdd.csv (A)")
    with pytest.raises(InputError, match=r"^dpdd\.csv: need a non-empty list"):
        mean_ci([], name="dpdd.csv")
    with pytest.raises(InputError, match=r"^dpdd\.csv: paired values differ in length \(2 vs 3\)"):
        paired_diff_ci([1.0, 2.0], [1.0, 2.0, 3.0], name="dpdd.csv")
