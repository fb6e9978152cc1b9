"""Sharp region preservation (SRP) blocks on K3DN's skip connections (CVPR 2023, Tab. 13 rows "SRP").

Written from the description in the K3DN paper and its supplement; no code was copied. The reference
computes the 9×9 local correlation with a cupy CUDA kernel; here it is pure PyTorch (:func:`local_correlation`).

For x = cat(old, new) with C' channels (``old`` = encoder feature or the input views, ``new`` = upsampled decoder
feature):

    q = Conv3×3(x), k = Conv3×3(x)                                  (C'→C', with bias)
    A(p, δ) = mean_c q_c(p) · k_c(p + δ),  δ ∈ [−4, 4]²,  channel (δy+4)·9 + (δx+4)   (zero outside the image)
    g = Conv3×3_{81→C'}(A)                                          (with bias; no sigmoid/softmax, as reconstructed)
    out = Conv3×3 → EBlock(srp_depth ResBlocks) → Conv3×3  applied to x ⊙ g,  plus x

The δ = 0 channel correlates L- and R-derived features at the same position: a zero-disparity (in-focus) detector.
Bias placement (q, k, gate, in and out convs with bias; the ResBlocks without) is the one that reproduces the
reconstruction's SRP parameter counts (Tiny 1.469 M, Light 2.537 M, Large 5.543 M at srp_depth = 4); any other
placement misses at least one of them. The in-conv has a LeakyReLU (Tab. 13: "all convolution layers apply a
LeakyReLU"); the out-conv has none, because it produces a residual that must be able to go negative.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import BasicConv, EBlock

CORR_RADIUS = 4  # 9×9 neighbourhood -> 81 channels
CORR_BAND_ELEMS = 1 << 15  # CPU: product buffer of the correlation's forward, in elements (128 KiB in fp32)


class _LocalCorrelation(torch.autograd.Function):
    """A(p, δ) = mean_c q_c(p)·k_c(p+δ) with a hand-written backward.

    Autograd through 81 shifted slices would allocate a full zero-filled gradient of the padded k for every shift;
    here the backward accumulates into one buffer in place. Tensors are handled channels-last so that every
    channel reduction reads contiguous memory. Extra memory: one (B, H, W, C) product per step, never 81-fold.
    """

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, radius: int) -> torch.Tensor:
        b, c, h, w = q.shape
        d = 2 * radius + 1
        ql = q.permute(0, 2, 3, 1).contiguous()
        kp = F.pad(k, (radius, radius, radius, radius)).permute(0, 2, 3, 1).contiguous()
        out = q.new_empty(b, h, w, d * d)
        # On a CPU, bands of rows small enough that the product buffer stays in cache and is reused for all 81
        # shifts: the unbanded product of a full-resolution map is memory-bound and ~3x slower. On a GPU one band
        # (every extra band is 162 more kernel launches).
        rows = h if q.is_cuda else max(1, min(h, CORR_BAND_ELEMS // max(1, b * w * c)))
        buf = q.new_empty(b, rows, w, c)
        for y0 in range(0, h, rows):
            n = min(rows, h - y0)
            qs, prod = ql[:, y0 : y0 + n], buf[:, :n]
            for dy in range(d):
                for dx in range(d):
                    torch.mul(qs, kp[:, y0 + dy : y0 + dy + n, dx : dx + w], out=prod)
                    torch.sum(prod, dim=-1, out=out[:, y0 : y0 + n, :, dy * d + dx])
        ctx.save_for_backward(ql, kp)
        ctx.radius = radius
        return out.permute(0, 3, 1, 2).div_(c)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        ql, kp = ctx.saved_tensors
        r = ctx.radius
        b, h, w, c = ql.shape
        d = 2 * r + 1
        g = (grad / c).permute(0, 2, 3, 1).contiguous()  # (B, H, W, 81)
        dq = torch.zeros_like(ql) if ctx.needs_input_grad[0] else None
        dkp = torch.zeros_like(kp) if ctx.needs_input_grad[1] else None
        for dy in range(d):
            for dx in range(d):
                gi = g[..., dy * d + dx : dy * d + dx + 1]
                if dq is not None:
                    dq.addcmul_(gi, kp[:, dy : dy + h, dx : dx + w])
                if dkp is not None:
                    dkp[:, dy : dy + h, dx : dx + w].addcmul_(gi, ql)
        dq = dq.permute(0, 3, 1, 2) if dq is not None else None
        dk = dkp[:, r : r + h, r : r + w].permute(0, 3, 1, 2) if dkp is not None else None
        return dq, dk, None


def local_correlation(q: torch.Tensor, k: torch.Tensor, radius: int = CORR_RADIUS) -> torch.Tensor:
    """(B, C, H, W) × (B, C, H, W) -> (B, (2r+1)², H, W): mean over channels of q(p)·k(p+δ), k zero outside the
    image; channel index (δy+r)·(2r+1) + (δx+r). Pure PyTorch, memory linear in the input (no 81-fold unfold)."""
    if q.shape != k.shape or q.dim() != 4:
        raise ValueError(
            f"local_correlation needs two equal (B, C, H, W) tensors, got {tuple(q.shape)}, {tuple(k.shape)}"
        )
    return _LocalCorrelation.apply(q, k, radius)


class SRPBlock(nn.Module):
    def __init__(self, channels: int, depth: int = 4):
        super().__init__()
        self.q = nn.Conv2d(channels, channels, 3, padding=1, bias=True)
        self.k = nn.Conv2d(channels, channels, 3, padding=1, bias=True)
        self.gate = nn.Conv2d((2 * CORR_RADIUS + 1) ** 2, channels, 3, padding=1, bias=True)
        self.conv_in = BasicConv(channels, channels, 3, bias=True, act=True)
        self.body = EBlock(channels, depth)
        self.conv_out = BasicConv(channels, channels, 3, bias=True, act=False)

    def forward(self, old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        x = torch.cat([old, new], dim=1)
        g = self.gate(local_correlation(self.q(x), self.k(x)))
        return self.conv_out(self.body(self.conv_in(x * g))) + x
