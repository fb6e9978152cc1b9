"""Thin-lens defocus: the signed circle of confusion (CoC) of a scene point and its dual-pixel disparity.

A lens of focal length ``f`` and aperture diameter ``A = f / N`` focused at distance ``s_f`` images a point at
depth ``s`` as a disk of diameter (on the sensor, same length unit as ``f``)::

    c(s) = A * f / (s_f - f) * (1 - s_f / s)

``c`` is zero in the focal plane, positive behind it (far, ``s > s_f``) and negative in front of it (near). The
sign matters for dual-pixel (DP) data: the two half-aperture views of a defocused point are displaced in
opposite directions, and the direction flips across the focal plane (k3dn_paper.md §2.1). ``c`` is affine in
inverse depth, which is why depth layers are quantised in CoC (or inverse depth), not in depth.

Pixels: ``c_px = c / pixel_pitch``; equivalently with the focal length in pixels ``f_pix`` (DDDNet's
convention), ``pixel_pitch = f / f_pix`` and ``c_px = (f_pix / N) * f / (s_f - f) * (1 - s_f / s)``, i.e. the
aperture expressed in pixels, ``f_pix / N``, times the same dimensionless factor.

DP disparity convention of this package: ``d = x̄(K_L) - x̄(K_R)`` (centroid of the left-view PSF minus the
centroid of the right-view PSF, pixels), same sign as the CoC. For the ideal half-disk PSFs of
:mod:`k3dn.synth.psf` each half-disk centroid lies ``4 r / (3 pi)`` from the centre, so
``d = 8 r / (3 pi) = 4 c / (3 pi) ≈ 0.424 c`` (``r = c / 2``).
"""

from __future__ import annotations

import math

import numpy as np

DISK_DISPARITY_PER_COC = 4.0 / (3.0 * math.pi)


def _pitch_m(focal_m: float, pixel_pitch_um: float | None, f_pix: float | None) -> float:
    if (pixel_pitch_um is None) == (f_pix is None):
        raise ValueError("give exactly one of pixel_pitch_um and f_pix to express the CoC in pixels")
    if pixel_pitch_um is not None:
        if pixel_pitch_um <= 0:
            raise ValueError(f"pixel_pitch_um must be > 0, got {pixel_pitch_um}")
        return pixel_pitch_um * 1e-6
    if f_pix <= 0:
        raise ValueError(f"f_pix must be > 0, got {f_pix}")
    return focal_m / f_pix


def signed_coc_px(
    depth_m,
    focus_m: float,
    focal_mm: float,
    f_number: float,
    *,
    pixel_pitch_um: float | None = None,
    f_pix: float | None = None,
):
    """Signed CoC diameter in pixels for depths ``depth_m`` (metres, scalar or array; must be > 0).

    Example (known answer): f = 50 mm, N = 2, focus 2 m, depth 4 m, pitch 5 µm:
    ``A = 25 mm``, ``c = 25 * 50 / 1950 * (1 - 2/4) mm = 0.3205 mm = 64.10 px``.
    """
    focal_m = focal_mm * 1e-3
    if f_number <= 0:
        raise ValueError(f"f_number must be > 0, got {f_number}")
    if focus_m <= focal_m:
        raise ValueError(f"focus distance {focus_m} m must exceed the focal length {focal_m} m")
    depth = np.asarray(depth_m, dtype=np.float64)
    if np.any(~np.isfinite(depth)) or np.any(depth <= 0):
        raise ValueError("depths must be finite and > 0 metres")
    aperture_m = focal_m / f_number
    c_m = aperture_m * focal_m / (focus_m - focal_m) * (1.0 - focus_m / depth)
    out = c_m / _pitch_m(focal_m, pixel_pitch_um, f_pix)
    return float(out) if out.ndim == 0 else out


def coc_scale_px(
    focus_m: float, focal_mm: float, f_number: float, *, pixel_pitch_um: float | None = None, f_pix: float | None = None
) -> float:
    """The CoC (pixels) of a point at infinity: ``c(s) = coc_scale * (1 - s_f / s)``."""
    focal_m = focal_mm * 1e-3
    return (focal_m / f_number) * focal_m / (focus_m - focal_m) / _pitch_m(focal_m, pixel_pitch_um, f_pix)


def depth_for_coc(coc_px, focus_m: float, scale_px: float):
    """Inverse of ``c = scale * (1 - s_f / s)``: the depth that has CoC ``coc_px`` (inf where c = scale)."""
    c = np.asarray(coc_px, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return focus_m / (1.0 - c / scale_px)


def disk_disparity_px(coc_px):
    """Signed DP disparity (pixels) of an ideal half-disk pair with signed CoC diameter ``coc_px``."""
    return np.asarray(coc_px, dtype=np.float64) * DISK_DISPARITY_PER_COC
