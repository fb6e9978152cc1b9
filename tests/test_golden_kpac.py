"""KPAC port against the official TensorFlow/TensorLayer network: the same seeded weights and views must give
the official output.

The fixtures were written by ``scripts/golden/kpac.py``, which ran the official ``model.py`` graphs with the
repository's bundled TensorLayer 1.7 under ``tensorflow.compat.v1`` and assigned the weights with the official
``tl.files.load_and_assign_npz``. Here the same random-weight file in the published container (TensorLayer's
positional ``params`` object array) goes through the suite's own path: ``load_published`` and the registered
model's filter.
"""

import pytest

SOURCE = "HyeongseokSon1/KPAC@8603ec3ac56b5a416be6b996165b552aff1c4b0f"
# fp32 on CPU, TF and PyTorch convolutions sum in different orders: the measured difference is 1.2e-7 for all
# three graphs, while feeding (R, L) to the dual graph moves the output by 0.05 and BGR input by 0.98.
TOLERANCE = 1e-5


@pytest.mark.parametrize("name", ["kpac_single_2level", "kpac_single_3level", "kpac_dual"])
def test_port_reproduces_official_output(name, golden, tmp_path):
    fixture = golden.load(name, SOURCE)
    model = golden.published_model(name, tmp_path, fixture)
    golden.assert_matches(name, golden.output(model, fixture), fixture["output"], TOLERANCE)
