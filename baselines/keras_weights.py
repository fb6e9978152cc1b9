"""Keras / TensorFlow / TensorLayer semantics shared by the DPDNet, RDPD and KPAC ports.

Three things differ between those frameworks and PyTorch and the published weights depend on all of them:

* **Padding.** TF/Keras ``padding='same'`` pads ``total = max((ceil(n/s) - 1) * s + k_eff - n, 0)`` per axis
  and puts the odd pixel *after* (bottom/right): a 2x2 stride-1 conv pads (0, 1), a 3x3 stride-2 conv on an
  even size pads (0, 1); PyTorch's ``padding=`` is always symmetric. :class:`SameConv2d` and
  :class:`SameConvTranspose2d` compute TF's split for the actual input size at every call.
* **Kernel layout.** TF conv kernels are ``[kh, kw, in, out]`` and ``conv2d_transpose`` kernels
  ``[kh, kw, out, in]``; PyTorch wants ``[out, in, kh, kw]`` and ``[in, out, kh, kw]``. Both are the same
  axis permutation ``(3, 2, 0, 1)`` (:func:`tf_kernel_to_torch`).
* **Which array goes where.** Keras ``load_weights`` is topological: the i-th layer *with weights* in the
  file's ``layer_names`` attribute feeds the i-th layer with weights of the model, its arrays in the order of
  that layer group's ``weight_names``; dataset names are ignored (:func:`keras_weighted_layers`).
  TensorLayer ``.npz`` files are one positional list (:func:`positional_state_dict`).

Every converter checks counts and shapes and raises :class:`k3dn.checkpoint.CheckpointMismatch` naming the
file's tensor and our key.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from k3dn.checkpoint import CheckpointMismatch

__all__ = [
    "tf_same_padding",
    "SameConv2d",
    "SameConvTranspose2d",
    "tf_kernel_to_torch",
    "hard_sigmoid",
    "keras_weighted_layers",
    "keras_state_dict",
    "positional_state_dict",
]


# ----------------------------------------------------------------------------------------------------------
# TF 'same' padding
# ----------------------------------------------------------------------------------------------------------


def tf_same_padding(size: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """(before, after) zero padding of TF ``padding='SAME'`` along one axis of length ``size``."""
    eff = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TF/Keras ``padding='same'`` (asymmetric where TF is), any stride and dilation."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, dilation: int = 1, bias: bool = True
    ):
        super().__init__(in_ch, out_ch, kernel_size, stride=stride, dilation=dilation, padding=0, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return same_conv2d(x, self.weight, self.bias, self.stride[0], self.dilation[0])


class ConvReLU(SameConv2d):
    """Keras ``Conv2D(..., activation='relu', padding='same')`` (also inside ``TimeDistributed``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(super().forward(x))


class UpConv(ConvReLU):
    """``UpSampling2D(2)`` (nearest) then a 2x2 'same' conv with ReLU: the Keras U-nets' up path."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(in_ch, out_ch, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.interpolate(x, scale_factor=2, mode="nearest"))


def same_conv2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int = 1, dilation: int = 1
) -> torch.Tensor:
    kh, kw = weight.shape[-2:]
    top, bottom = tf_same_padding(x.shape[-2], kh, stride, dilation)
    left, right = tf_same_padding(x.shape[-1], kw, stride, dilation)
    if top == bottom and left == right:  # symmetric: let the conv pad, no copy of x
        return F.conv2d(x, weight, bias, stride, (top, left), dilation)
    return F.conv2d(F.pad(x, (left, right, top, bottom)), weight, bias, stride, 0, dilation)


class SameConvTranspose2d(nn.ConvTranspose2d):
    """``tf.nn.conv2d_transpose(..., padding='SAME')``: output = input * stride, i.e. the adjoint of a SAME
    conv from that output size. The full transposed conv is cropped by that conv's (before, after) padding;
    for k=4, s=2 this is ``ConvTranspose2d(k=4, s=2, p=1)``."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 2, bias: bool = True):
        super().__init__(in_ch, out_ch, kernel_size, stride=stride, padding=0, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, (kh, kw) = self.stride[0], self.kernel_size
        out_h, out_w = x.shape[-2] * s, x.shape[-1] * s
        top, bottom = tf_same_padding(out_h, kh, s)
        left, right = tf_same_padding(out_w, kw, s)
        if top == bottom and left == right:
            return F.conv_transpose2d(x, self.weight, self.bias, s, (top, left))
        full = F.conv_transpose2d(x, self.weight, self.bias, s, 0)
        return full[..., top : top + out_h, left : left + out_w]


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Keras 2.x / tf.keras <= 2.15 ``hard_sigmoid``: clip(0.2 x + 0.5, 0, 1) (Keras 3 changed the slope)."""
    return (0.2 * x + 0.5).clamp(0.0, 1.0)


# ----------------------------------------------------------------------------------------------------------
# Layouts
# ----------------------------------------------------------------------------------------------------------


def tf_kernel_to_torch(kernel: np.ndarray) -> torch.Tensor:
    """TF conv ``[kh,kw,in,out]`` -> ``[out,in,kh,kw]``; TF deconv ``[kh,kw,out,in]`` -> ``[in,out,kh,kw]``;
    rank-1 arrays (biases) pass through."""
    a = np.asarray(kernel)
    if a.ndim == 4:
        a = a.transpose(3, 2, 0, 1)
    elif a.ndim != 1:
        raise ValueError(f"expected a rank-4 kernel or a rank-1 bias, got shape {a.shape}")
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


# ----------------------------------------------------------------------------------------------------------
# Keras HDF5: topological order
# ----------------------------------------------------------------------------------------------------------


def _weights_group(raw) -> tuple[str, list[str]] | None:
    """(dataset path prefix, layer_names) from the file's attributes, as Keras' ``load_weights`` finds them:
    ``layer_names`` on the root (``save_weights`` files) or on ``model_weights`` (``model.save`` files)."""
    attrs = getattr(raw, "attrs", None) or {}
    for group, prefix in (("", ""), ("model_weights", "model_weights/")):
        names = attrs.get(group, {}).get("layer_names")
        if names is not None:
            return prefix, list(names)
    return None


def keras_weighted_layers(raw, manifest: dict) -> list[tuple[str, list[tuple[str, np.ndarray | None]]]]:
    """The file's layers that have weights, in Keras' topological order: ``[(layer, [(dataset, array|None)])]``.

    Order and weight names come from the HDF5 attributes ``layer_names`` and ``weight_names`` (as Keras reads
    them); a layer group without ``weight_names`` and a file without ``layer_names`` fall back to the
    manifest's ``keras_layers_with_weights_in_file_order``. ``None`` marks a listed dataset the file lacks.
    """
    from_manifest = {name: wn for name, wn in manifest["keras_layers_with_weights_in_file_order"]}
    found = _weights_group(raw)
    if found is None:
        prefix = manifest.get("key_prefix", "model_weights/")
        order = [(name, wn) for name, wn in manifest["keras_layers_with_weights_in_file_order"]]
    else:
        prefix, names = found
        order = []
        for name in names:
            wn = raw.attrs.get(prefix + name, {}).get("weight_names")
            if wn is None:
                wn = from_manifest.get(name, [])
            if len(wn):
                order.append((name, list(wn)))
    return [(name, [(f"{prefix}{name}/{w}", raw.get(f"{prefix}{name}/{w}")) for w in wn]) for name, wn in order]


def keras_state_dict(
    raw, manifest: dict, targets: Sequence[tuple[str, Sequence[str]]], own: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Map a Keras file onto our keys the way ``load_weights`` does: the i-th weighted layer of the file feeds
    ``targets[i] = (layer label, [our key for each of its weights, in weight_names order])``.

    Every array is converted with :func:`tf_kernel_to_torch` and its shape checked against ``own`` (our
    state dict); all missing, surplus and mis-shaped tensors are reported together.
    """
    source = getattr(raw, "source", "") or manifest.get("checkpoint_file", "Keras HDF5")
    layers = keras_weighted_layers(raw, manifest)
    sd, missing, unexpected, misshaped = {}, [], [], []
    for i in range(max(len(layers), len(targets))):
        if i >= len(targets):
            unexpected += [path for path, _ in layers[i][1]]
            continue
        label, keys = targets[i]
        if i >= len(layers):
            missing += [f"{k} (no {i + 1}-th weighted layer in the file for {label})" for k in keys]
            continue
        name, arrays = layers[i]
        if len(arrays) != len(keys):
            missing += [
                f"{k} (file layer {name} has {len(arrays)} weights, {label} needs {len(keys)})"
                for k in keys[len(arrays) :]
            ]
            unexpected += [path for path, _ in arrays[len(keys) :]]
        for (path, arr), key in zip(arrays, keys):
            if arr is None:
                missing.append(f"{key} <- {path} (listed in weight_names, absent from the file)")
                continue
            t = tf_kernel_to_torch(arr) if np.ndim(arr) in (1, 4) else torch.as_tensor(np.asarray(arr))
            if tuple(t.shape) != tuple(own[key].shape):
                misshaped.append((f"{key} <- {path}", tuple(own[key].shape), tuple(t.shape)))
                continue
            sd[key] = t
    if missing or unexpected or misshaped:
        raise CheckpointMismatch(source, missing, unexpected, misshaped)
    return sd


# ----------------------------------------------------------------------------------------------------------
# TensorLayer .npz: one positional list
# ----------------------------------------------------------------------------------------------------------


def positional_state_dict(
    raw, manifest: dict, own: dict[str, torch.Tensor], key: str = "params"
) -> dict[str, torch.Tensor]:
    """``raw[key][i]`` -> the i-th tensor of ``own`` (as TensorLayer's ``assign_params`` does), transposed
    with :func:`tf_kernel_to_torch`; count and every shape are checked, naming ``params[i]``, the TF variable
    the manifest records for that position and our key."""
    source = getattr(raw, "source", "") or manifest.get("checkpoint_file", "TensorLayer npz")
    if not isinstance(raw, dict) or key not in raw:
        raise CheckpointMismatch(
            source,
            [f"{key!r} (TensorLayer save_npz list)"],
            sorted(map(str, raw)) if isinstance(raw, dict) else [type(raw).__name__],
            [],
        )
    arrays, keys = list(raw[key]), list(own)
    tf_names = [t[0] for t in manifest["tensors"]]

    def label(i):
        return f"{key}[{i}] ({tf_names[i] if i < len(tf_names) else '?'})"

    sd, missing, unexpected, misshaped = {}, [], [], []
    for i, (arr, k) in enumerate(zip(arrays, keys)):
        t = tf_kernel_to_torch(arr)
        if tuple(t.shape) != tuple(own[k].shape):
            misshaped.append((f"{k} <- {label(i)}", tuple(own[k].shape), tuple(t.shape)))
        else:
            sd[k] = t
    missing += [
        f"{k} <- {label(i)} (file has only {len(arrays)} arrays)" for i, k in enumerate(keys) if i >= len(arrays)
    ]
    unexpected += [f"{key}[{i}] shape {tuple(np.shape(a))}" for i, a in enumerate(arrays) if i >= len(keys)]
    if missing or unexpected or misshaped:
        raise CheckpointMismatch(source, missing, unexpected, misshaped)
    return sd
