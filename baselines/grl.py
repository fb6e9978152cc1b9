"""GRL-B (Li et al., "Efficient and Explicit Modelling of Image Hierarchies for Image Restoration", CVPR 2023,
arXiv 2303.00748), the dual-pixel defocus-deblurring model.

Re-implemented from the paper and the architecture facts of the official code so that the published Lightning
checkpoint ``db_defocus_dual_pixel_grl_base.ckpt`` (release v1.0.0; manifest ``grl_b_dual``, 19,810,123
parameters) loads with ``strict=True``. Source of the facts (module names, shapes, layer order, the relative
position tables, the shift masks, the test-time tiling): ofsoundof/GRL-Image-Restoration @
3123fcadfee2107d813c5e8fff58227f14c989bc, ``models/networks/grl.py`` (class ``GRL``),
``models/common/mixed_attn_block_efficient.py``, ``models/common/mixed_attn_block.py`` (projections, ``CAB``),
``models/common/ops.py`` (tables, indices, masks), ``engines/base.py`` (``forward``, ``forward_tile``),
``tools/trainer.py`` (how a ``.ckpt`` is loaded). That code is MIT-licensed; none of it is copied here. The
weights are released in the same repository and state no other licence.

The dual-pixel configuration is not in the repository (its issue 38: ``experiment=db_defocus/grl_dual_p480``,
named by ``scripts/grl/grl_test.md``, is missing), so it is reconstructed from the single-image defocus
experiment ``config/experiment/db_defocus/grl_p480.yaml`` on top of ``config/model/grl/grl_base.yaml``: embed 180,
depths [4, 4, 8, 8, 8, 4, 4], 3 window and 3 stripe heads per stage, window 16, stripes [48, 96] with no groups
and shifted, MLP ratio 2, linear QKV, avg-pool anchors one stage with down-factor 4, 3x3 ``1conv`` after each
stage, local connection (CAB) on, ``upsampler=''``, ``upscale=1``, img_size 480 (the patch size), test tiles of
480 with 48 overlap. What the dual setting changes is inferred from the code: ``engines/base.py`` feeds
``cat[img_lq_l, img_lq_r]`` when ``data_module.dual_pixel`` is set, so ``in_channels = 6``; ``forward_tile``
allocates its output with ``data_module.num_channels`` channels, so that stays 3 and ``out_channels = 3`` is
set on the model (left at None it would default to 6). Whether the file holds exactly these tensors is
unverified (no published file was opened).

Network in one paragraph: a 3x3 conv embeds the 6-channel input to 180 channels; a LayerNorm; seven stages of
transformer blocks, each stage closed by a 3x3 conv and a stage residual; a LayerNorm, a 3x3 conv plus a global
feature residual, and a 3x3 conv to RGB (no image residual: 6 != 3 channels). Every block is post-norm:
``x + LN(attn(x)) + CAB(x)`` then ``x + LN(MLP(x))``. The attention splits one linear QKV projection in two
halves: window attention (16x16 windows, cyclically shifted by 8 on even blocks) and anchored stripe attention
(48x96 stripes on even blocks, 96x48 on odd, shifted by half a stripe in blocks 2 and 3 of every 4): a
4x-average-pooled, linearly projected "anchor" map first attends to the stripe's keys/values and the stripe's
queries then attend to those anchors. Both use cosine attention with a learned, clamped logit scale and a
continuous relative position bias (``16 * sigmoid(MLP(log-spaced coords))``). The input is padded to a multiple
of 96 (reflect; zeros where a side is too short to reflect) and the output cropped back.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from k3dn.checkpoint import strip_prefix
from k3dn.registry import register_model

__all__ = ["GRL", "GRLDefocus", "tiled_forward", "checkpoint_filter_fn", "grl_b_dual"]

DPDD_TILE, DPDD_TILE_OVERLAP = 480, 48  # config/experiment/db_defocus/grl_p480.yaml (tile, tile_overlap)
_MASK_VALUE = -100.0  # the official masks add -100 (not -inf) between tokens of different shifted regions


# ----------------------------------------------------------------------------------------------------------
# Geometry: window partitions, relative-position tables and indices, shift-region labels
# ----------------------------------------------------------------------------------------------------------


def _partition(x: torch.Tensor, win) -> torch.Tensor:
    """(B, H, W, C) -> (B * nH * nW, win_h * win_w, C); windows row-major, batch outermost."""
    b, h, w, c = x.shape
    x = x.view(b, h // win[0], win[0], w // win[1], win[1], c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, win[0] * win[1], c)


def _merge(x: torch.Tensor, win, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`_partition`: (B * nH * nW, win_h * win_w, C) -> (B, H, W, C)."""
    nh, nw = h // win[0], w // win[1]
    x = x.view(-1, nh, nw, win[0], win[1], x.shape[-1]).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, x.shape[-1])


def _coords_table(win, down: int) -> torch.Tensor:
    """(1, T_h, T_w, 2) log-spaced relative coordinates that the bias MLP reads.

    The range covers window-to-anchor offsets, ``win + win // down - 1`` values per axis, centred: from
    ``-(a - 1) - (w - a) // 2`` to ``w - 1 - (w - a) // 2`` (a = anchor size), scaled so that the positive end
    is 8, then ``sign * log2(1 + |t|) / log2(8)``. For a plain window (down 1) that is -(w-1) .. w-1.
    """
    anchor = [s // down for s in win]
    hi = [w - 1 - (w - a) // 2 for w, a in zip(win, anchor)]
    lo = [-(a - 1) - (w - a) // 2 for w, a in zip(win, anchor)]
    axes = [torch.arange(lo[i], hi[i] + 1, dtype=torch.float32) for i in range(2)]
    table = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)[None]
    table[..., 0] /= hi[0]
    table[..., 1] /= hi[1]
    table = table * 8
    return torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)


def _grid(size) -> torch.Tensor:
    """(2, size_h * size_w) integer (row, col) coordinates, row-major."""
    rows, cols = torch.meshgrid(torch.arange(size[0]), torch.arange(size[1]), indexing="ij")
    return torch.stack([rows.flatten(), cols.flatten()])


def _relative_index(win, down: int, window_to_anchor: bool) -> torch.Tensor:
    """Index into the flattened table for every (query, key) pair: (N_win, N_anchor) or (N_anchor, N_win).

    Both grids start at (0, 0), the anchor grid in its own (down-sampled) units: the offset is the plain
    difference of the two coordinates, shifted to be non-negative and flattened with the table's row length
    ``anchor_w + win_w - 1``. (The table is centred while this index is not; both are the published model's.)
    """
    anchor = [s // down for s in win]
    row = anchor[1] + win[1] - 1
    if window_to_anchor:
        d = _grid(win)[:, :, None] - _grid(anchor)[:, None, :]
        off = [a - 1 for a in anchor]
    else:
        d = _grid(anchor)[:, :, None] - _grid(win)[:, None, :]
        off = [w - 1 for w in win]
    return (d[0] + off[0]) * row + (d[1] + off[1])


def _region_labels(size, win, shift) -> torch.Tensor:
    """(n_windows, win_h * win_w) labels of the up-to-9 regions a cyclic shift by ``shift`` brings together in
    one window: tokens of different labels must not attend to each other."""
    labels = torch.zeros(size[0], size[1], 1)
    rows = (slice(0, -win[0]), slice(-win[0], -shift[0]), slice(-shift[0], None))
    cols = (slice(0, -win[1]), slice(-win[1], -shift[1]), slice(-shift[1], None))
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            labels[r, c] = 3 * i + j
    return _partition(labels[None], win)[..., 0]


def _mask(labels_q: torch.Tensor, labels_k: torch.Tensor) -> torch.Tensor:
    """(n_windows, N_q, N_k) additive mask: 0 within a region, -100 across regions."""
    differ = labels_q[:, :, None] != labels_k[:, None, :]
    return torch.zeros(differ.shape, device=differ.device).masked_fill_(differ, _MASK_VALUE)


# ----------------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------------


class CPBMLP(nn.Sequential):
    """Continuous position bias: 2 -> 512 (ReLU) -> heads, no output bias."""

    def __init__(self, heads: int, hidden: int = 512):
        super().__init__(nn.Linear(2, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, heads, bias=False))


class AffineTransform(nn.Module):
    """Scales a cosine-similarity map by exp(clamped logit scale), adds the position bias and the shift mask."""

    def __init__(self, heads: int):
        super().__init__()
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(heads, 1, 1)))
        self.cpb_mlp = CPBMLP(heads)

    def forward(self, attn, table, index, mask=None):
        b_, heads, n1, n2 = attn.shape
        attn = attn * torch.clamp(self.logit_scale, max=math.log(1.0 / 0.01)).exp()
        bias = self.cpb_mlp(table).view(-1, heads)[index.view(-1)]
        bias = bias.view(n1, n2, heads).permute(2, 0, 1).contiguous()
        attn = attn + 16 * torch.sigmoid(bias).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(b_ // nw, nw, heads, n1, n2) + mask[None, :, None]).view(b_, heads, n1, n2)
        return attn


def _cosine_attention(q, k, v, transform, table, index, mask):
    attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
    return transform(attn, table, index, mask).softmax(dim=-1) @ v


def _heads(x: torch.Tensor, parts: int, heads: int) -> torch.Tensor:
    """(B_, N, parts * heads * d) -> (parts, B_, heads, N, d): the channels are part-major, then head-major."""
    b_, n, c = x.shape
    return x.reshape(b_, n, parts, heads, c // (parts * heads)).permute(2, 0, 3, 1, 4)


class WindowAttention(nn.Module):
    """Attention within ``window`` windows, cyclically shifted by half a window when ``shift``."""

    def __init__(self, window, heads: int, shift: bool):
        super().__init__()
        self.window, self.heads = window, heads
        self.shift = window[0] // 2 if shift else 0
        self.attn_transform = AffineTransform(heads)

    def forward(self, qkv, geo):
        b, h, w, c = qkv.shape
        if self.shift:
            qkv = torch.roll(qkv, shifts=(-self.shift, -self.shift), dims=(1, 2))
        q, k, v = _heads(_partition(qkv, self.window), 3, self.heads)
        mask = _mask(geo["labels_w"], geo["labels_w"]) if self.shift else None
        x = _cosine_attention(q, k, v, self.attn_transform, geo["table_w"], geo["index_w"], mask)
        x = _merge(x.transpose(1, 2).reshape(x.shape[0], -1, c // 3), self.window, h, w)
        if self.shift:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        return x


class AnchorStripeAttention(nn.Module):
    """Stripe attention through anchors: anchors attend to the stripe (keys, values), then the stripe's queries
    attend to the anchors (keys) carrying that result (values). ``stripe`` is (height, width) of a stripe."""

    def __init__(self, stripe, heads: int, shift: bool, down: int, orientation: str):
        super().__init__()
        self.stripe, self.heads, self.down, self.orientation = tuple(stripe), heads, down, orientation
        self.shift = tuple(s // 2 for s in stripe) if shift else (0, 0)
        self.attn_transform1 = AffineTransform(heads)
        self.attn_transform2 = AffineTransform(heads)

    def forward(self, qkv, anchor, geo):
        b, h, w, c = qkv.shape
        anchor_stripe = [s // self.down for s in self.stripe]
        if any(self.shift):
            qkv = torch.roll(qkv, shifts=(-self.shift[0], -self.shift[1]), dims=(1, 2))
            anchor_shift = (-(self.shift[0] // self.down), -(self.shift[1] // self.down))
            anchor = torch.roll(anchor, shifts=anchor_shift, dims=(1, 2))
        q, k, v = _heads(_partition(qkv, self.stripe), 3, self.heads)
        a = _heads(_partition(anchor, anchor_stripe), 1, self.heads)[0]
        o = self.orientation
        table = geo[f"table_{o}"]
        if any(self.shift):
            mask_a2w = _mask(geo[f"labels_{o}_anchor"], geo[f"labels_{o}_stripe"])
            mask_w2a = _mask(geo[f"labels_{o}_stripe"], geo[f"labels_{o}_anchor"])
        else:
            mask_a2w = mask_w2a = None
        x = _cosine_attention(a, k, v, self.attn_transform1, table, geo[f"index_{o}_a2w"], mask_a2w)
        x = _cosine_attention(q, a, x, self.attn_transform2, table, geo[f"index_{o}_w2a"], mask_w2a)
        x = _merge(x.transpose(1, 2).reshape(x.shape[0], -1, c // 3), self.stripe, h, w)
        if any(self.shift):
            x = torch.roll(x, shifts=self.shift, dims=(1, 2))
        return x


class QKVProjection(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.body = nn.Linear(dim, dim * 3)

    def forward(self, x):
        return self.body(x)


class AnchorLinear(nn.Module):
    """Anchors: ``down``x``down`` average pooling, then a linear map to half the channels."""

    def __init__(self, dim: int, down: int):
        super().__init__()
        self.pooling = nn.AvgPool2d(down, down)
        self.reduction = nn.Linear(dim, dim // 2)

    def forward(self, x):
        return self.reduction(self.pooling(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))


class AnchorProjection(nn.Module):
    """Holder so that the anchor map's parameters are named ``anchor.body.0.*`` like the checkpoint."""

    def __init__(self, dim: int, down: int):
        super().__init__()
        self.body = nn.ModuleList([AnchorLinear(dim, down)])

    def forward(self, x):
        return self.body[0](x)


class MixedAttention(nn.Module):
    """One QKV projection: its first half feeds window attention, its second half anchored stripe attention;
    their outputs (C/2 channels each) are concatenated and projected."""

    def __init__(self, dim, heads, window, window_shift, stripe, stripe_shift, down, orientation):
        super().__init__()
        self.qkv = QKVProjection(dim)
        self.anchor = AnchorProjection(dim, down)
        self.window_attn = WindowAttention(window, heads, window_shift)
        self.stripe_attn = AnchorStripeAttention(stripe, heads, stripe_shift, down, orientation)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, geo):
        qkv_window, qkv_stripe = self.qkv(x).chunk(2, dim=-1)
        x_window = self.window_attn(qkv_window, geo)
        x_stripe = self.stripe_attn(qkv_stripe, self.anchor(x), geo)
        return self.proj(torch.cat([x_window, x_stripe], dim=-1))


class ChannelAttention(nn.Module):
    """RCAN channel attention: global average -> 1x1 squeeze (ReLU) -> 1x1 excite (sigmoid) -> scale."""

    def __init__(self, dim: int, reduction: int = 18):
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(dim, dim // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(dim // reduction, dim, 1),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return x * self.attention(x)


class CAB(nn.Module):
    """The local branch: 3x3 conv to C/4, GELU, 3x3 conv back, channel attention."""

    def __init__(self, dim: int):
        super().__init__()
        self.cab = nn.Sequential(
            nn.Conv2d(dim, dim // 4, 3, 1, 1), nn.GELU(), nn.Conv2d(dim // 4, dim, 3, 1, 1), ChannelAttention(dim)
        )

    def forward(self, x):
        return self.cab(x.permute(0, 3, 1, 2).contiguous()).permute(0, 2, 3, 1)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def _drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth per sample (training only), the kept samples scaled by 1 / (1 - p)."""
    if p == 0.0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1 - p)
    return x * keep / (1 - p)


class GRLBlock(nn.Module):
    """Block ``i`` of a stage: window shift on even ``i``; stripes 48x96 on even, 96x48 on odd ``i``; stripe
    shift where ``i % 4`` is 2 or 3. Post-norm: ``x + LN(attn(x)) + CAB(x)``, then ``x + LN(MLP(x))``."""

    def __init__(self, dim, heads, window, stripe, down, mlp_ratio, i: int, drop_path: float = 0.0):
        super().__init__()
        orientation = "h" if i % 2 == 0 else "v"
        stripe = tuple(stripe) if orientation == "h" else tuple(stripe[::-1])
        self.attn = MixedAttention(dim, heads, window, i % 2 == 0, stripe, i % 4 in (2, 3), down, orientation)
        self.norm1 = nn.LayerNorm(dim)
        self.conv = CAB(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm2 = nn.LayerNorm(dim)
        self.drop_path = drop_path

    def forward(self, x, geo):
        x = x + _drop_path(self.norm1(self.attn(x, geo)), self.drop_path, self.training) + self.conv(x)
        return x + _drop_path(self.norm2(self.mlp(x)), self.drop_path, self.training)


class TransformerStage(nn.Module):
    def __init__(self, dim, depth, heads, window, stripe, down, mlp_ratio, drop_paths):
        super().__init__()
        self.blocks = nn.ModuleList(
            GRLBlock(dim, heads, window, stripe, down, mlp_ratio, i, drop_paths[i]) for i in range(depth)
        )
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x, geo):
        res = x
        for block in self.blocks:
            res = block(res, geo)
        return self.conv(res.permute(0, 3, 1, 2)).permute(0, 2, 3, 1) + x


# ----------------------------------------------------------------------------------------------------------
# The network (attribute names = the published state-dict names, without the Lightning prefix ``model.``)
# ----------------------------------------------------------------------------------------------------------


class GRL(nn.Module):
    """GRL on a raw tensor: (B, in_channels, H, W) -> (B, out_channels, H, W), any H, W.

    Only the restoration head of the published dual-pixel model (``upsampler=''``, in != out channels: no image
    residual and no mean shift). The position tables, indices and shift-region labels depend on the input size
    only; they are computed on first use per size and device and kept outside the state dict (the published
    file's copies of them, made at 480x480, are dropped by :func:`checkpoint_filter_fn`).
    """

    def __init__(
        self,
        in_channels: int = 6,
        out_channels: int = 3,
        embed_dim: int = 180,
        depths=(4, 4, 8, 8, 8, 4, 4),
        num_heads: int = 3,
        window_size: int = 16,
        stripe_size=(48, 96),
        anchor_window_down_factor: int = 4,
        mlp_ratio: float = 2.0,
        drop_path_rate: float = 0.1,
    ):
        super().__init__()
        if in_channels == out_channels:
            raise ValueError("only the in != out channels head (no image residual) is implemented")
        self.window = (window_size, window_size)
        self.stripe = tuple(stripe_size)
        self.down = anchor_window_down_factor
        self.pad_size = max(window_size, *stripe_size)
        self._geometry: dict = {}

        self.conv_first = nn.Conv2d(in_channels, embed_dim, 3, 1, 1)
        self.norm_start = nn.LayerNorm(embed_dim)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        starts = [sum(depths[:i]) for i in range(len(depths))]
        self.layers = nn.ModuleList(
            TransformerStage(embed_dim, d, num_heads, self.window, self.stripe, self.down, mlp_ratio, rates[s : s + d])
            for d, s in zip(depths, starts)
        )
        self.norm_end = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        self.conv_last = nn.Conv2d(embed_dim, out_channels, 3, 1, 1)

    def geometry(self, h: int, w: int, device) -> dict:
        """Tables, indices and region labels for a (padded) h x w feature map, cached per size and device."""
        key = (h, w, str(device))
        if key not in self._geometry:
            win, stripe, down = self.window, self.stripe, self.down
            half = [s // 2 for s in stripe]
            geo = {
                "table_w": _coords_table(win, 1),
                "index_w": _relative_index(win, 1, True),
                "labels_w": _region_labels((h, w), win, [s // 2 for s in win]),
            }
            # "h": stripes as configured (48 high, 96 wide); "v": transposed.
            for o, s, sh in (("h", stripe, half), ("v", stripe[::-1], half[::-1])):
                geo[f"table_{o}"] = _coords_table(s, down)
                geo[f"index_{o}_a2w"] = _relative_index(s, down, False)
                geo[f"index_{o}_w2a"] = _relative_index(s, down, True)
                geo[f"labels_{o}_stripe"] = _region_labels((h, w), s, sh)
                anchor_size = (h // down, w // down)
                geo[f"labels_{o}_anchor"] = _region_labels(anchor_size, [x // down for x in s], [x // down for x in sh])
            if len(self._geometry) >= 8:
                self._geometry.clear()
            self._geometry[key] = {k: v.to(device) for k, v in geo.items()}
        return self._geometry[key]

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Bottom/right to a multiple of the largest window: reflect, or zeros where a pad is not shorter than
        the side it extends (reflection impossible; the official code falls back to zeros then)."""
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.pad_size, (-w) % self.pad_size
        if not (ph or pw):
            return x
        return F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "constant")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        geo = self.geometry(h, w, x.device)
        x = self.norm_start(x.permute(0, 2, 3, 1))
        for layer in self.layers:
            x = layer(x, geo)
        return self.norm_end(x).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        first = self.conv_first(self.pad(x))
        out = self.conv_last(self.conv_after_body(self.forward_features(first)) + first)
        return out[..., :h, :w]


# ----------------------------------------------------------------------------------------------------------
# Test-time tiling and the suite wrapper
# ----------------------------------------------------------------------------------------------------------


def tiled_forward(fn, x: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    """``fn`` on overlapping square tiles, averaged where they overlap (``engines/base.py::forward_tile``).

    The tile side is ``min(tile, H, W)``; tiles start every ``side - overlap`` pixels from 0 and one more sits
    flush with the far edge; each output pixel is the plain mean of the tiles covering it. Tiles run one at a
    time (the whole batch per tile). Where the stride ``side - overlap`` is not positive (a side of at most
    ``overlap`` pixels) the official grid leaves pixels uncovered (its division then gives NaN there); the
    image is then processed whole instead.
    """
    b, _, h, w = x.shape
    side = min(tile, h, w)
    stride = side - overlap
    if stride <= 0 and (h > side or w > side):
        return fn(x)
    rows = list(range(0, h - side, stride)) + [h - side] if stride > 0 else [0]
    cols = list(range(0, w - side, stride)) + [w - side] if stride > 0 else [0]
    total = count = None
    for r in rows:
        for c in cols:
            out = fn(x[..., r : r + side, c : c + side])
            if total is None:  # in the input's dtype, as the official accumulator (also under autocast)
                total = x.new_zeros(b, out.shape[1], h, w)
                count = torch.zeros_like(total)
            total[..., r : r + side, c : c + side].add_(out)
            count[..., r : r + side, c : c + side].add_(torch.ones_like(out))
    return total.div_(count)


class GRLDefocus(GRL):
    """GRL behind the suite's batch interface, with the published dual-pixel checkpoint's conventions.

    | convention   | official (``engines/base.py``, reconstructed dual config)      | here                          |
    |--------------|----------------------------------------------------------------|-------------------------------|
    | views        | ``cat[img_lq_l, img_lq_r]``, 6 channels                        | ``cat(left, right)``          |
    | colour/range | RGB (``cv2`` BGR -> RGB), ``to_tensor``: [0, 1], 8-bit         | RGB [0, 1]; 8-bit (catalogue) |
    | size         | padded to 96 inside the network, cropped back                  | same (``size_multiple`` 1)    |
    | test tiling  | ``forward_tile``: 480 tiles, 48 overlap, plain mean            | ``tile=480, tile_overlap=48`` |
    | output       | direct prediction; clamp [0, 1] and 8-bit rounding for metrics | clamp [0, 1] in eval only     |

    ``tile=None`` runs the whole image at once (as the official ``tile=0``): ~30 GB at 1120x1680 in fp32, against
    ~4 GB for one 480 tile (CPU peak, measured; it does not depend on the depth).
    Training mode runs whole (the official trainer feeds 480 patches untiled) and leaves the output unclamped.
    """

    input_views = ("left", "right")
    size_multiple = (1, 1)
    size_mode = "pad"

    def __init__(self, tile: int | None = DPDD_TILE, tile_overlap: int = DPDD_TILE_OVERLAP, **kw):
        super().__init__(**kw)
        if tile is not None and (tile <= 0 or not 0 <= tile_overlap):
            raise ValueError(f"GRL tile must be positive and the overlap non-negative, got {tile}, {tile_overlap}")
        self.tile, self.tile_overlap = tile, tile_overlap

    def forward(self, batch: dict) -> dict:
        x = torch.cat([batch["left"], batch["right"]], dim=1)
        net = super().forward
        if self.training:
            return {"output": net(x)}
        out = tiled_forward(net, x, self.tile, self.tile_overlap) if self.tile else net(x)
        return {"output": out.clamp(0, 1)}


def checkpoint_filter_fn(state_dict: dict, model: nn.Module | None = None) -> dict:
    """Lightning ``.ckpt`` -> network state dict.

    Takes ``['state_dict']``; drops the engine's validation buffers (``current_val_metric``,
    ``best_val_metric``, ``best_iter``) and every size-derived buffer the official ``convert_checkpoint`` drops
    (names containing ``relative_coords_table``, ``relative_position_index``, ``attn_mask``, or starting with
    ``model.table_``, ``model.index_``, ``model.mask_``); strips ``model.``. A bare state dict (already
    converted) passes through the same steps.
    """
    sd = state_dict["state_dict"] if isinstance(state_dict.get("state_dict"), dict) else state_dict
    derived = ("relative_coords_table", "relative_position_index", "attn_mask")
    engine = ("current_val_metric", "best_val_metric", "best_iter")
    kept = {
        k: v
        for k, v in sd.items()
        if k not in engine
        and not any(d in k for d in derived)
        and not k.startswith(("model.table_", "model.index_", "model.mask_", "table_", "index_", "mask_"))
    }
    return strip_prefix(kept, "model.")


# ----------------------------------------------------------------------------------------------------------
# Registered variants
# ----------------------------------------------------------------------------------------------------------


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def grl_b_dual(**kw) -> GRLDefocus:
    """GRL-B, DPDD dual-pixel weights (8-bit), official 480/48 tiling."""
    return GRLDefocus(**kw)
