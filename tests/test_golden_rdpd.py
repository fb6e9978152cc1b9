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
import importlib.util
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import baselines.rdpd as rd
from baselines.published import get_checkpoint
from baselines.weight_manifests import MANIFEST_DIR, load_manifest, random_tensors, random_views, write_fake_checkpoint
from k3dn.checkpoint import load_published
from k3dn.registry import create_model

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "golden"
NAME = "rdpd_plus"
SOURCE = "Abdullah-Abuolaim/recurrent-defocus-deblurring-synth-dual-pixel@03d592a8ec970843ae49579bc8a87ce019043092 "
# fp32 on CPU, TF and PyTorch sum in different orders: measured 4.3e-6 from either file, while swapping L and R moves
# the output by 0.79, RGB input by 0.69, the mask drawn at 64 x 96 by the formula instead of resized by 0.019, and
# the previous stand-in mask (centre at ((h-1)/2, (w-1)/2), drawn at 64 x 96) by 0.014.
TOLERANCE = 1e-5
NO_TF = (
    "TensorFlow not installed: set K3DN_TF_PYTHON to a python with tensorflow-cpu==2.15.1 "
    "(the checkpoint must be written by real Keras)"
)

_spec = importlib.util.spec_from_file_location(
    "k3dn_golden_keras_writer", ROOT / "scripts" / "golden" / "keras_writer.py"
)
keras_writer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(keras_writer)


@pytest.fixture(scope="module")
def fixture():
    f = np.load(FIXTURES / f"{NAME}.npz")
    assert str(f["source"]).startswith(SOURCE)
    return f


@pytest.fixture(scope="module")
def mask_facts():
    return json.loads((FIXTURES / "rdpd_real_radial_mask.json").read_text())


def _check_port(path, fixture):
    model = load_published(create_model(NAME), path).eval()
    views = random_views(int(fixture["input_seed"]), int(fixture["height"]), int(fixture["width"]))
    batch = {k: torch.from_numpy(views[k]).permute(2, 0, 1)[None] for k in ("left", "right", "center")}
    with torch.no_grad():
        ours = model(batch)["output"][0].permute(1, 2, 0).numpy()
    want = fixture["output"]
    assert ours.shape == want.shape
    diff = float(np.abs(ours - want).max())
    assert diff <= TOLERANCE, f"{NAME}: max |port - official| = {diff:.3g} > {TOLERANCE}"


def test_port_reproduces_official_output_from_keras_written_file(fixture, tmp_path):
    python = keras_writer.tf_python()
    if python is None:
        pytest.skip(NO_TF)
    ck = get_checkpoint(NAME)
    manifest = load_manifest(ck.manifests[0])
    arrays = keras_writer.he_scaled(manifest, [a for _, a in random_tensors(manifest, int(fixture["weights_seed"]))])
    path = keras_writer.write_with(
        python, MANIFEST_DIR / f"{ck.manifests[0]}.json", arrays, tmp_path / Path(ck.files[0]).name
    )
    with h5py.File(path, "r") as f:  # written by Keras' own saver, not by ours (which stores no model_config)
        assert "model_config" in f.attrs and "layer_names" in f["model_weights"].attrs
    _check_port(path, fixture)


def test_port_reproduces_official_output_from_own_writer(fixture, tmp_path):
    ck = get_checkpoint(NAME)
    manifest = load_manifest(ck.manifests[0])
    path = write_fake_checkpoint(ck.manifests[0], tmp_path / Path(ck.files[0]).name, seed=int(fixture["weights_seed"]))
    keys = [key for key, *_ in manifest["tensors"]]
    with h5py.File(path, "a") as f:  # the file holds random_tensors(seed): rescale its kernels as the fixture's
        for key, arr in zip(keys, keras_writer.he_scaled(manifest, [f[k][()] for k in keys]), strict=True):
            f[key][...] = arr
    _check_port(path, fixture)


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
