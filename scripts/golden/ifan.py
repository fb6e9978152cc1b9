"""Golden outputs of the official IFAN for the checkpoints ``ifan_single`` and ``ifan_dual``.

Source: codeslake/IFAN @ 66bf136315360da7dfb2ff9b898460d24cb68ff1. The networks are ``models/archs/IFAN.py`` and
``models/archs/IFAN_dual.py`` (class ``Network``), built from ``configs/config_IFAN.py`` as the README's eval
commands do (``--config config_IFAN``; checked against the manifest's ``constructor``). ``ifan_single_16bit`` has
the same network and tensors as ``ifan_single`` (its config differs only in ``in_bit``), so it has no fixture.
The inputs are prepared as ``eval.py`` does (``read_frame``: RGB in [0, 1]; NHWC -> NCHW float32; H, W already
multiples of ``refine_val`` = 8) and passed as ``Network(C, is_train=False)`` / ``Network(C, R, L, is_train=False)``,
whose ``result`` is ``clip(C + residual, 0, 1)``.

The weights are seeded random tensors named as in the published file (``module.Network.*``); the official CPU
loader strips ``module.`` and loads into ``DeblurNet``, whose ``Network`` attribute is this class, so here
``module.Network.`` is stripped and the class loaded strictly. Nothing is stubbed; ``configs/config.py`` needs
``easydict`` importable (e.g. on PYTHONPATH).

With random weights of std 0.02 the dual-pixel views reach the output only at ~1e-7, below float32 noise, so
``ifan_dual.npz`` also holds ``kconv2_3``: the filter encoder's output at 1/2 resolution (C, H/2, W/2), where R
and L still move values by ~3e-4. Module names equal the state-dict names, so the test hooks the same module.

Rerun from the repository root with a checkout of that commit:

    python scripts/golden/ifan.py --official /path/to/IFAN

It writes ``tests/fixtures/golden/ifan_single.npz`` and ``ifan_dual.npz`` (``tests/test_golden_ifan.py``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

import numpy as np
import torch
from common import FIXTURES, INPUT_SEED, fixture, save_fixture, seeded_state_dict

from baselines.published import get_checkpoint
from baselines.weight_manifests import load_manifest, random_views

SOURCE = "codeslake/IFAN@66bf136315360da7dfb2ff9b898460d24cb68ff1"
ARCHS = {"ifan_single": "IFAN", "ifan_dual": "IFAN_dual"}  # --network of the README's eval commands
# Multiples of 8 (three stride-2 convs), 5 x 7 at 1/8; unequal so that an H/W mix-up changes the output's shape.
HEIGHT, WIDTH = 40, 56
PROBE = "kconv2_3"


def golden(name: str, get_config) -> dict:
    manifest = load_manifest(get_checkpoint(name).manifests[0])
    config = get_config("IFAN", ARCHS[name], "config_IFAN")
    for key in ("ks", "ch", "res_num", "Fs", "N"):
        if config[key] != manifest["constructor"][key]:
            want = manifest["constructor"][key]
            raise SystemExit(f"{name}: config_IFAN has {key}={config[key]}, the manifest {want}")
    net = importlib.import_module(f"models.archs.{ARCHS[name]}").Network(config)
    net.load_state_dict(seeded_state_dict(manifest, manifest["key_prefix"]), strict=True)
    net.eval()

    views = random_views(INPUT_SEED, HEIGHT, WIDTH)
    C, R, L = (torch.FloatTensor(views[k][None].transpose(0, 3, 1, 2).copy()) for k in ("center", "right", "left"))
    probe = {}
    getattr(net, PROBE).register_forward_hook(lambda m, i, o: probe.__setitem__(PROBE, o.detach().clone()))
    with torch.no_grad():
        out = net(C, R, L, is_train=False) if "dual" in ARCHS[name] else net(C, is_train=False)
    arrays = fixture(out["result"].numpy()[0].transpose(1, 2, 0).astype(np.float32), f"{SOURCE} eval.py", HEIGHT, WIDTH)
    if "dual" in ARCHS[name]:
        arrays[PROBE] = probe[PROBE].numpy()[0].astype(np.float32)
    return arrays


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", required=True, type=Path, help="checkout of " + SOURCE)
    ap.add_argument("--out", type=Path, default=FIXTURES)
    args = ap.parse_args()
    sys.path.insert(0, str(args.official))
    from configs.config_IFAN import get_config

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    for name in ARCHS:
        arrays = golden(name, get_config)
        save_fixture(args.out / f"{name}.npz", arrays)
        out = arrays["output"]
        print(f"{name}: output {out.shape} range [{out.min():.4f}, {out.max():.4f}] -> {args.out / name}.npz")


if __name__ == "__main__":
    main()
