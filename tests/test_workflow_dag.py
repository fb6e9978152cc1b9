"""The Snakemake DAG: the paper dry run lists the full experiment grid, offline, and bad configs fail early."""

import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import snakemake_dry_run

ROOT = Path(__file__).resolve().parent.parent
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")

# The paper's experiment list (supplement §A-C), counted independently of config/config.yaml.
VARIANTS, TRAIN_SETS = 3, 3  # Tiny/Lightweight/Large x DPD-blur/DDD-syn/RDPD
SINGLE = 3  # Table 8
ABLATIONS = (5 - 1) + (6 - 1) + (7 - 1)  # Tables 9-11, their default setting is the Lightweight run
RETRAINED = 9 * 2  # dual-pixel baselines x {DDD-syn, RDPD}, same iterations
TRAIN_JOBS = VARIANTS * TRAIN_SETS + SINGLE + ABLATIONS + RETRAINED
# Scored evaluations: every trained model on its test set, the DPD-blur models also on the Pixel set (Table 7);
# the published checkpoints on DPD-blur (9 dual-pixel + 4 published since K3DN + 4 single-image + Wiener), and
# DPDNet, IFAN, Restormer and Wiener on the Pixel set (Table 7).
EVALUATIONS = (TRAIN_JOBS + VARIANTS) + (9 + 4 + 4 + 1) + 4 + 4 + 1  # + the blurry input on the 4 scored
# test sets, + Xin et al. on the Pixel set (Table 7)


def dry_run(tmp_path, *args):
    return snakemake_dry_run(tmp_path / "work", *args)


def job_counts(stdout: str) -> dict[str, int]:
    table = stdout.split("Job stats:")[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


@pytest.fixture
def workdir(tmp_path):
    # Relative paths in the config (config/*.yaml, config/paper) resolve against the working directory.
    work = tmp_path / "work"
    work.mkdir()
    (work / "config").symlink_to(ROOT / "config")
    return tmp_path


# Manual-only inputs (SYNTHIA-SF, the DPDNet and RDPD weights) are not in place here; require_all keeps the
# grid whole, as for a user who has them.
WHOLE = ("--config", "require_all=True")


def test_paper_dry_run_lists_the_experiment_grid(workdir):
    out = dry_run(workdir, "tables", *WHOLE)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    jobs = job_counts(out.stdout)
    assert jobs["train"] == TRAIN_JOBS == 45
    assert jobs["table"] == 9  # Tables 1-3 and 7-12
    assert jobs["speed"] == 12  # Table 12's methods
    # Every K3DN model and baseline is evaluated on each test set it applies to; DPD-disp has no targets,
    # so it is predicted for the figures only (not part of `tables`).
    # Xin et al.'s Pixel predictions are gathered from one job per scene
    assert jobs["evaluate"] == jobs["predict"] + jobs["gather_predictions"] == EVALUATIONS == 75
    assert jobs["preflight"] == 1 and jobs["manifests"] == 4  # DPD-blur, Pixel, DDD-syn, RDPD
    # protocol sensitivity: every prediction re-scored, plus bf16 and native-size K3DN-Light on DPD-blur and
    # Pixel, and the Pixel set fed gamma-encoded
    assert jobs["protocol_sensitivity"] == 1 and jobs["predict_variant"] == 5


def test_paper_all_adds_dpd_disp_predictions_and_figures(workdir):
    out = dry_run(workdir, "all", *WHOLE)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    jobs = job_counts(out.stdout)
    # one job per figure: ablations, speed-accuracy, 4 qualitative, DPD-disp, reblur, PSF kernels, clusters
    assert jobs["figure"] + jobs["disparity_clusters"] == 10 and jobs["report"] == 1
    assert jobs["predict"] > job_counts(dry_run(workdir, "tables", *WHOLE).stdout)["predict"]


def test_without_manual_inputs_the_rest_runs_and_says_what_is_missing(workdir):
    out = dry_run(workdir, "tables")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    jobs = job_counts(out.stdout)
    # RDPD is generated from SYNTHIA-SF (a web form): its 3 K3DN runs and 9 retrained baselines wait for it
    assert jobs["train"] == TRAIN_JOBS - 12 and jobs["table"] == 9
    assert "synthia_sf: download" in out.stderr and "not run" in out.stderr


# Rules that exist only to stand data in (the miniature) or that obtain it; everything else is the experiment.
DATA_RULES = {"standin_data", "standin_weights", "miniature_registries", "obtain", "fetch_weights"}
# One job per test image: as many as the (scaled) test set has images.
PER_IMAGE_RULES = {"predict_image"}


def test_miniature_runs_the_paper_grid_job_for_job(workdir):
    # require_all keeps the paper grid whole when manual-only inputs (SYNTHIA-SF, two baselines' weights) are
    # absent here, so the comparison is with the grid a user who has them gets.
    paper = job_counts(dry_run(workdir, "all", *WHOLE).stdout)
    out = dry_run(workdir, "all", "--configfile", str(ROOT / "config" / "miniature.yaml"))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    mini = job_counts(out.stdout)

    def drop(jobs):
        return {k: v for k, v in jobs.items() if k not in DATA_RULES | PER_IMAGE_RULES | {"total"}}

    assert drop(mini) == drop(paper) and paper["train"] == TRAIN_JOBS
    assert paper["predict_image"] == 17 and mini["predict_image"] == 2  # Xin et al., one job per Pixel scene
    assert "rule download" not in out.stdout and "http://127.0.0.1" in out.stdout  # served locally, never fetched


def test_run_added_to_the_paper_config_is_in_the_miniature(workdir, tmp_path):
    import yaml

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    first = next(iter(cfg["runs"]))
    cfg["runs"]["extra_lr_run"] = dict(cfg["runs"][first], set={"optim.lr": 1e-4})
    paper = tmp_path / "paper.yaml"
    paper.write_text(yaml.safe_dump(cfg))
    mini = dry_run(workdir, "all", "--configfile", str(paper), str(ROOT / "config" / "miniature.yaml"))
    assert mini.returncode == 0, mini.stdout[-3000:] + mini.stderr[-3000:]
    assert job_counts(mini.stdout)["train"] == TRAIN_JOBS + 1 and "extra_lr_run" in mini.stdout


def test_invalid_config_fails_before_any_job(workdir, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("protocol: 12bit\n")
    out = dry_run(workdir, "tables", "--configfile", str(ROOT / "config" / "miniature.yaml"), str(bad))
    assert out.returncode != 0 and "12bit" in (out.stdout + out.stderr)


def test_slurm_profile_dry_run_needs_no_cluster(workdir):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    out = dry_run(workdir, "tables", *WHOLE, "--profile", str(ROOT / "profiles" / "slurm"))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert job_counts(out.stdout)["train"] == TRAIN_JOBS
