"""Golden outputs of the official Restormer for the checkpoints ``restormer_dual`` and ``restormer_single``.

Source: swz30/Restormer @ df766d5521afd21cce56e24159f300b30ebf3fb0. The network is
``basicsr/models/archs/restormer_arch.py`` (class ``Restormer``), built with the ``network_g`` arguments of
``Defocus_Deblurring/Options/DefocusDeblur_{DualPixel_16bit,Single_8bit}_Restormer.yml`` (the manifest's
``constructor``). The inputs are prepared as in ``Defocus_Deblurring/test_dual_pixel_defocus_deblur.py`` (cat(L, R)
along channels, RGB, [0, 1]) and ``test_single_image_defocus_deblur.py`` (C, RGB, [0, 1]). Both scripts then take
``clamp(model(x), 0, 1)``.

The weights are seeded random tensors named as in the published ``{'params': state_dict}`` file (plain keys),
loaded strictly. Nothing is stubbed: ``restormer_arch.py`` is imported from its own folder, so basicsr's package
``__init__`` (the training stack) never runs; it needs ``einops`` importable (e.g. on PYTHONPATH).

Rerun from the repository root with a checkout of that commit:

    python scripts/golden/restormer.py --official /path/to/Restormer

It writes ``tests/fixtures/golden/restormer_dual.npz`` and ``restormer_single.npz``, which
``tests/test_golden_restormer.py`` checks the suite's port against.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch
from common import FIXTURES, INPUT_SEED, fixture, save_fixture, seeded_state_dict

from baselines.published import get_checkpoint
from baselines.weight_manifests import load_manifest, random_views

SOURCE = "swz30/Restormer@df766d5521afd21cce56e24159f300b30ebf3fb0"
SCRIPTS = {
    "restormer_dual": "Defocus_Deblurring/test_dual_pixel_defocus_deblur.py",
    "restormer_single": "Defocus_Deblurring/test_single_image_defocus_deblur.py",
}
# Multiples of 8 (three PixelUnshuffle(2)); unequal so that an H/W mix-up changes the output's shape.
HEIGHT, WIDTH = 48, 80


def golden(name: str, net_cls) -> dict:
    manifest = load_manifest(get_checkpoint(name).manifests[0])
    net = net_cls(**manifest["constructor"])
    net.load_state_dict(seeded_state_dict(manifest), strict=True)
    net.eval()

    views = random_views(INPUT_SEED, HEIGHT, WIDTH)
    as_nchw = {k: torch.from_numpy(v).unsqueeze(0).permute(0, 3, 1, 2) for k, v in views.items()}
    if manifest["constructor"]["dual_pixel_task"]:
        inp = torch.cat([as_nchw["left"], as_nchw["right"]], 1)
    else:
        inp = as_nchw["center"]
    with torch.no_grad():
        restored = torch.clamp(net(inp), 0, 1)
    output = restored.permute(0, 2, 3, 1).squeeze(0).numpy().astype(np.float32)
    return fixture(output, f"{SOURCE} {SCRIPTS[name]}", HEIGHT, WIDTH)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", required=True, type=Path, help="checkout of " + SOURCE)
    ap.add_argument("--out", type=Path, default=FIXTURES)
    args = ap.parse_args()
    sys.path.insert(0, str(args.official / "basicsr" / "models" / "archs"))
    from restormer_arch import Restormer

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    for name in SCRIPTS:
        arrays = golden(name, Restormer)
        save_fixture(args.out / f"{name}.npz", arrays)
        out = arrays["output"]
        print(f"{name}: output {out.shape} range [{out.min():.4f}, {out.max():.4f}] -> {args.out / name}.npz")


if __name__ == "__main__":
    main()
