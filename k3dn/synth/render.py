"""Layered dual-pixel rendering with occlusion.

The scene is cut into depth layers (pixels with similar signed CoC). Layers are composited back to front
(far to near; with this package's sign convention the CoC grows with depth, so in descending CoC), and each
layer's premultiplied colour ``I · α`` and its coverage ``α`` are blurred with that layer's left / right /
combined PSF before an *over* composite::

    acc_rgb ← acc_rgb · (1 − α ⊛ K) + (I · α) ⊛ K
    acc_α   ← acc_α   · (1 − α ⊛ K) + α ⊛ K

and the result is ``acc_rgb / acc_α``. Unlike a per-pixel kernel, this lets a blurred near object spill over
a sharp background while a sharp near object stays sharp over a blurred background (the background's kernel
never reaches into it). The final division removes the dark fringe that plain over-compositing leaves
behind a sharp occluder, where the background layer has a hole (its colour behind the occluder is unknown;
the normalisation fills it with the visible background's mean, the usual choice in layered defocus
rendering). Where every layer is whole (``acc_α = 1``) the division changes nothing.

Convolutions are FFT-based, cropped to each layer's support (plus the kernel reach), with reflect padding at
the image border so intensity is not lost there. An in-focus layer (delta PSF) is copied, not convolved, so
an all-in-focus scene renders to exactly its input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from k3dn.synth.psf import half_aperture_psfs

_EPS = 1e-8


@dataclass
class DPViews:
    """Rendered views, float32 ``(H, W, C)``; ``coc`` is the per-pixel CoC actually used (layer values)."""

    left: np.ndarray
    right: np.ndarray
    center: np.ndarray
    coc: np.ndarray


def quantise_coc(coc_map: np.ndarray, n_layers: int) -> tuple[np.ndarray, np.ndarray]:
    """Split a CoC map into at most ``n_layers`` equal-width CoC bins.

    Returns ``(labels, layer_coc)``: an int map into ``layer_coc``, the mean CoC of each non-empty bin (so a
    constant map keeps its exact value, and an in-focus scene stays exactly in focus).
    """
    c = np.asarray(coc_map, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"CoC map must be 2-D, got shape {c.shape}")
    if not np.all(np.isfinite(c)):
        raise ValueError("CoC map contains NaN or inf")
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    lo, hi = float(c.min()), float(c.max())
    if hi - lo < 1e-9 or n_layers == 1:
        bins = np.zeros(c.shape, dtype=np.int64)
    else:
        bins = np.minimum(((c - lo) / (hi - lo) * n_layers).astype(np.int64), n_layers - 1)
    used, labels = np.unique(bins, return_inverse=True)
    labels = labels.reshape(c.shape)
    sums = np.bincount(labels.ravel(), weights=c.ravel(), minlength=len(used))
    counts = np.bincount(labels.ravel(), minlength=len(used))
    return labels, sums / counts


def _conv_roi(padded: np.ndarray, kernels, pad: int, H: int, W: int):
    """Convolve the (reflect-padded) stack with each kernel, over the support of its non-zero part only.

    Returns ``(y0, y1, x0, x1, [outputs])``: the window of the unpadded image that can be non-zero and the
    convolution results on it.
    """
    support = np.any(padded[..., -1] != 0, axis=1), np.any(padded[..., -1] != 0, axis=0)
    rows, cols = np.flatnonzero(support[0]), np.flatnonzero(support[1])
    r0, r1, c0, c1 = rows[0], rows[-1], cols[0], cols[-1]
    sub = padded[r0 : r1 + 1, c0 : c1 + 1]
    k = kernels[0].shape[0]
    shape = (sfft.next_fast_len(sub.shape[0] + k - 1, real=True), sfft.next_fast_len(sub.shape[1] + k - 1, real=True))
    spec = sfft.rfft2(sub, s=shape, axes=(0, 1), workers=-1)
    # output pixel i of the unpadded image = full-convolution index i + 2*pad - r0
    y0, y1 = max(0, r0 - 2 * pad), min(H, r1 + 1)
    x0, x1 = max(0, c0 - 2 * pad), min(W, c1 + 1)
    outs = []
    for ker in kernels:
        kspec = sfft.rfft2(ker.astype(sub.dtype), s=shape, workers=-1)
        full = sfft.irfft2(spec * kspec[..., None], s=shape, axes=(0, 1), workers=-1)
        outs.append(full[y0 + 2 * pad - r0 : y1 + 2 * pad - r0, x0 + 2 * pad - c0 : x1 + 2 * pad - c0])
    return y0, y1, x0, x1, outs


def render_layers(
    image: np.ndarray, labels: np.ndarray, layer_coc, kind: str = "disk", *, order=None, dtype=np.float64, **kernel_kw
) -> DPViews:
    """Render DP left/right/combined views of ``image`` (H, W, C) from a layer map.

    ``labels`` (H, W) indexes ``layer_coc`` (signed CoC diameter per layer, pixels). ``order``: layer indices
    from far to near (default: descending CoC). ``kernel_kw`` goes to
    :func:`k3dn.synth.psf.half_aperture_psfs` (``order`` of the Butterworth kernel is ``bw_order`` here).
    """
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3:
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {img.shape}")
    H, W, C = img.shape
    labels = np.asarray(labels)
    if labels.shape != (H, W):
        raise ValueError(f"label map shape {labels.shape} does not match the image {img.shape[:2]}")
    layer_coc = np.asarray(layer_coc, dtype=np.float64).ravel()
    if labels.size and (labels.min() < 0 or labels.max() >= len(layer_coc)):
        raise ValueError("label map refers to layers outside layer_coc")
    if order is None:
        order = np.argsort(-layer_coc, kind="stable")
    if "bw_order" in kernel_kw:
        kernel_kw["order"] = kernel_kw.pop("bw_order")

    img = img.astype(dtype, copy=False)
    acc = np.zeros((3, H, W, C + 1), dtype=dtype)  # views L, R, C; last channel = alpha
    present = np.bincount(labels.ravel(), minlength=len(layer_coc)) > 0
    for li in order:
        if not present[li]:
            continue
        mask = (labels == li).astype(dtype)
        stack = np.concatenate([img * mask[..., None], mask[..., None]], axis=-1)
        kl, kr, kc = half_aperture_psfs(float(layer_coc[li]), kind=kind, **kernel_kw)
        if kl.shape[0] == 1:
            a = mask[..., None]
            for v in range(3):
                acc[v] = acc[v] * (1.0 - a) + stack
            continue
        pad = kl.shape[0] // 2
        padded = np.pad(stack, ((pad, pad), (pad, pad), (0, 0)), mode="symmetric")
        y0, y1, x0, x1, outs = _conv_roi(padded, (kl, kr, kc), pad, H, W)
        for v, out in enumerate(outs):
            a = np.clip(out[..., -1:], 0.0, 1.0)
            win = acc[v, y0:y1, x0:x1]
            acc[v, y0:y1, x0:x1] = win * (1.0 - a) + out
    views = [acc[v, ..., :C] / np.maximum(acc[v, ..., C:], _EPS) for v in range(3)]
    views = [np.clip(x, 0.0, None).astype(np.float32) for x in views]
    return DPViews(views[0], views[1], views[2], layer_coc[labels].astype(np.float32))


def render_dp(image: np.ndarray, coc_map: np.ndarray, n_layers: int = 16, kind: str = "disk", **kernel_kw) -> DPViews:
    """Render DP views from a continuous signed CoC map, quantised into ``n_layers`` layers."""
    labels, layer_coc = quantise_coc(coc_map, n_layers)
    return render_layers(image, labels, layer_coc, kind=kind, **kernel_kw)
