"""Restormer (Zamir et al., "Restormer: Efficient Transformer for High-Resolution Image Restoration", CVPR 2022).

Re-implemented from the paper and the architecture facts of the official code (commit in
``baselines/checkpoints.yaml``) so that the two published defocus-deblurring checkpoints load with ``strict=True``:

* ``dual_pixel_defocus_deblurring.pth``  (6-channel cat(L, R) input, 16-bit DPDD training, manifest
  ``restormer_dual_pixel``, 26,132,548 parameters);
* ``single_image_defocus_deblurring.pth`` (3-channel C input, 8-bit DPDD training, manifest
  ``restormer_single_image``, 26,126,644 parameters).

Source of the facts (module names, shapes, layer order): swz30/Restormer @ df766d5521afd21cce56e24159f300b30ebf3fb0,
``basicsr/models/archs/restormer_arch.py`` and ``Defocus_Deblurring/``. That code is under the Restormer
"ACADEMIC PUBLIC LICENSE" (non-commercial); none of it is copied here, and the published *weights* carry the
same non-commercial terms.

Network in one paragraph: a 4-level U-Net of transformer blocks (channel widths 48/96/192/384, 4/6/6/8 blocks,
1/2/4/8 heads). Each block is a channel LayerNorm, MDTA ("transposed" attention across channels, per head, with
L2-normalised queries/keys and a learned temperature, after a 1x1 + depth-wise 3x3 projection), another LayerNorm
and the GDFN (gated depth-wise feed-forward, hidden width int(dim * 2.66)). Down: 3x3 conv halving channels then
PixelUnshuffle(2); up: 3x3 conv doubling channels then PixelShuffle(2). The level-1 decoder and four refinement
blocks run at 96 channels. In the dual-pixel model a 1x1 ``skip_conv`` adds the embedded input features before
the output conv and there is no residual to the input; the single-image model adds its input to the output.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.common import pad_to_multiple
from k3dn.checkpoint import strip_prefix
from k3dn.registry import register_model

__all__ = ["Restormer", "RestormerDefocus", "restormer_dual", "restormer_single"]


# ----------------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------------


class _ChannelNormBody(nn.Module):
    """Per-pixel LayerNorm over channels with affine weight and bias ("WithBias" variant).

    Statistics use the biased variance and eps=1e-5 inside the square root, as the published weights
    were trained with; normalising over dim 1 of a (B, C, H, W) tensor is the same computation as the
    reference's (B, HW, C) LayerNorm over the last axis.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        return (x - mu) / torch.sqrt(var + 1e-5) * self.weight[:, None, None] + self.bias[:, None, None]


class ChannelLayerNorm(nn.Module):
    """Holder so that the parameters are named ``norm*.body.weight`` / ``.bias`` like the checkpoint."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = _ChannelNormBody(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class MDTA(nn.Module):
    """Multi-Dconv-head Transposed Attention: attention maps are (C/heads x C/heads), not (HW x HW)."""

    def __init__(self, dim: int, heads: int, bias: bool = False):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        # (B, C, H, W) -> (B, heads, C/heads, HW); channels are grouped head-major as in the reference.
        q, k, v = (t.reshape(b, self.heads, c // self.heads, h * w) for t in (q, k, v))
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.temperature
        out = attn.softmax(dim=-1) @ v
        return self.project_out(out.reshape(b, c, h, w))


class GDFN(nn.Module):
    """Gated-Dconv feed-forward: GELU(first half) * second half of a depth-wise-filtered expansion."""

    def __init__(self, dim: int, expansion: float, bias: bool = False):
        super().__init__()
        hidden = int(dim * expansion)  # truncation, not rounding: 48 * 2.66 -> 127 channels
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, expansion: float, bias: bool = False):
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim)
        self.attn = MDTA(dim, heads, bias)
        self.norm2 = ChannelLayerNorm(dim)
        self.ffn = GDFN(dim, expansion, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, in_ch: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_ch, dim, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Down(nn.Module):
    """Halve resolution, double channels: conv to C/2, then PixelUnshuffle(2) (C/2 * 4 = 2C)."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Up(nn.Module):
    """Double resolution, halve channels: conv to 2C, then PixelShuffle(2) (2C / 4 = C/2)."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _stage(n: int, dim: int, heads: int, expansion: float, bias: bool) -> nn.Sequential:
    return nn.Sequential(*[TransformerBlock(dim, heads, expansion, bias) for _ in range(n)])


# ----------------------------------------------------------------------------------------------------------
# The network (attribute names = the published state-dict names)
# ----------------------------------------------------------------------------------------------------------


class Restormer(nn.Module):
    """Restormer on a raw tensor: (B, in_ch, H, W) -> (B, out_ch, H, W); H and W multiples of 8."""

    def __init__(
        self,
        in_ch: int = 3,
        out_ch: int = 3,
        dim: int = 48,
        blocks=(4, 6, 6, 8),
        refine_blocks: int = 4,
        heads=(1, 2, 4, 8),
        expansion: float = 2.66,
        bias: bool = False,
        dual_pixel: bool = False,
    ):
        super().__init__()
        d1, d2, d3, d4 = dim, dim * 2, dim * 4, dim * 8
        self.dual_pixel = dual_pixel
        self.patch_embed = PatchEmbed(in_ch, d1)
        self.encoder_level1 = _stage(blocks[0], d1, heads[0], expansion, bias)
        self.down1_2 = Down(d1)
        self.encoder_level2 = _stage(blocks[1], d2, heads[1], expansion, bias)
        self.down2_3 = Down(d2)
        self.encoder_level3 = _stage(blocks[2], d3, heads[2], expansion, bias)
        self.down3_4 = Down(d3)
        self.latent = _stage(blocks[3], d4, heads[3], expansion, bias)
        self.up4_3 = Up(d4)
        self.reduce_chan_level3 = nn.Conv2d(d4, d3, 1, bias=bias)
        self.decoder_level3 = _stage(blocks[2], d3, heads[2], expansion, bias)
        self.up3_2 = Up(d3)
        self.reduce_chan_level2 = nn.Conv2d(d3, d2, 1, bias=bias)
        self.decoder_level2 = _stage(blocks[1], d2, heads[1], expansion, bias)
        self.up2_1 = Up(d2)
        # Level 1 has no channel reduction after the skip concat: it keeps working at 2*dim with 1 head.
        self.decoder_level1 = _stage(blocks[0], d2, heads[0], expansion, bias)
        self.refinement = _stage(refine_blocks, d2, heads[0], expansion, bias)
        if dual_pixel:
            self.skip_conv = nn.Conv2d(d1, d2, 1, bias=bias)
        self.output = nn.Conv2d(d2, out_ch, 3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        emb = self.patch_embed(x)
        e1 = self.encoder_level1(emb)
        e2 = self.encoder_level2(self.down1_2(e1))
        e3 = self.encoder_level3(self.down2_3(e2))
        z = self.latent(self.down3_4(e3))
        # Skip concatenation order is [upsampled, encoder]; the reduce convs' weights depend on it.
        d3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(z), e3], 1)))
        d2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(d3), e2], 1)))
        d1 = self.refinement(self.decoder_level1(torch.cat([self.up2_1(d2), e1], 1)))
        if self.dual_pixel:
            # DP model: direct prediction; the input reaches the output only through skip_conv(embedding).
            return self.output(d1 + self.skip_conv(emb))
        return self.output(d1) + x


# ----------------------------------------------------------------------------------------------------------
# Suite wrapper
# ----------------------------------------------------------------------------------------------------------


class RestormerDefocus(Restormer):
    """Restormer behind the suite's batch interface, with the published checkpoints' conventions.

    | variant            | views read    | network input      | colour | range | output                       | protocol |
    |--------------------|---------------|--------------------|--------|-------|------------------------------|----------|
    | ``restormer_dual`` | left, right   | cat(L, R), 6 ch    | RGB    | [0,1] | direct (no input residual)   | 16-bit   |
    | ``restormer_single``| center       | C, 3 ch            | RGB    | [0,1] | C + network residual         | 8-bit    |

    Sizes: the net needs H, W % 8 == 0 (three PixelUnshuffle(2)); the official DPDD test feeds 1120x1680 whole.
    Other sizes are reflect-padded bottom/right to the next multiple of 8 and cropped back (fully convolutional
    apart from the channel attention, which pools over all pixels, so padding changes results slightly).
    Output is clamped to [0, 1] in eval (official test: ``clamp(model(x), 0, 1)``) and left unclamped in training
    (the official trainer applies L1 to the raw output).
    """

    size_multiple = (8, 8)
    size_mode = "pad"

    def __init__(self, dual_pixel: bool):
        super().__init__(in_ch=6 if dual_pixel else 3, dual_pixel=dual_pixel)
        self.input_views = ("left", "right") if dual_pixel else ("center",)

    def forward(self, batch: dict) -> dict:
        x = torch.cat([batch["left"], batch["right"]], 1) if self.dual_pixel else batch["center"]
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.size_multiple[0])
        out = super().forward(x)[..., :h, :w]
        if not self.training:
            out = out.clamp(0, 1)
        return {"output": out}


def checkpoint_filter_fn(state_dict: dict, model: nn.Module | None = None) -> dict:
    """Published file = ``{'params': state_dict}`` with plain keys (BasicSR strips ``module.``)."""
    if isinstance(state_dict, dict) and "params" in state_dict and isinstance(state_dict["params"], dict):
        sd = state_dict["params"]
    elif isinstance(state_dict, dict) and "params_ema" in state_dict and isinstance(state_dict["params_ema"], dict):
        sd = state_dict["params_ema"]  # BasicSR files trained with EMA; not expected for these two checkpoints
    else:
        sd = state_dict
    return strip_prefix(sd, "module.")


# ----------------------------------------------------------------------------------------------------------
# Registered variants
# ----------------------------------------------------------------------------------------------------------


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def restormer_dual(**kw) -> RestormerDefocus:
    return RestormerDefocus(dual_pixel=True, **kw)


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def restormer_single(**kw) -> RestormerDefocus:
    return RestormerDefocus(dual_pixel=False, **kw)
