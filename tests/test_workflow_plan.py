"""The workflow plan (k3dn.workflow) and preflight, without Snakemake: the paper config's crops and device are legal,
the miniature changes scale only, manual-only inputs leave out what needs them, and messages name key and fix."""

from pathlib import Path

import pytest
import yaml

from k3dn.preflight import check_device, check_runs, run_preflight
from k3dn.workflow import Plan, WorkflowConfigError, jsonarg, merged

ROOT = Path(__file__).resolve().parent.parent
PAPER = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
MINI = yaml.safe_load((ROOT / "config" / "miniature.yaml").read_text())
CHECKPOINTS = yaml.safe_load((ROOT / "baselines" / "checkpoints.yaml").read_text())["checkpoints"]


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    monkeypatch.chdir(ROOT)  # recipes and published tables are paths relative to the repository


def plan(cfg, **kw) -> Plan:
    return Plan(cfg, CHECKPOINTS, **kw)


def test_every_paper_run_has_a_legal_crop_on_its_training_images():
    """Crashes 1 and 2 of the first GPU run: DDD-syn's 576x448 crop on 480x640 images, and window ablations
    whose crop was not a multiple of their size multiple."""
    checks = plan(dict(PAPER, require_all=True)).preflight_checks()
    assert len(checks) == 45
    assert check_runs(checks) == []
    crops = {c["run"]: tuple(c["crop"]) for c in checks}
    assert crops["abl_window_27x27"] == (864, 864) and crops["abl_window_14x18"] == (448, 576)
    ddd = [c for c in checks if c["data"] == "ddd_syn"]
    assert ddd and all(c["crop"][0] <= 480 and c["crop"][1] <= 640 for c in ddd)


def test_a_crop_problem_names_the_run_the_key_and_the_fix():
    checks = plan(dict(PAPER, require_all=True)).preflight_checks()
    win = next(c for c in checks if c["run"] == "abl_window_9x9")
    bad = dict(win, crop=[576, 448], set_by_run=True)
    [msg] = check_runs([bad])
    assert "runs.abl_window_9x9.set.data.crop" in msg and "288x288" in msg and "[576, 576]" in msg
    ddd = next(c for c in checks if c["data"] == "ddd_syn")
    [msg] = check_runs([dict(ddd, crop=[576, 448])])
    assert "does not fit ddd_syn's 480x640 images" in msg and ddd["run"] in msg


def test_device_auto_is_a_device():
    """Crash 3: ``device: auto`` reached torch.device('auto') in the speed table."""
    from k3dn.infer import pick_device

    assert PAPER["device"] == "auto" and check_device("auto") == []
    assert pick_device("auto").type in ("cpu", "cuda")
    assert "no CUDA device" in check_device("cuda")[0] or __import__("torch").cuda.is_available()
    with pytest.raises(WorkflowConfigError, match="device: unknown device 'gpu'"):
        plan(dict(PAPER, device="gpu", require_all=True))


def test_the_miniature_changes_scale_not_the_grid():
    paper, mini = plan(dict(PAPER, require_all=True)), plan(merged(PAPER, MINI))
    assert list(mini.runs) == list(paper.runs) and list(mini.published) == list(paper.published)
    assert {k: [r["label"] for r in t["rows"]] for k, t in mini.tables.items()} == {
        k: [r["label"] for r in t["rows"]] for k, t in paper.tables.items()
    }
    for run in paper.runs:
        p, m = paper.train_values(run), mini.train_values(run)
        assert len(m["stages"]) == len(paper.train_config(run)["stages"]) and set(m["stages"]) == {1}
        assert {k: v for k, v in m.items() if k not in MINI["scale"]["train"] and k != "stages"} == {
            k: v for k, v in p.items() if k not in MINI["scale"]["train"]
        }
    # the window ablations keep their geometry: the miniature crop follows their size multiple
    checks = {c["run"]: c for c in mini.preflight_checks()}
    assert checks["abl_window_27x27"]["crop_fit"] == "up" and check_runs(list(checks.values())) == []


def test_scale_applies_to_a_run_added_to_the_paper_config():
    cfg = merged(PAPER, MINI)
    cfg["runs"]["extra"] = dict(cfg["runs"]["k3dn_tiny_dpdd"], set={"optim.lr": 1e-4})
    p = plan(cfg)
    assert p.train_values("extra")["optim.lr"] == 1e-4 and p.train_values("extra")["stages"] == [1, 1]


def test_a_missing_manual_input_leaves_out_what_needs_it(tmp_path):
    """SYNTHIA-SF (a web form) not in place: RDPD and everything trained on it is left out, its table rows say
    why; the rest of the grid stays."""
    p = plan(PAPER, raw_root=str(tmp_path / "raw"), ckpt_root=str(tmp_path / "ckpt"))
    assert "synthia_sf" in p.missing and "synthia_sf" in p.report()
    assert not any(s["data"] == "rdpd" for s in p.runs.values())
    assert "k3dn_lightweight_dpdd" in p.runs
    rows = [r for t in p.tables.values() for r in t["rows"] if r.get("not_run")]
    assert rows and all(r["method"] is None and "missing" in r["not_run"] for r in rows)
    whole = plan(dict(PAPER, require_all=True), raw_root=str(tmp_path / "raw"), ckpt_root=str(tmp_path / "ckpt"))
    assert len(whole.runs) == 45 and "stops at preflight" in whole.report()


def test_preflight_with_require_all_stops_and_says_where_to_put_each_file():
    errors, _ = run_preflight(dict(PAPER, require_all=True))
    if not errors:
        pytest.skip("every manual-only input is in place on this machine")
    assert "fetched by hand" in errors[0] and "save it as resources/raw/synthia_sf" in errors[0]


def test_config_errors_name_the_key():
    cfg = dict(PAPER, require_all=True)
    cfg["tables"] = {"t": dict(next(iter(PAPER["tables"].values())))}
    cfg["tables"]["t"]["rows"] = [{"label": "X", "method": "no_such_method"}]
    with pytest.raises(WorkflowConfigError, match="tables.t: row 'X' names method 'no_such_method'"):
        plan(cfg)
    runs = dict(PAPER["runs"])
    runs["k3dn_tiny_dpdd"] = dict(runs["k3dn_tiny_dpdd"], set={"optim.lrr": 1})
    with pytest.raises(WorkflowConfigError, match=r"runs.k3dn_tiny_dpdd.*optim.lrr"):
        plan(dict(PAPER, runs=runs, require_all=True)).train_config("k3dn_tiny_dpdd")
    # the 16-bit IFAN weights are read at 16 bits only through the model tag the catalogue names
    published = dict(
        PAPER["published"], pub_ifan_single=dict(PAPER["published"]["pub_ifan_single"], checkpoint="ifan_single_16bit")
    )
    with pytest.raises(
        WorkflowConfigError, match=r"published.pub_ifan_single.model: 'ifan_single'.*'ifan_single.16bit'"
    ):
        plan(dict(PAPER, published=published, require_all=True))
    published["pub_ifan_single"]["model"] = "ifan_single.16bit"
    assert "--model ifan_single.16bit" in plan(dict(PAPER, published=published, require_all=True)).method_args(
        "pub_ifan_single", "dpdd_test"
    )


def test_a_model_minimum_input_is_checked_and_fitted():
    """DDDNet's 64x64 pooling: the miniature's 32x32 crop once crashed its miniature training."""
    from k3dn.data.datasets import fit_crop

    checks = plan(merged(PAPER, MINI)).preflight_checks()
    ddd = next(c for c in checks if c["model"] == "dddnet")
    assert check_runs([ddd]) == [] and fit_crop(ddd["crop"], (8, 8), (64, 64)) == (64, 64)
    [msg] = check_runs([dict(ddd, crop_fit="exact")])
    assert "of at least 64x64" in msg and "[64, 64]" in msg


def test_every_training_manifest_is_one_the_workflow_writes(tmp_path):
    """Crash 4, found by the miniature: DDD-syn's recipe validated on a ddd_syn_val.csv no rule writes."""
    p = plan(dict(PAPER, require_all=True))
    assert p.manifest_problems() == []
    bad = tmp_path / "ddd.yaml"
    bad.write_text(
        f"base: {ROOT / 'config/train/ddd_syn.yaml'}\ndata:\n  val: resources/manifests/ddd_syn/ddd_syn_val.csv\n"
    )
    cfg = dict(PAPER, require_all=True, recipes=dict(PAPER["recipes"], ddd_syn=str(bad)))
    [msg, *_] = plan(cfg).manifest_problems()
    assert "data.val resources/manifests/ddd_syn/ddd_syn_val.csv is not a manifest the workflow writes" in msg
    assert "splits ['train', 'test']" in msg and "or null" in msg


def test_sensitivity_covers_every_scored_prediction():
    p = plan(dict(PAPER, require_all=True))
    entries = p.sensitivity_entries()
    assert len(entries) == sum(t != "dpd_disp_test" for s in p.methods.values() for t in s["test"])
    light = next(e for e in entries if e["method"] == "k3dn_lightweight_dpdd" and e["test"] == "dpdd_test")
    assert light["variants"] == {
        "bf16": "results/predictions/k3dn_lightweight_dpdd/dpdd_test~bf16",
        "native": "results/predictions/k3dn_lightweight_dpdd/dpdd_test~native",
    }
    assert p.variant_args("bf16") == "--dtype bfloat16"
    pixel = next(e for e in entries if e["method"] == "k3dn_lightweight_dpdd" and e["test"] == "pixel_test")
    assert set(pixel["variants"]) == {"bf16", "native", "gamma_in"}  # gamma-encoded input: the Pixel set only


def test_every_figure_names_a_kind_the_command_draws():
    from k3dn.report.figures import FIGURE_NAMES

    figs = plan(dict(PAPER, require_all=True)).figures()
    assert {f["kind"] for f in figs.values()} <= set(FIGURE_NAMES)
    assert {
        "qualitative_dpdd",
        "qualitative_pixel",
        "qualitative_ddd_syn",
        "qualitative_rdpd",
        "reblur",
        "psf_kernels",
        "disparity_clusters",
        "dpd_disp",
        "ablations",
        "speed_accuracy",
    } == set(figs)
    q = figs["qualitative_pixel"]["spec"]
    assert q["blurry"] == "identity" and q["reference"] == "k3dn_lightweight_dpdd" and "identity" in q["predictions"]
    # each waits for the manifests of the test sets it reads, and only those
    assert "resources/manifests/pixel" in figs["qualitative_pixel"]["inputs"]
    assert [i for i in figs["disparity_clusters"]["inputs"] if i.startswith("resources/manifests")] == [
        "resources/manifests/dpdd",
        "resources/manifests/ddd_syn",
    ]


def test_dataset_overrides_reach_only_that_data_sets_predictions():
    """Wiener's measured pair centroid belongs to the Pixel set's calibrated kernels, not to DPDD's half-disks."""
    p = plan(dict(PAPER, require_all=True))
    centroid = PAPER["published"]["wiener"]["dataset_overrides"]["pixel"]["pair_centroid"]
    pixel, dpdd = p.method_args("wiener", "pixel_test"), p.method_args("wiener", "dpdd_test")
    assert f"--override pair_centroid={jsonarg(centroid)}" in pixel
    assert "pair_centroid" not in dpdd and "pair_centroid" not in p.method_args("wiener")
    wiener = dict(PAPER["published"]["wiener"], dataset_overrides={"pixel4": {"pair_centroid": [0, 0]}})
    with pytest.raises(WorkflowConfigError, match=r"published.wiener.dataset_overrides: \['pixel4'\]"):
        plan(dict(PAPER, published=dict(PAPER["published"], wiener=wiener), require_all=True))
