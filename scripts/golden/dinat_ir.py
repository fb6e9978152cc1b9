"""Golden outputs of the official DiNAT-IR for the checkpoint ``dinat_ir_dual``, and of NATTEN's attention alone.

Source: HanzhouLiu/DiNAT-IR @ 886609ee342ceb95b812630b8e71829de1e2dc03. The network is
``basicsr/models/archs/RestoreDiNAT_arch.py`` (class ``RestoreDiNATLocal``) built with the ``network_g`` arguments of
``options/test/DPDD/RestoreDiNAT-width48.yml`` (the manifest's ``constructor``), then treated as
``basicsr/test.py`` treats it through ``basicsr/models/image_restoration_model.py``: one forward pass on
``torch.rand(1, 6, 256, 256)`` right after building (it fixes the box of every test-time pooling layer of
``local_arch.py``: 384/192/96/48 px at levels 1-4, recorded in the fixtures as ``tlc_kernels``), a strict load of the
``{'params': state_dict}`` file, and ``net(cat(L, R))`` on the seeded views in [0, 1] as they are (the port flips
each view to the BGR order the official dataset feeds; its test flips the seeded views back so both see the same
tensor). The official test saves
``clamp(output, 0, 1)`` as a 16-bit PNG; the fixtures hold it as float32 (``output``) and the unclamped output
(``output_raw``).

The attention is the real NATTEN 0.14.6 (the version the authors install) on the CPU: the PyPI sdist built against
the suite's torch 2.13 CPU in its own venv. It needs one patch to compile there (torch 2.13's ``at::vec::map2`` /
``vec_reduce_all`` no longer accept lambdas taking non-const ``Vec&``); it does not touch what is computed:

    pip download natten==0.14.6 --no-deps --no-binary :all: --no-build-isolation  # setup.py imports torch
    tar xzf natten-0.14.6.tar.gz && cd natten-0.14.6
    sed -i 's/(Vec& x, Vec& y)/(const Vec\\& x, const Vec\\& y)/' src/natten/csrc/cpu/*.cpp
    MAX_JOBS=2 pip install --no-build-isolation --no-deps .     # ~15 min on 2 cores; plus `pip install einops`

Weights: the seeded random tensors of the manifest (``seeded_state_dict``) at std 0.02 reach the output too faintly to
show the attention (a transposed position bias moves it by 4e-6, the local pooling by 1e-7), so the network fixtures
rescale them by ``WEIGHT_SCALES`` (stored in each fixture as JSON; the test applies the same rule to its
published-container file): LayerNorm weights 1 + w, the position bias x25 (std 0.5), the qkv projections x3, the
gate's 7-tap conv x50. Larger scales make the network chaotic (with the qkv x10 and the bias x50, 1e-6 of input
noise moved the output by 1e-3); with these it moves it by 3e-7.

Fixtures (``tests/fixtures/golden/``):

* ``dinat_ir_dual.npz``: 48x80 views. Every attention layer zero-pads (sides under 7 x dilation); the test-time pools
  are global there.
* ``dinat_ir_dual_wide.npz``: 16x392 views: wider than 384 px, so every level pools over local boxes, and the
  level-1 width is attended without padding (392 = 10 x 36 + 32: unequal dilation groups, windows shifted inward).
* ``dinat_ir_na2d.npz``: NATTEN's ``NeighborhoodAttention2D`` alone (kernel 7) on random inputs and weights, position
  bias at std 1, over sizes with and without padding, dilations 1-5 and 36, several heads: ``case<i>_<tensor>``.

Stubbed: the packages ``basicsr``, ``basicsr.models`` and ``basicsr.models.archs`` are put in ``sys.modules`` as
empty packages on the checkout's folders (their ``__init__`` files import the training stack: lmdb, cv2,
torchvision), and ``basicsr.utils`` as a module holding only ``get_root_logger`` (``arch_util.py`` imports it and
the network does not use it).

Rerun from the repository root with a checkout of that commit, under the Python that has natten and einops:

    /path/to/natten_venv/bin/python scripts/golden/dinat_ir.py --official /path/to/DiNAT-IR

``tests/test_golden_dinat_ir.py`` checks the suite's port against the three files.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import types
from pathlib import Path

import numpy as np
import torch
from common import FIXTURES, INPUT_SEED, fixture, save_fixture, seeded_state_dict, warn_unless_at

from baselines.published import get_checkpoint
from baselines.weight_manifests import load_manifest, random_views

COMMIT = "886609ee342ceb95b812630b8e71829de1e2dc03"
SOURCE = f"HanzhouLiu/DiNAT-IR@{COMMIT}"
SCRIPT = "basicsr/test.py options/test/DPDD/RestoreDiNAT-width48.yml"
NATTEN_VERSION = "0.14.6"
NAME = "dinat_ir_dual"
# (fixture, height, width); multiples of 8 (three PixelUnshuffle(2)), unequal sides.
SIZES = (("dinat_ir_dual", 48, 80), ("dinat_ir_dual_wide", 16, 392))
# Tensor-name suffix -> (multiplier, offset), applied to the seeded tensors (see the docstring).
WEIGHT_SCALES = {
    "norm1.body.weight": (1.0, 1.0),
    "norm2.body.weight": (1.0, 1.0),
    "na2d.rpb": (25.0, 0.0),
    "na2d.qkv.weight": (3.0, 0.0),
    "local.conv.weight": (50.0, 0.0),
    "globl.conv.weight": (50.0, 0.0),
}
# Attention-alone cases: (height, width, channels, heads, dilation), kernel 7.
NA_CASES = (
    (9, 11, 8, 2, 1),  # both borders of an unpadded map
    (5, 12, 8, 1, 1),  # height under 7: padded rows
    (23, 30, 8, 2, 3),  # 23 = 7 x 3 + 2: unequal dilation groups
    (30, 17, 8, 1, 4),  # width under 28: padded columns only
    (13, 41, 16, 4, 5),  # height padded, width 41 = 8 x 5 + 1 unpadded
    (8, 260, 4, 1, 36),  # the level-1 dilation, 260 = 7 x 36 + 8
)
NA_SEED = 2


def scaled(state_dict: dict, scales: dict) -> dict:
    out = {}
    for key, t in state_dict.items():
        for suffix, (mul, add) in scales.items():
            if key.endswith(suffix):
                t = t * mul + add
        out[key] = t
    return out


def import_official(checkout: Path):
    """``RestoreDiNAT_arch`` from the checkout, without running the ``basicsr`` package ``__init__`` files."""
    for name, folder in (
        ("basicsr", "basicsr"),
        ("basicsr.models", "basicsr/models"),
        ("basicsr.models.archs", "basicsr/models/archs"),
    ):
        package = types.ModuleType(name)
        package.__path__ = [str(checkout / folder)]
        sys.modules[name] = package
    utils = types.ModuleType("basicsr.utils")
    utils.get_root_logger = lambda *a, **k: logging.getLogger("basicsr")
    sys.modules["basicsr.utils"] = utils
    return importlib.import_module("basicsr.models.archs.RestoreDiNAT_arch")


def official_network(arch, manifest: dict):
    net = arch.RestoreDiNATLocal(**manifest["constructor"])
    # ImageRestorationModel.__init__: the calibration pass that sets each pooling layer's box (train_size 256).
    torch.manual_seed(0)
    with torch.no_grad():
        net.forward(torch.rand(1, manifest["constructor"]["inp_channels"], 256, 256))
    net.load_state_dict(scaled(seeded_state_dict(manifest), WEIGHT_SCALES), strict=True)
    return net.eval()


def tlc_kernels(net) -> np.ndarray:
    """The box (h, w) of every test-time pooling layer, in module order."""
    pools = [m for m in net.modules() if type(m).__name__ == "AvgPool2d" and hasattr(m, "base_size")]
    return np.array([list(m.kernel_size) for m in pools], dtype=np.int64)


def golden_network(net, height: int, width: int) -> dict:
    views = random_views(INPUT_SEED, height, width)
    as_nchw = {k: torch.from_numpy(v).unsqueeze(0).permute(0, 3, 1, 2) for k, v in views.items()}
    with torch.no_grad():
        raw = net(torch.cat([as_nchw["left"], as_nchw["right"]], 1))
    as_hwc = raw.permute(0, 2, 3, 1).squeeze(0)
    return fixture(
        as_hwc.clamp(0, 1).numpy().astype(np.float32),
        f"{SOURCE} {SCRIPT}",
        height,
        width,
        output_raw=as_hwc.numpy().astype(np.float32),
        weight_scales=np.str_(json.dumps(WEIGHT_SCALES, sort_keys=True)),
        tlc_kernels=tlc_kernels(net),
        natten_version=np.str_(NATTEN_VERSION),
    )


def golden_attention() -> dict:
    from natten import NeighborhoodAttention2D

    rng = np.random.default_rng(NA_SEED)
    arrays = {
        "source": np.str_(
            f"natten=={NATTEN_VERSION} NeighborhoodAttention2D (PyPI sdist, CPU build), as {SOURCE} uses it"
        ),
        "natten_version": np.str_(NATTEN_VERSION),
        "kernel": np.int64(7),
        "cases": np.array(NA_CASES, dtype=np.int64),
    }
    for i, (h, w, c, heads, dilation) in enumerate(NA_CASES):
        na = NeighborhoodAttention2D(dim=c, kernel_size=7, dilation=dilation, num_heads=heads)
        tensors = {
            "x": rng.standard_normal((1, h, w, c)),
            "qkv.weight": rng.standard_normal((3 * c, c)) * 0.5,
            "qkv.bias": rng.standard_normal(3 * c) * 0.5,
            "rpb": rng.standard_normal((heads, 13, 13)),
            "proj.weight": rng.standard_normal((c, c)) * 0.5,
            "proj.bias": rng.standard_normal(c) * 0.5,
        }
        tensors = {k: v.astype(np.float32) for k, v in tensors.items()}
        na.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items() if k != "x"}, strict=True)
        with torch.no_grad():
            tensors["out"] = na(torch.from_numpy(tensors["x"])).numpy()
        arrays.update({f"case{i}_{k}": v for k, v in tensors.items()})
    return arrays


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", required=True, type=Path, help="checkout of " + SOURCE)
    ap.add_argument("--out", type=Path, default=FIXTURES)
    args = ap.parse_args()
    import natten

    if natten.__version__ != NATTEN_VERSION:
        sys.exit(f"natten {natten.__version__} found, the fixtures need {NATTEN_VERSION}")
    warn_unless_at(args.official, COMMIT)
    torch.set_num_threads(min(2, os.cpu_count() or 1))

    manifest = load_manifest(get_checkpoint(NAME).manifests[0])
    net = official_network(import_official(args.official), manifest)
    for name, height, width in SIZES:
        arrays = golden_network(net, height, width)
        save_fixture(args.out / f"{name}.npz", arrays)
        out = arrays["output_raw"]
        print(f"{name}: output {out.shape} raw range [{out.min():.4f}, {out.max():.4f}] -> {args.out / name}.npz")
    save_fixture(args.out / "dinat_ir_na2d.npz", golden_attention())
    print(f"dinat_ir_na2d: {len(NA_CASES)} attention cases -> {args.out / 'dinat_ir_na2d.npz'}")


if __name__ == "__main__":
    main()
