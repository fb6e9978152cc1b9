"""Uncertainty of a table's numbers: percentile bootstrap over test images.

A table's PSNR is the mean over a few dozen images (76 for DPD-blur, 17 for the Pixel set), so two methods
0.1 dB apart may not differ at all. Resampling the images (with replacement) gives

* :func:`mean_ci`: a 95% interval of one method's mean;
* :func:`paired_diff_ci`: a 95% interval of the mean per-image difference between two methods scored on the
  same images. Pairing removes the image-to-image spread both methods share, which dominates PSNR.

The generator is seeded, so the same per-image values always give the same interval.
"""

from __future__ import annotations

import numpy as np

from k3dn.errors import InputError

N_BOOT = 10_000
SEED = 0
LEVEL = 0.95


def _finite(values, name: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise InputError(
            f"need a non-empty list of per-image values, got shape {v.shape}; score at least one image", where=name
        )
    if not np.isfinite(v).all():
        raise InputError(
            f"{int((~np.isfinite(v)).sum())} non-finite value(s) (e.g. PSNR of a perfect prediction); the "
            "bootstrap needs finite values: leave those images out or report the interval as undefined",
            where=name,
        )
    return v


def _resampled_means(v: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    idx = np.random.default_rng(seed).integers(0, v.size, size=(n_boot, v.size))
    return v[idx].mean(axis=1)


def _interval(means: np.ndarray, level: float) -> tuple[float, float]:
    a = (1.0 - level) / 2.0
    low, high = np.quantile(means, [a, 1.0 - a])
    return float(low), float(high)


def mean_ci(
    values, n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL, name: str = "values"
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of per-image ``values``."""
    v = _finite(values, name)
    return _interval(_resampled_means(v, n_boot, seed), level)


def paired_diff_ci(a, b, n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL, name: str = "values") -> dict:
    """Interval of mean(a - b) over images, ``a`` and ``b`` aligned image by image.

    Returns ``{"mean", "low", "high", "excludes_zero"}``; ``excludes_zero`` says the difference is resolved at
    this level (0 lies outside the interval).
    """
    a, b = _finite(a, name), _finite(b, name)
    if a.shape != b.shape:
        raise InputError(
            f"paired values differ in length ({a.size} vs {b.size}); score both methods on the same images", where=name
        )
    d = a - b
    low, high = _interval(_resampled_means(d, n_boot, seed), level)
    return {"mean": float(d.mean()), "low": low, "high": high, "excludes_zero": bool(low > 0 or high < 0)}
