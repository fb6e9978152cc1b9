"""Dual-pixel point spread functions (PSFs) for a signed circle of confusion.

A DP sensor splits every pixel under its micro-lens into a left and a right photodiode, so each view sees
one half of the lens aperture. For a defocused point the left view's PSF is one half of the defocus disk
and the right view's PSF the other half; they are horizontal mirror images, ``K_R(x, y) = K_L(-x, y)``,
and swap roles when the point crosses the focal plane (k3dn_paper.md §2.1). The ordinary (combined) image
is the sum of the two views, so its PSF is ``K_C ∝ K_L + K_R`` — the full, left-right symmetric kernel.

Convention (see :mod:`k3dn.synth.optics`): a positive CoC (point behind the focal plane) puts the left
view's PSF on the right half (``x > 0``), so ``x̄(K_L) - x̄(K_R)`` has the sign of the CoC. The same
orientation is used by the RDPD generator for positive CoC (left kernel = kernel × a ramp rising to the
right).

Kinds:

``"disk"``
    ideal half-disks. The disk of radius ``|c| / 2`` is rasterised by supersampling (``ss × ss`` sample
    points per pixel, none on the vertical axis), so coverage, and hence the blur, grows smoothly with
    sub-pixel radii; a radius inside the central pixel gives a delta.
``"butterworth"``
    the RDPD kernel (Abuolaim et al., ICCV 2021; datasets.md §4.2): disk × radial high-pass Butterworth
    ``q / (1 + q)``, ``q = (ρ² / D0²)^order``, ``D0 = 2 r / cutoff_factor``, rescaled to ``[beta, 1]`` over the
    kernel square, then Gaussian smoothing (window ``round((2r+1) / smooth) + 1`` made odd, OpenCV's default
    sigma for that window), left = kernel × linear horizontal ramp 0 → 1 over the kernel width, right = its
    mirror. The ramp and its mirror sum to 1, so ``K_L + K_R ∝ K_C`` holds exactly here too. The disk is
    our anti-aliased disk (the original rasterises it with ``cv2.circle`` at integer radii).

Every kernel is float64, odd-sized, centred, and sums to 1.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

KINDS = ("disk", "butterworth")
_DELTA_RADIUS = 1e-6


def _delta(size: int | None = None) -> np.ndarray:
    n = 1 if size is None else int(size)
    k = np.zeros((n, n))
    k[n // 2, n // 2] = 1.0
    return k


def _check_size(size, needed: int) -> int:
    if size is None:
        return needed
    size = int(size)
    if size % 2 == 0 or size < 1:
        raise ValueError(f"kernel size must be odd and >= 1, got {size}")
    return size


@lru_cache(maxsize=4096)
def _half_disk_coverage(radius: float, size: int, ss: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel area fraction of the disk of ``radius`` on the ``x < 0`` and ``x > 0`` sides."""
    h = size // 2
    # subsample offsets inside a pixel; ss is even so no sample sits on x = 0 (the two halves never share one)
    off = (np.arange(ss) + 0.5) / ss - 0.5
    coords = (np.arange(-h, h + 1)[:, None] + off[None, :]).ravel()
    inside = (coords[:, None] ** 2 + coords[None, :] ** 2) <= radius * radius  # (rows=y, cols=x)
    left = inside & (coords[None, :] < 0)
    right = inside & (coords[None, :] > 0)

    def pool(m):
        return m.reshape(size, ss, size, ss).sum(axis=(1, 3)).astype(np.float64) / (ss * ss)

    return pool(left), pool(right)


def disk_kernel(coc_px: float, size: int | None = None, ss: int | None = None) -> np.ndarray:
    """Anti-aliased full disk of diameter ``|coc_px|`` (sums to 1)."""
    _, _, kc = half_aperture_psfs(coc_px, kind="disk", size=size, ss=ss)
    return kc


def _gaussian_1d(n: int, sigma: float) -> np.ndarray:
    x = np.arange(n) - (n - 1) / 2
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def _butterworth_base(
    radius: float, size_needed: int, order: float, cutoff_factor: float, beta: float, smooth: float, ss: int
) -> np.ndarray:
    h = size_needed // 2
    cov_l, cov_r = _half_disk_coverage(float(radius), size_needed, ss)
    disk = cov_l + cov_r
    yy, xx = np.mgrid[-h : h + 1, -h : h + 1]
    d0 = max(2.0 * radius / cutoff_factor, 1e-9)
    q = ((xx**2 + yy**2) / d0**2) ** order
    hp = q / (1.0 + q)
    lo, hi = hp.min(), hp.max()
    hp = np.full_like(hp, 1.0) if hi - lo < 1e-12 else beta + (1.0 - beta) * (hp - lo) / (hi - lo)
    k = disk * hp
    # Gaussian smoothing with the window/sigma rule of the RDPD generator (OpenCV's default sigma)
    win = int(round((2 * round(radius) + 1) / smooth)) + 1
    if win % 2 == 0:
        win += 1
    sigma = 0.3 * ((win - 1) * 0.5 - 1) + 0.8
    g = _gaussian_1d(win, sigma)
    p = win // 2
    k = np.pad(k, p)
    k = np.apply_along_axis(lambda r: np.convolve(r, g, mode="same"), 1, k)
    k = np.apply_along_axis(lambda c: np.convolve(c, g, mode="same"), 0, k)
    return k


@lru_cache(maxsize=8192)
def _psfs_cached(
    coc_q: float,
    kind: str,
    size: int | None,
    ss: int | None,
    order: float,
    cutoff_factor: float,
    beta: float,
    smooth: float,
):
    radius = abs(coc_q) / 2.0
    if radius < _DELTA_RADIUS:
        d = _delta(size)
        return d, d.copy(), d.copy()
    if kind == "disk":
        needed = 2 * int(math.ceil(radius + 0.5)) + 1
        n = _check_size(size, needed)
        s = ss or (16 if radius < 4 else 8)
        cov_l, cov_r = _half_disk_coverage(float(radius), n, s)
        if cov_l.sum() == 0:  # the disk fits in the centre pixel's on-axis samples: a delta
            d = _delta(n)
            return d, d.copy(), d.copy()
        pos = cov_r / cov_r.sum()
    elif kind == "butterworth":
        needed = 2 * int(math.ceil(radius + 0.5)) + 1
        base = _butterworth_base(radius, needed, order, cutoff_factor, beta, smooth, ss or 8)
        w = base.shape[1]
        ramp = np.linspace(0.0, 1.0, w)[None, :]
        pos = base * ramp  # weight on x > 0
        pos = pos / pos.sum()
        if size is not None:
            pos = _fit(pos, _check_size(size, needed))
            pos = pos / pos.sum()
    else:
        raise ValueError(f"unknown PSF kind {kind!r}; expected one of {KINDS}")
    # the other half is built as an exact mirror, so K_R(x, y) = K_L(-x, y) holds bit for bit
    kl = pos if coc_q > 0 else pos[:, ::-1].copy()
    kr = kl[:, ::-1].copy()
    kc = kl + kr
    kc = kc / kc.sum()
    return kl, kr, kc


def _fit(k: np.ndarray, n: int) -> np.ndarray:
    """Centre-crop or zero-pad an odd square kernel to ``n × n``."""
    m = k.shape[0]
    if n >= m:
        p = (n - m) // 2
        return np.pad(k, p)
    c = (m - n) // 2
    return k[c : c + n, c : c + n]


def half_aperture_psfs(
    coc_px: float,
    kind: str = "disk",
    size: int | None = None,
    *,
    ss: int | None = None,
    order: float = 3,
    cutoff_factor: float = 2.5,
    beta: float = 0.1,
    smooth: float = 7,
):
    """Left, right and combined PSFs ``(kl, kr, kc)`` for a signed CoC diameter ``coc_px`` (pixels).

    ``kr`` is ``kl`` mirrored horizontally; the two swap for a negative CoC; ``kc = (kl + kr) / 2`` (the
    normalised sum). All three sum to 1 and are float64 ``(size, size)``; ``size`` defaults to the smallest
    odd size holding the disk (1 for an in-focus point). ``order``, ``cutoff_factor``, ``beta``, ``smooth``
    only matter for ``kind="butterworth"``. Results are cached; treat them as read-only.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown PSF kind {kind!r}; expected one of {KINDS}")
    if not math.isfinite(coc_px):
        raise ValueError(f"CoC must be finite, got {coc_px}")
    coc_q = round(float(coc_px), 6)  # cache key; far below any effect on the kernel
    kl, kr, kc = _psfs_cached(coc_q, kind, size, ss, float(order), float(cutoff_factor), float(beta), float(smooth))
    if size is not None and kl.shape[0] != size:
        kl, kr, kc = (_fit(k, size) for k in (kl, kr, kc))
        kl, kr, kc = kl / kl.sum(), kr / kr.sum(), kc / kc.sum()
    return kl, kr, kc


def centroid_x(k: np.ndarray) -> float:
    """Horizontal centroid of a kernel relative to its centre column (pixels)."""
    x = np.arange(k.shape[1]) - k.shape[1] // 2
    return float((k.sum(axis=0) * x).sum() / k.sum())


def psf_disparity_px(coc_px: float, kind: str = "disk", **kw) -> float:
    """Signed DP disparity ``x̄(K_L) - x̄(K_R)`` of the kernels :func:`half_aperture_psfs` produces."""
    kl, kr, _ = half_aperture_psfs(coc_px, kind=kind, **kw)
    return centroid_x(kl) - centroid_x(kr)


def disparity_map(coc_map: np.ndarray, kind: str = "disk", **kw) -> np.ndarray:
    """Per-pixel signed DP disparity for a CoC map (interpolated from the rendered kernels' centroids)."""
    c = np.asarray(coc_map, dtype=np.float64)
    m = float(np.abs(c).max()) if c.size else 0.0
    if m == 0:
        return np.zeros_like(c, dtype=np.float32)
    grid = np.linspace(0.0, m, max(2, int(math.ceil(m * 4)) + 1))
    vals = np.array([psf_disparity_px(g, kind, **kw) for g in grid])
    return (np.sign(c) * np.interp(np.abs(c), grid, vals)).astype(np.float32)
