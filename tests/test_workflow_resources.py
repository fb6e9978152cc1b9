"""GPU claims of the DAG: every job whose command can put work on CUDA declares the `gpu` resource, no other job
does, and Table 12's timings take the whole local pool (one GPU each on SLURM).

Whether a command can pick CUDA is read from its text, with the CLI's own defaults: `--device auto|cuda`, or a
`k3dn` (sub)command whose `--device` defaults to one of them (found in ``k3dn.cli.build_parser``) given without
it, or `k3dn train` (also under torchrun) whose training config, with the command's `--set` values, leaves
`engine.device` at auto or cuda.
"""

from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import dataclass
from functools import cache

import pytest

from tests.test_workflow_dag import ROOT, WHOLE, dry_run

CUDA = {"auto", "cuda"}
# The figure kinds that only plot files (k3dn.report.figures.make_figure gives the device to the others).
PLOTS = {"ablations", "speed_accuracy", "qualitative", "dpd_disp"}
# The rules that run a model in the paper's DAG: a floor, so that the check below cannot pass on no jobs.
GPU_RULES = {
    "train",
    "predict",
    "predict_image",
    "predict_variant",
    "speed",
    "figure",
    "disparity_clusters",
    "defocus_table",
    "protocol_sensitivity",
}


@dataclass
class Job:
    rule: str
    gpu: int  # 0 when the job declares none
    shell: str


def dry_jobs(workdir, *args) -> list[Job]:
    out = dry_run(workdir, "-p", *args)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    jobs = []
    for m in re.finditer(r"^(?:local)?rule (\w+):\n(.*?)(?=^\[|\Z)", out.stdout, re.M | re.S):
        body = m.group(2)
        gpu = re.search(r"^\s+resources:.*?\bgpu=(\d+)", body, re.M)
        shell = re.search(r"^Shell command: (.*)$", body, re.M)
        jobs.append(Job(m.group(1), int(gpu.group(1)) if gpu else 0, shell.group(1) if shell else ""))
    assert jobs, out.stdout[-3000:]
    return jobs


@cache
def device_defaults() -> dict[tuple[str, ...], str]:
    """``k3dn`` command words -> the default of that command's ``--device``, from the CLI's parser."""
    from k3dn.cli import build_parser

    found = {}

    def walk(parser, words):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, (*words, name))
            elif "--device" in action.option_strings:
                found[words] = action.default

    walk(build_parser([]), ())
    return found


def _option(words: list[str], name: str, default=None):
    for i, w in enumerate(words):
        if w == name and i + 1 < len(words):
            return words[i + 1]
        if w.startswith(name + "="):
            return w.split("=", 1)[1]
    return default


def can_pick_cuda(shell: str) -> bool:
    from k3dn.train.config import load_config

    words = shlex.split(shell)
    for i, w in enumerate(words):
        if w == "k3dn" or (w == "k3dn.cli" and words[i - 1] == "-m"):
            rest = [r for r in words[i + 1 :] if r not in ("--debug", "-v", "--verbose", "-q", "--quiet")]
            if rest[:1] == ["train"]:
                sets = [rest[j + 1] for j, r in enumerate(rest[:-1]) if r == "--set"]
                return load_config(_option(rest, "--config"), sets)["engine"]["device"] in CUDA
            for path, default in device_defaults().items():
                if tuple(rest[: len(path)]) == path:
                    return _option(rest, "--device", default) in CUDA
    return False


def test_the_cuda_check_reads_commands_as_the_cli_does():
    assert device_defaults()[("report", "figure")] == "auto" and device_defaults()[("evaluate",)] == "cpu"
    assert can_pick_cuda("k3dn report figure ablations --spec '{}' --out a.png > log 2>&1")  # its default: auto
    assert not can_pick_cuda("k3dn report figure ablations --spec '{}' --device cpu --out a.png")
    assert not can_pick_cuda("k3dn evaluate --pred p --manifest m --out o.csv")
    assert can_pick_cuda("k3dn --quiet evaluate --pred p --manifest m --device=cuda --out o.csv")
    assert not can_pick_cuda("k3dn data manifest dpdd --root r --out o")
    recipe = "config/train/dpdd.yaml"
    assert can_pick_cuda(f"k3dn train --config {recipe} --out r --set 'optim.lr=0.001'")
    assert not can_pick_cuda(f"k3dn train --config {recipe} --out r --set 'engine.device=\"cpu\"'")
    assert can_pick_cuda(f"torchrun --standalone --nproc_per_node=2 -m k3dn.cli train --config {recipe} --out r")


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "config").symlink_to(ROOT / "config")
    return tmp_path


def _kind(job: Job) -> str:
    return re.search(r"k3dn report figure (\w+)", job.shell).group(1)


def test_paper_jobs_that_can_use_cuda_claim_a_gpu_and_speed_takes_the_pool(workdir):
    # --resources gpu=3: a box of 3 GPUs; every other job keeps its one GPU, the timings claim all three.
    jobs = dry_jobs(workdir, "all", *WHOLE, "--resources", "gpu=3")
    cuda = [j for j in jobs if can_pick_cuda(j.shell)]
    assert {j.rule for j in cuda} >= GPU_RULES
    assert [j.shell for j in cuda if j.gpu < 1] == []
    assert [j.shell for j in jobs if j.gpu and j not in cuda] == []
    speed = [j for j in cuda if j.rule == "speed"]
    assert speed and {j.gpu for j in speed} == {3}
    assert {j.gpu for j in cuda if j.rule != "speed"} == {1}
    figures = {_kind(j): j.gpu for j in jobs if j.rule == "figure"}
    assert figures == {**dict.fromkeys(PLOTS, 0), "reblur": 1, "psf_kernels": 1}


def test_the_miniature_claims_no_gpu_and_stays_on_the_cpu(workdir):
    jobs = dry_jobs(workdir, "all", "--configfile", str(ROOT / "config" / "miniature.yaml"))
    assert {j.rule for j in jobs} >= GPU_RULES
    assert [(j.rule, j.gpu) for j in jobs if j.gpu] == []
    assert [j.shell for j in jobs if can_pick_cuda(j.shell)] == []


def test_a_paper_run_put_on_the_cpu_claims_no_gpu(workdir):
    """device: cpu with the default gpus_per_run: no job can use CUDA, so none queues on the GPU pool."""
    jobs = dry_jobs(workdir, "all", *WHOLE, "--config", "device=cpu", "--resources", "gpu=3")
    assert {j.rule for j in jobs} >= GPU_RULES
    assert [(j.rule, j.gpu) for j in jobs if j.gpu] == []
    assert [j.shell for j in jobs if can_pick_cuda(j.shell)] == []


def test_on_slurm_each_timing_asks_for_one_gpu(workdir):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    # Each SLURM job is allocated GPUs of its own: the local pool (here 3) does not grow a timing's request.
    jobs = dry_jobs(workdir, "tables", *WHOLE, "--profile", str(ROOT / "profiles" / "slurm"), "--resources", "gpu=3")
    speed = [j for j in jobs if j.rule == "speed"]
    assert speed and {j.gpu for j in speed} == {1}
    assert {j.gpu for j in jobs if j.rule in GPU_RULES} == {1}
