"""Xin, Wadhwa, Xue, Barron, Srinivasan, Chen, Gkioulekas & Garg, "Defocus Map Estimation and Deblurring from
a Single Dual-Pixel Image", ICCV 2021 (arXiv 2110.05655): the unsupervised multiplane-image (MPI) optimisation
that estimates an all-in-focus (AIF) image and a defocus map from one dual-pixel (DP) pair and calibrated
per-device blur kernels.

Re-implemented in PyTorch from the described method (the paper
and the official JAX code cmu-ci-lab/dual_pixel_defocus_estimation_deblurring @ d6a9262); no code is copied.
Held to the official code's outputs on a real Pixel scene by ``tests/test_golden_xin2021.py``.
Section numbers below (§n) are that reference's.

Method (as the reference describes it)
--------------------------------------
* **Observations** ``O`` = the two views divided by their joint global maximum (per image); ``kappa =
  0.5 / mean(O)`` multiplies the data losses and the intensities inside the intensity prior (§1).
  Black level, vignetting correction and the 1008x1344 crop are the Pixel adapter's job
  (``k3dn.data.layouts.process_pixel``); the module takes the views as given.
* **Scene**: ``N`` (default 12) fronto-parallel layers ``i = 0..N-1`` from back to front, with blur sizes
  ``s = linspace(s_end, s_start, N)`` (descending: the back layer blurs most). Layer ``i`` holds an intensity
  ``c_i`` (one per colour channel) and an alpha ``alpha_i``. Visibility ``V_i = prod_{j>i}(1 - alpha_j)``,
  transmittance ``T_i = alpha_i V_i``; AIF ``A = sum_i T_i c_i``; defocus map ``D = sum_i T_i s_i`` (§3).
* **Rendering** a view ``v``: ``P_i = k^v_i * (alpha_i c_i)``, ``Ahat_i = k^v_i * alpha_i``,
  ``B^v = sum_i P_i prod_{j>i}(1 - Ahat_j)`` (over-compositing with blurred alphas, *no* normalisation by the
  summed blurred transmittance); blurred transmittance ``That_i = Ahat_i prod_{j>i}(1 - Ahat_j)``. ``*`` is a
  true convolution (a point renders as the kernel itself, unflipped).
* **Spatially varying kernels**: one kernel pair per cell of a ``grid`` (the Pixel set: 6x8 cells of 168 px,
  48 kernels, index ``8 row + col``). Each cell is cut from the MPI with a halo of one kernel radius, the MPI
  being edge-replicated at the image border, convolved "valid" with the cell's kernel and stitched back with
  no blending (§3). Convolutions are FFTs over each haloed tile (grown at the bottom/right to a fast FFT
  length; the valid part of a circular convolution is exact and the extra context only reaches discarded
  outputs), batched over cells, layers, channels, views and images; the kernel spectra are computed once per
  image size. The loss is summed over the images of a batch, so (Adam being elementwise) a batch gives what
  one run per image gives.
* **Kernel scaling** (§2): ``k_s(x) ~ k(x / s)`` on the fixed kernel support, renormalised to the input sum;
  ``s > 0.5`` by bilinear interpolation with zero fill, ``s <= 0.5`` by a separable Gaussian-weighted sum of
  the input taps around ``j / s`` with ``sigma = (1/s - 1) / 2`` input pixels (:func:`resample_kernel`);
  ``s < 0`` rotates the kernel by 180 degrees (the other side of the focal plane), ``s = 0`` is the delta.
* **Unknowns and init** (§4): logits of every layer's intensity and alpha, mapped by a sigmoid. Intensities
  start at ``mean(O)`` (per channel), alphas at ``1 / (i + 1)`` (so ``T_i = 1/N``); the back layer's alpha is
  the constant 1 (the official code's infinite logit).
* **Loss** (§5), with ``rho(x) = sqrt(x / gamma^2 + 1) - 1``, ``gamma = 0.1``:
  ``E_d = w_d kappa mean_{v,x} rho((B^v - O^v)^2 - sum_i That^v_i b_i)``;
  ``E_a = w_a kappa mean_x 1/2 sum_{v,i} sg(That^v_i) rho((k^v_i * c_i - O^v)^2 - b_i)`` (sg = stop-gradient);
  bias ``b_i = (mean(O) / 0.5) sigma^2 mean_{p,w} C / (K_i(w) + C)``, ``K_i = sum_v |FFT k^v_{i,p}|^2``,
  ``C = 5e-3``, ``sigma^2 = 2 (5e-3)^2``;
  local-variance "TV" ``tau(I) = rho(|g * I^2 - (g * I)^2|)`` with the 3x3 binomial ``g``, edge mask
  ``m(t) = 1 - exp(-gamma^2 ((t + 1)^2 - 1) / (2 beta^2))``, ``beta = 1/32``;
  ``E_I = w_I [mean(tau_A (1 - m_A) + tau_P (1 - m_P)) + mean(tau_A + tau_P)]`` with ``tau_A = tau(kappa A)``,
  ``tau_P = sum_i sg(T_i) tau(kappa c_i)``, masks from the stop-gradient taus;
  ``E_alpha = w_alpha [mean_{i,x}(tau_alpha_i (1 - m_A)) + mean tau_alpha_i]``, ``tau_alpha_i = tau(sqrt alpha_i)
  + tau(sqrt T_i)``; ``E_H = (w_H / ln N) mean_x [H2(sqrt alpha_1..N-1) + H2(sqrt T_0..N-1)]`` with the collision
  entropy ``H2(q) = -ln sum_i (q_i / sum_j q_j)^2`` (``ln(count)`` where the sum is 0). Total = sum of the five;
  no term is annealed. Weights (setup.py, fixed for the run): ``w_d = w_a = 2.5e4``, ``w_I = 30``,
  ``w_alpha in {1.5e4, 7.5e4} x (N / 12)^2``, ``w_H in {20, 30}``.
* **Optimiser** (§6): Adam (0.9, 0.999, 1e-8, no weight decay) on all logits jointly, full image every step,
  learning rate decayed geometrically from 0.3 to 0.1, ``lr(i) = exp((1 - t) ln 0.3 + t ln 0.1)``,
  ``t = i / iterations``; non-finite gradient entries are set to 0. There is no pyramid, no coarse-to-fine
  stage and no annealing: the learning-rate decay is the whole schedule.
* **Outputs** (§7): one more evaluation with the final logits. ``output`` = the AIF on the input's scale
  (``max(O_raw) x``), by default after the official quantised bilateral filter (``sigma_s = 3``,
  ``sigma_v = 0.05`` on ``kappa A``, spatial and range weights quantised to ``floor(3 w) / 3``, window +-10 px,
  wrap-around borders); ``defocus`` = the float ``D`` in blur-size units (not the official 8-bit min-max PNG).

Choices the reference leaves open (ours) and deviations from the official code
-------------------------------------------------------------------------------
1. Layer range: the official ``s_start/s_end`` are hand-set per scene (only valid for the 17 Pixel scenes).
   Default with calibrated kernels: ``s = linspace(1.6, 0.1, 12)``, the union of the 17 ranges (all on the
   calibrated side of focus, as every released configuration). ``scene="001".."017"`` applies that scene's
   official ``s`` range and weights (``PIXEL_SCENES``). Default weights otherwise: ``w_alpha = 7.5e4``
   (13 of 17 scenes) and ``w_H = 20`` (9 of 17 scenes), i.e. the setting of scenes 013-017.
2. Without calibrated kernels (``kernels=None``), the kernels are the Wiener baseline's DP half-disks
   (:func:`baselines.wiener.half_disk_kernels`, our choice, not part of the method). Then ``s`` is the signed
   circle-of-confusion *diameter* in pixels in the suite renderer's convention (``k3dn.synth``: ``s > 0``, a
   point behind the focal plane, puts the left view's kernel on the right half), supersampled like
   ``k3dn.synth.psf`` (16x16 below radius 4, else 8x8); radii under 0.5 px are the delta (the suite renderer
   keeps a sub-pixel disk). Default ``s = linspace(16, -16, 12)`` (both sides of focus; DP disparity of a
   half-disk pair is about 0.42 x CoC, so +-7 px). In this mode "blur size" is not a scale factor and
   negative sizes are ordinary layers (the official code never uses negative scales; §10.2).
3. Kernels are normalised to sum 1 (the calibrated ones already are). The resampler replaces the official
   ``interp2d`` (gone from SciPy) and matches its kernels to 3e-6 of their peak (``tests/test_golden_xin2021.py``),
   except where a sample falls on the last calibrated tap (:func:`resample_kernel`); its Gaussian-branch
   weights are unnormalised per tap (the whole kernel is renormalised afterwards). ``s = 0`` is the delta
   (singular in the official resampler). The bias
   spectra use an FFT grid of ``max(kernel size, 61)``. Sign: ``s > 0`` is the calibrated kernels' side of
   focus (on the Pixel set the left kernel lies left of the right one), so ``defocus`` is positive there.
4. Grid on other image sizes: cells are ``ceil(H / rows) x ceil(W / cols)`` pixels from the top-left (exactly
   168 px on the 1008x1344 Pixel crop); the bottom/right cells are cut where the image ends.
5. ``sqrt(alpha)``, ``sqrt(T)`` have an unbounded derivative at 0. Ours is 0 there (a "safe" sqrt), and the final
   gradient is ``nan_to_num(nan=0, posinf=0, neginf=0)``. The official code zeroes NaNs of the whole gradient
   (an infinite derivative at one layer then zeroes every alpha of that pixel through the visibility product)
   and maps +-inf to +-float max (which freezes an Adam entry forever).
6. Iterations: ``iterations`` Adam steps (default 10,000 as the README states; the official loop runs 10,001,
   i = 0..10000); ``t = i / iterations``, so a shorter run decays the learning rate over its own length.
7. Colour: the official loader is single-channel. If the three input channels are identical (the Pixel set
   given replicated), one channel is optimised and the result replicated. Otherwise every layer has one
   intensity per channel and one shared alpha (one defocus map); the data terms average over channels, the
   intensity prior's local variance is averaged over channels before ``rho``, and the bilateral filter works per
   channel.
8. Priors on the padded MPI: computing them on a 1-px edge-replicated border is identical to the official 30-px
   replicated pad + zero-padded 3x3 filter + 30-px crop (only 1 px of context reaches the crop).
9. Output AIF: ``bilateral=True`` (default) is the image run.py writes; ``bilateral=False`` gives the raw
   ``sum_i T_i c_i``; ``output_raw`` always holds the latter. The 1-px GT border and the metric settings are the
   scorer's business.
10. Precision: float32 throughout; the FFTs and the elementwise 3x3 binomial use no TF32 path.
11. ``seed`` drives an optional Gaussian jitter of the initial logits (``init_noise``, default 0 = the official
    deterministic init); the method itself has no randomness, so outputs are reproducible for a seed (tested on
    the CPU; no atomics-based op is used, but CUDA bit-exactness is unchecked, and devices differ in rounding).
12. Vignetting, black level, crop: done by the Pixel adapter (right view x the left/right white-sheet ratio map,
    like util.py); values clipped to [0, 1] there.

Registered as ``xin2021``: an ``nn.Module`` without trained weights, ``input_views = ("left", "right")``,
``forward(batch) -> {"output": (B, 3, H, W) in [0, 1], "defocus": (B, 1, H, W) signed blur size,
"output_raw": (B, 3, H, W)}``. :func:`optimise` is the same optimisation as a plain function.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.wiener import half_disk_kernels, load_kernels
from k3dn.registry import register_model

__all__ = [
    "ITERATIONS",
    "PIXEL_SCENES",
    "KernelBank",
    "Weights",
    "Xin2021",
    "composite",
    "optimise",
    "quantised_bilateral",
    "render",
    "resample_kernel",
    "rho",
    "xin2021",
    "xin_loss",
]

ITERATIONS = 10_000
N_LAYERS = 12
GAMMA = 0.1  # rho's scale (util.py:215-224)
BETA = 1.0 / 32  # edge-mask scale (util.py:263-275)
BIAS_C = 5e-3  # bias correction: Wiener-like constant ...
BIAS_SIGMA2 = 2 * (5e-3) ** 2  # ... and noise variance (util.py:73-101)
BIAS_GRID = 61  # FFT grid of the bias correction (the calibrated kernel size)
TIE_PX = 1e-4  # resample_kernel: how close to the last calibrated tap a sample counts as on it
LR = (0.3, 0.1)  # geometric learning-rate decay, start -> end
W_DATA = W_AUX = 2.5e4
W_INTENSITY = 30.0
W_ALPHA = 7.5e4  # at N = 12; multiplied by (N / 12)^2
W_ENTROPY = 20.0  # divided by ln N
DEFAULT_SCALES_CALIBRATED = (1.6, 0.1)  # s_end (back), s_start (front)
DEFAULT_SCALES_HALF_DISK = (16.0, -16.0)

# setup.py:28-49, per scene: (s_start, s_end, w_alpha at N = 12, w_H)
PIXEL_SCENES = {
    **{f"{i:03d}": (s0, 1.6, 1.5e4, 20.0) for i, s0 in ((1, 0.5), (2, 0.5), (3, 0.7), (4, 0.7))},
    "005": (0.1, 1.3, 7.5e4, 30.0),
    "006": (0.1, 1.4, 7.5e4, 30.0),
    "007": (0.1, 1.4, 7.5e4, 30.0),
    "008": (0.2, 1.5, 7.5e4, 30.0),
    "009": (0.1, 1.5, 7.5e4, 30.0),
    "010": (0.2, 1.5, 7.5e4, 30.0),
    "011": (0.2, 1.5, 7.5e4, 30.0),
    "012": (0.1, 1.5, 7.5e4, 30.0),
    "013": (0.3, 1.6, 7.5e4, 20.0),
    "014": (0.1, 1.5, 7.5e4, 20.0),
    "015": (0.1, 1.6, 7.5e4, 20.0),
    "016": (0.3, 1.5, 7.5e4, 20.0),
    "017": (0.2, 1.6, 7.5e4, 20.0),
}


# ----------------------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------------------


def resample_kernel(kernel, s: float, size: int | None = None) -> np.ndarray:
    """The calibrated ``kernel`` (odd, square) at blur size ``s``: ``k_s(x) ~ k(x / s)`` on a ``size`` support
    (default: the kernel's), renormalised to the input's sum. ``|s| > 0.5``: bilinear, zero fill (a sample beyond
    the last tap is 0); ``|s| <= 0.5``: separable Gaussian-weighted sum of the taps around ``j / s``
    (``sigma = (1/|s| - 1) / 2``); ``s < 0``: rotated by 180 degrees; ``s = 0``: the delta.

    A sample within ``TIE_PX`` of the last tap (``j / s = +-30`` for the 61-tap kernels: ``s = j / 30``, among them
    0.6, 0.7, 0.8 and 0.9) takes that tap's value. The official code computes the positions in float32, so such a
    sample lands a few ulp inside or outside the support depending on ``s`` and on the JAX version, and is kept or
    dropped accordingly (``tests/test_golden_xin2021.py`` measures which); we keep it on both sides."""
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0:
        raise ValueError(f"kernels must be odd and square, got {k.shape}")
    size = int(size or k.shape[0])
    total = float(k.sum())
    if not math.isfinite(s):
        raise ValueError(f"blur size must be finite, got {s}")
    if abs(s) < 1e-9:
        out = np.zeros((size, size))
        out[size // 2, size // 2] = total
        return out
    a = abs(float(s))
    half = k.shape[0] // 2
    u = np.arange(k.shape[0]) - half  # input tap offsets
    pos = (np.arange(size) - size // 2) / a  # where output tap j samples the input
    if a > 0.5:
        # A sample within TIE_PX of the last tap is on it (s = j / 30, e.g. 0.6, 0.7, 0.8, 0.9 for 61 taps).
        pos = np.where(np.abs(np.abs(pos) - half) <= TIE_PX, np.sign(pos) * half, pos)
        w = np.clip(1.0 - np.abs(u[None, :] - pos[:, None]), 0.0, None)
        # Zero fill: a sample beyond the last tap is 0, not a blend of that tap with an implicit zero.
        w[np.abs(pos) > half] = 0.0
    else:
        d = u[None, :] - pos[:, None]
        w = np.exp(-0.5 * (d / ((1.0 / a - 1.0) / 2.0)) ** 2)
    out = w @ k @ w.T
    got = out.sum()
    if abs(got) < 1e-300:
        raise ValueError(f"blur size {s} leaves no kernel mass on a {size}x{size} support")
    out *= total / got
    return out[::-1, ::-1].copy() if s < 0 else out


def _half_disk_pair(coc: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """DP half-disks for a signed CoC diameter, k3dn.synth's orientation (``coc > 0``: left kernel on x > 0)."""
    r = abs(coc) / 2.0
    kl, kr = half_disk_kernels([-coc / 2.0], size=size, ss=16 if r < 4 else 8)
    return kl[0], kr[0]


@dataclass
class KernelBank:
    """Per-cell, per-layer DP kernels: ``kernels`` float64 ``(cells, N, 2, k, k)`` (view axis left, right),
    ``scales`` ``(N,)`` from back to front (descending), ``grid`` = (rows, cols) of the cells."""

    kernels: torch.Tensor
    scales: torch.Tensor
    grid: tuple[int, int]
    mode: str = "calibrated"
    _spectra: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(cls, kernels=None, scales=None, grid=None, layers: int = N_LAYERS) -> KernelBank:
        """``kernels``: anything :func:`baselines.wiener.load_kernels` reads (an .npz with ``left``/``right``,
        the Pixel calibration folder, a ``(left, right)`` pair) or None for half-disks. ``scales``: the layer
        blur sizes (sorted descending), default per mode (module docstring)."""
        if isinstance(kernels, KernelBank):
            return kernels
        if kernels is not None:
            left, right = load_kernels(kernels)
            sums = np.concatenate([left.sum((1, 2)), right.sum((1, 2))])
            if np.any(sums <= 0) or not np.all(np.isfinite(sums)):
                raise ValueError("calibrated kernels must have a positive, finite sum")
            # the calibrated kernels sum to 1 already (reference §2); make sure of it
            left, right = left / left.sum((1, 2), keepdims=True), right / right.sum((1, 2), keepdims=True)
            n = left.shape[0]
            if grid is None:
                grid = {48: (6, 8), 1: (1, 1)}.get(n)
                if grid is None:
                    raise ValueError(f"{n} calibrated kernels: give grid=(rows, cols)")
            grid = (int(grid[0]), int(grid[1]))
            if grid[0] * grid[1] != n:
                raise ValueError(f"grid {grid} does not hold {n} kernels")
            s = _scales(scales, DEFAULT_SCALES_CALIBRATED, layers)
            bank = np.stack(
                [
                    [np.stack([resample_kernel(left[p], si), resample_kernel(right[p], si)]) for si in s]
                    for p in range(n)
                ]
            )
            mode = "calibrated"
        else:
            s = _scales(scales, DEFAULT_SCALES_HALF_DISK, layers)
            rmax = float(np.abs(s).max()) / 2.0
            size = 2 * math.ceil(rmax + 0.5) + 1
            bank = np.stack([np.stack(_half_disk_pair(si, size)) for si in s])[None]
            grid, mode = (1, 1), "half_disk"
        return cls(torch.as_tensor(bank, dtype=torch.float64), torch.as_tensor(s, dtype=torch.float64), grid, mode)

    @property
    def radius(self) -> int:
        return self.kernels.shape[-1] // 2

    @property
    def layers(self) -> int:
        return self.kernels.shape[1]

    def geometry(self, h: int, w: int) -> _Geometry:
        return _Geometry(h, w, self.grid, self.radius)

    def spectra(self, geom: _Geometry, device, dtype) -> torch.Tensor:
        """``(2, N, rows, cols, Lh, Lw // 2 + 1)`` spectra of the kernels at the origin of the FFT tile."""
        key = (geom.ph, geom.pw, geom.lh, geom.lw, str(device), dtype)
        if key not in self._spectra:
            k = self.kernels.to(device=device, dtype=dtype)  # (cells, N, 2, k, k)
            k = k.reshape(*self.grid, *k.shape[1:]).permute(3, 2, 0, 1, 4, 5)  # (2, N, rows, cols, k, k)
            self._spectra[key] = torch.fft.rfft2(k, s=(geom.lh, geom.lw))
        return self._spectra[key]

    def bias_base(self) -> torch.Tensor:
        """``sigma^2 mean_{p,w} C / (K_i + C)`` per layer (float64 ``(N,)``); times ``mean(O) / 0.5`` gives b_i."""
        g = max(BIAS_GRID, self.kernels.shape[-1])
        kk = (torch.fft.fft2(self.kernels, s=(g, g)).abs() ** 2).sum(2)  # (cells, N, g, g)
        return BIAS_SIGMA2 * (BIAS_C / (kk + BIAS_C)).mean(dim=(0, 2, 3))


def _scales(scales, default, layers: int) -> np.ndarray:
    s = np.linspace(default[0], default[1], int(layers)) if scales is None else np.asarray(scales, np.float64)
    s = s.reshape(-1)
    if s.size < 2:
        raise ValueError("the MPI needs at least two layers")
    if np.any(np.diff(s) >= 0):
        raise ValueError(f"layer blur sizes must be strictly descending (back to front), got {s.tolist()}")
    return s


@dataclass
class _Geometry:
    """Cells of ``ph x pw`` pixels on a ``rows x cols`` grid; FFT tiles of ``th x tw >= (ph + 2r) x (pw + 2r)``."""

    h: int
    w: int
    grid: tuple[int, int]
    r: int

    def __post_init__(self):
        from scipy.fft import next_fast_len

        gy, gx = self.grid
        self.ph, self.pw = -(-self.h // gy), -(-self.w // gx)
        # a tile is a cell plus a halo of r on each side, grown at the bottom/right to a fast FFT size (the
        # extra context only reaches outputs that are discarded: the valid part of the circular convolution
        # is rows/cols 2r .. 2r + ph - 1)
        self.lh = self.th = next_fast_len(self.ph + 2 * self.r, real=True)
        self.lw = self.tw = next_fast_len(self.pw + 2 * self.r, real=True)
        # replicate padding: r before the image, and after it what the last cell's tile overhangs
        self.pad = (
            self.r,
            (gx - 1) * self.pw + self.tw - self.r - self.w,
            self.r,
            (gy - 1) * self.ph + self.th - self.r - self.h,
        )


# ----------------------------------------------------------------------------------------------------------
# Forward model
# ----------------------------------------------------------------------------------------------------------


def _front_visibility(one_minus: torch.Tensor, dim: int) -> torch.Tensor:
    """``V_i = prod_{j > i} x_j`` along ``dim`` (layers back to front; exclusive product from the front)."""
    x = one_minus.flip(dim)
    ones = torch.ones_like(x.narrow(dim, 0, 1))
    v = torch.cumprod(torch.cat([ones, x.narrow(dim, 0, x.shape[dim] - 1)], dim=dim), dim=dim)
    return v.flip(dim)


def composite(alpha: torch.Tensor) -> torch.Tensor:
    """Transmittance ``T_i = alpha_i prod_{j>i}(1 - alpha_j)`` of an MPI; ``alpha`` (B, N, 1, H, W), back first."""
    return alpha * _front_visibility(1 - alpha, 1)


def _blur(x: torch.Tensor, bank: KernelBank, geom: _Geometry) -> torch.Tensor:
    """``x`` (B, N, K, H, W) -> (B, 2, N, K, H, W): layer i of every image blurred by its cell's left/right kernel
    (true convolution, edge-replicated border, per-cell "valid" convolution over haloed tiles, FFT)."""
    b, n, k, h, w = x.shape
    gy, gx = geom.grid
    xp = F.pad(x.reshape(b * n, k, h, w), geom.pad, mode="replicate").reshape(
        b, n, k, *(h + geom.pad[2] + geom.pad[3], w + geom.pad[0] + geom.pad[1])
    )
    tiles = xp.unfold(3, geom.th, geom.ph).unfold(4, geom.tw, geom.pw)  # (B, N, K, gy, gx, th, tw)
    spec = torch.fft.rfft2(tiles)
    kspec = bank.spectra(geom, x.device, x.dtype)  # (2, N, gy, gx, lh, lf)
    y = torch.fft.irfft2(spec.unsqueeze(1) * kspec[None, :, :, None], s=(geom.lh, geom.lw))
    r2 = 2 * geom.r
    y = y[..., r2 : r2 + geom.ph, r2 : r2 + geom.pw]  # (B, 2, N, K, gy, gx, ph, pw)
    y = y.permute(0, 1, 2, 3, 4, 6, 5, 7).reshape(b, 2, n, k, gy * geom.ph, gx * geom.pw)
    return y[..., :h, :w]


def render(intensity: torch.Tensor, alpha: torch.Tensor, bank: KernelBank, aux: bool = True) -> dict:
    """Render the DP views of an MPI. ``intensity`` (B, N, C, H, W), ``alpha`` (B, N, 1, H, W), layers back to
    front. Returns ``views`` (B, 2, C, H, W) (left, right), ``blurred_alpha`` and ``blurred_transmittance``
    (B, 2, N, 1, H, W) and, with ``aux``, ``layer_views`` (B, 2, N, C, H, W) = each layer's intensity blurred
    alone (the auxiliary data term)."""
    c = intensity.shape[2]
    geom = bank.geometry(*intensity.shape[-2:])
    stack = [alpha * intensity, alpha] + ([intensity] if aux else [])
    y = _blur(torch.cat(stack, dim=2), bank, geom)
    p, ahat = y[:, :, :, :c], y[:, :, :, c : c + 1]
    vis = _front_visibility(1 - ahat, 2)
    out = {"views": (p * vis).sum(2), "blurred_alpha": ahat, "blurred_transmittance": ahat * vis}
    if aux:
        out["layer_views"] = y[:, :, :, c + 1 :]
    return out


# ----------------------------------------------------------------------------------------------------------
# Loss
# ----------------------------------------------------------------------------------------------------------


def rho(x: torch.Tensor, gamma: float = GAMMA) -> torch.Tensor:
    """``sqrt(x / gamma^2 + 1) - 1`` (x >= -gamma^2; clamped there)."""
    return torch.sqrt(torch.clamp(x / gamma**2 + 1, min=1e-12)) - 1


def _edge_mask(t: torch.Tensor) -> torch.Tensor:
    return 1 - torch.exp(-(GAMMA**2) * ((t + 1) ** 2 - 1) / (2 * BETA**2))


class _SafeSqrt(torch.autograd.Function):
    """``sqrt(max(x, 0))`` whose derivative is 0 where the value is 0 (instead of inf)."""

    @staticmethod
    def forward(ctx, x):
        y = torch.sqrt(torch.clamp(x, min=0))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return torch.where(y > 0, g / (2 * torch.where(y > 0, y, torch.ones_like(y))), torch.zeros_like(g))


def _binomial3(x: torch.Tensor) -> torch.Tensor:
    """3x3 binomial ([1,2,1]^T [1,2,1] / 16) of ``x`` (..., H, W) with a 1-px edge-replicated border."""
    lead = x.shape[:-2]
    xp = F.pad(x.reshape(-1, 1, *x.shape[-2:]), (1, 1, 1, 1), mode="replicate")
    xp = (xp[..., :-2, :] + 2 * xp[..., 1:-1, :] + xp[..., 2:, :]) / 4
    xp = (xp[..., :-2] + 2 * xp[..., 1:-1] + xp[..., 2:]) / 4
    return xp.reshape(*lead, *x.shape[-2:])


def _tau(x: torch.Tensor) -> torch.Tensor:
    """Local-variance "TV": ``rho(|g * x^2 - (g * x)^2|)``, averaged over the channel axis -3. (..., C, H, W) ->
    (..., H, W)."""
    var = (_binomial3(x * x) - _binomial3(x) ** 2).abs().mean(-3)
    return rho(var)


def _collision_entropy(q: torch.Tensor, dim: int) -> torch.Tensor:
    s = q.sum(dim, keepdim=True)
    ok = s > 0
    p = q / torch.where(ok, s, torch.ones_like(s))
    h = -torch.log(torch.where(ok, (p * p).sum(dim, keepdim=True), torch.ones_like(s)))
    return torch.where(ok, h, torch.full_like(h, math.log(q.shape[dim]))).squeeze(dim)


@dataclass
class Weights:
    data: float = W_DATA
    aux: float = W_AUX
    intensity: float = W_INTENSITY
    alpha: float = W_ALPHA  # at N = 12
    entropy: float = W_ENTROPY


def _mpi(logits_c: torch.Tensor, logits_a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sigmoid of the logits; the back layer's alpha is the constant 1."""
    c = torch.sigmoid(logits_c)
    a = torch.sigmoid(logits_a)
    return c, torch.cat([torch.ones_like(a[:, :1]), a], dim=1)


def xin_loss(intensity, alpha, obs, bank: KernelBank, kappa, bias, weights: Weights | None = None) -> dict:
    """The five loss terms per image (each (B,)) and ``total``. ``intensity`` (B, N, C, H, W), ``alpha``
    (B, N, 1, H, W), ``obs`` (B, 2, C, H, W) normalised observations, ``kappa`` (B,), ``bias`` (B, N)."""
    weights = weights or Weights()
    n = alpha.shape[1]
    kap = kappa.reshape(-1, *[1] * 5)
    ren = render(intensity, alpha, bank, aux=True)
    that = ren["blurred_transmittance"]  # (B, 2, N, 1, H, W)
    b6 = bias.reshape(*bias.shape, 1, 1, 1)[:, None]  # (B, 1, N, 1, 1, 1)
    res = (ren["views"] - obs) ** 2 - (that * b6).sum(2)  # (B, 2, C, H, W)
    e_d = weights.data * kappa * rho(res).mean(dim=(1, 2, 3, 4))
    aux = rho((ren["layer_views"] - obs[:, :, None]) ** 2 - b6)  # (B, 2, N, C, H, W)
    e_a = weights.aux * kappa * (0.5 * (that.detach() * aux).sum(dim=(1, 2))).mean(dim=(1, 2, 3))

    t = composite(alpha)  # (B, N, 1, H, W)
    aif = (t * intensity).sum(1)  # (B, C, H, W)
    tau_a = _tau(kappa.reshape(-1, 1, 1, 1) * aif)  # (B, H, W)
    tau_p = (t[:, :, 0].detach() * _tau(kap[:, 0] * intensity)).sum(1)  # (B, H, W)
    m_a, m_p = _edge_mask(tau_a.detach()), _edge_mask(tau_p.detach())
    e_i = weights.intensity * (
        (tau_a * (1 - m_a) + tau_p * (1 - m_p)).mean(dim=(1, 2)) + (tau_a + tau_p).mean(dim=(1, 2))
    )
    sa, st = _SafeSqrt.apply(alpha), _SafeSqrt.apply(t)  # (B, N, 1, H, W)
    tau_al = _tau(sa) + _tau(st)  # (B, N, H, W)
    w_al = weights.alpha * (n / 12) ** 2
    e_al = w_al * ((tau_al * (1 - m_a[:, None])).mean(dim=(1, 2, 3)) + tau_al.mean(dim=(1, 2, 3)))
    ent = _collision_entropy(sa[:, 1:, 0], 1) + _collision_entropy(st[:, :, 0], 1)  # (B, H, W)
    e_h = weights.entropy / math.log(n) * ent.mean(dim=(1, 2))
    terms = {"data": e_d, "aux": e_a, "intensity": e_i, "alpha": e_al, "entropy": e_h}
    terms["total"] = e_d + e_a + e_i + e_al + e_h
    return terms


# ----------------------------------------------------------------------------------------------------------
# Post-processing
# ----------------------------------------------------------------------------------------------------------


def quantised_bilateral(img: torch.Tensor, sigma_s: float = 3.0, sigma_v: float = 0.05, radius: int = 10):
    """run.py's bilateral filter: window +-``radius``, spatial and range Gaussian weights quantised to
    ``floor(3 w) / 3``, circular (wrap-around) shifts; per channel. ``img`` (..., H, W)."""
    num = torch.zeros_like(img)
    den = torch.zeros_like(img)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            ws = math.floor(3 * math.exp(-(dy * dy + dx * dx) / (2 * sigma_s**2))) / 3
            if ws == 0:
                continue
            sh = torch.roll(img, shifts=(dy, dx), dims=(-2, -1))
            wr = torch.floor(3 * torch.exp(-((sh - img) ** 2) / (2 * sigma_v**2))) / 3
            num += ws * wr * sh
            den += ws * wr
    return num / den


# ----------------------------------------------------------------------------------------------------------
# Optimisation
# ----------------------------------------------------------------------------------------------------------


def learning_rate(i: int, iterations: int, lr=LR) -> float:
    t = min(max(i / max(iterations, 1), 0.0), 1.0)
    return math.exp((1 - t) * math.log(lr[0]) + t * math.log(lr[1]))


def _logit(p):
    return torch.log(p) - torch.log1p(-p)


def optimise(
    left: torch.Tensor,
    right: torch.Tensor,
    kernels=None,
    *,
    scales=None,
    grid=None,
    layers: int = N_LAYERS,
    iterations: int = ITERATIONS,
    lr=LR,
    weights: Weights | None = None,
    seed: int = 0,
    init_noise: float = 0.0,
    bilateral: bool = True,
    callback=None,
) -> dict:
    """Jointly estimate the AIF image and the defocus map of DP pairs by optimising an MPI (module docstring).

    ``left``, ``right``: (B, C, H, W) views on a linear scale (any C; each image is optimised independently,
    batched). ``kernels``: a :class:`KernelBank`, or what :meth:`KernelBank.build` takes (None = half-disks).
    ``callback(i, terms)`` is called after every step with that step's loss terms (detached).

    Returns ``output`` (B, C, H, W) AIF on the input scale (bilateral-filtered unless ``bilateral=False``),
    ``output_raw`` (the unfiltered ``sum_i T_i c_i``), ``defocus`` (B, 1, H, W) = ``sum_i T_i s_i``,
    ``intensity`` (B, N, C, H, W) and ``alpha`` (B, N, 1, H, W) of the final MPI, ``loss`` (final terms) and
    ``history`` (B, iterations) total loss per step.
    """
    if left.shape != right.shape or left.ndim != 4:
        raise ValueError(f"left/right must be (B, C, H, W) of one shape, got {tuple(left.shape)}, {tuple(right.shape)}")
    bank = KernelBank.build(kernels, scales, grid, layers)
    weights = weights or Weights()
    dtype = left.dtype if left.dtype in (torch.float32, torch.float64) else torch.float32
    dev = left.device
    raw = torch.stack([left, right], dim=1).to(dtype)  # (B, 2, C, H, W)
    b, _, c, h, w = raw.shape
    n = bank.layers
    peak = raw.amax(dim=(1, 2, 3, 4)).clamp_min(torch.finfo(dtype).tiny)  # joint max per image
    obs = raw / peak.reshape(-1, 1, 1, 1, 1)
    mean = obs.mean(dim=(1, 2, 3, 4)).clamp_min(1e-6)
    kappa = 0.5 / mean
    bias = (mean / 0.5)[:, None] * bank.bias_base().to(dev, dtype)[None]  # (B, N)
    scales_t = bank.scales.to(dev, dtype)

    # init: intensities = mean(O) per channel, alpha_i = 1 / (i + 1) (the back layer is the constant 1)
    c0 = obs.mean(dim=(1, 3, 4)).clamp(1e-4, 1 - 1e-4)  # (B, C)
    logit_c = _logit(c0)[:, None, :, None, None].expand(b, n, c, h, w).clone()
    a0 = 1.0 / torch.arange(2, n + 1, device=dev, dtype=dtype)
    logit_a = _logit(a0)[None, :, None, None, None].expand(b, n - 1, 1, h, w).clone()
    if init_noise > 0:
        g = torch.Generator(device="cpu").manual_seed(int(seed))
        logit_c += init_noise * torch.randn(logit_c.shape, generator=g, dtype=dtype).to(dev)
        logit_a += init_noise * torch.randn(logit_a.shape, generator=g, dtype=dtype).to(dev)
    params = [logit_c.requires_grad_(), logit_a.requires_grad_()]
    opt = torch.optim.Adam(params, lr=lr[0], betas=(0.9, 0.999), eps=1e-8)

    history = []
    amp_off = torch.autocast(dev.type, enabled=False) if dev.type in ("cuda", "cpu") else nullcontext()
    with torch.enable_grad(), amp_off:
        for i in range(int(iterations)):
            for group in opt.param_groups:
                group["lr"] = learning_rate(i, iterations, lr)
            opt.zero_grad(set_to_none=True)
            terms = xin_loss(*_mpi(*params), obs, bank, kappa, bias, weights)
            terms["total"].sum().backward()
            for p in params:
                torch.nan_to_num_(p.grad, nan=0.0, posinf=0.0, neginf=0.0)
            opt.step()
            history.append(terms["total"].detach())
            if callback is not None:
                callback(i, {k: v.detach() for k, v in terms.items()})
        with torch.no_grad():
            inten, alpha = _mpi(*params)
            terms = {k: v.detach() for k, v in xin_loss(inten, alpha, obs, bank, kappa, bias, weights).items()}
            t = composite(alpha)
            aif = (t * inten).sum(1)  # (B, C, H, W), O's scale
            defocus = (t * scales_t.reshape(1, -1, 1, 1, 1)).sum(1)  # (B, 1, H, W)
            pk = peak.reshape(-1, 1, 1, 1)
            out_raw = aif * pk
            if bilateral:
                kp = kappa.reshape(-1, 1, 1, 1)
                out = quantised_bilateral(kp * aif) / kp * pk
            else:
                out = out_raw
    hist = torch.stack(history, dim=1) if history else torch.zeros(b, 0, device=dev, dtype=dtype)
    return {
        "output": out,
        "output_raw": out_raw,
        "defocus": defocus,
        "intensity": inten.detach(),
        "alpha": alpha.detach(),
        "loss": terms,
        "history": hist,
    }


# ----------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------


class Xin2021(nn.Module):
    """Xin et al. (ICCV 2021) MPI optimisation as a parameter-free module (see the module docstring)."""

    input_views = ("left", "right")
    size_multiple = (1, 1)
    size_mode = "pad"
    extra_outputs = ("defocus",)  # k3dn predict saves <id>_defocus.npy beside the image

    def __init__(
        self,
        kernels=None,
        iterations: int = ITERATIONS,
        seed: int = 0,
        scales=None,
        grid=None,
        layers: int = N_LAYERS,
        scene: str | None = None,
        lr=LR,
        w_data: float = W_DATA,
        w_aux: float = W_AUX,
        w_intensity: float = W_INTENSITY,
        w_alpha: float | None = None,
        w_entropy: float | None = None,
        init_noise: float = 0.0,
        bilateral: bool = True,
    ):
        super().__init__()
        if scene is not None:
            scene = f"{int(scene):03d}" if str(scene).isdigit() else str(scene)
            if scene not in PIXEL_SCENES:
                raise KeyError(f"unknown Pixel scene {scene!r}; known: {', '.join(PIXEL_SCENES)}")
            s_start, s_end, wa, wh = PIXEL_SCENES[scene]
            if scales is None:
                scales = np.linspace(s_end, s_start, int(layers))
            w_alpha = wa if w_alpha is None else w_alpha
            w_entropy = wh if w_entropy is None else w_entropy
        if int(iterations) < 0:
            raise ValueError(f"iterations must be >= 0, got {iterations}")
        self.bank = KernelBank.build(kernels, scales, grid, layers)
        self.iterations, self.seed = int(iterations), int(seed)
        self.init_noise, self.bilateral = float(init_noise), bool(bilateral)
        self.lr = (float(lr[0]), float(lr[1]))
        self.weights = Weights(
            w_data,
            w_aux,
            w_intensity,
            W_ALPHA if w_alpha is None else float(w_alpha),
            W_ENTROPY if w_entropy is None else float(w_entropy),
        )
        # the kernels as a buffer, so .to(device) and state inspection see them (not saved: no trained weights)
        self.register_buffer("kernels", self.bank.kernels, persistent=False)
        self.register_buffer("scales", self.bank.scales, persistent=False)

    def _apply(self, fn, *args, **kw):
        out = super()._apply(fn, *args, **kw)
        # the bank stays float64 whatever dtype the module is cast to (only the device follows)
        self.bank.kernels, self.bank.scales = self.kernels.double(), self.scales.double()
        self.bank._spectra.clear()
        return out

    def optimise(self, left, right, iterations: int | None = None, callback=None) -> dict:
        return optimise(
            left,
            right,
            self.bank,
            iterations=self.iterations if iterations is None else iterations,
            lr=self.lr,
            weights=self.weights,
            seed=self.seed,
            init_noise=self.init_noise,
            bilateral=self.bilateral,
            callback=callback,
        )

    def forward(self, batch: dict) -> dict:
        left, right = batch["left"], batch["right"]
        c = left.shape[1]
        grey = c > 1 and bool((left == left[:, :1]).all()) and bool((right == right[:, :1]).all())
        if grey:
            left, right = left[:, :1], right[:, :1]
        res = self.optimise(left.float(), right.float())
        out, raw, d = res["output"], res["output_raw"], res["defocus"]
        if grey:
            out, raw = out.expand(-1, c, -1, -1), raw.expand(-1, c, -1, -1)
        return {"output": out.clamp(0, 1).to(batch["left"].dtype), "output_raw": raw, "defocus": d}


@register_model
def xin2021(**kw) -> Xin2021:
    """Xin et al. ICCV 2021 MPI optimisation; ``kernels=<.npz|folder>`` for the Pixel set's calibrated kernels."""
    return Xin2021(**kw)
