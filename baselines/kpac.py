"""KPAC (Son, Lee, Cho, Lee, "Single Image Defocus Deblurring Using Kernel-Sharing Parallel Atrous Convolutions",
ICCV 2021), ported from TensorFlow 1.10 + TensorLayer 1.7.

The three ``.npz`` files committed in HyeongseokSon1/KPAC @ 8603ec3ac56b5a416be6b996165b552aff1c4b0f
(``pretrained/single_2level.npz``, ``single_3level.npz``, ``dual.npz``; GNU AGPL-3.0, reference only; nothing
of it is copied here) load strictly into this re-implementation:

| variant              | manifest                  | params    | input                         |
|----------------------|---------------------------|-----------|-------------------------------|
| ``kpac_single_2level``| ``kpac_single_2level_npz``| 1,578,277 | C                             |
| ``kpac_single_3level``| ``kpac_single_3level_npz``| 2,057,893 | C                             |
| ``kpac_dual``        | ``kpac_dual_npz``         | 2,061,493 | cat(L, R); residual on C      |

Facts used (``model.py``): encoder 5x5 conv 48, 3x3 conv 48 (skip f1), [3x3 stride-2
conv, 3x3 conv] at 48 (f2), 96 (f3, 3-level only), 96; two KPAC blocks on the bottom map; dense concat of the
bottom map and both block outputs (288 ch); 3x3 convs ``cm_1``, ``cm_2``; per level up: 4x4 stride-2 transposed
conv, concat (up, skip), 3x3 conv (the last one 5x5 to 3 channels, linear); output + input image. Every other
activation is ``tf.nn.leaky_relu`` (slope 0.2).

A KPAC block on input ``n`` (96 ch): one 5x5 kernel 96 -> 48 without bias, applied at dilation 1..5 (kernel
sharing), each followed by leaky ReLU and concatenated (240 ch, block c = dilation c+1); scale attention: four
5x5 dilation-2 convs 96->32->32->16->16 then a 5x5 conv to 5 channels, sigmoid; attention channel c scales
block c (TF: transpose + nearest resize 5 -> 240 + transpose, i.e. each channel repeated 48 times); shape
attention: global mean of ``n`` -> 1x1 conv 96->12 (leaky) -> 1x1 conv 12->48 (sigmoid), tiled 5 times along
channels; both products, then a 3x3 conv 240 -> 96 (leaky).

Quirks the weights depend on (reproduced): TF 'SAME' for the stride-2 3x3 convs pads 0 top/left and 1
bottom/right on even sizes; ``conv2d_transpose`` kernels are ``[kh, kw, out, in]``; the shape-attention pool
is written as ``MeanPool2d(filter=H/8, stride=H/4, 'SAME')`` (2-level: H/4, H/4) for the fixed 1120x1680
graph, which on that map is exactly the global mean, so :func:`global mean <torch.mean>` is used for every
size; the scale attention multiplies by *repeat-interleaved* channels and the shape attention by *tiled*
channels (the two differ).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.common import pad_to_multiple
from baselines.keras_weights import SameConv2d, SameConvTranspose2d, positional_state_dict, same_conv2d
from baselines.published import manifest_for_model
from k3dn.registry import register_model

__all__ = ["KPACNet", "KPACDefocus", "kpac_single_2level", "kpac_single_3level", "kpac_dual"]

SLOPE = 0.2  # tf.nn.leaky_relu default alpha


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, SLOPE)


# ----------------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------------


class SharedAtrousConv(nn.Module):
    """One bias-free kernel applied at dilations 1..n_rates, outputs concatenated along channels.

    TensorLayer stores the kernel once (``dc1/<i>/filter``): the four reused ``AtrousConv2dLayer`` calls share
    the variable.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 5, n_rates: int = 5):
        super().__init__()
        self.n_rates = n_rates
        self.weight = nn.Parameter(torch.empty(out_ch, in_ch, kernel_size, kernel_size))
        nn.init.normal_(self.weight, std=0.04)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([lrelu(same_conv2d(x, self.weight, None, 1, r)) for r in range(1, self.n_rates + 1)], 1)


class KPACBlock(nn.Module):
    """Kernel-sharing parallel atrous convolutions with scale and shape attention (96 -> 96 channels)."""

    def __init__(self, ch: int = 96, branch: int = 48, ks: int = 5, n_rates: int = 5):
        super().__init__()
        self.branch, self.n_rates = branch, n_rates
        # registration order = TensorLayer's all_params order (the .npz is positional)
        self.dc1 = SharedAtrousConv(ch, branch, ks, n_rates)
        self.sca_dc1 = SameConv2d(ch, 32, 5, dilation=2)
        self.sca_dc2 = SameConv2d(32, 32, 5, dilation=2)
        self.sca_dc3 = SameConv2d(32, 16, 5, dilation=2)
        self.sca_dc4 = SameConv2d(16, 16, 5, dilation=2)
        self.sca_c2 = SameConv2d(16, n_rates, 5)
        self.sha_c1 = SameConv2d(ch, ch // 8, 1)
        self.sha_c2 = SameConv2d(ch // 8, branch, 1)
        self.cf = SameConv2d(branch * n_rates, ch, 3)

    def forward(self, n: torch.Tensor) -> torch.Tensor:
        feats = self.dc1(n)
        a = lrelu(self.sca_dc4(lrelu(self.sca_dc3(lrelu(self.sca_dc2(lrelu(self.sca_dc1(n))))))))
        scale = torch.sigmoid(self.sca_c2(a)).repeat_interleave(self.branch, dim=1)  # channel c -> block c
        shape = torch.sigmoid(self.sha_c2(lrelu(self.sha_c1(n.mean((2, 3), keepdim=True)))))
        shape = shape.repeat(1, self.n_rates, 1, 1)  # TileLayer: the 48 weights again for every block
        return lrelu(self.cf(feats * scale * shape))


class ConvLReLU(SameConv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lrelu(super().forward(x))


class DeconvLReLU(SameConvTranspose2d):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(in_ch, out_ch, 4, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lrelu(super().forward(x))


# ----------------------------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------------------------


class KPACNet(nn.Module):
    """``Defocus_Deblur_Net6_ms`` (levels=2), ``_ds`` (levels=3) and ``_ds_dual`` (levels=3, in_ch=6).

    ``forward(x, ref)``: x (B, in_ch, H, W) and ref (B, 3, H, W) in [-1, 1]; returns ref + residual, unclamped.
    H, W must be multiples of 2**levels. Submodules are registered in TensorLayer's ``all_params`` order, so
    ``state_dict()`` order is the ``.npz`` order.
    """

    def __init__(self, in_ch: int = 3, levels: int = 3, n_blocks: int = 2):
        super().__init__()
        if levels not in (2, 3):
            raise ValueError(f"KPAC levels must be 2 or 3, got {levels}")
        self.levels = levels
        self.c0, self.c0_2 = ConvLReLU(in_ch, 48, 5), ConvLReLU(48, 48, 3)
        self.c2, self.c2_2 = ConvLReLU(48, 48, 3, stride=2), ConvLReLU(48, 48, 3)
        self.c3, self.c3_2 = ConvLReLU(48, 96, 3, stride=2), ConvLReLU(96, 96, 3)
        if levels == 3:
            self.c4, self.c4_2 = ConvLReLU(96, 96, 3, stride=2), ConvLReLU(96, 96, 3)
        self.blocks = nn.ModuleList(KPACBlock() for _ in range(n_blocks))
        self.cm_1 = ConvLReLU(96 * (n_blocks + 1), 96, 3)
        self.cm_2 = ConvLReLU(96, 96, 3)
        if levels == 3:
            self.d0, self.d0_2 = DeconvLReLU(96, 96), ConvLReLU(192, 96, 3)
            self.d1, self.d1_2 = DeconvLReLU(96, 48), ConvLReLU(96, 48, 3)
        else:
            self.d1, self.d1_2 = DeconvLReLU(96, 48), ConvLReLU(96, 48, 3)
        self.d2 = DeconvLReLU(48, 48)
        self.d2_2 = SameConv2d(96, 3, 5)

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        f1 = self.c0_2(self.c0(x))
        f2 = self.c2_2(self.c2(f1))
        n = self.c3_2(self.c3(f2))
        if self.levels == 3:
            f3, n = n, self.c4_2(self.c4(n))
        stack = [n]
        for block in self.blocks:
            n = block(n)
            stack.append(n)
        n = self.cm_2(self.cm_1(torch.cat(stack, 1)))
        if self.levels == 3:
            n = self.d0_2(torch.cat([self.d0(n), f3], 1))
        n = self.d1_2(torch.cat([self.d1(n), f2], 1))
        n = self.d2_2(torch.cat([self.d2(n), f1], 1))
        return n + ref


def tf_name_to_key(tf_name: str) -> str:
    """TF variable name of the eval graph -> our key (for checking that positions line up)."""
    parts = tf_name.split("/")[1:]  # drop 'deblur_net'
    if parts[0] == "deblur":
        parts = parts[1:]
    leaf = "weight" if parts[-1] in ("W_conv2d", "W_deconv2d", "filter") else "bias"
    if len(parts) == 3:  # '<layer>/<block>/<var>'
        return f"net.blocks.{parts[1]}.{parts[0]}.{leaf}"
    return f"net.{parts[0]}.{leaf}"


# ----------------------------------------------------------------------------------------------------------
# The wrapper
# ----------------------------------------------------------------------------------------------------------


class KPACDefocus(nn.Module):
    """KPAC behind the suite's batch interface.

    | variant               | views read            | network input   | colour | range   | output             | protocol |
    |-----------------------|-----------------------|-----------------|--------|---------|--------------------|----------|
    | ``kpac_single_2level``| center                | C               | RGB    | [-1, 1] | C + residual       | 8-bit    |
    | ``kpac_single_3level``| center                | C               | RGB    | [-1, 1] | C + residual       | 8-bit    |
    | ``kpac_dual``         | center, left, right   | cat(L, R)       | RGB    | [-1, 1] | C + residual       | 8-bit    |

    [0, 1] maps to [-1, 1] as the official ``(x - 127.5) / 127.5`` on 8-bit values, and back with (y + 1) / 2.
    The official graph is built for 1120x1680 only, but all layers are convolutional and the shape attention
    is a global mean there, so any H, W that are multiples of 2**levels compute the same thing; other sizes are
    reflect-padded bottom/right and cropped back. Eval clamps to [0, 1] (the official ``save_image`` clips);
    training returns the unclamped residual output (the official losses see it raw).
    """

    size_mode = "pad"

    def __init__(self, levels: int = 3, dual_pixel: bool = False):
        super().__init__()
        if dual_pixel and levels != 3:
            raise ValueError("the published dual-pixel KPAC is the 3-level network")
        self.dual_pixel = dual_pixel
        self.net = KPACNet(in_ch=6 if dual_pixel else 3, levels=levels)
        self.size_multiple = (2**levels, 2**levels)
        self.input_views = ("center", "left", "right") if dual_pixel else ("center",)

    def forward(self, batch: dict) -> dict:
        c = batch["center"] * 2 - 1
        x = torch.cat([batch["left"], batch["right"]], 1) * 2 - 1 if self.dual_pixel else c
        mult = self.size_multiple[0]
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, mult)
        c = pad_to_multiple(c, mult)
        out = (self.net(x, c)[..., :h, :w] + 1) / 2
        if not self.training:
            out = out.clamp(0, 1)
        return {"output": out}


def checkpoint_filter_fn(state_dict: dict, model: nn.Module) -> dict:
    """TensorLayer ``save_npz`` file (``{'params': [arrays]}``) -> our state dict, by position."""
    return positional_state_dict(state_dict, manifest_for_model(model.registry_name), model.state_dict())


# ----------------------------------------------------------------------------------------------------------
# Registered variants
# ----------------------------------------------------------------------------------------------------------


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def kpac_single_2level(**kw) -> KPACDefocus:
    return KPACDefocus(levels=2, **kw)


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def kpac_single_3level(**kw) -> KPACDefocus:
    return KPACDefocus(levels=3, **kw)


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def kpac_dual(**kw) -> KPACDefocus:
    return KPACDefocus(levels=3, dual_pixel=True, **kw)
