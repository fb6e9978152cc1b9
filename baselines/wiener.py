"""Two-view (dual-pixel) Wiener deconvolution with per-patch kernel-scale selection: the "Wiener Deconv" row of
the K3DN supplement's Table 7 (Pixel set), after Zhou, Lin & Nayar, "Coded aperture pairs for depth from
defocus" (ICCV 2009), applied to the two DP views as an aperture pair.

Written from the described method (no code copied). For every overlapping patch of the image and every candidate
kernel scale ``s`` (a signed defocus level) the two views are deconvolved *jointly* in the Fourier domain,

    F_s = (conj(K_L,s) B_L + conj(K_R,s) B_R) / (|K_L,s|^2 + |K_R,s|^2 + nsr * |G|^2),

where ``|G|^2 = 4 sin^2(pi u) + 4 sin^2(pi v)`` is the spectrum of the image-gradient operator (Zhou et al.'s
natural-image prior ``|C|^2 = sigma^2 / A(xi)`` with ``A ~ 1/|xi|^2``; it leaves the mean brightness untouched).
The scale kept for a patch is the one whose reconstruction best re-explains *both* views: the smallest
window-weighted reblur residual ``|B_L - K_L,s * F_s|^2 + |B_R - K_R,s * F_s|^2`` over the patch (scale selection
runs on the mean of the colour channels, the final deconvolution on every channel). Patches of ``patch`` pixels
at stride ``patch / 2`` are deconvolved with a context ``margin`` around them (default ``max(16, 3 x kernel
radius)``; the FFT runs over patch + margin, and the margin is tapered towards the tile mean with a ``sin^2`` ramp
so that the FFT's wrap-around discontinuity does not ring into the patch), then blended with ``sin^2`` windows
that sum to one. ``nsr`` (default 3e-3) is the only tuning knob of the deconvolution; it was set on synthetic
half-disk blur with 0-1 % noise, not on any benchmark's test images.

Kernels (all normalised to sum 1, so the output has the views' brightness):

(a) calibrated: ``kernels=<.npz with "left" and "right">`` (or a ``(left, right)`` pair of arrays), shaped
    ``(N, k, k)``, one kernel per cell of a ``grid`` laid over the image (Pixel set, ``datasets.md`` §2.2:
    ``blur_kernels_{left,right}.npy`` are float32 ``(48, 61, 61)``, the 6x8 grid of 168x168 patches of the
    1008x1344 centre crop; ``N == 48`` implies ``grid=(6, 8)``, ``N == 1`` a single global kernel). A patch uses
    the cell holding its centre (the grid is stretched over the input frame). Candidate scales ``scales``
    (default ``linspace(-1.5, 1.5, 31)``) resample the calibrated kernel: ``K_s(x) ~ K(x / s)`` (mass-preserving
    splatting), so a negative scale is the point reflection (the defocus on the other side of the focal plane)
    and ``s = 0`` the delta. ``pair_centroid=(dy, dx)`` first moves both kernels of every pair by the same
    amount, so that the mean of their centroids sits at (dy, dx) px at scale 1 (s times that at scale s): where
    the kernels put the deconvolved image relative to the views. The Pixel set's calibrated pairs have their
    mean centroid near (-1, -1.4) px, which is not where its all-in-focus ground truth sits relative to the
    views; ``scripts/pixel_wiener_centroid.py`` measures where it does (``docs/REPRODUCTION.md``). The support
    (and so the FFT tile) grows by the largest move of any cell.
(b) parametric (default): DP half-disks over signed radii ``radii`` (default ``-20 .. 20`` px, step 1): for
    ``r > 0`` the left view's kernel is the left half (x < 0) of a disk of radius ``r``, the right view's its
    mirror image ``K_R(x, y) = K_L(-x, y)``; for ``r < 0`` the two are swapped. Pixel coverage is
    anti-aliased by 8x8 supersampling; ``|r| < 0.5`` is the delta.

Registered as ``wiener``: an ``nn.Module`` without parameters, ``input_views = ("left", "right")``,
``forward(batch) -> {"output": (B, 3, H, W) in [0, 1], "scale": (B, ny, nx) selected scale/radius per patch}``.
Colour is processed per channel in whatever space the inputs are in (sRGB for DPDD, linear raw for Pixel).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from k3dn.registry import register_model

__all__ = ["DPWiener", "wiener", "centroid", "half_disk_kernels", "load_kernels", "pair_shifts", "scale_kernel"]


# ----------------------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------------------


def _delta(size: int) -> np.ndarray:
    k = np.zeros((size, size))
    k[size // 2, size // 2] = 1.0
    return k


def half_disk_kernels(radii, size: int | None = None, ss: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Left/right DP half-disk kernels for signed ``radii``: two float64 arrays ``(S, size, size)``, sum 1.

    ``r > 0``: left = half of the disk with x < 0, right = its mirror (x > 0); ``r < 0``: swapped.
    """
    radii = np.asarray(radii, dtype=np.float64).reshape(-1)
    rmax = float(np.abs(radii).max()) if radii.size else 0.0
    size = size or 2 * int(math.ceil(rmax)) + 3
    c = size // 2
    off = (np.arange(ss) + 0.5) / ss - 0.5
    coords = (np.arange(size) - c)[:, None] + off[None, :]  # (size, ss) sub-sample positions
    y = coords.reshape(-1)[:, None]
    x = coords.reshape(-1)[None, :]
    r2 = x * x + y * y
    kl, kr = [], []
    for r in radii:
        if abs(r) < 0.5:
            kl.append(_delta(size))
            kr.append(_delta(size))
            continue
        disk = r2 <= r * r
        left = (disk & (x < 0)).astype(np.float64).reshape(size, ss, size, ss).mean(axis=(1, 3))
        left /= left.sum()
        right = left[:, ::-1].copy()
        if r < 0:
            left, right = right, left
        kl.append(left)
        kr.append(right)
    return np.stack(kl), np.stack(kr)


def scale_kernel(kernel: np.ndarray, s: float, size: int, shift=(0.0, 0.0)) -> np.ndarray:
    """Resample ``kernel`` (odd k x k, centred) by the signed factor ``s`` into ``size x size``, sum 1.

    ``K_s(x) ~ K(x / s - shift)``: every kernel sample is split into sub-samples spaced at most one output pixel
    apart and splatted bilinearly at ``s * (position + shift)`` (mass-preserving, no holes when enlarging;
    ``s = +-1`` with no shift exact). ``shift`` (dy, dx) moves the kernel at scale 1, so ``s`` scales the move
    too. ``s < 0`` point-reflects; ``s == 0`` gives the delta.
    """
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0:
        raise ValueError(f"calibrated kernels must be odd and square, got {k.shape}")
    k = np.clip(k, 0, None)
    if k.sum() <= 0:
        raise ValueError("calibrated kernel has no positive mass")
    if abs(s) < 1e-6:
        return _delta(size)
    ss = max(1, int(math.ceil(abs(s) - 1e-9)))  # sub-sample spacing |s| / ss <= 1 output pixel: no holes
    n = k.shape[0]
    off = (np.arange(ss) + 0.5) / ss - 0.5
    pos = ((np.arange(n) - n // 2)[:, None] + off[None, :]).reshape(-1)  # (n*ss,)
    w = np.repeat(np.repeat(k, ss, axis=0), ss, axis=1) / (ss * ss)
    py = s * (pos[:, None] + shift[0]) + size // 2 + np.zeros_like(pos)[None, :]
    px = s * (pos[None, :] + shift[1]) + size // 2 + np.zeros_like(pos)[:, None]
    y0 = np.floor(py).astype(np.int64)
    x0 = np.floor(px).astype(np.int64)
    fy, fx = py - y0, px - x0
    out = np.zeros(size * size)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            yy, xx = y0 + dy, x0 + dx
            ok = (yy >= 0) & (yy < size) & (xx >= 0) & (xx < size)
            out += np.bincount((yy * size + xx)[ok], weights=(w * wy * wx)[ok], minlength=size * size)
    out = out.reshape(size, size)
    tot = out.sum()
    if tot <= 0:
        raise ValueError(f"scale {s} moves the kernel outside a {size}x{size} support")
    return out / tot


def centroid(kernel: np.ndarray) -> np.ndarray:
    """``(dy, dx)`` of a kernel's centre of mass, in pixels from its centre tap."""
    k = np.asarray(kernel, dtype=np.float64)
    off = np.arange(k.shape[-1]) - k.shape[-1] // 2
    return np.array([(k.sum(-1) * off).sum(), (k.sum(-2) * off).sum()]) / k.sum()


def pair_shifts(left: np.ndarray, right: np.ndarray, pair_centroid) -> np.ndarray:
    """Per cell ``(dy, dx)`` that moves both kernels of the pair so that the mean of their two centroids (of the
    kernels clipped at 0, as :func:`scale_kernel` uses them) lies at ``pair_centroid`` (pixels at scale 1);
    zeros when ``pair_centroid`` is None (the kernels as calibrated)."""
    if pair_centroid is None:
        return np.zeros((left.shape[0], 2))
    target = np.asarray(pair_centroid, dtype=np.float64).reshape(-1)
    if target.shape != (2,) or not np.all(np.isfinite(target)):
        raise ValueError(f"pair_centroid must be two finite numbers (dy, dx), got {pair_centroid!r}")
    mean = np.stack([(centroid(np.clip(a, 0, None)) + centroid(np.clip(b, 0, None))) / 2 for a, b in zip(left, right)])
    return target[None] - mean


def load_kernels(source) -> tuple[np.ndarray, np.ndarray]:
    """``(left, right)`` calibrated kernels ``(N, k, k)`` from an ``.npz`` (keys ``left``/``right``), a folder
    holding the Pixel set's ``blur_kernels_left.npy``/``blur_kernels_right.npy``, or a pair of arrays."""
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if p.is_dir():
            files = p / "blur_kernels_left.npy", p / "blur_kernels_right.npy"
            missing = [str(f) for f in files if not f.is_file()]
            if missing:
                raise FileNotFoundError(f"{p}: calibrated kernel file(s) not found: {missing}")
            left, right = (np.load(f, allow_pickle=False) for f in files)
        else:
            if not p.is_file():
                raise FileNotFoundError(f"{p}: kernel file not found")
            with np.load(p, allow_pickle=False) as z:
                missing = [k for k in ("left", "right") if k not in z.files]
                if missing:
                    raise KeyError(f"{p}: kernel file lacks array(s) {missing} (has {z.files})")
                left, right = z["left"], z["right"]
    else:
        left, right = source
    left, right = np.asarray(left, np.float64), np.asarray(right, np.float64)
    if left.ndim == 2:
        left, right = left[None], right[None]
    if left.shape != right.shape or left.ndim != 3:
        raise ValueError(f"left/right kernels must both be (N, k, k), got {left.shape} and {right.shape}")
    return left, right


# ----------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------


def _pad(x, top, bottom, left, right):
    h, w = x.shape[-2:]
    mode = "reflect" if max(top, bottom) < h and max(left, right) < w else "replicate"
    return F.pad(x, (left, right, top, bottom), mode=mode)


def _patch_ifft(spec: torch.Tensor, t: int, m: int, p: int) -> torch.Tensor:
    """``irfft2(spec, s=(t, t))[..., m:m+p, m:m+p]`` without transforming the rows that the crop drops."""
    rows = torch.fft.ifft(spec, dim=-2)[..., m : m + p, :]
    return torch.fft.irfft(rows, n=t, dim=-1)[..., m : m + p]


class DPWiener(nn.Module):
    """Two-view Wiener deconvolution with per-patch scale selection (see the module docstring)."""

    input_views = ("left", "right")
    size_multiple = (1, 1)
    size_mode = "pad"

    def __init__(
        self,
        kernels=None,
        grid=None,
        scales=None,
        radii=None,
        patch: int = 128,
        nsr: float = 3e-3,
        margin: int | None = None,
        chunk_elems: int = 1 << 25,
        pair_centroid=None,
    ):
        super().__init__()
        if patch < 8 or patch % 2:
            raise ValueError(f"patch must be an even number >= 8, got {patch}")
        self.patch, self.nsr, self.chunk_elems = int(patch), float(nsr), int(chunk_elems)
        if kernels is not None:
            left, right = load_kernels(kernels)
            n = left.shape[0]
            if grid is None:
                grid = {48: (6, 8), 1: (1, 1)}.get(n)
                if grid is None:
                    raise ValueError(f"{n} calibrated kernels: give grid=(rows, cols)")
            grid = tuple(int(g) for g in grid)
            if grid[0] * grid[1] != n:
                raise ValueError(f"grid {grid} does not hold {n} kernels")
            cand = np.asarray(scales if scales is not None else np.linspace(-1.5, 1.5, 31), np.float64)
            shifts = pair_shifts(left, right, pair_centroid)  # (n, 2)
            # support of the largest scaled kernel: the calibrated kernel's mass radius (plus the largest shift)
            # times max |s|
            tot = np.clip(left, 0, None).sum(0) + np.clip(right, 0, None).sum(0)
            ys, xs = np.nonzero(tot > 1e-3 * tot.max())  # ignore calibration noise in the corners
            c = left.shape[-1] // 2
            rad = max(np.abs(ys - c).max(), np.abs(xs - c).max()) + 1 + float(np.abs(shifts).max())
            size = 2 * int(math.ceil(rad * max(1.0, float(np.abs(cand).max())))) + 3
            kl = np.stack([[scale_kernel(left[i], s, size, shifts[i]) for s in cand] for i in range(n)])
            kr = np.stack([[scale_kernel(right[i], s, size, shifts[i]) for s in cand] for i in range(n)])
            self.mode = "calibrated"
        else:
            if pair_centroid is not None:
                raise ValueError("pair_centroid moves calibrated kernels; without kernels it has nothing to move")
            cand = np.asarray(radii if radii is not None else np.arange(-20, 21), np.float64)
            kl, kr = half_disk_kernels(cand)
            kl, kr = kl[None], kr[None]
            grid = (1, 1)
            self.mode = "parametric"
        self.grid = grid
        self.register_buffer("candidates", torch.as_tensor(cand, dtype=torch.float32), persistent=False)
        self.register_buffer("kernels_left", torch.as_tensor(kl, dtype=torch.float32), persistent=False)
        self.register_buffer("kernels_right", torch.as_tensor(kr, dtype=torch.float32), persistent=False)
        ksize = kl.shape[-1]
        self.margin = int(margin if margin is not None else max(16, 3 * (ksize // 2)))
        if self.margin < ksize // 2:
            raise ValueError(f"margin {self.margin} is smaller than the kernel radius {ksize // 2}")
        self.tile = self.patch + 2 * self.margin

    # -- geometry -------------------------------------------------------------------------------------------
    def tile_starts(self, n: int) -> list[int]:
        """Start (in image coordinates) of the patches covering ``n`` pixels along one axis."""
        s = self.patch // 2
        count = max(1, math.ceil(max(n - self.patch, 0) / s) + 1)
        return [i * s for i in range(count)]

    def _window(self, device, dtype):
        t = (torch.arange(self.patch, device=device, dtype=torch.float64) + 0.5) / self.patch
        w1 = torch.sin(math.pi * t) ** 2
        return (w1[:, None] * w1[None, :]).to(dtype)

    def _taper(self, device):
        """1 on the patch, a sin^2 ramp to 0 across the margin: tiles are blended towards their mean there,
        which removes the wrap-around discontinuity the FFT would otherwise turn into ringing."""
        t, m = self.tile, self.margin
        i = torch.arange(t, device=device, dtype=torch.float64)
        d = torch.minimum(i + 0.5, t - i - 0.5)  # distance to the tile edge
        a = torch.sin(0.5 * math.pi * torch.clamp(d / m, max=1.0)) ** 2
        return (a[:, None] * a[None, :]).to(torch.float32)

    def _spectra(self, device):
        """Kernel spectra on the tile grid, kernel centre at (0, 0): (cells, S, T, T//2+1) complex, each view."""
        t = self.tile
        out = []
        for k in (self.kernels_left, self.kernels_right):
            k = k.to(device=device, dtype=torch.float32)
            ks = k.shape[-1]
            canvas = torch.zeros(*k.shape[:2], t, t, device=device, dtype=torch.float32)
            canvas[..., :ks, :ks] = k
            canvas = torch.roll(canvas, shifts=(-(ks // 2), -(ks // 2)), dims=(-2, -1))
            out.append(torch.fft.rfft2(canvas))
        fy = torch.fft.fftfreq(t, device=device)[:, None]
        fx = torch.fft.rfftfreq(t, device=device)[None, :]
        reg = 4 * torch.sin(math.pi * fy) ** 2 + 4 * torch.sin(math.pi * fx) ** 2
        return out[0], out[1], (self.nsr * reg).to(torch.float32)

    def _filters(self, device):
        """Per cell and candidate: the reblur gains A_L = |K_L|^2 / D, A_R = |K_R|^2 / D and the cross term
        B = K_L conj(K_R) / D of the joint deconvolution (D its denominator), plus the spectra and D themselves."""
        kl, kr, reg = self._spectra(device)
        pl, pr = kl.abs() ** 2, kr.abs() ** 2
        den = pl + pr + reg
        return pl / den, pr / den, kl * kr.conj() / den, kl, kr, den

    # -- forward --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def deblur(self, left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, C, H, W)`` views -> ``(output (B, C, H, W), selected candidate per patch (B, ny, nx))``."""
        if left.shape != right.shape or left.ndim != 4:
            raise ValueError(
                f"left/right must be (B, C, H, W) of one shape, got {tuple(left.shape)}, {tuple(right.shape)}"
            )
        dev = left.device
        b, c, h, w = left.shape
        p, m, t, s = self.patch, self.margin, self.tile, self.patch // 2
        ys, xs = self.tile_starts(h), self.tile_starts(w)
        ny, nx = len(ys), len(xs)
        hc, wc = ys[-1] + p, xs[-1] + p
        # cell of every patch centre (grid stretched over the frame)
        cy = torch.tensor([min(self.grid[0] - 1, int((y0 + p / 2) * self.grid[0] / h)) for y0 in ys])
        cx = torch.tensor([min(self.grid[1] - 1, int((x0 + p / 2) * self.grid[1] / w)) for x0 in xs])
        cell = (cy[:, None] * self.grid[1] + cx[None, :]).reshape(-1).to(dev)
        a_l, a_r, b_lr, kl_f, kr_f, den = self._filters(dev)
        n_s = kl_f.shape[1]
        win = self._window(dev, torch.float32)
        taper = self._taper(dev)
        win_sum_sel = win.sum()
        chunk = max(1, self.chunk_elems // (n_s * t * t))

        outs, sel_all = [], []
        for bi in range(b):
            views = torch.stack([left[bi], right[bi]]).float()  # (2, C, H, W)
            views = _pad(views, m, m + hc - h, m, m + wc - w)
            tiles = views.unfold(2, t, s).unfold(3, t, s)  # (2, C, ny, nx, T, T)
            tiles = tiles.permute(2, 3, 0, 1, 4, 5).reshape(ny * nx, 2, c, t, t)
            best = torch.empty(ny * nx, dtype=torch.long, device=dev)
            result = torch.empty(ny * nx, c, p, p, device=dev)
            # tiles grouped by calibration cell, so each group's filters broadcast instead of being gathered
            for u in torch.unique(cell).tolist():
                members = torch.nonzero(cell == u).reshape(-1)
                for i0 in range(0, len(members), chunk):
                    idx = members[i0 : i0 + chunk]
                    tl = tiles[idx]
                    mu = tl.mean(dim=(-2, -1), keepdim=True)
                    tl = mu + (tl - mu) * taper
                    # scale selection on the channel mean: the reblur residuals' spectra are linear in the views'
                    # (E_L = (1 - A_L) G_L - B G_R, E_R = (1 - A_R) G_R - conj(B) G_L, filters fixed per cell)
                    g = torch.fft.rfft2(tl.mean(dim=2))[:, :, None]  # (n, 2, 1, T, Tw)
                    e_l = (1 - a_l[u]) * g[:, 0] - b_lr[u] * g[:, 1]  # (n, S, T, Tw)
                    e_r = (1 - a_r[u]) * g[:, 1] - b_lr[u].conj() * g[:, 0]
                    err = (_patch_ifft(e_l, t, m, p) ** 2 + _patch_ifft(e_r, t, m, p) ** 2) * win
                    k = (err.sum(dim=(-2, -1)) / win_sum_sel).argmin(dim=1)  # (n,)
                    best[idx] = k
                    # final per-channel deconvolution with the selected kernel pair
                    kl1, kr1, den1 = kl_f[u, k][:, None], kr_f[u, k][:, None], den[u, k][:, None]
                    bf = torch.fft.rfft2(tl)  # (n, 2, C, T, Tw)
                    f = (kl1.conj() * bf[:, 0] + kr1.conj() * bf[:, 1]) / den1
                    result[idx] = torch.fft.irfft2(f, s=(t, t))[..., m : m + p, m : m + p]
            # overlap-add with the sin^2 windows
            cols = (result * win).reshape(ny * nx, c * p * p).T[None]  # (1, C*P*P, L)
            canvas = F.fold(cols, output_size=(hc, wc), kernel_size=p, stride=s)
            wsum = F.fold(
                win.reshape(1, p * p, 1).expand(1, p * p, ny * nx), output_size=(hc, wc), kernel_size=p, stride=s
            )
            outs.append((canvas / wsum)[0, :, :h, :w])
            sel_all.append(self.candidates.to(dev)[best].reshape(ny, nx))
        return torch.stack(outs).to(left.dtype), torch.stack(sel_all)

    def forward(self, batch: dict) -> dict:
        out, scale = self.deblur(batch["left"], batch["right"])
        return {"output": out.clamp(0, 1), "scale": scale}


@register_model
def wiener(**kw) -> DPWiener:
    """Two-view Wiener deconvolution (supplement Table 7); ``kernels=<.npz|folder>`` for calibrated kernels."""
    return DPWiener(**kw)
