"""RDPD+ port against the official Keras network and its radial mask.

The fixture was written by ``scripts/golden/rdpd.py``, which ran the official ``rdpd_code/model.py::unet`` (image
test: one frame, ``linear_layer``, ``radial_mask``) under tf.keras 2.15, its ``config.py`` reading
``real_radial_mask.png`` itself and the mask resized to the fixture's size by the loader's own ``cv2.resize`` call.
Weights: ``random_tensors`` with every kernel rescaled to He-normal's scale (``keras_writer.he_scaled``; at the
manifests' 0.02 the output hardly depends on the input). Two ways in, both through ``load_published``: a file
written by real Keras with the published names (``scripts/golden/keras_writer.py`` under ``$K3DN_TF_PYTHON``;
skipped without TensorFlow) and the suite's own writer of the published container, kernels rescaled in place.

The mask facts (``rdpd_real_radial_mask.json``) were read from the official PNG (cv2, as ``config.py`` reads it):
the sha256 of its uint8 array, a few pixels, and the official resize at two other sizes.
"""

import hashlib
import json

import numpy as np
import pytest

import baselines.rdpd as rd

NAME = "rdpd_plus"
SOURCE = "Abdullah-Abuolaim/recurrent-defocus-deblurring-synth-dual-pixel@03d592a8ec970843ae49579bc8a87ce019043092"
# fp32 on CPU, TF and PyTorch sum in different orders: measured 4.3e-6 from either file, while swapping L and R moves
# the output by 0.79, RGB input by 0.69, the mask drawn at 64 x 96 by the formula instead of resized by 0.019, and
# the previous stand-in mask (centre at ((h-1)/2, (w-1)/2), drawn at 64 x 96) by 0.014.
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def fixture(golden):
    return golden.load(NAME, SOURCE)


@pytest.fixture(scope="module")
def mask_facts(golden):
    return json.loads((golden.fixtures / "rdpd_real_radial_mask.json").read_text())


def test_port_reproduces_official_output_from_keras_written_file(fixture, golden, tmp_path):
    model = golden.model(NAME, golden.keras_written(NAME, tmp_path, fixture))
    golden.assert_matches(NAME, golden.output(model, fixture), fixture["output"], TOLERANCE)


def test_port_reproduces_official_output_from_own_writer(fixture, golden, tmp_path):
    model = golden.published_model(NAME, tmp_path, fixture, edit=golden.he_scale(NAME))
    golden.assert_matches(NAME, golden.output(model, fixture), fixture["output"], TOLERANCE)


def test_radial_mask_is_the_official_png(mask_facts):
    m = rd.radial_mask(*mask_facts["shape"])
    assert m.dtype == np.float32 and list(m.shape) == mask_facts["shape"]
    u8 = np.round(m.astype(np.float64) * 255).astype(np.uint8)
    np.testing.assert_array_equal(m, (u8 / 255.0).astype(np.float32))  # 8-bit levels, as config.py's PNG / 255
    for i, j, v in mask_facts["samples_ijv"]:
        assert u8[i, j] == v, (i, j)
    assert hashlib.sha256(np.ascontiguousarray(u8).tobytes()).hexdigest() == mask_facts["sha256_uint8_c_order"]


@pytest.mark.parametrize("size", ["64x96", "200x304"])
def test_radial_mask_other_sizes_resize_the_official_one(size, mask_facts):
    facts = mask_facts["resized"][size]
    h, w = map(int, size.split("x"))
    m = rd.radial_mask(h, w)
    assert m.shape == (h, w) and m.dtype == np.float32
    for i, j, v in facts["samples_ijv"]:
        assert m[i, j] == pytest.approx(v, abs=1e-7), (i, j)
    assert float(m.astype(np.float64).mean()) == pytest.approx(facts["mean"], abs=1e-7)
