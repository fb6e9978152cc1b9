"""DiNAT-IR port against the official network and against NATTEN's attention: same weights and inputs, same output.

The fixtures were written by ``scripts/golden/dinat_ir.py`` from HanzhouLiu/DiNAT-IR at the pinned commit with the
real NATTEN 0.14.6 (the authors' version, built for the CPU), after the official calibration pass that fixes the
test-time pooling boxes. The network's weights go through the suite's own path: a fake file in the published
``{'params': sd}`` container, rescaled as the fixture says (``weight_scales``: at the manifest's std 0.02 the
attention barely reaches the output), read by ``load_published`` and the registered model's filter.

Measured (fp32, CPU): max |port - official| 2.8e-7 at 48x80 and 3.7e-7 at 16x392 (unclamped), 0 for NATTEN's
attention alone. The same weights' output moves by 0.11 when L and R are swapped, 0.06 without block
``refinement.1``, 0.02-0.04 with every position-bias table transposed, 0.01 with dilation 35 for 36, and 9e-4 at
16x392 when the pools are global instead of the calibrated boxes; 1e-6 of input noise moves it by 3e-7.
"""

import json

import numpy as np
import pytest
import torch

import baselines.dinat_ir as dinat
from baselines.weight_manifests import random_views

SOURCE = "HanzhouLiu/DiNAT-IR@886609ee342ceb95b812630b8e71829de1e2dc03"
NATTEN = "natten==0.14.6"
# Summation order differs (LayerNorm, attention, the pooling's integral image); 10x the largest measured difference
# would still be 4e-6, well below what any of the faults above moves.
TOLERANCE = 1e-5

pytestmark = pytest.mark.usefixtures("one_thread")


def rescaled(fixture):
    """An ``edit`` for ``golden.published_model``: ``tensor * mul + add`` for every tensor whose name ends with a
    suffix of the fixture's ``weight_scales``, in the published file itself."""
    scales = json.loads(str(fixture["weight_scales"]))

    def edit(path):
        container = torch.load(path, weights_only=True)
        for key, t in container["params"].items():
            for suffix, (mul, add) in scales.items():
                if key.endswith(suffix):
                    container["params"][key] = t * mul + add
        torch.save(container, path)

    return edit


def official_input(model, fixture) -> np.ndarray:
    """``model`` on the fixture's seeded views with their channels reversed: the port turns each RGB view into the
    BGR order the official dataset feeds (test_baselines_dinat_ir pins that), and the official network was run
    on the seeded views as they are, so both networks see the same tensor."""
    views = random_views(int(fixture["input_seed"]), int(fixture["height"]), int(fixture["width"]))
    with torch.no_grad():
        out = model({k: torch.from_numpy(v).permute(2, 0, 1)[None].flip(1) for k, v in views.items()})["output"]
    return out[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("name", ["dinat_ir_dual", "dinat_ir_dual_wide"])
def test_port_reproduces_official_output(name, golden, tmp_path):
    fixture = golden.load(name, SOURCE)
    model = golden.published_model("dinat_ir_dual", tmp_path, fixture, edit=rescaled(fixture))
    # One pass in training mode gives the unclamped output; the eval-mode clamp is pinned in test_baselines_dinat_ir.
    raw = official_input(model.train(), fixture)
    golden.assert_matches(f"{name} (unclamped)", raw, fixture["output_raw"], TOLERANCE)
    golden.assert_matches(name, np.clip(raw, 0, 1), fixture["output"], TOLERANCE)


def test_pool_boxes_are_those_of_the_official_calibration(golden):
    """Every transformer block's pooling box, in module order, as the official layers hold them after the pass."""
    fixture = golden.load("dinat_ir_dual", SOURCE)
    blocks = [m for m in dinat.dinat_ir_dual().modules() if isinstance(m, dinat.TransBlock)]
    assert [[b.pool_kernel] * 2 for b in blocks] == fixture["tlc_kernels"].tolist()


def test_attention_matches_natten(golden):
    """Borders (windows shifted inward), dilation groups of unequal length, zero padding of short sides, heads, and
    the relative position bias at std 1, each case against NATTEN's own module."""
    fixture = golden.load("dinat_ir_na2d", NATTEN)
    for i, (h, w, c, heads, dilation) in enumerate(fixture["cases"].tolist()):
        na = dinat.NeighborhoodAttention2D(c, heads, int(fixture["kernel"]), dilation)
        na.load_state_dict({k: torch.from_numpy(fixture[f"case{i}_{k}"]) for k, _ in na.state_dict().items()})
        with torch.no_grad():
            out = na(torch.from_numpy(fixture[f"case{i}_x"])).numpy()
        golden.assert_matches(f"{h}x{w}, {heads} heads, dilation {dilation}", out, fixture[f"case{i}_out"], TOLERANCE)
