"""Golden outputs of the official DRBNet for the checkpoints ``drbnet_single`` and ``drbnet_dual``.

Source: lingyanruan/DRBNet @ 0fa89a56381130637ca44bf10b023a2d66a71d87. The networks are ``models/DRBNet.py``
``DRBNet_single()`` and ``DeblurNet_dual()`` (no arguments; the manifest's ``constructor``). The inputs are prepared
as ``run.py`` does: ``read_image`` gives RGB in [0, 1] (float64), ``crop_image`` keeps multiples of 16 (a no-op
here), ``* 2 - 1`` maps to [-1, 1], NHWC -> NCHW ``FloatTensor``; then ``network(C)`` / ``network(C, R, L)`` and
``(output + 1) / 2`` back to [0, 1] (the network clips to [-1, 1] itself; run.py adds no clip of its own).

The weights are seeded random tensors named as in the published plain state dict (no prefix), loaded strictly as
run.py does. Stubbed: ``models/DRBNet.py`` imports ``torchvision.utils`` and ``cv2`` at module level but the two
networks use neither; each is replaced by an empty ``sys.modules`` entry only when it is not installed.

Rerun from the repository root with a checkout of that commit:

    python scripts/golden/drbnet.py --official /path/to/DRBNet

It writes ``tests/fixtures/golden/drbnet_single.npz`` and ``drbnet_dual.npz`` (``tests/test_golden_drbnet.py``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import types
from pathlib import Path

import numpy as np
import torch
from common import FIXTURES, INPUT_SEED, fixture, save_fixture, seeded_state_dict

from baselines.published import get_checkpoint
from baselines.weight_manifests import load_manifest, random_views

SOURCE = "lingyanruan/DRBNet@0fa89a56381130637ca44bf10b023a2d66a71d87"
CHECKPOINTS = ("drbnet_single", "drbnet_dual")
# Multiples of 16 (run.py's crop), 3 x 5 at 1/16; unequal so that an H/W mix-up changes the output's shape.
HEIGHT, WIDTH = 48, 80


def stub_unused_imports() -> list[str]:
    stubbed = []
    for name in ("torchvision", "cv2"):
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            sys.modules[name] = types.ModuleType(name)
            stubbed.append(name)
    if "torchvision" in stubbed:
        sys.modules["torchvision.utils"] = sys.modules["torchvision"].utils = types.ModuleType("torchvision.utils")
        stubbed.append("torchvision.utils")
    return stubbed


def golden(name: str, drbnet_module) -> dict:
    manifest = load_manifest(get_checkpoint(name).manifests[0])
    ctor = manifest["constructor"]
    net = getattr(drbnet_module, ctor["class"])(**ctor["kwargs"])
    net.load_state_dict(seeded_state_dict(manifest), strict=True)
    net.eval()

    views = random_views(INPUT_SEED, HEIGHT, WIDTH)
    # run.py's arithmetic is float64 (an 8-bit read / 255.), cast to float32 only by FloatTensor.
    C, R, L = (
        torch.FloatTensor((views[k].astype(np.float64)[None] * 2 - 1).transpose(0, 3, 1, 2).copy())
        for k in ("center", "right", "left")
    )
    with torch.no_grad():
        output = net(C, R, L) if ctor["class"] == "DeblurNet_dual" else net(C)
    output = (output.numpy()[0].transpose(1, 2, 0) + 1.0) / 2.0
    return fixture(output.astype(np.float32), f"{SOURCE} run.py", HEIGHT, WIDTH)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", required=True, type=Path, help="checkout of " + SOURCE)
    ap.add_argument("--out", type=Path, default=FIXTURES)
    args = ap.parse_args()
    stubbed = stub_unused_imports()
    if stubbed:
        print("stubbed (not installed, unused by the networks):", ", ".join(stubbed))
    sys.path.insert(0, str(args.official))
    drbnet_module = importlib.import_module("models.DRBNet")

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    for name in CHECKPOINTS:
        arrays = golden(name, drbnet_module)
        save_fixture(args.out / f"{name}.npz", arrays)
        out = arrays["output"]
        print(f"{name}: output {out.shape} range [{out.min():.4f}, {out.max():.4f}] -> {args.out / name}.npz")


if __name__ == "__main__":
    main()
