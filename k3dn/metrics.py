"""Per-image PSNR / SSIM / RMSE / MAE under the DPDD convention (as the official evaluation code computes them).

The convention, pinned:

* images are float in [0, 1], ``data_range = 1``, computed in float64;
* PSNR = ``10 * log10(1 / MSE)`` with the MSE over all pixels *and* channels; identical images give
  ``+inf`` (explicitly, not DPDNet's bare ``100`` and not a division warning);
* SSIM = scikit-image ``structural_similarity(x, y, data_range=1, channel_axis=-1)``: uniform 7x7 window,
  K1 = 0.01, K2 = 0.03, sample covariance (49/48), mean of the SSIM map after cropping ``win // 2 = 3`` px,
  averaged over channels (= mean of per-channel SSIMs);
* RMSE = ``sqrt(MSE)``; MAE = mean ``|x - y|`` over pixels and channels (= sklearn's per-channel MAE averaged).

:func:`image_metrics` (numpy / scikit-image) is **the reference**. :func:`batch_metrics` is a batched torch
implementation (CPU or CUDA) of the same formulas, checked against the reference in
``tests/test_metrics_parity.py`` (PSNR to 1e-6 dB, SSIM to 1e-5); it runs in float64 by default.

Images are ``(H, W, C)`` (or ``(H, W)``) numpy arrays for the reference, ``(B, C, H, W)`` tensors for the
torch path; single-channel images are supported by both. Every metrics row produced by
:func:`metric_row` carries the reading protocol that produced its inputs.
"""

from __future__ import annotations

import math

import numpy as np

METRICS = ("psnr", "ssim", "rmse", "mae")
SSIM_WIN = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _as_pair(pred, target) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(pred, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"prediction {x.shape} and target {y.shape} differ in shape")
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    if x.ndim != 3:
        raise ValueError(f"expected (H, W) or (H, W, C) images, got shape {x.shape}")
    return x, y


def mse(pred, target) -> float:
    x, y = _as_pair(pred, target)
    return float(np.mean((x - y) ** 2))


def psnr_from_mse(m: float) -> float:
    """``10 log10(1 / m)``; ``+inf`` for ``m == 0`` (identical images)."""
    return math.inf if m == 0 else float(10.0 * np.log10(1.0 / m))


def psnr(pred, target) -> float:
    return psnr_from_mse(mse(pred, target))


def rmse(pred, target) -> float:
    return math.sqrt(mse(pred, target))


def mae(pred, target) -> float:
    x, y = _as_pair(pred, target)
    return float(np.mean(np.abs(x - y)))


def ssim(pred, target) -> float:
    """scikit-image SSIM, DPDD convention (uniform 7x7, data_range 1, mean over channels), float64."""
    from skimage.metrics import structural_similarity

    x, y = _as_pair(pred, target)
    return float(
        structural_similarity(
            x,
            y,
            data_range=1.0,
            channel_axis=-1,
            win_size=SSIM_WIN,
            K1=SSIM_K1,
            K2=SSIM_K2,
            gaussian_weights=False,
            use_sample_covariance=True,
        )
    )


def image_metrics(pred, target) -> dict:
    """The reference per-image metrics: ``{"psnr", "ssim", "rmse", "mae"}`` as Python floats."""
    x, y = _as_pair(pred, target)
    m = float(np.mean((x - y) ** 2))
    return {"psnr": psnr_from_mse(m), "ssim": ssim(x, y), "rmse": math.sqrt(m), "mae": float(np.mean(np.abs(x - y)))}


def metric_row(pred, target, protocol: str, **extra) -> dict:
    """:func:`image_metrics` plus the protocol the images were read under (and any ``extra`` columns)."""
    from k3dn.io import PROTOCOLS

    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    return {**extra, **image_metrics(pred, target), "protocol": protocol}


# ----------------------------------------------------------------------------------------------------------
# Batched torch path
# ----------------------------------------------------------------------------------------------------------


def _box7(t):
    """Mean over 7x7 windows that fit entirely inside the image ('valid'): the region skimage keeps after
    its ``win // 2`` crop, so skimage's border mode never matters. Separable: rows then columns."""
    import torch.nn.functional as F

    t = F.avg_pool2d(t, kernel_size=(SSIM_WIN, 1), stride=1)
    return F.avg_pool2d(t, kernel_size=(1, SSIM_WIN), stride=1)


def batch_ssim(pred, target, dtype=None):
    """SSIM per image of ``(B, C, H, W)`` tensors, same formula as scikit-image's: returns ``(B,)``."""
    import torch

    dtype = dtype or torch.float64
    x = pred.to(dtype)
    y = target.to(dtype)
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if min(x.shape[-2:]) < SSIM_WIN:
        raise ValueError(f"SSIM needs images of at least {SSIM_WIN}x{SSIM_WIN}, got {tuple(x.shape[-2:])}")
    b, c = x.shape[:2]
    stats = _box7(torch.cat([x, y, x * x, y * y, x * y], dim=1))
    ux, uy, uxx, uyy, uxy = stats.split(c, dim=1)
    cov_norm = SSIM_WIN**2 / (SSIM_WIN**2 - 1)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.reshape(b, -1).mean(dim=1)


def batch_metrics(pred, target, dtype=None) -> dict:
    """PSNR, SSIM, RMSE, MAE per image of ``(B, C, H, W)`` tensors in [0, 1] (any device).

    Returns ``{name: tensor (B,)}`` in ``dtype`` (default float64). PSNR is ``+inf`` for identical images.
    """
    import torch

    dtype = dtype or torch.float64
    x = pred.to(dtype)
    y = target.to(dtype)
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    d = (x - y).reshape(x.shape[0], -1)
    m = (d * d).mean(dim=1)
    p = 10.0 * torch.log10(1.0 / m)  # 1/0 = inf -> +inf
    return {"psnr": p, "ssim": batch_ssim(x, y, dtype), "rmse": m.sqrt(), "mae": d.abs().mean(dim=1)}


def to_tensor(img, device="cpu", dtype=None):
    """``(H, W, C)`` numpy image -> ``(1, C, H, W)`` tensor (float64 by default)."""
    import torch

    a = np.asarray(img)
    if a.ndim == 2:
        a = a[..., None]
    t = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]
    return t.to(device=device, dtype=dtype or torch.float64)
