"""Weights in and out: ``safetensors`` for the suite's own, strict loading for published ones.

Published checkpoints arrive in their authors' containers (a ``{'params': sd}`` dict, a ``module.`` prefix,
Keras HDF5, a TensorLayer ``.npz`` list). :func:`read_foreign` opens the container safely; each model's
``checkpoint_filter_fn`` turns that into its own state dict; :func:`load_state_dict_strict` loads it
and, on any mismatch, names every missing, unexpected and mis-shaped tensor.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from k3dn.errors import UserError

_WEIGHT_SUFFIXES = (".pth", ".pt", ".pkl", ".pytorch", ".ckpt", ".hdf5", ".h5", ".npz")


class CheckpointError(UserError, RuntimeError):
    """A weights file that cannot be read (corrupt, truncated, not a checkpoint); the message names it."""


class UnsafeCheckpoint(CheckpointError):
    """A pickle that ``torch.load(weights_only=True)`` refuses: it would run code or build objects other than
    tensors and plain containers, or it is not a pickle of them at all."""


class CheckpointMismatch(UserError, RuntimeError):
    """Weights that do not fit the model; the message lists every missing, unexpected and mis-shaped tensor,
    :meth:`one_line` counts them and names the first of each."""

    def __init__(self, source, missing, unexpected, misshaped):
        self.source = str(source)
        self.missing, self.unexpected, self.misshaped = missing, unexpected, misshaped
        lines = [f"{source}: checkpoint does not match the model"]
        if missing:
            lines.append(
                f"  missing ({len(missing)}): " + ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")
            )
        if unexpected:
            lines.append(
                f"  unexpected ({len(unexpected)}): "
                + ", ".join(unexpected[:20])
                + (" ..." if len(unexpected) > 20 else "")
            )
        for k, want, got in misshaped[:20]:
            lines.append(f"  mis-shaped {k}: model {tuple(want)} vs checkpoint {tuple(got)}")
        super().__init__("\n".join(lines))

    def one_line(self) -> str:
        parts = [
            f"{len(self.missing)} missing (first {self.missing[0]})" if self.missing else "",
            f"{len(self.unexpected)} unexpected (first {self.unexpected[0]})" if self.unexpected else "",
        ]
        if self.misshaped:
            k, want, got = self.misshaped[0]
            parts.append(
                f"{len(self.misshaped)} mis-shaped (first {k}: model {tuple(want)} vs checkpoint {tuple(got)})"
            )
        return (
            f"{self.source}: checkpoint does not match the model: {', '.join(p for p in parts if p)}; are these "
            "the weights of another model or of other overrides? (--verbose lists every tensor)"
        )


def _refusal(path: Path, e: Exception, names: list[str] | None = None) -> UnsafeCheckpoint:
    """torch's several-paragraph refusal as one line: what it would not load (``names``, else the global torch
    names), and what to do."""
    what = re.search(r"GLOBAL ([\w.]+)", str(e))
    named = ", ".join(names) if names else what.group(1) if what else None
    why = f"it names {named}" if named else "it holds more than plain tensors, or is not a pickle at all"
    return UnsafeCheckpoint(
        f"{path}: refuses to unpickle code (not a plain tensor checkpoint: {why}); only load "
        "files you trust, and if you trust this one, convert it once to plain tensors (a state "
        "dict saved with torch.save, or .safetensors)"
    )


# What a training framework pickles beside the weights to record its configuration: PyTorch Lightning's
# ``hyper_parameters`` as an omegaconf ``DictConfig`` (with ``typing.Any`` and builtin types as values, and
# ``defaultdict``s inside), or Lightning's ``AttributeDict``. A checkpoint that names only these is read with each
# of them replaced by :class:`ConfigPlaceholder`: the weights beside them are plain tensors, and no code of theirs
# is imported or run. Any other global is still refused.
_CONFIG_GLOBAL = re.compile(
    r"omegaconf(\.[\w.]+)?|typing\.\w+|collections\.defaultdict"
    r"|(pytorch_lightning\.utilities\.parsing|lightning\.fabric\.utilities\.data)\.AttributeDict"
)
_BUILTIN_TYPES = {f"builtins.{t.__name__}": t for t in (bool, int, float, complex, str, bytes, list, dict, tuple, set)}


class ConfigPlaceholder(dict):
    """Stands in for an object of a configuration class a checkpoint names (``omegaconf.DictConfig``, ...): it
    keeps what unpickling hands it (``args``, ``state``, items) and runs none of that class's code."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.args = args

    def __setstate__(self, state):
        self.state = state


def _load_with_config_placeholders(path: Path, refused: Exception):
    """``torch.load(weights_only=True)`` once more, with the configuration globals the file names mapped to
    :class:`ConfigPlaceholder` (builtin types to themselves); refused when it names anything else."""
    if not hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint"):  # both APIs came with torch 2.6
        raise UnsafeCheckpoint(
            f"{path}: holds more than plain tensors (e.g. a Lightning run's configuration); reading it without "
            f"running its code needs torch >= 2.6, this is {torch.__version__}"
        ) from refused
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except (ValueError, RuntimeError):  # not torch.save's zip container (a bare pickle): refused as it is
        raise _refusal(path, refused) from refused
    other = [n for n in names if n not in _BUILTIN_TYPES and not _CONFIG_GLOBAL.fullmatch(n)]
    if not names or other:
        raise _refusal(path, refused, other) from refused
    stand_ins = [_BUILTIN_TYPES.get(n) or (ConfigPlaceholder, n) for n in names]
    with torch.serialization.safe_globals(stand_ins):
        return torch.load(path, map_location="cpu", weights_only=True)


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


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds NumPy arrays and nothing else (``np.load(allow_pickle=True)`` would call whatever the pickle
    names, so an ``.npz`` could run code)."""

    _ALLOWED = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
        }
    )

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"unsupported GLOBAL {module}.{name}")
        return super().find_class(module, name)


def _npz_member(z, key: str) -> np.ndarray:
    """Member ``key`` of an open ``.npz``; an object array is unpickled by :class:`_ArrayUnpickler` only."""
    from numpy.lib import format as npformat

    with z.zip.open(f"{key}.npy") as f:
        version = npformat.read_magic(f)
        read_header = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
        dtype = read_header(f)[2]
        if dtype.hasobject:
            return np.asarray(_ArrayUnpickler(f, encoding="latin1").load())
    return z[key]


def read_foreign(path: str | os.PathLike):
    """Open a published checkpoint without executing code from it.

    ``.pth/.pt/.pkl/.pytorch/.ckpt`` -> ``torch.load(weights_only=True)`` (whatever container it holds; a
    Lightning checkpoint's configuration objects come back as :class:`ConfigPlaceholder`);
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
            with np.load(path, allow_pickle=False) as z:
                out = ForeignWeights(source=path)
                for k in z.files:
                    v = _npz_member(z, k)
                    if v.dtype == object:
                        v = [np.asarray(a) for a in v]
                        if any(a.dtype == object for a in v):
                            raise ValueError(f"key {k!r} holds nested objects, not arrays")
                    out[k] = v
                return out
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            return _load_with_config_placeholders(path, e)
    except UnsafeCheckpoint:
        raise
    except pickle.UnpicklingError as e:
        raise _refusal(path, e) from e
    except (OSError, RuntimeError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CheckpointError(
            f"{path}: cannot read checkpoint ({type(e).__name__}: {first}); the file may be "
            "incomplete or not a checkpoint: compare its size or sha256 with the published one"
        ) from e


def strip_prefix(state_dict: dict, prefix: str) -> dict:
    """Drop ``prefix`` from every key that has it (``module.`` from DataParallel, ...)."""
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state_dict.items()}


def load_state_dict_strict(model: nn.Module, state_dict: dict, source="checkpoint") -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    misshaped = [
        (k, own[k].shape, tuple(state_dict[k].shape))
        for k in own
        if k in state_dict and tuple(own[k].shape) != tuple(state_dict[k].shape)
    ]
    if missing or unexpected or misshaped:
        raise CheckpointMismatch(source, missing, unexpected, misshaped)
    model.load_state_dict({k: torch.as_tensor(v) for k, v in state_dict.items()}, strict=True)


def load_published(model: nn.Module, path: str | os.PathLike, filter_fn=None) -> nn.Module:
    """Load a published checkpoint into ``model`` through ``filter_fn(state_dict, model)``; by default the
    ``checkpoint_filter_fn`` registered with the model's name (:func:`k3dn.registry.register_model`)."""
    from k3dn.registry import checkpoint_filter

    raw = read_foreign(path)
    if filter_fn is None and hasattr(model, "registry_name"):
        filter_fn = checkpoint_filter(model.registry_name)
    sd = filter_fn(raw, model) if filter_fn is not None else raw
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
    try:
        sd = load_file(str(path))
    except Exception as e:  # safetensors' own error type; a file that is not whole is the usual cause
        raise CheckpointError(f"{path}: cannot read safetensors weights ({e}); is the file complete?") from e
    load_state_dict_strict(model, sd, source=path)
    return model
