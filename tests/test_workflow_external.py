"""Result images made elsewhere in the workflow's tables (config ``external:``): the plan imports the folder
instead of predicting it, scores it, and puts it in the chosen tables; mistakes in the config name the key."""

import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from k3dn.workflow import Plan, WorkflowConfigError, merged
from tests.conftest import shell_commands, snakemake_dry_run

ROOT = Path(__file__).resolve().parent.parent
PAPER = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
MINI = yaml.safe_load((ROOT / "config" / "miniature.yaml").read_text())
EXAMPLE = ROOT / "examples" / "external" / "released_results.yaml"
CHECKPOINTS = yaml.safe_load((ROOT / "baselines" / "checkpoints.yaml").read_text())["checkpoints"]
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
FOLDER = "external/dpdnet_release/dpdd_test"


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A working directory holding the example's folder (one file), as the workflow's paths are relative to it."""
    (tmp_path / FOLDER).mkdir(parents=True)
    (tmp_path / FOLDER / "a.png").write_bytes(b"")
    (tmp_path / "config").symlink_to(ROOT / "config")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def user():
    return yaml.safe_load(EXAMPLE.read_text())


def test_an_external_folder_is_a_method_tested_where_it_has_a_folder_and_in_its_table(work):
    config = merged(merged(PAPER, MINI), user())
    jsonschema.validate(config, SCHEMA)
    plan = Plan(config, CHECKPOINTS)
    assert plan.external["dpdnet_release"]["test"] == ["dpdd_test"]
    assert plan.methods["dpdnet_release"] is plan.external["dpdnet_release"]
    assert plan.tables["table1_dpdd"]["rows"][-1] == {
        "label": "DPDNet (8-bit result images)",
        "method": "dpdnet_release",
    }
    assert plan.external_files("dpdnet_release", "dpdd_test") == [f"{FOLDER}/a.png"]
    note = user()["external"]["dpdnet_release"]["note"]
    assert "'" in note  # quoted for the shell: the rule's command line splits back into these arguments
    assert shlex.split(plan.import_args("dpdnet_release", "dpdd_test")) == [
        *("--from", FOLDER, "--manifest", "resources/manifests/dpdd/dpdd_test.csv"),
        *("--method", "dpdnet_release", "--bit-depth", "8", f"--note={note}"),
    ]
    # scored beside every other method in the protocol-sensitivity table, but never re-predicted for its variants
    assert {e["method"] for e in plan.sensitivity_entries()} >= {"dpdnet_release"}
    assert all(m != "dpdnet_release" for m, _, _ in plan.sensitivity_variants())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(merged(config, {"external": {"dpdnet_release": {"bit_depth": 12}}}), SCHEMA)


def test_the_command_line_reaches_the_command_as_written(work):
    """Notes and folders with quotes, spaces or a leading dash arrive as the config gives them."""
    from k3dn.cli import build_parser

    odd = "external/their results (v2)"
    (work / odd).mkdir(parents=True)
    for note in ("-fast variant, 'as released'", 'their "final" images'):
        change = {"external": {"dpdnet_release": {"from": {"dpdd_test": odd}, "note": note}}}
        plan = Plan(merged(merged(PAPER, user()), change), CHECKPOINTS)
        argv = ["import-predictions", *shlex.split(plan.import_args("dpdnet_release", "dpdd_test")), "--out", "o"]
        args = build_parser(argv).parse_args(argv)
        assert (args.source, args.note, args.bit_depth) == (odd, note, 8)


def test_a_replaced_file_or_new_weights_change_the_jobs_params(work):
    """Snakemake reruns a job whose params changed: files replaced by older ones (mtimes alone would not
    rerun the import) and other weights published under a checkpoint's name (fetch and predict again)."""
    config = merged(merged(PAPER, MINI), user())  # every input in place, the DPDNet weights too
    plan = Plan(config, CHECKPOINTS)
    before = plan.external_fingerprint("dpdnet_release", "dpdd_test")
    png = work / FOLDER / "a.png"
    old = png.stat().st_mtime_ns - 10**12
    png.write_bytes(b"another release")
    os.utime(png, ns=(old, old))
    assert plan.external_fingerprint("dpdnet_release", "dpdd_test") != before
    assert plan.weights_identity("dpdnet_release") == "" and plan.weights_identity("k3dn_tiny_dpdd") == ""
    weights = plan.weights_identity("pub_dpdnet_dual")
    assert weights == plan.checkpoint_identity(plan.published["pub_dpdnet_dual"]["checkpoint"])
    entry = CHECKPOINTS["dpdnet_dual"]
    [src, *rest] = entry["sources"]
    republished = dict(src, files=[dict(src["files"][0], sha256="0" * 64), *src["files"][1:]])
    new = dict(CHECKPOINTS, dpdnet_dual=dict(entry, sources=[republished, *rest]))
    assert Plan(config, new).weights_identity("pub_dpdnet_dual") != weights


def _rule_params(rule: str) -> str:
    """The ``params:`` block of ``rule`` in workflow/rules/*.smk, as text."""
    text = "".join(f.read_text() for f in sorted((ROOT / "workflow" / "rules").glob("*.smk")))
    [body] = re.findall(rf"^rule {rule}:\n(.*?)(?=^\S|\Z)", text, re.M | re.S)
    [block] = re.findall(r"^    params:\n((?:        .*\n)+)", body, re.M)
    return block


def test_the_jobs_that_use_weights_or_a_folder_carry_its_digest_as_a_param():
    """Snakemake reruns a job whose params changed (its default rerun triggers): the digests above reach it only
    as params of the rules that fetch or run the weights, or import the folder."""
    for rule in ("predict", "predict_image", "predict_variant", "speed"):
        assert "weights=lambda w: PLAN.weights_identity(w.method)" in _rule_params(rule), rule
    assert "entry=lambda w: PLAN.checkpoint_identity(w.ckpt)" in _rule_params("fetch_weights")
    assert "files=lambda w: PLAN.external_fingerprint(w.method, w.test)" in _rule_params("import_predictions")


def test_prose_urls_and_where_a_catalogue_lies_do_not_change_the_weights_digest(work):
    config = merged(merged(PAPER, MINI), user())
    weights = Plan(config, CHECKPOINTS).checkpoint_identity("dpdnet_dual")
    entry = CHECKPOINTS["dpdnet_dual"]
    moved = dict(entry, citation=entry["citation"] + " ", notes="", manifest="/elsewhere/dpdnet.json")
    moved["sources"] = [dict(src, url="https://mirror.example/w.h5") for src in entry["sources"]]
    assert Plan(config, dict(CHECKPOINTS, dpdnet_dual=moved)).checkpoint_identity("dpdnet_dual") == weights
    for change in ({"file": "other.hdf5"}, {"params": 1}):
        other = dict(CHECKPOINTS, dpdnet_dual=dict(entry, **change))
        assert Plan(config, other).checkpoint_identity("dpdnet_dual") != weights, change


def test_the_plan_of_the_written_workflow_config_has_the_rows_of_the_running_one(work):
    """`k3dn report check` rebuilds the plan from resources/workflow.json, whose keys are sorted: the rows that
    user configs add keep one order either way."""
    from k3dn.preflight import _config_text

    extra = {"tables": {"table1_dpdd": {"extra_rows": {"pub_restormer_dual": "Zeta", "identity": "Alpha"}}}}
    config = merged(merged(merged(PAPER, MINI), user()), extra)
    rows = Plan(config, CHECKPOINTS).tables["table1_dpdd"]["rows"]
    assert [r["label"] for r in rows[-3:]] == ["Alpha", "DPDNet (8-bit result images)", "Zeta"]
    assert Plan(json.loads(_config_text(config)), CHECKPOINTS).tables["table1_dpdd"]["rows"] == rows


def test_a_missing_input_leaves_an_external_method_out_like_any_other(work):
    """RDPD needs SYNTHIA-SF (a web form): not in place, the import into Table 3 is left out and its row says why;
    the method's DPD-blur folder stays."""
    rdpd = {"external": {"dpdnet_release": {"from": {"rdpd_test": FOLDER}}}}
    rdpd["tables"] = {"table3_rdpd": {"extra_rows": {"dpdnet_release": "Theirs"}}}
    plan = Plan(merged(merged(PAPER, user()), rdpd), CHECKPOINTS, raw_root="raw", ckpt_root="ckpt")
    assert "synthia_sf" in plan.missing
    assert plan.methods["dpdnet_release"]["test"] == ["dpdd_test"]
    assert plan.left_out["dpdnet_release/rdpd_test"].startswith("not run: synthia_sf is missing")
    [row] = [r for r in plan.tables["table3_rdpd"]["rows"] if r["label"] == "Theirs"]
    assert row["method"] is None and row["not_run"].startswith("not run: synthia_sf is missing")


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"external": {"dpdnet_release": {"from": {"dpdd_test": "no/such"}}}},
            r"external.dpdnet_release.from.dpdd_test: no/such: no such folder",
        ),
        ({"external": {"dpdnet_release": {"bit_depth": 12}}}, r"external.dpdnet_release.bit_depth: 8 or 16"),
        (
            {"external": {"dpdnet_release": {"note": " "}}},
            r"external.dpdnet_release.note: say how the images were made",
        ),
        (
            {"external": {"pub_dpdnet_dual": {"from": {"dpdd_test": FOLDER}, "bit_depth": 8, "note": "n"}}},
            r"\['pub_dpdnet_dual'\] are under both published: and external:",
        ),
        (
            {"external": {"dpdnet_release": {"from": {"dpd_disp_test": FOLDER}}}},
            r"external.dpdnet_release.from.dpd_disp_test: dpd_disp has no targets",
        ),
        (
            {"external": {"dpdnet_release": {"from": {"pixel_val": FOLDER}}}},
            r"external.dpdnet_release.from: pixel has no split 'val'",
        ),
        (
            {"tables": {"table12_speed": {"extra_rows": {"dpdnet_release": "Theirs"}}}},
            r"tables.table12_speed: row 'Theirs': 'dpdnet_release' is a folder of result images",
        ),
        (
            {"tables": {"table2_ddd_syn": {"extra_rows": {"dpdnet_release": "Theirs"}}}},
            r"tables.table2_ddd_syn: row 'Theirs': method 'dpdnet_release' is not tested on ddd_syn_test",
        ),
        (
            {"sensitivity": {"methods": ["dpdnet_release"]}},
            r"sensitivity.methods: 'dpdnet_release' is a folder of result images",
        ),
    ],
)
def test_config_mistakes_name_the_key(work, change, message):
    with pytest.raises(WorkflowConfigError, match=message):
        Plan(merged(merged(PAPER, user()), change), CHECKPOINTS)


def test_the_miniature_dry_run_imports_the_folder_scores_it_and_tables_it(work):
    """What CI runs after the miniature: the folder is imported (never predicted or timed), evaluated, and in
    Table 1, the protocol-sensitivity table and DPD-blur's pairwise matrix."""
    out = snakemake_dry_run(work, "-p", "all", "--configfile", "config/miniature.yaml", str(EXAMPLE))
    assert out.returncode == 0, out.stderr[-3000:]
    ours = shell_commands(out.stdout, "dpdnet_release")
    [imp] = [c for c in ours if c.startswith("k3dn import-predictions")]
    assert imp.startswith(f"k3dn import-predictions --from {FOLDER} --manifest resources/manifests/dpdd/dpdd_test.csv")
    assert imp.endswith(
        "--replace --out results/predictions/dpdnet_release/dpdd_test > logs/import/dpdnet_release/dpdd_test.log 2>&1"
    )
    assert not [c for c in ours if c.startswith(("k3dn predict", "k3dn report speed"))]
    assert any(c.startswith("k3dn evaluate --pred results/predictions/dpdnet_release/dpdd_test ") for c in ours)
    [table] = [c for c in ours if c.startswith("k3dn report table") and "table1_dpdd" in c]
    assert '{"label":"DPDNet (8-bit result images)","method":"dpdnet_release"}]' in table
    assert any(c.startswith("k3dn report sensitivity") for c in ours)
    assert any(c.startswith("k3dn report pairwise --test dpdd_test") for c in ours)
