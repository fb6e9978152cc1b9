"""KPAC port against the official TensorFlow/TensorLayer network: the same seeded weights and views must give
the official output.

The fixtures were written by ``scripts/golden/kpac.py``, which ran the official ``model.py`` graphs with the
repository's bundled TensorLayer 1.7 under ``tensorflow.compat.v1`` and assigned the weights with the official
``tl.files.load_and_assign_npz``. Here the same random-weight file in the published container (TensorLayer's
positional ``params`` object array) goes through the suite's own path: ``load_published`` and the registered
model's filter.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.published import get_checkpoint
from baselines.weight_manifests import random_views, write_fake_checkpoint
from k3dn.checkpoint import load_published
from k3dn.registry import create_model

FIXTURES = Path(__file__).parent / "fixtures" / "golden"
# fp32 on CPU, TF and PyTorch convolutions sum in different orders: the measured difference is 1.2e-7 for all
# three graphs, while feeding (R, L) to the dual graph moves the output by 0.05 and BGR input by 0.98.
TOLERANCE = 1e-5


@pytest.mark.parametrize("name", ["kpac_single_2level", "kpac_single_3level", "kpac_dual"])
def test_port_reproduces_official_output(name, tmp_path):
    fixture = np.load(FIXTURES / f"{name}.npz")
    assert str(fixture["source"]).startswith("HyeongseokSon1/KPAC@8603ec3ac56b5a416be6b996165b552aff1c4b0f ")
    ck = get_checkpoint(name)
    path = write_fake_checkpoint(ck.manifests[0], tmp_path / Path(ck.files[0]).name, seed=int(fixture["weights_seed"]))
    model = load_published(create_model(ck.model), path).eval()

    views = random_views(int(fixture["input_seed"]), int(fixture["height"]), int(fixture["width"]))
    batch = {k: torch.from_numpy(views[k]).permute(2, 0, 1)[None] for k in ("left", "right", "center")}
    with torch.no_grad():
        ours = model(batch)["output"][0].permute(1, 2, 0).numpy()

    want = fixture["output"]
    assert ours.shape == want.shape
    diff = float(np.abs(ours - want).max())
    assert diff <= TOLERANCE, f"{name}: max |port - official| = {diff:.3g} > {TOLERANCE}"
