"""The published checkpoints' tensor manifests (names, shapes, counts), shipped with the package.

Facts only, derived from the official code at pinned commits (see ``manifests/README.md``). Tests and
``k3dn baselines verify`` use them to check that our networks load the published files strictly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

MANIFEST_DIR = Path(__file__).parent


def load_manifest(name: str) -> dict:
    path = MANIFEST_DIR / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint manifest")
    return json.loads(path.read_text())


def manifest_names() -> list[str]:
    return sorted(p.stem for p in MANIFEST_DIR.glob("*.json"))


def random_tensors(manifest: dict, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """(name, random array) for every tensor of the manifest, in file order and with its exact shape."""
    rng = np.random.default_rng(seed)
    out = []
    for name, shape, *rest in manifest["tensors"]:
        dtype = np.dtype(rest[0]) if rest and rest[0] and "int" in str(rest[0]) else np.float32
        arr = (
            rng.integers(0, 3, size=shape).astype(dtype)
            if np.issubdtype(dtype, np.integer)
            else (rng.standard_normal(shape) * 0.02).astype(np.float32)
        )
        out.append((name, arr))
    return out


def random_views(seed: int, height: int, width: int) -> dict[str, np.ndarray]:
    """Seeded left, right and centre views, float32 (H, W, 3) RGB in [0, 1]: the inputs of the golden-output
    fixtures (``tests/fixtures/golden``), regenerated from the seed by the scripts and the tests alike."""
    rng = np.random.default_rng(seed)
    return {view: rng.random((height, width, 3), dtype=np.float32) for view in ("left", "right", "center")}


def random_torch_state_dict(manifest: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in random_tensors(manifest, seed)}


def _torch_container(manifest: dict, sd: dict) -> dict:
    """Wrap ``sd`` the way the published file wraps it (per the manifest's ``container`` text)."""
    container = manifest.get("container", "")
    if container.startswith("torch.save dict {'params'"):
        return {"params": sd}
    if (
        "{'state_dict'" in container
        or "{'epoch', 'state_dict'" in container
        or "{'epoch': int, 'state_dict'" in container
    ):
        return {"epoch": 1, "state_dict": sd}
    return sd


def keras_layer_names(manifest: dict) -> list[str]:
    """The ``layer_names`` attribute a Keras full-model file of ``manifest`` carries: every layer of
    ``model.layers``, with and without weights. Exact where the manifest spells the interleaved order out
    (``layer_names_attr_order_note``); otherwise the weighted layers in file order followed by the weightless
    ones (their positions are not recorded; Keras' topological loader skips them either way)."""
    weighted = [name for name, _ in manifest["keras_layers_with_weights_in_file_order"]]
    note = manifest.get("layer_names_attr_order_note", "")
    if "order:" in note:
        names = [n.strip() for n in note.split("order:", 1)[1].split(",")]
        if [n for n in names if n in set(weighted)] == weighted:
            return names
    return weighted + [n for n in manifest.get("weightless_layers_in_layer_names", []) if n not in weighted]


def _write_keras_hdf5(manifest: dict, tensors, path) -> None:
    """A Keras ``model.save`` HDF5 as ``keras.engine.saving`` lays it out: root attrs ``keras_version`` and
    ``backend``; group ``model_weights`` with attr ``layer_names`` (bytes, all layers) and one group per layer
    with attr ``weight_names`` (bytes; an empty float array for weightless layers, as ``np.asarray([])``
    gives), datasets at ``model_weights/<layer>/<weight name>``; plus a small ``optimizer_weights`` group,
    which a loader must ignore."""
    import h5py

    prefix = manifest.get("key_prefix", "model_weights/")
    data = dict(tensors)
    weights_of = {name: wn for name, wn in manifest["keras_layers_with_weights_in_file_order"]}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.2.4"
        f.attrs["backend"] = b"tensorflow"
        g = f.create_group(prefix.rstrip("/"))
        names = keras_layer_names(manifest)
        g.attrs["layer_names"] = np.array([n.encode("utf8") for n in names])
        for layer in names:
            lg = g.create_group(layer)
            wn = weights_of.get(layer, [])
            lg.attrs["weight_names"] = np.array([w.encode("utf8") for w in wn]) if wn else np.asarray([])
            for w in wn:
                key = f"{prefix}{layer}/{w}"
                if key not in data:
                    raise KeyError(f"{manifest['method']}: manifest lists weight {w} of {layer} but no tensor {key}")
                lg.create_dataset(w, data=data.pop(key))
        if data:
            raise KeyError(f"{manifest['method']}: tensors outside any listed layer: {sorted(data)[:5]}")
        opt = f.create_group("optimizer_weights")
        opt.attrs["weight_names"] = np.array([b"Adam/iterations:0"])
        opt.create_dataset("Adam/iterations:0", data=np.int64(1000))


def write_fake_checkpoint(name: str, path, seed: int = 0, include_training_only: bool = True):
    """Write a random-weight file in the *published* container of manifest ``name``.

    Used by tests (strict-load checks without the real files) and by the miniature run, whose baseline
    rows are therefore clearly random-weight. PyTorch -> ``torch.save``; Keras -> HDF5 datasets at the
    manifest's paths; TensorLayer -> ``np.savez(params=<object array>)``, positional.
    """
    import os

    manifest = load_manifest(name)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tensors = random_tensors(manifest, seed)
    fw = manifest["framework"]
    if fw == "pytorch":
        sd = {k: torch.from_numpy(v) for k, v in tensors}
        if include_training_only:
            for k, shape, *_ in manifest.get("training_only_tensors", []):
                sd[k] = torch.zeros(shape)
        with open(tmp, "wb") as f:
            torch.save(_torch_container(manifest, sd), f)
    elif fw == "keras":
        _write_keras_hdf5(manifest, tensors, tmp)
    elif fw == "tensorlayer":
        arr = np.empty(len(tensors), dtype=object)
        arr[:] = [v for _, v in tensors]
        with open(tmp, "wb") as f:
            np.savez(f, params=arr)
    else:
        raise ValueError(f"{name}: unknown framework {fw!r}")
    os.replace(tmp, path)
    return path
