"""Golden outputs of the official LaKDNet for the checkpoints ``lakdnet_dual_s`` and ``lakdnet_dual_l``.

Source: lingyanruan/LaKDNet @ 0c6b262cd84bfaa407d79e085010fa90ea7446e6. The network is ``models/LaKDNet.py`` (class
``LaKDNet``), built with ``options/Test_configs.yml``'s ``Defocus.network_{s,l}_dual`` arguments (the manifest's
``constructor``). The inputs are prepared as ``run.py``'s dual branch does: ``read_image(path, 65535.0)`` gives
float32 RGB in [0, 1], NHWC -> NCHW ``FloatTensor``; the official ``util/util.py`` ``crop_image`` reflect-pads C
(recording h, w), R and L at the bottom/right to multiples of 8; ``network(cat([L, R, C], 1))`` (the network adds C
and clips to [0, 1] itself) is cropped back to ``[:, :, :h, :w]``. The views are 44x76, not multiples of 8, so the
fixture also holds the port's padding to the official one.

The weights are the seeded random tensors (std 0.02) named as in the published plain state dict (no prefix), loaded
strictly as run.py does, after one affine map per tensor, ``w * weight_scale[i] + weight_offset[i]``: conv kernels to
std 1/sqrt(fan_in) (the output conv 0.03/sqrt(fan_in)), LayerNorm weights to 1 + N(0, 0.02), biases unchanged. At
std 0.02 throughout, every block's branch is scaled by a 0.02 LayerNorm weight and the output is embed + output conv
alone: dropping any block moved it by < 1e-7. With the map, dropping the last block of any one stage moves it by
0.06-0.4 and about 9 % of the pixels clip. The fixture stores both arrays (manifest order), so the test applies them
without this script. Nothing is stubbed: ``models/LaKDNet.py`` needs ``einops`` importable (e.g. on PYTHONPATH) and
``util/util.py`` needs ``cv2`` (imported, unused by ``crop_image``); run.py itself (lpips, the data loops) is not run.

Rerun from the repository root with a checkout of that commit:

    python scripts/golden/lakdnet.py --official /path/to/LaKDNet

It writes ``tests/fixtures/golden/lakdnet_dual_s.npz`` and ``lakdnet_dual_l.npz`` (``tests/test_golden_lakdnet.py``).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import torch
from common import FIXTURES, INPUT_SEED, fixture, save_fixture, seeded_state_dict, warn_unless_at

from baselines.published import get_checkpoint
from baselines.weight_manifests import load_manifest, random_views

COMMIT = "0c6b262cd84bfaa407d79e085010fa90ea7446e6"
SOURCE = f"lingyanruan/LaKDNet@{COMMIT}"
CHECKPOINTS = ("lakdnet_dual_s", "lakdnet_dual_l")
# Not multiples of 8, so crop_image pads (to 48x80, 6x10 at the 1/8 level); unequal so that an H/W mix-up shows.
HEIGHT, WIDTH = 44, 76
RANDOM_STD = 0.02  # baselines.weight_manifests.random_tensors
OUTPUT_GAIN = 0.03  # the residual then averages ~0.09 in [0, 1] images: most pixels are not clipped


def weight_map(manifest: dict) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) per manifest tensor: kernels to std gain/sqrt(fan_in), LayerNorm weights around 1."""
    scale, offset = [], []
    for key, shape, *_ in manifest["tensors"]:
        if len(shape) == 4:
            gain = OUTPUT_GAIN if key == "output.weight" else 1.0
            scale.append(gain / (RANDOM_STD * math.sqrt(shape[1] * shape[2] * shape[3])))
            offset.append(0.0)
        else:
            scale.append(1.0)
            offset.append(1.0 if ".norm" in key and key.endswith(".body.weight") else 0.0)
    return np.asarray(scale, np.float32), np.asarray(offset, np.float32)


def load_official(checkout: Path):
    """(class LaKDNet, util.util module), each imported from its file so that no package of the checkout runs."""
    modules = []
    for name, rel in (("lakdnet_official_model", "models/LaKDNet.py"), ("lakdnet_official_util", "util/util.py")):
        spec = importlib.util.spec_from_file_location(name, checkout / rel)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules.append(module)
    return modules[0].LaKDNet, modules[1]


def golden(name: str, net_cls, util) -> dict:
    manifest = load_manifest(get_checkpoint(name).manifests[0])
    net = net_cls(**manifest["constructor"])
    scale, offset = weight_map(manifest)
    sd = seeded_state_dict(manifest)
    sd = {k: v * float(a) + float(b) for (k, v), a, b in zip(sd.items(), scale, offset, strict=True)}
    net.load_state_dict(sd, strict=True)
    net.eval()

    views = random_views(INPUT_SEED, HEIGHT, WIDTH)
    C, R, L = (torch.FloatTensor(views[k][None].transpose(0, 3, 1, 2).copy()) for k in ("center", "right", "left"))
    C, h, w = util.crop_image(C, 8, True)
    R, L = util.crop_image(R), util.crop_image(L)
    with torch.no_grad():
        output = net(torch.cat([L, R, C], 1))
    output = output[:, :, :h, :w].numpy()[0].transpose(1, 2, 0)
    return fixture(
        output.astype(np.float32), f"{SOURCE} run.py", HEIGHT, WIDTH, weight_scale=scale, weight_offset=offset
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", required=True, type=Path, help="checkout of " + SOURCE)
    ap.add_argument("--out", type=Path, default=FIXTURES)
    args = ap.parse_args()
    warn_unless_at(args.official, COMMIT)
    net_cls, util = load_official(args.official)

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    for name in CHECKPOINTS:
        arrays = golden(name, net_cls, util)
        save_fixture(args.out / f"{name}.npz", arrays)
        out = arrays["output"]
        print(f"{name}: output {out.shape} range [{out.min():.4f}, {out.max():.4f}] -> {args.out / name}.npz")


if __name__ == "__main__":
    main()
