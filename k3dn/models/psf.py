"""PSF blocks: disparity-aware kernel estimation at the U-net bottleneck (K3DN, CVPR 2023, Sec. 3 / Tab. 13).

Written from the description in the K3DN paper and its supplement; no code was copied.

One PSF block on a window of 1/8-resolution features x (C channels) with its disparity vector r (256-d):

    deblur:  z = lrelu(DWConv_K(x));      z = lrelu(W_pw · (z ⊙ s(r)));   out = z + x
    reblur:  z = lrelu(W_pw⁻¹ · x ⊙ ŝ(r)); z = lrelu(DWConv_K⁻¹(z));       out = z + x

* **Kernel set K** (one k×k depthwise kernel per channel, k = 9 by default, Tab. 10): each kernel is parameterised by
  a complex half-spectrum W_c of shape (k+1) × ((k+1)/2 + 1). ``k_full = irfft2(W_c)`` is (k+1)×(k+1); its top-left
  k rows × (k+1)/2 columns are the left half plus centre column, mirrored to k×k, so ``K(x, y) = K(−x, y)`` holds
  *exactly* (the DP blur model: the combined-pixel PSF is left-right symmetric). Each kernel has unit L2 norm.
* **Inverse kernel K⁻¹** ("deblurring by a simple Fourier transform", reblurring by "a simple convolution"): the same
  crop/mirror/normalisation applied to ``irfft2(1 / W_c)``.
  Identity that holds: before the crop we project W onto its Hermitian-consistent part H(W) (irfft2 discards the
  rest, so ``irfft2(W) == irfft2(H(W))`` and the forward kernel is unchanged); then the *full* (k+1)×(k+1) real
  kernels satisfy ``fft2(irfft2(H(W))) · fft2(irfft2(1/H(W))) = 1`` at every frequency (exactly, for eps = 0;
  ``H(W)/(H(W)+eps)`` in general). The k×k crop, mirror and L2 normalisation make K⁻¹ only an approximate inverse of
  K, as in the reconstruction. (Without the projection, the identity would hold only off the DC and Nyquist columns
  of the half-spectrum; the projection is our choice to make the stated identity exact.)
* **Point-wise conv** W_pw = P·L·U (Glow LU parameterisation: fixed permutation P, unit lower L, upper U with
  diag(sign·exp(log_s)), QR-orthogonal init), applied to the input modulated by ``s = softmax_C(EqualLinear(r))``:
  querying the kernel set is a per-window softmax over the C depthwise kernels. Reverse: ``W_pw⁻¹`` and the
  reciprocal modulation ``ŝ = clip(1/(s+1e-8), 0, truncate) / ||·||₂``. ``W_pw⁻¹ W_pw = I`` holds to float precision;
  with modulation, reverse∘forward = x ⊙ s ⊙ ŝ, i.e. x scaled by the positive per-window constant 1/||1/s||₂
  wherever no reciprocal is truncated.
* **Kernel→disparity interaction** before every block: ``w_c = Σ T_c ⊙ K_c^left`` (T learnable, zero init),
  ``r ← r + lrelu(Lin_{C→256}(Lin_{256→C}(r) ⊙ w))`` (trunc-normal std 1e-3 weights, zero biases). With T = 0 at
  init the update is zero and the two linears receive zero gradient until T moves (by design, not a bug).

Windows are processed independently (zero padding at every window border), like the reconstruction.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import LRELU_SLOPE

DISP_DIM = 256


def _autocast_state(device: torch.device):
    """The dtype autocast computes in on ``device`` (None when it is off): a value computed under bf16 autocast is
    a bf16 value, never the one a float32 forward wants."""
    kind = device.type
    if torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind):
        return torch.get_autocast_dtype(kind)
    return None


class InferenceCache:
    """Derived weights (kernels from spectra, LU products and inverses) computed once per set of input values.

    Only without autograd (inference, ``torch.no_grad``/``inference_mode``). ``tensors`` must be every tensor the
    value is computed from (parameters and buffers); the key is each one's identity, in-place version counter,
    storage, dtype and device, and the autocast state, so an optimiser step, ``load_state_dict``, an in-place edit
    of a buffer, ``.to()``, ``.half()`` or a bf16-autocast forward gets its own entry, and a training forward never
    sees a cached tensor. Writes through ``p.data`` bypass version counters (PyTorch's rule): edit weights in place
    under ``torch.no_grad()`` instead.
    """

    def __init__(self):
        self._store: dict = {}

    def get(self, name: str, tensors, compute):
        if torch.is_grad_enabled():
            return compute()
        key = (
            name,
            _autocast_state(tensors[0].device),
            *((id(p), p._version, p.data_ptr(), p.dtype, p.device) for p in tensors),
        )
        hit = self._store.get(name)
        if hit is None or hit[0] != key:
            hit = (key, compute())
            self._store[name] = hit
        return hit[1]


# ----------------------------------------------------------------------------------------------------------------
# Kernel set in the Fourier domain
# ----------------------------------------------------------------------------------------------------------------


def spectrum_shape(kernel_size: int) -> tuple[int, int]:
    """Half-spectrum shape for a k×k kernel: (k+1) × ((k+1)//2 + 1), e.g. 10×6 for k = 9."""
    n = kernel_size + 1
    return n, n // 2 + 1


def hermitian_project(spec: torch.Tensor) -> torch.Tensor:
    """Project a complex half-spectrum (..., n, n//2+1) of an n×n real signal (n even) onto the Hermitian-consistent
    subspace: the DC and Nyquist columns must satisfy W[u] = conj(W[-u]). Other columns are free and unchanged."""
    n = spec.shape[-2]
    neg = (-torch.arange(n, device=spec.device)) % n
    out = spec.clone()
    for col in (0, spec.shape[-1] - 1):
        c = spec[..., :, col]
        out[..., :, col] = 0.5 * (c + c[..., neg].conj())
    return out


def full_kernels(spec: torch.Tensor, kernel_size: int, *, reciprocal: bool = False, eps: float = 1e-8) -> torch.Tensor:
    """(C, n, m) complex half-spectra -> (C, n, n) real full kernels (before crop), ``1/W`` if ``reciprocal``."""
    n = kernel_size + 1
    w = hermitian_project(spec)
    if reciprocal:
        w = 1.0 / (w + eps)
    return torch.fft.irfft2(w, s=(n, n))


def crop_mirror_normalise(full: torch.Tensor, kernel_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, k+1, k+1) -> (symmetric k×k kernels with unit L2 norm, their left half k×(k+1)/2 incl. centre column)."""
    k = kernel_size
    half = full[:, :k, : (k + 1) // 2]
    kern = torch.cat([half, half[:, :, :-1].flip(-1)], dim=-1)
    norm = torch.sqrt(kern.pow(2).sum(dim=(-2, -1), keepdim=True) + 1e-8)
    kern = torch.nan_to_num(kern / norm)
    return kern, kern[:, :, : (k + 1) // 2]


class SymmetricKernelSet(nn.Module):
    """C trainable, left-right symmetric k×k depthwise kernels parameterised by complex half-spectra."""

    def __init__(self, channels: int, kernel_size: int = 9, eps: float = 1e-8):
        super().__init__()
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 3, got {kernel_size}")
        self.channels, self.kernel_size, self.eps = channels, kernel_size, eps
        # real/imag pairs, randn init (as reconstructed)
        self.spectrum = nn.Parameter(torch.randn(channels, *spectrum_shape(kernel_size), 2))
        self._cache = InferenceCache()

    def complex_spectrum(self) -> torch.Tensor:
        return torch.view_as_complex(self.spectrum)

    def kernels(self, inverse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(k×k kernels (C, k, k), left halves (C, k, (k+1)/2)) of K, or of K⁻¹ if ``inverse``."""

        def compute():
            full = full_kernels(self.complex_spectrum(), self.kernel_size, reciprocal=inverse, eps=self.eps)
            return crop_mirror_normalise(full, self.kernel_size)

        return self._cache.get(f"kernels{'_inv' if inverse else ''}", (self.spectrum,), compute)

    def forward(self, x: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        kern, _ = self.kernels(inverse)
        return F.conv2d(x, kern.unsqueeze(1).to(x.dtype), padding=self.kernel_size // 2, groups=self.channels)


# ----------------------------------------------------------------------------------------------------------------
# Disparity-modulated invertible point-wise convolution
# ----------------------------------------------------------------------------------------------------------------


class EqualLinear(nn.Module):
    """StyleGAN2 equalised linear layer: weight ~ N(0, 1) scaled by 1/sqrt(in) at run time, bias init ``bias_init``."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = 1.0 / math.sqrt(in_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class InvertiblePointConv(nn.Module):
    """Glow LU 1×1 conv, W = P·(L + I)·(U + diag(sign·exp(log_s))), input modulated by softmax(EqualLinear(r))."""

    def __init__(self, channels: int, disp_dim: int = DISP_DIM, truncate: float = 100.0):
        super().__init__()
        self.channels, self.truncate = channels, truncate
        q, _ = torch.linalg.qr(torch.randn(channels, channels))
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        self.register_buffer("w_p", p)
        self.register_buffer("s_sign", torch.sign(s))
        self.register_buffer("l_mask", torch.tril(torch.ones(channels, channels), -1))
        self.register_buffer("eye", torch.eye(channels))
        self.w_l = nn.Parameter(lower)
        self.w_s = nn.Parameter(torch.log(torch.abs(s)))
        self.w_u = nn.Parameter(torch.triu(upper, 1))
        self.modulation = EqualLinear(disp_dim, channels, bias_init=1.0)
        self._cache = InferenceCache()

    def _factor_tensors(self) -> tuple[torch.Tensor, ...]:
        """Every tensor the weight and its inverse are computed from (the cache's key)."""
        return self.w_l, self.w_s, self.w_u, self.w_p, self.s_sign, self.l_mask, self.eye

    def _factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        lower = self.w_l * self.l_mask + self.eye
        upper = self.w_u * self.l_mask.T + torch.diag(self.s_sign * torch.exp(self.w_s))
        return lower, upper

    def weight(self) -> torch.Tensor:
        def compute():
            lower, upper = self._factors()
            return self.w_p @ lower @ upper

        return self._cache.get("weight", self._factor_tensors(), compute)

    def inverse_weight(self) -> torch.Tensor:
        # U⁻¹ L⁻¹ P⁻¹ by triangular solves (P is a permutation: P⁻¹ = Pᵀ); exact up to float rounding.
        def compute():
            lower, upper = self._factors()
            l_inv = torch.linalg.solve_triangular(lower, self.eye, upper=False, unitriangular=True)
            return torch.linalg.solve_triangular(upper, l_inv @ self.w_p.T, upper=True)

        return self._cache.get("inverse_weight", self._factor_tensors(), compute)

    def scales(self, r: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.modulation(r), dim=-1)

    def reciprocal_scales(self, r: torch.Tensor) -> torch.Tensor:
        inv = torch.clamp(1.0 / (self.scales(r) + 1e-8), 0.0, self.truncate)
        return inv / inv.norm(dim=-1, keepdim=True)

    def forward(self, x: torch.Tensor, r: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        if not reverse:
            x = x * self.scales(r)[:, :, None, None].to(x.dtype)
            return F.conv2d(x, self.weight()[:, :, None, None].to(x.dtype))
        y = F.conv2d(x, self.inverse_weight()[:, :, None, None].to(x.dtype))
        return y * self.reciprocal_scales(r)[:, :, None, None].to(x.dtype)


# ----------------------------------------------------------------------------------------------------------------
# Kernel -> disparity interaction and the PSF block
# ----------------------------------------------------------------------------------------------------------------


class KernelDisparityInteraction(nn.Module):
    """r <- r + lrelu(Lin_{C→256}(Lin_{256→C}(r) ⊙ w)), w_c = <T_c, left half of kernel c>."""

    def __init__(self, channels: int, kernel_size: int, disp_dim: int = DISP_DIM):
        super().__init__()
        self.T = nn.Parameter(torch.zeros(channels, kernel_size, (kernel_size + 1) // 2))
        self.down = nn.Linear(disp_dim, channels)
        self.up = nn.Linear(channels, disp_dim)
        for lin in (self.down, self.up):
            nn.init.trunc_normal_(lin.weight, std=1e-3)
            nn.init.zeros_(lin.bias)

    def forward(self, r: torch.Tensor, left_half: torch.Tensor) -> torch.Tensor:
        w = (self.T * left_half).sum(dim=(-2, -1))
        return r + F.leaky_relu(self.up(self.down(r) * w), LRELU_SLOPE)


class PSFBlock(nn.Module):
    def __init__(self, channels: int, kernel_size: int = 9, disp_dim: int = DISP_DIM, truncate: float = 100.0):
        super().__init__()
        self.interaction = KernelDisparityInteraction(channels, kernel_size, disp_dim)
        self.kernel_set = SymmetricKernelSet(channels, kernel_size)
        self.point = InvertiblePointConv(channels, disp_dim, truncate)

    def update_disparity(self, r: torch.Tensor) -> torch.Tensor:
        _, left_half = self.kernel_set.kernels()
        return self.interaction(r, left_half)

    def forward(self, x: torch.Tensor, r: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        if not reverse:
            z = F.leaky_relu(self.kernel_set(x), LRELU_SLOPE)
            z = F.leaky_relu(self.point(z, r), LRELU_SLOPE)
        else:
            z = F.leaky_relu(self.point(x, r, reverse=True), LRELU_SLOPE)
            z = F.leaky_relu(self.kernel_set(z, inverse=True), LRELU_SLOPE)
        return z + x


class PSFStack(nn.Module):
    """``num_blocks`` PSF blocks (2·bn by default, Tab. 11) on windowed bottleneck features.

    The disparity vector of each window is updated before each block (the interaction); the reverse (reblurring)
    pass reuses the same per-block vectors r_1..r_n but runs the blocks in the opposite order, n..1, each in its
    reverse form, so that it is the (approximate) inverse of the deblurring composition. (The reconstructed code's
    unused ``rev=True`` path kept the forward order; §5.4 of the notes lists that as a quirk, we do not keep it.)
    """

    def __init__(
        self, channels: int, num_blocks: int, kernel_size: int = 9, disp_dim: int = DISP_DIM, truncate: float = 100.0
    ):
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f"num_psf_blocks must be >= 1, got {num_blocks}")
        self.blocks = nn.ModuleList(PSFBlock(channels, kernel_size, disp_dim, truncate) for _ in range(num_blocks))

    def disparity_sequence(self, r: torch.Tensor) -> list[torch.Tensor]:
        seq = []
        for blk in self.blocks:
            r = blk.update_disparity(r)
            seq.append(r)
        return seq

    def forward(self, x: torch.Tensor, r: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        seq = self.disparity_sequence(r)
        order = range(len(self.blocks) - 1, -1, -1) if reverse else range(len(self.blocks))
        for j in order:
            x = self.blocks[j](x, seq[j].to(x.dtype), reverse=reverse)
        return x
