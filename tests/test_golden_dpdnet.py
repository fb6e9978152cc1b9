"""DPDNet port against the official Keras network: the same seeded weights and views must give the official output.

The fixtures were written by ``scripts/golden/dpdnet.py``, which ran the official ``model.py::unet`` of
Abdullah-Abuolaim/defocus-deblurring-dual-pixel (dual) and lingyanruan/DPDNet (retrained single) under tf.keras 2.15
on inputs prepared as their ``test_generator`` prepares them (cv2 BGR, cat(L, R) / C, [0, 1]). The weights are
``random_tensors`` with every kernel rescaled to He-normal's scale (``keras_writer.he_scaled``), because at the
manifests' 0.02 the network's output hardly depends on its input.

Two ways in, both through the suite's own ``load_published``:
* a file written by real Keras (``model.save``, HDF5) with the published layer and weight names, by
  ``scripts/golden/keras_writer.py`` run under ``$K3DN_TF_PYTHON`` (skipped without TensorFlow; the file is
  ~124 MB, so it is written per run, not committed);
* the suite's own writer of the published container (``write_fake_checkpoint``), its kernels rescaled in place.
"""

import importlib.util
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from baselines.published import get_checkpoint
from baselines.weight_manifests import MANIFEST_DIR, load_manifest, random_tensors, random_views, write_fake_checkpoint
from k3dn.checkpoint import load_published
from k3dn.registry import create_model

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "golden"
SOURCES = {
    "dpdnet_dual": "Abdullah-Abuolaim/defocus-deblurring-dual-pixel@7ebf77e71a073de0f8ff79510274a8af1e84a5ad ",
    "dpdnet_single_retrained": "lingyanruan/DPDNet@33761598b218fae8a2ef4344b3a58dec32bc00d6 ",
}
# fp32 on CPU, TF and PyTorch convolutions sum in different orders: measured 1.5e-6 (dual) and 2.7e-6 (single)
# from either file, while swapping L and R moves the dual output by 0.24 and RGB input by 0.25 (single: 0.41).
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


def _fixture(name):
    fixture = np.load(FIXTURES / f"{name}.npz")
    assert str(fixture["source"]).startswith(SOURCES[name])
    return fixture


def _golden_arrays(manifest, fixture):
    return keras_writer.he_scaled(manifest, [a for _, a in random_tensors(manifest, int(fixture["weights_seed"]))])


def _check_port(model_name, path, fixture):
    model = load_published(create_model(model_name), path).eval()
    views = random_views(int(fixture["input_seed"]), int(fixture["height"]), int(fixture["width"]))
    batch = {k: torch.from_numpy(views[k]).permute(2, 0, 1)[None] for k in ("left", "right", "center")}
    with torch.no_grad():
        ours = model(batch)["output"][0].permute(1, 2, 0).numpy()
    want = fixture["output"]
    assert ours.shape == want.shape
    diff = float(np.abs(ours - want).max())
    assert diff <= TOLERANCE, f"{model_name}: max |port - official| = {diff:.3g} > {TOLERANCE}"


@pytest.mark.parametrize("name", ["dpdnet_dual", "dpdnet_single_retrained"])
def test_port_reproduces_official_output_from_keras_written_file(name, tmp_path):
    python = keras_writer.tf_python()
    if python is None:
        pytest.skip(NO_TF)
    fixture, ck = _fixture(name), get_checkpoint(name)
    manifest = load_manifest(ck.manifests[0])
    path = keras_writer.write_with(
        python,
        MANIFEST_DIR / f"{ck.manifests[0]}.json",
        _golden_arrays(manifest, fixture),
        tmp_path / Path(ck.files[0]).name,
    )
    with h5py.File(path, "r") as f:  # written by Keras' own saver, not by ours (which stores no model_config)
        assert "model_config" in f.attrs and "layer_names" in f["model_weights"].attrs
    _check_port(ck.model, path, fixture)


@pytest.mark.parametrize("name", ["dpdnet_dual", "dpdnet_single_retrained"])
def test_port_reproduces_official_output_from_own_writer(name, tmp_path):
    fixture, ck = _fixture(name), get_checkpoint(name)
    manifest = load_manifest(ck.manifests[0])
    path = write_fake_checkpoint(ck.manifests[0], tmp_path / Path(ck.files[0]).name, seed=int(fixture["weights_seed"]))
    keys = [key for key, *_ in manifest["tensors"]]
    with h5py.File(path, "a") as f:  # the file holds random_tensors(seed): rescale its kernels as the fixture's
        for key, arr in zip(keys, keras_writer.he_scaled(manifest, [f[k][()] for k in keys]), strict=True):
            f[key][...] = arr
    _check_port(ck.model, path, fixture)
