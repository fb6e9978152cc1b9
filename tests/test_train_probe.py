"""A tiny two-stage DP model implementing the model contract, for the training/inference tests.

Loaded by the other test files with ``tests.conftest.load_probe()`` (by path) and registered only
for the duration of a test (``probe_registered``), so it never shows up in other areas' registry tests.
Also runnable as a torchrun worker script (``__main__``) for the DDP test.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

PROBE = "train_probe"


class ProbeDP(nn.Module):
    """cat(L, R) -> conv -> lrelu -> conv (+ centre) ; stage 2 adds an 'SRP' conv; stage 1 returns a reblur."""

    input_views = ("left", "right", "center")
    size_multiple = (8, 8)
    size_mode = "pad"

    def __init__(self, width: int = 8, nan_at: int | None = None):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(6, width, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(width, 3, 3, padding=1)
        )
        self.srp = nn.Conv2d(9, 3, 3, padding=1)
        self.reblur = nn.Conv2d(3, 3, 3, padding=1)
        self.stage, self.nan_at, self.calls = 1, nan_at, 0
        self.set_stage(1)

    def set_stage(self, stage: int) -> None:
        self.stage = stage
        for name, p in self.named_parameters():
            p.requires_grad = name.startswith("srp.") if stage == 2 else not name.startswith("srp.")

    def forward(self, batch):
        h, w = batch["left"].shape[-2:]
        assert h % 8 == 0 and w % 8 == 0, (h, w)
        x = torch.cat([batch["left"], batch["right"]], 1)
        y = batch["center"] + self.body(x)
        if self.stage == 2:
            y = y + self.srp(torch.cat([y, x], 1))
        out = {"output": y}
        if self.training:
            self.calls += 1
            if self.nan_at is not None and self.calls == self.nan_at:
                out["output"] = y * float("nan")
            if self.stage == 1:
                out["reblurred"] = self.reblur(batch["target"])
                out["reblur_target"] = batch["center"]
        return out


class ProbeSingle(ProbeDP):
    """The same network without ``set_stage``: a one-stage 'baseline'."""

    set_stage = None  # type: ignore[assignment]

    def __init__(self, width: int = 8):
        nn.Module.__init__(self)
        self.body = nn.Sequential(
            nn.Conv2d(6, width, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(width, 3, 3, padding=1)
        )
        self.stage, self.nan_at, self.calls = 1, None, 0

    def forward(self, batch):
        x = torch.cat([batch["left"], batch["right"]], 1)
        return {"output": batch["center"] + self.body(x)}


@contextlib.contextmanager
def probe_registered():
    from k3dn import registry

    registry._load_all()
    registry._REGISTRY[PROBE] = lambda **kw: ProbeDP(**kw)
    registry._REGISTRY[PROBE + "_single"] = lambda **kw: ProbeSingle(**kw)
    try:
        yield PROBE
    finally:
        registry._REGISTRY.pop(PROBE, None)
        registry._REGISTRY.pop(PROBE + "_single", None)


def write_dp_set(folder: Path, n: int, h: int, w: int, seed: int = 0, split: str = "train", channels: int = 3):
    """``n`` random 16-bit DP rows (target = smooth texture, L/R = shifted blurred copies); returns the manifest."""
    import cv2

    from k3dn.data.manifest import write_manifest

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        base = cv2.GaussianBlur(rng.random((h, w, channels)).astype(np.float32), (0, 0), 1.5)
        base = base.reshape(h, w, channels)
        views = {
            "target": base,
            "left": cv2.blur(np.roll(base, 1, axis=1), (3, 3)).reshape(h, w, channels),
            "right": cv2.blur(np.roll(base, -1, axis=1), (3, 3)).reshape(h, w, channels),
        }
        views["center"] = 0.5 * (views["left"] + views["right"])
        row = {"id": f"{split}{i:03d}", "dataset": "synth", "split": split, "protocol": "16bit", "channels": channels}
        for k, v in views.items():
            p = folder / f"{split}{i:03d}_{k}.png"
            q = np.rint(np.clip(v, 0, 1) * 65535).astype(np.uint16)
            cv2.imwrite(str(p), q[..., ::-1] if channels == 3 else q[..., 0])
            row[k] = str(p)
        rows.append(row)
    return write_manifest(rows, folder / f"{split}.csv")


def test_probe_follows_the_two_stage_contract():
    m = ProbeDP()
    m.set_stage(1)
    assert all(p.requires_grad != n.startswith("srp.") for n, p in m.named_parameters())
    m.set_stage(2)
    assert [n for n, p in m.named_parameters() if p.requires_grad] == ["srp.weight", "srp.bias"]


if __name__ == "__main__":  # torchrun worker: python -m torch.distributed.run ... test_train_probe.py CFG OUT
    import json
    import os

    from k3dn.checkpoint import save_weights
    from k3dn.train.config import load_config
    from k3dn.train.loop import train

    with probe_registered():
        summary = train(load_config(sys.argv[1]), sys.argv[2])
    rank = int(os.environ["RANK"])
    save_weights(summary.pop("model"), Path(sys.argv[2]) / f"rank{rank}.safetensors")
    print(json.dumps({"rank": rank, **summary}))
