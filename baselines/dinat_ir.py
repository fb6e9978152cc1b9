"""DiNAT-IR (H. Liu, B. Li, C. Liu, M. Lu, "DiNAT-IR: Exploring Dilated Neighborhood Attention for High-Quality
Image Restoration", arXiv 2507.17892, 2025), dual-pixel defocus-deblurring model.

Re-implemented from the architecture facts of the official code so that the published DPDD dual-pixel file
``experiments/RestoreDiNAT-DPDD-width48/models/net_g_290000.pth`` (a Git LFS object in the repository, BasicSR
container ``{'params': state_dict}``, manifest ``dinat_ir_dual``, 25,985,496 parameters) loads with ``strict=True``.

Source of the facts: HanzhouLiu/DiNAT-IR @ 886609ee342ceb95b812630b8e71829de1e2dc03,
``basicsr/models/archs/RestoreDiNAT_arch.py`` (``RestoreDiNATLocal``), ``basicsr/models/archs/local_arch.py`` (the
test-time pooling), ``basicsr/models/image_restoration_model.py`` (its calibration forward, the test) and
``options/test/DPDD/RestoreDiNAT-width48.yml``; the attention is NATTEN 0.14.6's ``NeighborhoodAttention2D``
(SHI-Labs/NATTEN, MIT), the version the authors install. The repository has no licence file, so none of its code is
copied here (and the weights come with no stated terms); this file is written from the described behaviour.

Network in one paragraph: Restormer's 4-level U-Net (widths 48/96/192/384, 1/2/4/8 heads, a 3x3 patch embedding,
conv + PixelUnshuffle down, conv + PixelShuffle up, 1x1 channel reductions, a 96-channel level-1 decoder, a 1x1
``skip_conv`` of the embedding added before the output conv, no input residual), with 2/3/3/4 blocks per level and 2
refinement blocks, where each block is a pair of transformer blocks: ``local`` (7x7 neighbourhood attention) then
``globl`` (7x7 neighbourhood attention dilated by 36/18/9/4 at levels 1-4). A transformer block is
``x + NA(LN(x)) * gate(LN(x))`` then ``x + GDFN(LN(x))``; ``gate`` is the channel-aware module: an average pool, a
7-tap 1-D conv across the channels (ECA style, no bias), a sigmoid. The pool is global at training crops; at test the
authors' pooling conversion (TLC, Chu et al. 2021) turns it into a local box mean once the feature map is larger than
1.5x the 256-px calibration size of that level (see :func:`tlc_pool`), which is the case at DPD-blur's 1120x1680.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.common import pad_to_multiple
from baselines.restormer import GDFN, ChannelLayerNorm, Down, PatchEmbed, Restormer, Up
from k3dn.checkpoint import strip_prefix
from k3dn.registry import register_model

__all__ = [
    "DiNATIR",
    "DiNATIRDefocus",
    "NeighborhoodAttention2D",
    "axis_neighbours",
    "checkpoint_filter_fn",
    "dinat_ir_dual",
    "neighborhood_attention_2d",
    "tlc_pool",
]

KERNEL = 7
DILATIONS = (36, 18, 9, 4)
# ImageRestorationModel runs one forward pass on a 256x256 input right after building the network; each converted
# pool then fixes its box to floor(1.5 x) the feature size it saw, i.e. 384 px at level 1, halved at each level.
TLC_TRAIN_SIZE = 256


# ----------------------------------------------------------------------------------------------------------
# Neighbourhood attention (NATTEN 0.14.6 semantics)
# ----------------------------------------------------------------------------------------------------------


def axis_neighbours(length: int, kernel: int, dilation: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Neighbour positions ``(length, kernel)`` of every position along one axis, and their bias indices.

    With dilation ``d`` an axis is ``d`` interleaved sub-sequences (positions congruent mod ``d``); a position
    attends to ``kernel`` consecutive members of its own sub-sequence, centred on it and shifted inward where the
    centred window would leave the sub-sequence (never zero-padded). The bias index of a neighbour is its offset
    from the query in sub-sequence steps plus ``kernel - 1``, an index into the ``2 * kernel - 1`` bias table.
    Needs ``length >= kernel * dilation`` (every sub-sequence then has at least ``kernel`` members).
    """
    if length < kernel * dilation:
        raise ValueError(f"axis of {length} < kernel {kernel} x dilation {dilation}")
    pos = torch.arange(length, device=device)
    group, rank = pos % dilation, pos // dilation
    group_len = (length - group + dilation - 1) // dilation
    start = torch.minimum((rank - kernel // 2).clamp(min=0), group_len - kernel)
    member = start[:, None] + torch.arange(kernel, device=device)
    return member * dilation + group[:, None], member - rank[:, None] + kernel - 1


def neighborhood_attention_2d(q, k, v, rpb: torch.Tensor, kernel: int, dilation: int) -> torch.Tensor:
    """softmax(q . k_n + rpb) . v_n over each query pixel's ``kernel`` x ``kernel`` neighbours n.

    ``k``, ``v``: (B, heads, H, W, head_dim); ``q`` (already scaled): (B, heads, h, w, head_dim), the queries of the
    top-left h x w pixels of that map (all of it, or the unpadded part: the other queries' outputs would be cropped
    away); ``rpb``: (heads, 2k-1, 2k-1). The neighbours of pixel (i, j) are the products of its row and column
    neighbours (:func:`axis_neighbours`) in the whole H x W map. Rather than gathering all k*k neighbours at once
    (49 copies of K and V: ~36 GB for one level-1 map of a 1120x1680 image), the logits are built one neighbour
    offset at a time, so the extra memory is a few copies of one map plus the (B, heads, h, w, k*k) logits.
    """
    h, w = q.shape[2:4]
    rows, row_bias = (t[:h] for t in axis_neighbours(k.shape[2], kernel, dilation, q.device))
    cols, col_bias = (t[:w] for t in axis_neighbours(k.shape[3], kernel, dilation, q.device))
    acc = torch.promote_types(q.dtype, rpb.dtype)  # float32 logits and sums under bf16 autocast
    logits = torch.empty((*q.shape[:4], kernel * kernel), dtype=acc, device=q.device)
    for a in range(kernel):
        k_rows = k.index_select(2, rows[:, a])
        bias_rows = rpb.index_select(1, row_bias[:, a])  # (heads, h, 2k-1)
        for b in range(kernel):
            bias = bias_rows.index_select(2, col_bias[:, b])  # (heads, h, w)
            logits[..., a * kernel + b] = (q * k_rows.index_select(3, cols[:, b])).sum(-1) + bias
    attn = logits.softmax(-1)
    out = torch.zeros(q.shape, dtype=acc, device=q.device)
    for a in range(kernel):
        v_rows = v.index_select(2, rows[:, a])
        for b in range(kernel):
            out += attn[..., a * kernel + b, None] * v_rows.index_select(3, cols[:, b])
    return out.to(v.dtype)


class NeighborhoodAttention2D(nn.Module):
    """Multi-head neighbourhood attention on channels-last maps (B, H, W, C), with a relative position bias.

    A side shorter than ``kernel * dilation`` is zero-padded at the bottom/right before the qkv projection (so
    the padded pixels carry the projection's bias as keys and values and do take part in the attention); only the
    unpadded pixels' outputs are computed.
    """

    def __init__(self, dim: int, heads: int, kernel: int = KERNEL, dilation: int = 1):
        super().__init__()
        self.heads, self.kernel, self.dilation = heads, kernel, dilation
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.rpb = nn.Parameter(torch.zeros(heads, 2 * kernel - 1, 2 * kernel - 1))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        span = self.kernel * self.dilation
        if h < span or w < span:
            x = F.pad(x, (0, 0, 0, max(0, span - w), 0, max(0, span - h)))
        hp, wp = x.shape[1:3]
        # qkv channels are [q | k | v], each head-major: (3, B, heads, H, W, head_dim)
        q, k, v = self.qkv(x).reshape(b, hp, wp, 3, self.heads, c // self.heads).permute(3, 0, 4, 1, 2, 5)
        out = neighborhood_attention_2d(q[:, :, :h, :w] * self.scale, k, v, self.rpb, self.kernel, self.dilation)
        return self.proj(out.permute(0, 2, 3, 1, 4).reshape(b, h, w, c))

    def uncounted_macs(self, inputs, output: torch.Tensor) -> int:
        """q . k and attention . v of every output pixel over its kernel^2 neighbours, per channel: element-wise
        products that ``torch.utils.flop_counter`` does not count (``k3dn.report.speed.count_macs`` adds them)."""
        return 2 * output.numel() * self.kernel**2


# ----------------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------------


def tlc_pool(x: torch.Tensor, kernel: int | None) -> torch.Tensor:
    """The test-time average pool of the channel gate: global, or a ``kernel`` box mean once the map is larger.

    Global (B, C, 1, 1) when ``kernel`` is None or covers both sides. Otherwise each pixel gets the mean of the
    min(H, kernel) x min(W, kernel) box centred on it (the extra row/column of an even box below/right), and
    pixels within half a box of an edge repeat the nearest whole box's mean (B, C, H, W). The box sums come from
    an integral image in float32, as the authors compute them.
    """
    h, w = x.shape[-2:]
    if kernel is None or (kernel >= h and kernel >= w):
        return x.mean((2, 3), keepdim=True)
    k1, k2 = min(h, kernel), min(w, kernel)
    s = F.pad(x.float().cumsum(-1).cumsum(-2), (1, 0, 1, 0))
    box = (s[..., k1:, k2:] + s[..., :-k1, :-k2] - s[..., :-k1, k2:] - s[..., k1:, :-k2]) / (k1 * k2)
    return F.pad(box, ((k2 - 1) // 2, k2 // 2, (k1 - 1) // 2, k1 // 2), mode="replicate").to(x.dtype)


class TransBlock(nn.Module):
    """``x + NA(LN(x)) * gate(LN(x))``, then ``x + GDFN(LN(x))``; ``gate`` = sigmoid(conv1d over channels(pool))."""

    def __init__(self, dim: int, heads: int, dilation: int, pool_kernel: int | None, expansion: float = 2.66):
        super().__init__()
        self.pool_kernel = pool_kernel
        self.na2d = NeighborhoodAttention2D(dim, heads, KERNEL, dilation)
        self.norm1 = ChannelLayerNorm(dim)
        self.conv = nn.Conv1d(1, 1, kernel_size=7, padding=3, bias=False)
        self.norm2 = ChannelLayerNorm(dim)
        self.ffn = GDFN(dim, expansion, bias=False)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        s = tlc_pool(x, self.pool_kernel)
        b, c, h, w = s.shape
        # the 1-D conv slides along the channels of each pooled pixel (one input/output channel)
        s = self.conv(s.permute(0, 2, 3, 1).reshape(b * h * w, 1, c))
        return torch.sigmoid(s.reshape(b, h, w, c).permute(0, 3, 1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.na2d(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) * self.gate(y)
        return x + self.ffn(self.norm2(x))


class DualTransBlock(nn.Module):
    """Undilated (``local``) then dilated (``globl``) neighbourhood attention: the authors' 'hybrid' mode."""

    def __init__(self, dim: int, heads: int, dilation: int, pool_kernel: int | None):
        super().__init__()
        self.local = TransBlock(dim, heads, 1, pool_kernel)
        self.globl = TransBlock(dim, heads, dilation, pool_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.globl(self.local(x))


def _stage(n: int, dim: int, heads: int, level: int, tlc: bool) -> nn.Sequential:
    side = TLC_TRAIN_SIZE >> (level - 1)  # the calibration input's side at this level
    pool_kernel = side * (TLC_TRAIN_SIZE * 3 // 2) // TLC_TRAIN_SIZE if tlc else None
    return nn.Sequential(*[DualTransBlock(dim, heads, DILATIONS[level - 1], pool_kernel) for _ in range(n)])


# ----------------------------------------------------------------------------------------------------------
# The network (attribute names = the published state-dict names)
# ----------------------------------------------------------------------------------------------------------


class DiNATIR(nn.Module):
    """``RestoreDiNATLocal(inp_channels=6, out_channels=3, dim=48, chan_adapt=True, mode='hybrid',
    dual_pixel_task=True)`` on a raw tensor: (B, 6, H, W) -> (B, 3, H, W); H and W multiples of 8.

    ``tlc=True`` pools the channel gate as the authors' test does (box means above 1.5x the calibration size);
    ``tlc=False`` always pools globally (as in training, and as the network does when built without the
    calibration forward and first run on the image itself).
    """

    def __init__(self, in_ch: int = 6, out_ch: int = 3, dim: int = 48, blocks=(2, 3, 3, 4), refine_blocks: int = 2,
                 heads=(1, 2, 4, 8), tlc: bool = True):  # fmt: skip
        super().__init__()
        d1, d2, d3, d4 = dim, dim * 2, dim * 4, dim * 8
        self.patch_embed = PatchEmbed(in_ch, d1)
        self.encoder_level1 = _stage(blocks[0], d1, heads[0], 1, tlc)
        self.down1_2 = Down(d1)
        self.encoder_level2 = _stage(blocks[1], d2, heads[1], 2, tlc)
        self.down2_3 = Down(d2)
        self.encoder_level3 = _stage(blocks[2], d3, heads[2], 3, tlc)
        self.down3_4 = Down(d3)
        self.latent = _stage(blocks[3], d4, heads[3], 4, tlc)
        self.up4_3 = Up(d4)
        self.reduce_chan_level3 = nn.Conv2d(d4, d3, 1, bias=False)
        self.decoder_level3 = _stage(blocks[2], d3, heads[2], 3, tlc)
        self.up3_2 = Up(d3)
        self.reduce_chan_level2 = nn.Conv2d(d3, d2, 1, bias=False)
        self.decoder_level2 = _stage(blocks[1], d2, heads[1], 2, tlc)
        self.up2_1 = Up(d2)
        # Level 1 keeps the concatenated 2*dim channels, one head and dilation 36, through the refinement too.
        self.decoder_level1 = _stage(blocks[0], d2, heads[0], 1, tlc)
        self.refinement = _stage(refine_blocks, d2, heads[0], 1, tlc)
        self.skip_conv = nn.Conv2d(d1, d2, 1, bias=False)
        self.output = nn.Conv2d(d2, out_ch, 3, padding=1, bias=False)

    # The same U-Net wiring as Restormer's dual-pixel model (skips [upsampled, encoder], direct prediction through
    # skip_conv(embedding)), with these blocks: its forward, not a copy of it.
    dual_pixel = True
    forward = Restormer.forward


# ----------------------------------------------------------------------------------------------------------
# Suite wrapper
# ----------------------------------------------------------------------------------------------------------


class DiNATIRDefocus(DiNATIR):
    """DiNAT-IR behind the suite's batch interface, with the published DPDD checkpoint's conventions.

    | convention   | official test (``basicsr/test.py``, ``options/test/DPDD``)    | here                              |
    |--------------|---------------------------------------------------------------|-----------------------------------|
    | views        | cat(L, R) along channels, 6 ch                                | ``batch["left"]``, ``["right"]``  |
    | colour/range | each view BGR (cv2 order), 16-bit / 65535 in [0, 1]; RGB out | views flipped to BGR; 16-bit      |
    | size         | whole 1120x1680 image, no padding                             | reflect-padded to 8, cropped back |
    | channel gate | TLC box means, 384/192/96/48 px at levels 1-4                 | ``tlc=True`` (default)            |
    | output       | direct prediction; saved clamped to [0, 1] as 16-bit PNG      | clamp in eval only                |

    Colour: the training and test dataset (``TripletImageDataset``) concatenates the two cv2-decoded views into one
    6-channel array before BasicSR's ``img2tensor``, which converts BGR to RGB only for 3-channel arrays, so the
    network sees cat(L_bgr, R_bgr) while its target (3 channels) is converted: RGB out.
    Padding is not neutral here: the gate's pooling and the attention windows see the padded pixels.
    A whole 1120x1680 image in float32 peaks at 12.5 GiB of live tensors (counted op by op on the meta device), at
    the level-1 decoder's GDFN depth-wise conv (510 channels), not in the attention.
    """

    input_views = ("left", "right")
    size_multiple = (8, 8)
    size_mode = "pad"

    def forward(self, batch: dict) -> dict:
        x = torch.cat([batch["left"].flip(1), batch["right"].flip(1)], 1)  # RGB -> BGR per view
        h, w = x.shape[-2:]
        out = super().forward(pad_to_multiple(x, self.size_multiple[0]))[..., :h, :w]
        if not self.training:
            out = out.clamp(0, 1)
        return {"output": out}


def checkpoint_filter_fn(state_dict: dict, model: nn.Module | None = None) -> dict:
    """Published file = ``{'params': state_dict}`` with plain keys (BasicSR's ``save_network`` strips ``module.``)."""
    if isinstance(state_dict, dict) and isinstance(state_dict.get("params"), dict):
        state_dict = state_dict["params"]
    return strip_prefix(state_dict, "module.")


# ----------------------------------------------------------------------------------------------------------
# Registered variants
# ----------------------------------------------------------------------------------------------------------


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def dinat_ir_dual(**kw) -> DiNATIRDefocus:
    return DiNATIRDefocus(**kw)
