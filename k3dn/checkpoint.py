"""Weights in and out: ``safetensors`` for the suite's own, strict loading for published ones.

Published checkpoints arrive in their authors' containers (a ``{'params': sd}`` dict, a ``module.`` prefix,
Keras HDF5, a TensorLayer ``.npz`` list). :func:`read_foreign` opens the container safely; each model's
``checkpoint_filter_fn`` turns that into its own state dict; :func:`load_state_dict_strict` loads it
and, on any mismatch, names every missing, unexpected and mis-shaped tensor.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn


_WEIGHT_SUFFIXES = (".pth", ".pt", ".pkl", ".pytorch", ".ckpt", ".hdf5", ".h5", ".npz")


class CheckpointMismatch(RuntimeError):
    def __init__(self, source, missing, unexpected, misshaped):
        self.missing, self.unexpected, self.misshaped = missing, unexpected, misshaped
        lines = [f"{source}: checkpoint does not match the model"]
        if missing:
            lines.append(f"  missing ({len(missing)}): " + ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else ""))
        if unexpected:
            lines.append(f"  unexpected ({len(unexpected)}): " + ", ".join(unexpected[:20])
                         + (" ..." if len(unexpected) > 20 else ""))
        for k, want, got in misshaped[:20]:
            lines.append(f"  mis-shaped {k}: model {tuple(want)} vs checkpoint {tuple(got)}")
        super().__init__("\n".join(lines))


class ForeignWeights(dict):
    """What :func:`read_foreign` returns for HDF5 and ``.npz`` files: a plain ``{name: ndarray}`` dict that
    also remembers ``source`` (the file, for error messages) and, for HDF5, ``attrs``: the attributes of
    every group, ``{group path ('' = root): {attr: value}}``, with byte strings decoded to ``str`` and
    Keras' chunked attributes (``layer_names0``, ``layer_names1``, ...) joined back into one list.
    Keras' ``load_weights`` is topological: it matches layers by the ``layer_names`` / ``weight_names``
    attributes, not by dataset names, so a loader needs them.
    """

    def __init__(self, data=(), source: str = "", attrs: dict | None = None):
        super().__init__(data)
        self.source = str(source)
        self.attrs = attrs or {}


def _decode_attr(v):
    if isinstance(v, bytes):
        return v.decode("utf8")
    if isinstance(v, np.ndarray) and v.dtype.kind in ("S", "O", "U"):
        return [x.decode("utf8") if isinstance(x, bytes) else str(x) for x in v.tolist()]
    if isinstance(v, np.ndarray) and v.size == 0:
        return []  # Keras writes an empty weight_names list as an empty float array
    return v


def _group_attrs(group) -> dict:
    raw = {k: _decode_attr(group.attrs[k]) for k in group.attrs.keys()}
    out = {}
    for k, v in raw.items():
        # Keras splits attributes over 64 KB into name0, name1, ... (save_attributes_to_hdf5_group)
        base = k.rstrip("0123456789")
        if base != k and base not in raw and f"{base}0" in raw:
            if base not in out:
                chunks, i = [], 0
                while f"{base}{i}" in raw:
                    chunks.extend(raw[f"{base}{i}"])
                    i += 1
                out[base] = chunks
            continue
        out[k] = v
    return out


def read_foreign(path: str | os.PathLike):
    """Open a published checkpoint without executing code from it.

    ``.pth/.pt/.pkl/.pytorch/.ckpt`` -> ``torch.load(weights_only=True)`` (whatever container it holds);
    a folder -> ``{file stem: contents}`` of the weight files in it (methods published as several files);
    ``.hdf5/.h5`` -> :class:`ForeignWeights` ``{dataset path: ndarray}`` of the weight datasets (Keras), with
    every group's attributes in ``.attrs``; a compiled Keras model's ``optimizer_weights`` group (Adam
    moments: training state, up to twice the model's size) is skipped;
    ``.npz`` -> :class:`ForeignWeights` ``{key: ndarray}``; TensorLayer's positional ``params`` object array
    needs pickle, so it is only unpickled from a NumPy container and only into a list of plain arrays.
    """
    path = Path(path)
    if path.is_dir():
        # A method published as several files (DDDNet: Estd.pkl + Esti.pkl): {file stem (lower case): contents}.
        parts = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in _WEIGHT_SUFFIXES)
        if not parts:
            raise FileNotFoundError(f"{path}: no checkpoint files in this folder")
        return {p.stem.lower(): read_foreign(p) for p in parts}
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    suffix = path.suffix.lower()
    try:
        if suffix in (".hdf5", ".h5"):
            import h5py

            out = ForeignWeights(source=path)

            def visit(name, obj):
                if name == "optimizer_weights" or name.startswith("optimizer_weights/"):
                    return
                if isinstance(obj, h5py.Dataset):
                    out[name] = obj[()]
                else:
                    out.attrs[name] = _group_attrs(obj)

            with h5py.File(path, "r") as f:
                out.attrs[""] = _group_attrs(f)
                f.visititems(visit)
            return out
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                try:
                    return ForeignWeights({k: z[k] for k in z.files}, source=path)
                except ValueError:  # object array: TensorLayer's save_npz list
                    pass
            with np.load(path, allow_pickle=True) as z:
                out = ForeignWeights(source=path)
                for k in z.files:
                    v = z[k]
                    if v.dtype == object:
                        v = [np.asarray(a) for a in v]
                        if any(a.dtype == object for a in v):
                            raise ValueError(f"key {k!r} holds nested objects, not arrays")
                    out[k] = v
                return out
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, KeyError, EOFError) as e:
        raise RuntimeError(f"{path}: cannot read checkpoint ({type(e).__name__}: {e})") from e


def strip_prefix(state_dict: dict, prefix: str) -> dict:
    """Drop ``prefix`` from every key that has it (``module.`` from DataParallel, ...)."""
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state_dict.items()}


def load_state_dict_strict(model: nn.Module, state_dict: dict, source="checkpoint") -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    misshaped = [(k, own[k].shape, tuple(state_dict[k].shape)) for k in own
                 if k in state_dict and tuple(own[k].shape) != tuple(state_dict[k].shape)]
    if missing or unexpected or misshaped:
        raise CheckpointMismatch(source, missing, unexpected, misshaped)
    model.load_state_dict({k: torch.as_tensor(v) for k, v in state_dict.items()}, strict=True)


def load_published(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a published checkpoint into ``model`` through its ``checkpoint_filter_fn``."""
    raw = read_foreign(path)
    filt = getattr(model, "checkpoint_filter_fn", None)
    sd = filt(raw) if filt is not None else raw
    load_state_dict_strict(model, sd, source=path)
    return model


def save_weights(model_or_sd, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write weights as safetensors, atomically (temp file + rename)."""
    from safetensors.torch import save_file

    sd = model_or_sd.state_dict() if isinstance(model_or_sd, nn.Module) else model_or_sd
    sd = {k: v.detach().contiguous().cpu() for k, v in sd.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(sd, str(tmp), metadata={k: str(v) for k, v in (metadata or {}).items()})
    os.replace(tmp, path)
    return path


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load the suite's own safetensors weights (strict), or a published file via :func:`load_published`."""
    path = Path(path)
    if path.suffix != ".safetensors":
        return load_published(model, path)
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights not found")
    load_state_dict_strict(model, load_file(str(path)), source=path)
    return model
