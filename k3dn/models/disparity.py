"""Disparity estimator of K3DN: one latent 256-d disparity vector per bottleneck window.

Written from the description in the K3DN paper and its supplement (a trimmed PSMNet / DDDNet
``YRStereonet_3D``) and Tab. 13 of the supplement; no code was copied.

Dual-pixel path (``DisparityEstimator``):

1. B_L, B_R average-pooled x4.
2. Shared feature extractor (BN + ReLU, no conv bias): conv 3→32, 32→64, 64→128 (dilation 4),
   128→128 (dilation 8, stride 2: 1/8 of the full resolution), two SPP branches (avg-pool 16 and 32, 1×1 conv-BN
   128→32, bilinear upsample), concat (192) → conv3×3 192→96 → conv1×1 96→32.
3. Concatenation cost volume over 4 disparity planes (shift i = 0..3 at 1/8 res, one direction), **allocated with
   zeros** (the reconstructed code left the unwritten columns uninitialised).
4. 3D convs (BN3d + ReLU): 64→32, 32→48 (s2), 48→48, 48→64 (s2), 64→64: D 4→2→1, spatial 1/32.
5. Pooling to one cell per window. A window of (wh, ww) cells at 1/8 res covers (wh/4, ww/4) cells at 1/32 res,
   which is fractional for the default 18×14; so, generalising the reconstruction's "nearest resize to
   (H/288 + H/32, W/224 + W/32) then AvgPool(5, 4)", we nearest-resize the 1/32 map to (nh·ph, nw·pw) with
   ph = ceil(wh/4), pw = ceil(ww/4) and average-pool (ph, pw). For 18×14 this is exactly the reconstruction's
   (5, 4) pooling and resize target; every Tab. 9 geometry gives exactly nh × nw cells.
6. Per cell: Linear 64→256 + LeakyReLU(0.2). No disparity supervision: r is trained by the restoration losses.

Single-image path (``SingleImageDisparity``, supplement Tab. 8): the reconstruction only says "a 2D-CNN stand-in with
the same pooling and projection head". Our choice: the same feature extractor on the ÷4 centre view, then a 2D
mirror of the 3D stack (3×3 conv-BN-ReLU 32→32, 32→48 s2, 48→48, 48→64 s2, 64→64), then the same head.

The SPP average-pool kernels are clamped to half the feature size (kernel = min(16|32, size // 2) per axis): identical
to the described layer whenever the 1/8-res map is at least 64 px on a side (full-res side >= 512, e.g. the paper's
1152×1792), and at the smallest valid inputs (288×224 -> a 36×28 map, where a 32-pool would leave 1×0 cells) it
still yields at least 2×2 cells, so training-mode BatchNorm works even at batch size 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import LRELU_SLOPE
from .psf import DISP_DIM

NUM_DISP_PLANES = 4  # maxdisp 12 at 1/4 res -> 4 planes at 1/8 res after the stride-2 feature layer


def conv_bn_relu(in_ch, out_ch, k=3, stride=1, dilation=1, relu=True):
    layers = [
        nn.Conv2d(in_ch, out_ch, k, stride, padding=dilation * (k // 2), dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def conv3d_bn_relu(in_ch, out_ch, stride=1):
    return nn.Sequential(
        nn.Conv3d(in_ch, out_ch, 3, stride, padding=1, bias=False), nn.BatchNorm3d(out_ch), nn.ReLU(inplace=True)
    )


class FeatureExtractor(nn.Module):
    """PSMNet-like shared 2D feature extractor: 1/4-res RGB -> 32 channels at 1/8 of the full resolution."""

    SPP_POOLS = (16, 32)

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            conv_bn_relu(3, 32),
            conv_bn_relu(32, 64),
            conv_bn_relu(64, 128, dilation=4),
            conv_bn_relu(128, 128, stride=2, dilation=8),
        )
        self.spp = nn.ModuleList(conv_bn_relu(128, 32, k=1) for _ in self.SPP_POOLS)
        self.fuse = nn.Sequential(conv_bn_relu(128 + 32 * len(self.SPP_POOLS), 96), nn.Conv2d(96, 32, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.stem(x)
        h, w = f.shape[-2:]
        branches = [f]
        for pool, conv in zip(self.SPP_POOLS, self.spp):
            p = F.avg_pool2d(f, (max(1, min(pool, h // 2)), max(1, min(pool, w // 2))))
            branches.append(F.interpolate(conv(p), size=(h, w), mode="bilinear", align_corners=False))
        return self.fuse(torch.cat(branches, dim=1))


def cost_volume(fl: torch.Tensor, fr: torch.Tensor, planes: int = NUM_DISP_PLANES) -> torch.Tensor:
    """Concatenation cost volume (B, 2C, D, H, W): [F_L(x), F_R(x - i)] for x >= i, zeros elsewhere."""
    b, c, h, w = fl.shape
    cost = fl.new_zeros(b, 2 * c, planes, h, w)
    for i in range(planes):
        if i == 0:
            cost[:, :c, 0] = fl
            cost[:, c:, 0] = fr
        elif i < w:
            cost[:, :c, i, :, i:] = fl[..., i:]
            cost[:, c:, i, :, i:] = fr[..., :-i]
    return cost


def window_pool(window: tuple[int, int]) -> tuple[int, int]:
    """Average-pool size at 1/32 res that gives one cell per (wh, ww) window at 1/8 res: ceil(w / 4)."""
    return math.ceil(window[0] / 4), math.ceil(window[1] / 4)


class WindowHead(nn.Module):
    """1/32-res 64-channel map -> one 256-d vector per window: nearest resize, avg-pool, Linear + LeakyReLU."""

    def __init__(self, window: tuple[int, int], in_ch: int = 64, disp_dim: int = DISP_DIM):
        super().__init__()
        self.pool = window_pool(window)
        self.proj = nn.Linear(in_ch, disp_dim)

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        nh, nw = grid
        ph, pw = self.pool
        x = F.interpolate(x, size=(nh * ph, nw * pw), mode="nearest")
        x = F.avg_pool2d(x, (ph, pw))
        r = F.leaky_relu(self.proj(x.permute(0, 2, 3, 1)), LRELU_SLOPE)
        return r.permute(0, 3, 1, 2).contiguous()  # (B, 256, nh, nw)


class DisparityEstimator(nn.Module):
    """Dual-pixel disparity features: (B_L, B_R) -> (B, 256, nh, nw)."""

    def __init__(self, window: tuple[int, int]):
        super().__init__()
        self.features = FeatureExtractor()
        self.aggregate = nn.Sequential(
            conv3d_bn_relu(64, 32),
            conv3d_bn_relu(32, 48, 2),
            conv3d_bn_relu(48, 48),
            conv3d_bn_relu(48, 64, 2),
            conv3d_bn_relu(64, 64),
        )
        self.head = WindowHead(window)

    def forward(self, left: torch.Tensor, right: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        # two calls, not one batched call, so that training-mode BatchNorm normalises each view by its own
        # statistics, as the shared extractor is described
        fl = self.features(F.avg_pool2d(left, 4))
        fr = self.features(F.avg_pool2d(right, 4))
        cost = self.aggregate(cost_volume(fl, fr))
        return self.head(cost.mean(dim=2), grid)  # D is 1 after two stride-2 3D convs; mean == squeeze


class SingleImageDisparity(nn.Module):
    """Single-image stand-in (Tab. 8): centre view -> (B, 256, nh, nw) with a 2D mirror of the 3D stack."""

    def __init__(self, window: tuple[int, int]):
        super().__init__()
        self.features = FeatureExtractor()
        self.aggregate = nn.Sequential(
            conv_bn_relu(32, 32),
            conv_bn_relu(32, 48, stride=2),
            conv_bn_relu(48, 48),
            conv_bn_relu(48, 64, stride=2),
            conv_bn_relu(64, 64),
        )
        self.head = WindowHead(window)

    def forward(self, center: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        return self.head(self.aggregate(self.features(F.avg_pool2d(center, 4))), grid)
