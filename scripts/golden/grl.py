"""Golden outputs of the official GRL network and test-time tiling for the checkpoint ``grl_b_dual``.

Source: ofsoundof/GRL-Image-Restoration @ 3123fcadfee2107d813c5e8fff58227f14c989bc. The network is
``models/networks/grl.py`` (class ``GRL``) built with the manifest's ``constructor`` (the reconstructed dual-pixel
GRL-B configuration; see ``baselines/grl.py``). The inputs are prepared as ``engines/base.py::forward`` does with
``data_module.dual_pixel``: ``cat[img_lq_l, img_lq_r]`` along channels, RGB in [0, 1] (``to_tensor`` of 8-bit
images); the validation step then clamps to [0, 1] (``tensor_round``; its rounding to 8-bit levels is left out
here, so that a float rounding difference cannot flip a level).

Members of ``tests/fixtures/golden/grl_b_dual.npz``:

* ``output``: the published constructor with ``depths`` = ``DEPTHS`` (the first ``DEPTHS`` blocks of the file,
  which covers every kind of block: window shift on/off, 48x96 / 96x48 stripes, stripe shift on/off, and a
  second stage), whole image (the ``tile=0`` path) on the 72x88 views, which the network reflect-pads to 96x96;
* ``output_full``: the same with all 44 blocks (``depths`` [4, 4, 8, 8, 8, 4, 4]); about a minute on two CPU
  cores, so its test runs only when ``K3DN_GOLDEN_FULL=1``;
* ``output_zero_pad``: ``depths`` [1] on 40x88 views: a 56-pixel pad is not shorter than the 40-pixel side, so
  ``GRL.check_image_size`` falls back from reflection to zeros;
* ``tiled`` and ``tiled_narrow``: the official ``BaseEngine.forward_tile`` (read from ``engines/base.py`` and
  run on its own, see :func:`official_forward_tile`) around a cheap stand-in network, on the 72x88 views:
  ``tiled`` with tile ``TILE`` / overlap ``OVERLAP`` (a 3 x 3 grid of 40-pixel tiles covering pixels 1 to 4
  times), ``tiled_narrow`` with tile ``NARROW_TILE`` (larger than the image's height, so the tile side becomes
  ``min(tile, H, W)`` = 72). The stand-in is a fixed 3x3 convolution (``standin_weight``, zero padding) plus the
  tile's mean of its first three channels: both depend on where a tile starts and ends. The GRL network itself
  through the same tiling is the port's ``tiled_forward`` around its ``GRL.forward`` (held by ``output``).

Weights: the seeded random tensors of the manifest (``random_tensors(manifest, WEIGHTS_SEED)``), engine buffers
dropped and ``model.`` stripped as the official loader (``tools/trainer.py``) does, edited (``EDIT``, stored in
the fixture as ``edit_*``), merged into the official state dict (whose size-derived buffers stay as the
constructor computes them) and loaded strict. As drawn (std 0.02 around 0) the attention is nearly uniform and
the output near 0: a wrong position index or a missing shift mask would move the output by less than 1e-4 and
half the pixels would clamp to 0. So the logit scales get + log 10 and the LayerNorm weights + 1 (the official
initial values), the position-bias MLPs x 50 (biases of several units, as a trained model's), and the last
conv x 0.1 with its bias + 0.5 (output around 0.5, none clamped).

Stubbed (not installed; the network only needs these names): ``timm.models.layers`` (``DropPath`` as the
eval-time identity, ``to_2tuple``, ``trunc_normal_`` for the initialisation the weights then replace),
``fairscale.nn.checkpoint_wrapper`` (only with ``fairscale_checkpoint=True``, activation checkpointing) and
``omegaconf.OmegaConf.create`` (a namespace of three flags).

Rerun from the repository root with a checkout of that commit:

    python scripts/golden/grl.py --official /path/to/GRL-Image-Restoration

It writes ``tests/fixtures/golden/grl_b_dual.npz`` (``tests/test_golden_grl.py``).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import math
import os
import sys
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from common import FIXTURES, INPUT_SEED, WEIGHTS_SEED, fixture, save_fixture, warn_unless_at

from baselines.weight_manifests import load_manifest, random_tensors, random_views

REPO, COMMIT = "ofsoundof/GRL-Image-Restoration", "3123fcadfee2107d813c5e8fff58227f14c989bc"
SOURCE = f"{REPO}@{COMMIT}"
CHECKPOINT = "grl_b_dual"
# Unequal, neither a multiple of 96: padded to 96x96 by reflection (24 < 72, 8 < 88).
HEIGHT, WIDTH = 72, 88
ZERO_PAD_HEIGHT = 40
DEPTHS = [4, 1]
# What the weights file gets on top of the seeded draw (std 0.02 around 0), see the module docstring.
EDIT = {"logit_shift": math.log(10), "cpb_scale": 50.0, "norm_shift": 1.0, "output_scale": 0.1, "output_bias": 0.5}
TILE, OVERLAP = 40, 12
NARROW_TILE, NARROW_OVERLAP = 96, 24


def stub_unused_imports() -> list[str]:
    stubbed = []
    if importlib.util.find_spec("timm") is None:

        class DropPath(nn.Module):
            def __init__(self, drop_prob=0.0):
                super().__init__()
                self.drop_prob = drop_prob

            def forward(self, x):
                if self.training:
                    raise RuntimeError("stub DropPath: eval only")
                return x

        layers = types.ModuleType("timm.models.layers")
        layers.DropPath = DropPath
        layers.to_2tuple = lambda x: tuple(x) if isinstance(x, (list, tuple)) else (x, x)
        layers.trunc_normal_ = lambda t, mean=0.0, std=1.0, a=-2.0, b=2.0: nn.init.trunc_normal_(t, mean, std, a, b)
        models = types.ModuleType("timm.models")
        models.layers = layers
        sys.modules.update({"timm": types.ModuleType("timm"), "timm.models": models, "timm.models.layers": layers})
        sys.modules["timm"].models = models
        stubbed.append("timm.models.layers")
    if importlib.util.find_spec("fairscale") is None:

        def checkpoint_wrapper(*args, **kwargs):
            raise RuntimeError("stub fairscale: fairscale_checkpoint=False only")

        fs_nn = types.ModuleType("fairscale.nn")
        fs_nn.checkpoint_wrapper = checkpoint_wrapper
        sys.modules.update({"fairscale": types.ModuleType("fairscale"), "fairscale.nn": fs_nn})
        stubbed.append("fairscale.nn")
    if importlib.util.find_spec("omegaconf") is None:
        omegaconf = types.ModuleType("omegaconf")
        omegaconf.OmegaConf = types.SimpleNamespace(create=lambda d: types.SimpleNamespace(**d))
        sys.modules["omegaconf"] = omegaconf
        stubbed.append("omegaconf")
    return stubbed


def official_forward_tile(official: Path):
    """``BaseEngine.forward_tile`` compiled on its own from ``engines/base.py`` (importing that module would pull
    in Lightning, hydra and torchvision); it reads only ``self.hparams`` (tile, tile_overlap,
    data_module.num_channels), ``self.scale`` and ``self.model``."""
    path = official / "engines" / "base.py"
    tree = ast.parse(path.read_text())
    engine = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "BaseEngine")
    fn = next(n for n in engine.body if isinstance(n, ast.FunctionDef) and n.name == "forward_tile")
    namespace = {"torch": torch}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), str(path), "exec"), namespace)
    return namespace["forward_tile"]


def edit(sd: dict, e: dict = EDIT) -> dict:
    """The edit ``e`` (``EDIT``, or the scalars a fixture stores) applied to a state dict (keys with or without
    ``model.``), in place; tests/test_golden_grl.py applies it to the published-container file."""
    for key in sd:
        if key.endswith("logit_scale"):
            sd[key] = sd[key] + e["logit_shift"]
        elif ".cpb_mlp." in key:
            sd[key] = sd[key] * e["cpb_scale"]
        elif key.endswith(("norm_start.weight", "norm1.weight", "norm2.weight", "norm_end.weight")):
            sd[key] = sd[key] + e["norm_shift"]
        elif key.endswith("conv_last.weight"):
            sd[key] = sd[key] * e["output_scale"]
        elif key.endswith("conv_last.bias"):
            sd[key] = sd[key] + e["output_bias"]
    return sd


def seeded_weights(manifest: dict) -> dict:
    """The file's tensors as ``tools/trainer.py`` hands them to the network (engine buffers popped, ``model.``
    stripped), after :func:`edit`."""
    sd = {}
    for key, arr in random_tensors(manifest, seed=WEIGHTS_SEED):
        if key.startswith("model."):
            sd[key[len("model.") :]] = torch.from_numpy(arr)
    return edit(sd)


def build(grl_cls, manifest: dict, weights: dict, depths) -> nn.Module:
    ctor = dict(manifest["constructor"], depths=list(depths))
    ctor["num_heads_window"] = ctor["num_heads_window"][: len(depths)]
    ctor["num_heads_stripe"] = ctor["num_heads_stripe"][: len(depths)]
    net = grl_cls(**ctor)
    state = net.state_dict()
    state.update({k: v for k, v in weights.items() if k in state})
    net.load_state_dict(state, strict=True)
    return net.eval()


def as_input(height: int, width: int) -> torch.Tensor:
    views = random_views(INPUT_SEED, height, width)
    left, right = (torch.from_numpy(views[k]).permute(2, 0, 1)[None] for k in ("left", "right"))
    return torch.cat([left, right], dim=1)


def hwc(t: torch.Tensor) -> np.ndarray:
    return t[0].permute(1, 2, 0).numpy().astype(np.float32)


def standin(weight: torch.Tensor):
    return lambda x: F.conv2d(x, weight, padding=1) + x[:, :3].mean(dim=(2, 3), keepdim=True)


def tiled(forward_tile, fn, x: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    hparams = types.SimpleNamespace(tile=tile, tile_overlap=overlap, data_module=types.SimpleNamespace(num_channels=3))
    engine = types.SimpleNamespace(hparams=hparams, scale=1, model=fn)
    with torch.no_grad():
        return forward_tile(engine, x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", required=True, type=Path, help="checkout of " + SOURCE)
    ap.add_argument("--out", type=Path, default=FIXTURES)
    args = ap.parse_args()
    warn_unless_at(args.official, COMMIT)
    stubbed = stub_unused_imports()
    if stubbed:
        print("stubbed (not installed, unused at inference):", ", ".join(stubbed))
    sys.path.insert(0, str(args.official))
    from models.networks.grl import GRL

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    manifest = load_manifest(CHECKPOINT)
    weights = seeded_weights(manifest)
    x, x_zero_pad = as_input(HEIGHT, WIDTH), as_input(ZERO_PAD_HEIGHT, WIDTH)
    outputs = {}
    with torch.no_grad():
        for name, depths, inp in (
            ("output", DEPTHS, x),
            ("output_full", manifest["constructor"]["depths"], x),
            ("output_zero_pad", [1], x_zero_pad),
        ):
            net = build(GRL, manifest, weights, depths)
            outputs[name] = hwc(torch.clamp(net(inp), 0, 1))
            del net
            print(f"{name}: depths {depths}, range [{outputs[name].min():.4f}, {outputs[name].max():.4f}]")

    forward_tile = official_forward_tile(args.official)
    weight = torch.from_numpy(np.random.default_rng(WEIGHTS_SEED).standard_normal((3, 6, 3, 3)).astype(np.float32))
    arrays = fixture(
        outputs["output"],
        f"{SOURCE} engines/base.py",
        HEIGHT,
        WIDTH,
        output_full=outputs["output_full"],
        output_zero_pad=outputs["output_zero_pad"],
        zero_pad_height=np.int64(ZERO_PAD_HEIGHT),
        depths=np.array(DEPTHS, dtype=np.int64),
        **{f"edit_{k}": np.float64(v) for k, v in EDIT.items()},
        tiled=hwc(tiled(forward_tile, standin(weight), x, TILE, OVERLAP)),
        tiled_narrow=hwc(tiled(forward_tile, standin(weight), x, NARROW_TILE, NARROW_OVERLAP)),
        tile=np.array([TILE, OVERLAP], dtype=np.int64),
        narrow_tile=np.array([NARROW_TILE, NARROW_OVERLAP], dtype=np.int64),
        standin_weight=weight.numpy(),
    )
    save_fixture(args.out / f"{CHECKPOINT}.npz", arrays)
    print(f"-> {args.out / CHECKPOINT}.npz")


if __name__ == "__main__":
    main()
