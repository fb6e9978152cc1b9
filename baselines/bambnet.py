"""BaMBNet: blur-aware multi-branch network for dual-pixel defocus deblurring.

Liang, Jiang, Liu, Ma, "BaMBNet: A Blur-aware Multi-branch Network for Dual-pixel Defocus
Deblurring", IEEE/CAA Journal of Automatica Sinica 2022 (arXiv 2105.14766).

Official code: github.com/junjun-jiang/BaMBNet @ 211a90a59b94b3d3cde2d2d0c5464ad548c64903
(``models/kernel_de_param_net.py::KernelEDNet``, ``models/rcab.py``), licensed CC-BY-NC 4.0 (README).
That code was read for facts only (module tree, tensor names and shapes, layer order); this file is an
independent re-implementation. The published weights keep the authors' non-commercial licence.

Architecture, in short: a 3x3 head (6 -> 64, ReLU) on cat(L, R); four parallel branches whose "kernel
sizes" 1/4/7/10 become a 1x1 conv (branch 0, always full resolution) or a residual group of
floor(k/3) RCABs (branches 1-3); eight stages per branch, four ending in a 2x2 max-pool and four in a
nearest x2 upsample, each stage fed the previous stage plus the head features average-pooled to its
size, and the decoder stages also the U-Net skip of the mirrored encoder stage. The branch outputs are
summed onto the head features and a 3x3 conv + sigmoid gives the image.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.common import pad_to_multiple
from k3dn.checkpoint import strip_prefix
from k3dn.registry import register_model

__all__ = ["KernelEDNet", "BaMBNet", "checkpoint_filter_fn"]

BRANCH_KERNELS = (1, 4, 7, 10)
# CoC thresholds (pixels) separating the four branches' blur-aware masks.
COC_BOUNDS = (0.0, 1.9, 4.2, 6.2)
# After this many training iterations the masks are switched off for good.
MASK_ITERS = 2e4


# ----------------------------------------------------------------------------------------------- blocks


def _conv3(ch: int) -> nn.Conv2d:
    return nn.Conv2d(ch, ch, 3, padding=1, bias=True)


class ChannelAttention(nn.Module):
    """Squeeze-excitation gate of RCAN: global mean -> 1x1 down -> ReLU -> 1x1 up -> sigmoid."""

    def __init__(self, ch: int, reduction: int = 16):
        super().__init__()
        self.conv_du = nn.Sequential(
            nn.Conv2d(ch, ch // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(ch // reduction, ch, 1),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return x * self.conv_du(x.mean(dim=(2, 3), keepdim=True))


class RCAB(nn.Module):
    """Residual channel-attention block: x + CA(conv(relu(conv(x))))."""

    def __init__(self, ch: int, reduction: int = 16):
        super().__init__()
        self.body = nn.Sequential(_conv3(ch), nn.ReLU(inplace=True), _conv3(ch), ChannelAttention(ch, reduction))

    def forward(self, x):
        return x + self.body(x)


class ResidualGroup(nn.Module):
    """``n`` RCABs and a closing 3x3 conv, wrapped in one more skip connection."""

    def __init__(self, ch: int, reduction: int, n: int):
        super().__init__()
        self.body = nn.Sequential(*[RCAB(ch, reduction) for _ in range(n)], _conv3(ch))

    def forward(self, x):
        return x + self.body(x)


def branch_stage(kernel: int, ch: int, reduction: int, resample: str) -> nn.Sequential:
    """One stage of one branch. Branch 0 (kernel 1) never changes resolution: the official builder
    returns its 1x1 conv before appending the pool/upsample, so its features stay full-size throughout."""
    if kernel <= 1:
        return nn.Sequential(nn.Conv2d(ch, ch, 1), nn.ReLU(inplace=True))
    resampler = nn.MaxPool2d(2, 2) if resample == "down" else nn.Upsample(scale_factor=2, mode="nearest")
    return nn.Sequential(ResidualGroup(ch, reduction, math.floor(kernel / 3)), resampler)


# ---------------------------------------------------------------------------------------------- network


class KernelEDNet(nn.Module):
    """The published network; ``state_dict()`` names equal the checkpoint's.

    ``forward`` takes 9 channels: cat(L, R) and a CoC/blur map in the last 3 (max of |.| over them).
    The map only matters while ``iter_num < MASK_ITERS``: it then gates each branch to its CoC range with
    weight exp(-(2 iter / MASK_ITERS)^2). The published weights were trained through that curriculum and
    are meant to be run with ``iter_num`` past it (the official test sets 1e6).
    """

    def __init__(self, channels: int = 64, reduction: int = 16, kernels=BRANCH_KERNELS, iter_num: float = 0):
        super().__init__()
        self.kernels = tuple(kernels)
        self.head = nn.Sequential(nn.Conv2d(6, channels, 3, padding=1), nn.ReLU(inplace=True))
        self.tail_hard = nn.Sequential(nn.Conv2d(channels, 3, 3, padding=1), nn.Sigmoid())
        for stage in range(1, 9):
            resample = "down" if stage <= 4 else "up"
            self.add_module(
                f"layer{stage}", nn.ModuleList(branch_stage(k, channels, reduction, resample) for k in self.kernels)
            )
        self.iter_num = iter_num

    def blur_masks(self, coc: torch.Tensor) -> list[torch.Tensor]:
        blur = coc.abs().amax(dim=1, keepdim=True)
        masks = [((blur >= lo) & (blur < hi)).float() for lo, hi in zip(COC_BOUNDS, COC_BOUNDS[1:])]
        masks.append((blur >= COC_BOUNDS[-1]).float())
        return masks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 9:
            raise ValueError(f"KernelEDNet expects 9 input channels (L, R, CoC), got {x.shape[1]}")
        feat = self.head(x[:, :6])
        n = len(self.kernels)
        stages = [getattr(self, f"layer{s}") for s in range(1, 9)]
        outs = [[stages[0][b](feat) for b in range(n)]]
        for s in range(1, 8):  # stages 2..8 (0-based index s)
            cur = []
            for b in range(n):
                prev = outs[-1][b]
                inp = F.adaptive_avg_pool2d(feat, prev.shape[-2:]) + prev
                if s >= 5:  # decoder stages 6, 7, 8 take the skip of stages 3, 2, 1
                    inp = inp + outs[7 - s][b]
                cur.append(stages[s][b](inp))
            outs.append(cur)
        last = outs[-1]
        if self.iter_num < MASK_ITERS:
            w = torch.exp(torch.tensor(-((self.iter_num * 2 / MASK_ITERS) ** 2), dtype=feat.dtype, device=feat.device))
            last = [f * m * w + (1 - w) * f for f, m in zip(last, self.blur_masks(x[:, 6:]))]
        return self.tail_hard(feat + sum(last))


# ---------------------------------------------------------------------------------------------- wrapper


class BaMBNet(nn.Module):
    """Suite wrapper around :class:`KernelEDNet` (held as ``self.net``).

    | convention       | official test (``test.py``)               | here                                   |
    |------------------|-------------------------------------------|----------------------------------------|
    | views            | L, R                                      | ``batch["left"]``, ``batch["right"]``  |
    | network input    | cat(L, R, R): R fills the CoC slot        | same (a no-op once ``iter_num`` >= 2e4) |
    | colour order     | BGR (cv2.imread, never converted)         | RGB batch flipped to BGR and back      |
    | value range      | [0, 1], 16-bit / 65535                    | [0, 1]; 16-bit (``checkpoints.yaml``)  |
    | size             | H, W multiples of 16 (four 2x pools)      | reflect-padded to 16, cropped back     |
    | output           | sigmoid, direct (no residual)             | same; clamp is a no-op kept for eval   |
    | iter_num         | set to 1e6 before testing                 | 1e6 by default                         |

    The official test rotates portrait images by 90 degrees; DPDD is all landscape, so nothing is
    rotated here. Retraining in the suite runs without the CoC-mask curriculum (it needs BaMBNet's
    separately trained CoC network); pass ``iter_num=0`` to study what the masks do with R as map.
    """

    input_views = ("left", "right")
    size_multiple = (16, 16)
    size_mode = "pad"

    def __init__(self, iter_num: float = 1e6, **net_kwargs):
        super().__init__()
        self.net = KernelEDNet(iter_num=iter_num, **net_kwargs)

    def forward(self, batch: dict) -> dict:
        left, right = batch["left"].flip(1), batch["right"].flip(1)  # RGB -> BGR
        x = torch.cat([left, right, right], dim=1)
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.size_multiple)
        out = self.net(x)[..., :h, :w].flip(1)  # BGR -> RGB
        if not self.training:
            out = out.clamp(0, 1)
        return {"output": out}


def checkpoint_filter_fn(state_dict: dict, model: nn.Module | None = None) -> dict:
    """``{'state_dict': sd, 'optimizers', 'schedulers', 'epoch'}`` (or a bare ``sd``) -> wrapper state dict.

    The file is saved without DataParallel, so keys carry no prefix; a ``module.`` prefix is stripped
    anyway in case a multi-GPU re-save turns up. Optimizer and scheduler states are dropped.
    """
    if not isinstance(state_dict, dict):
        raise TypeError(f"BaMBNet checkpoint: expected a dict, got {type(state_dict).__name__}")
    sd = state_dict.get("state_dict", state_dict)
    if not isinstance(sd, dict):
        raise TypeError(f"BaMBNet checkpoint: 'state_dict' is a {type(sd).__name__}, not a dict")
    sd = strip_prefix(sd, "module.")
    return {f"net.{k}": v for k, v in sd.items()}


# ----------------------------------------------------------------------------------- registered variants


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def bambnet(**kw) -> BaMBNet:
    """BaMBNet on DPDD dual-pixel pairs, 16-bit, published weights (``bambnet`` manifest)."""
    return BaMBNet(**kw)
