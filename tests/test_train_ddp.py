"""Two-process DDP on CPU (gloo) through torchrun: both ranks end with identical weights."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

from tests.conftest import load_probe

HERE = Path(__file__).resolve().parent


def _summaries(stdout: str) -> list[dict]:
    """The ranks' JSON summaries: both print at once, so one may follow the other without a newline between."""
    dec, out = json.JSONDecoder(), []
    i = stdout.find('{"rank"')
    while i != -1:
        obj, end = dec.raw_decode(stdout, i)
        out.append(obj)
        i = stdout.find('{"rank"', end)
    return out


def test_two_ranks_train_identical_weights(tmp_path):
    P = load_probe()
    train_m = P.write_dp_set(tmp_path / "train", 5, 24, 32)
    val_m = P.write_dp_set(tmp_path / "val", 3, 16, 24, seed=1, split="val")
    cfg = {
        "model": {"name": P.PROBE},
        "stages": [3, 2],
        "data": {"train": str(train_m), "val": str(val_m), "crop": [16, 16], "batch_size": 2, "workers": 0},
        "engine": {"device": "cpu", "log_every": 1, "val_every": 5, "ckpt_every": 2, "progress": False},
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            str(HERE / "test_train_probe.py"),
            str(tmp_path / "cfg.yaml"),
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summaries = _summaries(proc.stdout)
    assert sorted(s["rank"] for s in summaries) == [0, 1]
    assert all(s["iteration"] == 5 for s in summaries)
    # validation is sharded (3 images over 2 ranks) and all-reduced: every rank reports the same means
    assert summaries[0]["psnr"] == summaries[1]["psnr"]
    w0, w1 = load_file(str(out / "rank0.safetensors")), load_file(str(out / "rank1.safetensors"))
    final = load_file(str(out / "model.safetensors"))
    assert all(torch.equal(w0[k], w1[k]) and torch.equal(w0[k], final[k]) for k in w0)
    torch.manual_seed(0)
    init = P.ProbeDP().state_dict()
    assert not torch.equal(init["body.0.weight"], final["body.0.weight"])
    assert not torch.equal(init["srp.weight"], final["srp.weight"])
    log = (out / "log.csv").read_text().splitlines()
    assert len([r for r in log if ",train," in r]) == 5  # rank 0 alone writes the log
    assert sorted(os.listdir(out / "state/ckpt_00000005")) == [
        "rng_0.pt",
        "rng_1.pt",
        "trainer.pt",
        "weights.safetensors",
    ]
