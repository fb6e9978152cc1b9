"""Write a published Keras checkpoint's container with real Keras: an HDF5 saved by ``model.save(save_format='h5')``
whose weighted layers carry the manifest's layer names, weight names and shapes, in the manifest's order, filled
with given arrays.

Why: the golden tests of the Keras ports (``tests/test_golden_dpdnet.py``, ``tests/test_golden_rdpd.py``) must load a
file that Keras itself wrote, not one from our own HDF5 writer (``baselines.weight_manifests.write_fake_checkpoint``).
Such files are ~100 MB, so the test writes one into its temporary folder with this script, run by a Python that has
TensorFlow (``K3DN_TF_PYTHON``; TensorFlow needs numpy < 2, which the suite's venv does not have)::

    python scripts/golden/keras_writer.py MANIFEST.json TENSORS.npz OUT.hdf5

``MANIFEST.json`` is a file of ``baselines/weight_manifests``; ``TENSORS.npz`` holds one array per manifest tensor
in manifest order (``arr_0, arr_1, ...``, as ``np.savez(path, *arrays)`` names them), so this script needs only
tensorflow, h5py and numpy (no torch, no suite import). Tested with tensorflow-cpu 2.15.1 (tf.keras 2.15).

The model is no network: every weighted layer gets its own ``Input`` and goes straight to an output, so only the
weights are meaningful. A layer with a ``recurrent_kernel`` is a ``ConvLSTM2D`` (filters = last axis / 4, gates
i, f, c, o); every other layer is a ``Conv2D`` (a ``TimeDistributed(Conv2D)`` stores the same weights under its own
name). Keras' topological ``load_weights`` reads weighted layers by position, which is why the order is checked on
the saved file. The weightless layers of the official graph (pooling, concatenation, ...) are not in this file;
every Keras-style loader skips them (layers without ``weight_names``), and ``baselines.weight_manifests`` covers the
interleaved ``layer_names`` of the published container.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np


def layer_specs(manifest: dict) -> list[tuple[str, list[tuple[str, list[int]]]]]:
    """``[(layer, [(weight name, shape), ...])]`` in the file's order of weighted layers."""
    shapes = {name: shape for name, shape, *_ in manifest["tensors"]}
    prefix = manifest.get("key_prefix", "model_weights/")
    return [
        (layer, [(w, shapes[f"{prefix}{layer}/{w}"]) for w in weights])
        for layer, weights in manifest["keras_layers_with_weights_in_file_order"]
    ]


# Standard deviation of baselines.weight_manifests.random_tensors. At that scale a 24-layer ReLU U-Net passes almost
# nothing of its input to the output (swapping L and R moves it by ~1e-5), so the golden weights rescale every kernel
# to He-normal's standard deviation sqrt(2 / fan_in), the scale of the official ``kernel_initializer='he_normal'``.
RANDOM_TENSORS_STD = 0.02
# How the Keras golden fixtures' weights were made (their ``weights`` entry).
HE_SCALED_WEIGHTS = "random_tensors(manifest, weights_seed), kernels x sqrt(2/fan_in)/0.02 (he_scaled)"


def he_scaled(manifest: dict, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """``arrays`` (manifest tensor order) with every rank-4 kernel ``[kh, kw, in, out]`` multiplied by
    ``sqrt(2 / (kh * kw * in)) / RANDOM_TENSORS_STD``; biases unchanged."""
    out = []
    for (_, shape, *_), a in zip(manifest["tensors"], arrays, strict=True):
        a = np.asarray(a, np.float32)
        if len(shape) == 4:
            a = (a * np.float32(np.sqrt(2.0 / np.prod(shape[:3])) / RANDOM_TENSORS_STD)).astype(np.float32)
        out.append(a)
    return out


def assign_in_file_order(model, manifest: dict, arrays: list[np.ndarray]) -> None:
    """Set ``model``'s weights the way Keras' topological ``load_weights`` pairs them: the i-th layer with weights
    in ``model.layers`` takes the i-th weighted layer of the manifest. Each weight's own name (``kernel``, ``bias``,
    ``recurrent_kernel``) and shape must agree; layer names are not compared (they depend on the Keras version)."""
    weighted = [layer for layer in model.layers if layer.weights]
    specs = layer_specs(manifest)
    if len(weighted) != len(specs):
        raise ValueError(f"model has {len(weighted)} weighted layers, the manifest {len(specs)}")
    it = iter(arrays)
    for layer, (name, weights) in zip(weighted, specs):
        values = [np.asarray(next(it), np.float32) for _ in weights]
        got = [(v.name.rsplit("/", 1)[-1], tuple(v.shape)) for v in layer.weights]
        want = [(w.rsplit("/", 1)[-1], tuple(a.shape)) for (w, _), a in zip(weights, values)]
        if got != want:
            raise ValueError(f"{layer.name} <- {name}: weights {got} != {want}")
        layer.set_weights(values)


def build_model(manifest: dict):
    import tensorflow as tf

    inputs, outputs = [], []
    for layer, weights in layer_specs(manifest):
        short = {w.rsplit("/", 1)[-1].split(":")[0]: shape for w, shape in weights}
        kh, kw, cin, cout = short["kernel"]
        common = {"padding": "same", "use_bias": "bias" in short, "kernel_initializer": "zeros", "name": layer}
        if "recurrent_kernel" in short:
            x = tf.keras.Input((None, None, None, cin), name=f"{layer}_in")
            y = tf.keras.layers.ConvLSTM2D(cout // 4, (kh, kw), recurrent_initializer="zeros", **common)(x)
        else:
            x = tf.keras.Input((None, None, cin), name=f"{layer}_in")
            y = tf.keras.layers.Conv2D(cout, (kh, kw), **common)(x)
        inputs.append(x)
        outputs.append(y)
    return tf.keras.Model(inputs, outputs)


def write(manifest: dict, arrays: list[np.ndarray], path) -> Path:
    """Save ``arrays`` (manifest tensor order) with Keras into ``path`` (HDF5); the file's weighted layers, weight
    names and shapes are checked against the manifest after saving."""
    import h5py

    if len(arrays) != len(manifest["tensors"]):
        raise ValueError(f"{manifest['method']}: {len(arrays)} arrays for {len(manifest['tensors'])} manifest tensors")
    model = build_model(manifest)
    it = iter(arrays)
    for layer, weights in layer_specs(manifest):
        keras_layer = model.get_layer(layer)
        have = [v.name for v in keras_layer.weights]
        if have != [w for w, _ in weights]:
            raise ValueError(f"{layer}: Keras names its weights {have}, the manifest {[w for w, _ in weights]}")
        keras_layer.set_weights([np.asarray(next(it), np.float32) for _ in weights])
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.h5")
    model.save(tmp, save_format="h5", include_optimizer=False)

    prefix = manifest.get("key_prefix", "model_weights/")
    with h5py.File(tmp, "r") as f:
        g = f[prefix.rstrip("/")]
        saved = []
        for name in g.attrs["layer_names"]:
            name = name.decode() if isinstance(name, bytes) else str(name)
            wn = [w.decode() if isinstance(w, bytes) else str(w) for w in g[name].attrs["weight_names"]]
            if wn:
                saved.append((name, [(w, list(g[name][w].shape)) for w in wn]))
    if saved != layer_specs(manifest):
        os.remove(tmp)
        raise RuntimeError(f"{manifest['method']}: the saved file's weighted layers differ from the manifest")
    os.replace(tmp, path)
    return path


def check_loads_into(fresh, net, manifest: dict, arrays: list[np.ndarray], x: np.ndarray) -> float:
    """Save ``arrays`` with :func:`write`, read that file into ``fresh`` (a new official model of ``net``'s graph;
    ``net`` holds ``arrays``) with Keras' topological ``load_weights``, and require the same weights. Returns the
    largest difference between the two models' predictions on ``x`` (the golden scripts' ``--check-writer``)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        fresh.load_weights(write(manifest, arrays, Path(tmp) / "w.hdf5"))
    for a, b in zip(net.weights, fresh.weights, strict=True):
        if not np.array_equal(a.numpy(), b.numpy()):
            raise AssertionError(f"{a.name}: the weights read back differ from those written")
    return float(np.abs(fresh.predict(x, batch_size=1, verbose=0) - net.predict(x, batch_size=1, verbose=0)).max())


def run_official(build, manifest: dict, arrays: list[np.ndarray], x: np.ndarray, name: str, keras_out, check_writer):
    """What both Keras golden scripts do with the official model ``build()`` returns: assign ``arrays`` in file order,
    predict ``x`` (batch of one); with ``keras_out`` also ``model.save`` it there as ``<name>.hdf5``; with
    ``check_writer`` require :func:`check_loads_into` a second ``build()`` to give the same output. Returns the
    prediction's item 0."""
    net = build()
    assign_in_file_order(net, manifest, arrays)
    out = net.predict(x, batch_size=1, verbose=0)[0]
    if keras_out is not None:
        keras_out.mkdir(parents=True, exist_ok=True)
        net.save(keras_out / f"{name}.hdf5", save_format="h5")
    if check_writer:
        diff = check_loads_into(build(), net, manifest, arrays, x)
        print(f"{name}: keras_writer file -> official load_weights: weights identical, max |output diff| {diff}")
        assert diff == 0.0
    return out


# ----------------------------------------------------------------------------------------------------------
# Caller side (the suite's interpreter, which has no TensorFlow): run this script in one that has
# ----------------------------------------------------------------------------------------------------------

TF_PYTHON_ENV = "K3DN_TF_PYTHON"


def tf_python() -> str | None:
    """The interpreter that runs this script: ``$K3DN_TF_PYTHON`` if set, else the current one if it has
    TensorFlow, else None."""
    import importlib.util
    import sys

    if os.environ.get(TF_PYTHON_ENV):
        return os.environ[TF_PYTHON_ENV]
    return sys.executable if importlib.util.find_spec("tensorflow") is not None else None


def write_with(python: str, manifest_path, arrays: list[np.ndarray], out, timeout: float = 900) -> Path:
    """Run this script under ``python`` to save ``arrays`` as ``out``; the arrays travel in an ``.npz`` next to
    ``out`` (deleted afterwards). Raises with the end of its stderr if it fails."""
    import subprocess

    out = Path(out)
    npz = out.with_name(out.name + ".tensors.npz")
    np.savez(npz, *arrays)
    try:
        r = subprocess.run(
            [python, str(Path(__file__).resolve()), str(manifest_path), str(npz), str(out)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""},
        )
    finally:
        npz.unlink(missing_ok=True)
    if r.returncode != 0 or not out.is_file():
        raise RuntimeError(f"{python} {Path(__file__).name} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("manifest", type=Path, help="baselines/weight_manifests/<name>.json")
    p.add_argument("tensors", type=Path, help=".npz with arr_0 ... arr_N in manifest tensor order")
    p.add_argument("out", type=Path, help="HDF5 file to write")
    a = p.parse_args()
    manifest = json.loads(a.manifest.read_text())
    with np.load(a.tensors) as z:
        arrays = [z[f"arr_{i}"] for i in range(len(z.files))]
    write(manifest, arrays, a.out)


if __name__ == "__main__":
    main()
