"""LaKDNet (Ruan, Bemana, Seidel, Myszkowski, Chen, "Revisiting Image Deblurring with an Efficient ConvNet",
arXiv 2302.02234, 2023), dual-pixel defocus models.

Re-implemented from the architecture facts of the official code (commit in ``baselines/checkpoints.yaml``) so that
the two published dual-pixel checkpoints load with ``strict=True``:

* ``train_on_dpdd_dual_s.pth`` (LaKDNet-S, width 32; manifest ``lakdnet_dual_s``, 17,729,360 parameters);
* ``train_on_dpdd_dual_l.pth`` (LaKDNet-L, width 48; manifest ``lakdnet_dual_l``, 38,415,168 parameters).

Both are plain state dicts (the official ``run.py`` calls ``load_state_dict(torch.load(path))``), trained on DPDD
with 9-channel input cat(L, R, C) read as 16-bit PNGs.

Source of the facts (module names, shapes, layer order, the test-time input preparation): lingyanruan/LaKDNet @
0c6b262cd84bfaa407d79e085010fa90ea7446e6, ``models/LaKDNet.py``, ``options/Test_configs.yml`` (``network_{s,l}_dual``)
and ``run.py`` / ``util/util.py``. That code is GNU AGPL-3.0; none of it is copied here. The weights come from the
authors' project page with no licence of their own stated.

Network in one paragraph: a 4-level U-Net (widths d, 2d, 4d, 8d with d = 32 or 48; 8/12/12/16 blocks per level, the
decoder repeating 12/12/8 at levels 3/2/1) of convolutional "LaKD" blocks. A block is a channel LayerNorm, a mixer
(depth-wise 9x9 conv then GELU, 1x1 conv then GELU, twice, each step with a shortcut from the mixer's input), another
LayerNorm and the gated depth-wise feed-forward of Restormer (hidden width int(dim * 2.3)). The block's second
residual adds its *input*, so the mixer output reaches the block output only through the feed-forward branch. Down:
3x3 conv halving channels then PixelUnshuffle(2); up: 3x3 conv doubling channels then PixelShuffle(2); skips
concatenate [upsampled, encoder], reduced by a 1x1 conv at levels 3 and 2 but not at level 1, which works at 2d. A
3x3 conv maps to RGB and the network's last three input channels (C) are added back.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.common import pad_to_multiple
from baselines.restormer import ChannelLayerNorm, Down, Up
from k3dn.checkpoint import strip_prefix
from k3dn.registry import register_model

__all__ = ["LaKDNet", "LaKDNetDefocus", "checkpoint_filter_fn", "lakdnet_dual_s", "lakdnet_dual_l"]

BLOCKS = (8, 12, 12, 16)
MIX_KERNEL = 9  # the defocus models' mixer kernel (Test_configs.yml; the motion models use 7)
FFN_EXPANSION = 2.3


# ----------------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------------


class Mixer(nn.Module):
    """Large-kernel spatial / channel mixing: (depth-wise k x k, GELU) then (1x1, GELU), twice.

    Every step's shortcut comes from the mixer's input ``x``, not from the previous step: the second depth-wise conv
    sees ``x + GELU(pw1(...))`` and its output is again added to ``x``. Depth-wise convs have no bias, the 1x1 convs
    do (the published files hold ``dense_point_*.bias`` and no ``dense_depth_*.bias``).
    """

    def __init__(self, dim: int, kernel: int):
        super().__init__()
        self.dense_depth_1 = nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim, bias=False)
        self.dense_point_1 = nn.Conv2d(dim, dim, 1)
        self.dense_depth_2 = nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim, bias=False)
        self.dense_point_2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x + F.gelu(self.dense_point_1(F.gelu(self.dense_depth_1(x)) + x))
        return x + F.gelu(self.dense_point_2(F.gelu(self.dense_depth_2(y)) + x))


class GDFN(nn.Module):
    """Gated depth-wise feed-forward: GELU(first half) * second half of a depth-wise-filtered expansion."""

    def __init__(self, dim: int, expansion: float):
        super().__init__()
        hidden = int(dim * expansion)  # truncation: 48 * 2.3 -> 110, 32 * 2.3 -> 73
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=False)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=False)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        # in place: at 1120x1680 the level-1 product is 0.8-1.7 GB, one full-resolution copy fewer at the peak
        return self.project_out(F.gelu(gate).mul_(value))


class LaKDBlock(nn.Module):
    def __init__(self, dim: int, kernel: int, expansion: float):
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim)
        self.mixer = Mixer(dim, kernel)
        self.norm2 = ChannelLayerNorm(dim)
        self.ffn = GDFN(dim, expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = x + self.mixer(self.norm1(x))
        # the residual is the block's input, not ``mixed``: the published weights were trained so
        return x + self.ffn(self.norm2(mixed))


def _stage(n: int, dim: int, kernel: int, expansion: float) -> nn.Sequential:
    return nn.Sequential(*[LaKDBlock(dim, kernel, expansion) for _ in range(n)])


# ----------------------------------------------------------------------------------------------------------
# The network (attribute names = the published state-dict names)
# ----------------------------------------------------------------------------------------------------------


class LaKDNet(nn.Module):
    """LaKDNet on a raw tensor: (B, in_ch, H, W) -> (B, 3, H, W), H and W multiples of 8; the output is the net's
    residual plus the input's last three channels (C of cat(L, R, C), or the image itself with ``in_ch=3``).
    Unclamped: the suite wrapper clamps in eval."""

    def __init__(
        self,
        in_ch: int = 9,
        dim: int = 32,
        blocks=BLOCKS,
        kernel: int = MIX_KERNEL,
        expansion: float = FFN_EXPANSION,
    ):
        super().__init__()
        d1, d2, d3, d4 = dim, dim * 2, dim * 4, dim * 8
        self.embed = nn.Conv2d(in_ch, d1, 3, padding=1, bias=False)
        self.encoder_level1 = _stage(blocks[0], d1, kernel, expansion)
        self.down1_2 = Down(d1)
        self.encoder_level2 = _stage(blocks[1], d2, kernel, expansion)
        self.down2_3 = Down(d2)
        self.encoder_level3 = _stage(blocks[2], d3, kernel, expansion)
        self.down3_4 = Down(d3)
        self.latent = _stage(blocks[3], d4, kernel, expansion)
        self.up4_3 = Up(d4)
        self.reduce_chan_level3 = nn.Conv2d(d4, d3, 1, bias=False)
        self.decoder_level3 = _stage(blocks[2], d3, kernel, expansion)
        self.up3_2 = Up(d3)
        self.reduce_chan_level2 = nn.Conv2d(d3, d2, 1, bias=False)
        self.decoder_level2 = _stage(blocks[1], d2, kernel, expansion)
        self.up2_1 = Up(d2)
        # Level 1 keeps the concatenation's 2*dim channels: there is no reduce_chan_level1.
        self.decoder_level1 = _stage(blocks[0], d2, kernel, expansion)
        self.output = nn.Conv2d(d2, 3, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.encoder_level1(self.embed(x))
        e2 = self.encoder_level2(self.down1_2(e1))
        e3 = self.encoder_level3(self.down2_3(e2))
        z = self.latent(self.down3_4(e3))
        # Skip concatenation order is [upsampled, encoder]; the reduce convs' weights depend on it.
        d3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(z), e3], 1)))
        d2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(d3), e2], 1)))
        d1 = self.decoder_level1(torch.cat([self.up2_1(d2), e1], 1))
        return self.output(d1) + x[:, -3:]


# ----------------------------------------------------------------------------------------------------------
# Suite wrapper
# ----------------------------------------------------------------------------------------------------------


class LaKDNetDefocus(LaKDNet):
    """LaKDNet dual behind the suite's batch interface, with the published checkpoints' conventions.

    | convention   | official test (``run.py --type Defocus``, dual entries)     | here                              |
    |--------------|-------------------------------------------------------------|-----------------------------------|
    | views        | DPDD ``test_l``, ``test_r``, ``test_c`` ``source``          | ``left``, ``right``, ``center``   |
    | network input| cat(L, R, C), 9 channels                                    | same                              |
    | colour/range | RGB (cv2 BGR converted), 16-bit PNG / 65535, [0, 1]         | RGB [0, 1]; 16-bit (catalogue)    |
    | size         | reflect-pad bottom/right to a multiple of 8, crop back      | same (``pad_to_multiple``)        |
    | output       | conv residual + C, clipped to [0, 1] inside the network     | same; clamp in eval only          |

    DPDD's 1120x1680 needs no padding. The network has no global operation, so padding moves only pixels within its
    receptive field of the padded border. The official class clips in every mode; here training sees the raw
    output, as every suite wrapper does (no official training code was published to say otherwise).
    """

    input_views = ("left", "right", "center")
    size_multiple = (8, 8)
    size_mode = "pad"

    def __init__(self, dim: int, **kw):
        super().__init__(in_ch=9, dim=dim, **kw)

    def forward(self, batch: dict) -> dict:
        x = torch.cat([batch["left"], batch["right"], batch["center"]], 1)
        h, w = x.shape[-2:]
        out = super().forward(pad_to_multiple(x, self.size_multiple))[..., :h, :w]
        if not self.training:
            out = out.clamp(0, 1)
        return {"output": out}


def checkpoint_filter_fn(state_dict: dict, model: nn.Module | None = None) -> dict:
    """The published file is a plain state dict with the network's own keys (the official test loads it strictly
    as it is); a ``module.`` prefix, as a DataParallel save of a retrained model would carry, is dropped."""
    return strip_prefix(state_dict, "module.")


# ----------------------------------------------------------------------------------------------------------
# Registered variants
# ----------------------------------------------------------------------------------------------------------


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def lakdnet_dual_s(**kw) -> LaKDNetDefocus:
    return LaKDNetDefocus(dim=32, **kw)


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def lakdnet_dual_l(**kw) -> LaKDNetDefocus:
    return LaKDNetDefocus(dim=48, **kw)
