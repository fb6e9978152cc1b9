"""DeepRFT: deep residual Fourier transformation for single-image deblurring (DPDD defocus model).

X. Mao, Y. Liu, W. Shen, Q. Li, Y. Wang, "Deep Residual Fourier Transformation for Single Image
Deblurring", arXiv 2111.11745 (v1, 2021; AAAI 2023 as "Intriguing Findings of Frequency Selection for
Image Deblurring"). Author lists written from memory, not checked against the papers.

Official code: github.com/INVOKERer/DeepRFT @ 4bf63db9a41bbf73760d79dd67179d2b7c767a55 (branch main;
``DeepRFT_MIMO.py::DeepRFT``, ``layers.py``, ``doconv_pytorch.py``, ``test.py``), "ACADEMIC PUBLIC
LICENSE" (non-commercial). That code was read for facts only (module tree, tensor names and shapes,
layer order, the DO-Conv folding rule, the 512-window test protocol); this file is an independent
re-implementation. The published weights keep the authors' licence.

Architecture: MIMO-UNet layout, 32/64/128 channels, ``num_res`` Res-FFT-Conv blocks per stage (spatial
3x3-ReLU-3x3 branch + identity + a frequency branch: rfft2 -> 1x1-ReLU-1x1 on cat(real, imag) ->
irfft2), shallow conv modules (SCM) on nearest x1/2 and x1/4 copies of the input, feature attention
(FAM) and asymmetric feature fusion (AFF); output = last conv + input (residual).

The published file holds the *training* form: every convolution except the two transposed ones is a
DO-Conv (Cao et al., "DO-Conv: Depthwise Over-parameterized Convolutional Layer", TIP 2022) with
``W`` (out, in, D_mul), ``D`` (in, k*k, D_mul) and a frozen identity ``D_diag``. The effective kernel is

    K[o, i, m] = sum_s (D + D_diag)[i, m, s] * W[o, i, s],   m = 0..k*k-1, reshaped to (out, in, k, k)

(1x1 DO-Convs have only ``W`` (out, in, 1)). :func:`fold_doconv_state_dict` does that once, so the
inference network holds plain kernels under the same ``.W`` names (the authors' inference model).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.common import pad_to_multiple
from k3dn.checkpoint import strip_prefix
from k3dn.registry import register_model

__all__ = [
    "DOConv2d",
    "FoldedConv2d",
    "DeepRFTNet",
    "DeepRFT",
    "fold_doconv",
    "fold_doconv_state_dict",
    "tiled_apply",
    "checkpoint_filter_fn",
]

BASE = 32
DPDD_WINDOW = 512  # test.py --win_size for DPDD


# ------------------------------------------------------------------------------------------- DO-Conv


def fold_doconv(W: torch.Tensor, D: torch.Tensor | None = None, D_diag: torch.Tensor | None = None) -> torch.Tensor:
    """Collapse a DO-Conv's (W, D, D_diag) into the equivalent (out, in, k, k) kernel."""
    out_ch, in_ch, d_mul = W.shape
    if D is None:  # 1x1 DO-Conv: W is the kernel
        return W.reshape(out_ch, in_ch, 1, 1)
    taps = D.shape[1]
    k = math.isqrt(taps)
    if k * k != taps or D.shape != (in_ch, taps, d_mul):
        raise ValueError(f"DO-Conv shapes do not fit: W {tuple(W.shape)}, D {tuple(D.shape)}")
    if D_diag is None:
        D_diag = _identity_diag(in_ch, taps, d_mul, W.dtype, W.device)
    return torch.einsum("ims,ois->oim", D + D_diag, W).reshape(out_ch, in_ch, k, k)


def _identity_diag(in_ch, taps, d_mul, dtype=torch.float32, device=None):
    """D_diag as DO-Conv builds it: an identity per input channel, zero-padded when D_mul > k*k."""
    eye = torch.eye(taps, dtype=dtype, device=device).unsqueeze(0).repeat(in_ch, 1, d_mul // taps)
    if d_mul % taps:
        eye = torch.cat([eye, eye.new_zeros(in_ch, taps, d_mul % taps)], dim=2)
    return eye


class DOConv2d(nn.Module):
    """Training-form DO-Conv (bias-free, zero padding k//2). ``D`` starts at 0, so at initialisation the
    layer is an ordinary conv with kernel ``W``; ``D_diag`` is a frozen parameter (it is in the file)."""

    def __init__(self, cin, cout, kernel, stride=1):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        taps = kernel * kernel
        self.W = nn.Parameter(torch.empty(cout, cin, taps))
        nn.init.kaiming_uniform_(self.W, a=math.sqrt(5))
        if taps > 1:
            self.D = nn.Parameter(torch.zeros(cin, taps, taps))
            self.D_diag = nn.Parameter(_identity_diag(cin, taps, taps), requires_grad=False)
        else:
            self.D = self.D_diag = None

    def folded_weight(self) -> torch.Tensor:
        return fold_doconv(self.W, self.D, self.D_diag)

    def forward(self, x):
        return F.conv2d(x, self.folded_weight(), None, self.stride, self.kernel // 2)


class FoldedConv2d(nn.Module):
    """Inference-form DO-Conv: a plain bias-free conv whose kernel is stored as ``W`` (out, in, k, k)."""

    def __init__(self, cin, cout, kernel, stride=1):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.W = nn.Parameter(torch.empty(cout, cin, kernel, kernel))
        nn.init.kaiming_uniform_(self.W, a=math.sqrt(5))

    def forward(self, x):
        return F.conv2d(x, self.W, None, self.stride, self.kernel // 2)


# ----------------------------------------------------------------------------------------------- blocks


class ConvUnit(nn.Module):
    """conv (DO-Conv, folded, or 4x4 stride-2 transposed) + optional ReLU, under ``main`` like the file."""

    def __init__(self, cin, cout, kernel, conv_cls, stride=1, relu=True, transpose=False):
        super().__init__()
        if transpose:
            conv = nn.ConvTranspose2d(cin, cout, kernel, stride=stride, padding=kernel // 2 - 1, bias=False)
        else:
            conv = conv_cls(cin, cout, kernel, stride)
        self.main = nn.Sequential(conv, nn.ReLU(inplace=True)) if relu else nn.Sequential(conv)

    def forward(self, x):
        return self.main(x)


class ResFFTBlock(nn.Module):
    """x + spatial(x) + irfft2(pointwise MLP on cat(Re, Im) of rfft2(x)), 'backward' FFT normalisation.

    The frequency branch sees the whole input at once, so results depend on the tile size at test.
    """

    def __init__(self, ch, conv_cls):
        super().__init__()
        self.main = nn.Sequential(ConvUnit(ch, ch, 3, conv_cls), ConvUnit(ch, ch, 3, conv_cls, relu=False))
        self.main_fft = nn.Sequential(
            ConvUnit(2 * ch, 2 * ch, 1, conv_cls), ConvUnit(2 * ch, 2 * ch, 1, conv_cls, relu=False)
        )

    def forward(self, x):
        h, w = x.shape[-2:]
        # The FFTs run in float32: under bf16 autocast neither rfft2 nor torch.complex takes bf16 (a no-op in fp32).
        spec = torch.fft.rfft2(x.float(), norm="backward")
        spec = self.main_fft(torch.cat([spec.real, spec.imag], dim=1))
        re, im = spec.float().chunk(2, dim=1)
        return self.main(x) + x + torch.fft.irfft2(torch.complex(re, im), s=(h, w), norm="backward")


class Stage(nn.Module):
    def __init__(self, ch, num_res, conv_cls):
        super().__init__()
        self.layers = nn.Sequential(*[ResFFTBlock(ch, conv_cls) for _ in range(num_res)])

    def forward(self, x):
        return self.layers(x)


class AFF(nn.Module):
    """Fuse three scales: 1x1 (ReLU) then 3x3 on their concatenation."""

    def __init__(self, cin, cout, conv_cls):
        super().__init__()
        self.conv = nn.Sequential(ConvUnit(cin, cout, 1, conv_cls), ConvUnit(cout, cout, 3, conv_cls, relu=False))

    def forward(self, *xs):
        return self.conv(torch.cat(xs, dim=1))


class SCM(nn.Module):
    """Shallow features of a downscaled input, concatenated with that input, mixed by a 1x1 conv."""

    def __init__(self, planes, conv_cls, cin=3):
        super().__init__()
        self.main = nn.Sequential(
            ConvUnit(cin, planes // 4, 3, conv_cls),
            ConvUnit(planes // 4, planes // 2, 1, conv_cls),
            ConvUnit(planes // 2, planes // 2, 3, conv_cls),
            ConvUnit(planes // 2, planes - cin, 1, conv_cls),
        )
        self.conv = ConvUnit(planes, planes, 1, conv_cls, relu=False)

    def forward(self, x):
        return self.conv(torch.cat([x, self.main(x)], dim=1))


class FAM(nn.Module):
    """x1 + conv(x1 * x2)."""

    def __init__(self, ch, conv_cls):
        super().__init__()
        self.merge = ConvUnit(ch, ch, 3, conv_cls, relu=False)

    def forward(self, x1, x2):
        return x1 + self.merge(x1 * x2)


# ---------------------------------------------------------------------------------------------- network


class DeepRFTNet(nn.Module):
    """``DeepRFT(num_res)``; ``doconv=True`` is the training form (loads the published file as is),
    ``doconv=False`` the inference form (loads it after :func:`fold_doconv_state_dict`).

    ``forward(x)`` returns the full-resolution image; ``forward(x, multi_scale=True)`` also the x1/2 and
    x1/4 side outputs (``ConvsOut``) the authors train with. H, W must be multiples of 4.
    """

    def __init__(self, num_res: int = 8, doconv: bool = False):
        super().__init__()
        c = BASE
        conv = DOConv2d if doconv else FoldedConv2d
        self.doconv = doconv
        self.Encoder = nn.ModuleList(
            [Stage(c, num_res, conv), Stage(2 * c, num_res, conv), Stage(4 * c, num_res, conv)]
        )
        self.feat_extract = nn.ModuleList(
            [
                ConvUnit(3, c, 3, conv),
                ConvUnit(c, 2 * c, 3, conv, stride=2),
                ConvUnit(2 * c, 4 * c, 3, conv, stride=2),
                ConvUnit(4 * c, 2 * c, 4, conv, stride=2, transpose=True),
                ConvUnit(2 * c, c, 4, conv, stride=2, transpose=True),
                ConvUnit(c, 3, 3, conv, relu=False),
            ]
        )
        self.Decoder = nn.ModuleList(
            [Stage(4 * c, num_res, conv), Stage(2 * c, num_res, conv), Stage(c, num_res, conv)]
        )
        self.Convs = nn.ModuleList([ConvUnit(4 * c, 2 * c, 1, conv), ConvUnit(2 * c, c, 1, conv)])
        self.ConvsOut = nn.ModuleList(
            [ConvUnit(4 * c, 3, 3, conv, relu=False), ConvUnit(2 * c, 3, 3, conv, relu=False)]
        )
        self.AFFs = nn.ModuleList([AFF(7 * c, c, conv), AFF(7 * c, 2 * c, conv)])
        self.FAM1 = FAM(4 * c, conv)
        self.SCM1 = SCM(4 * c, conv)
        self.FAM2 = FAM(2 * c, conv)
        self.SCM2 = SCM(2 * c, conv)

    def forward(self, x, multi_scale: bool = False):
        h, w = x.shape[-2:]
        if h % 4 or w % 4:
            raise ValueError(f"DeepRFT needs H, W multiples of 4, got {h}x{w}")
        x2 = F.interpolate(x, scale_factor=0.5)  # nearest, as in the authors' MIMO-UNet
        x4 = F.interpolate(x2, scale_factor=0.5)
        z2, z4 = self.SCM2(x2), self.SCM1(x4)

        res1 = self.Encoder[0](self.feat_extract[0](x))
        res2 = self.Encoder[1](self.FAM2(self.feat_extract[1](res1), z2))
        z = self.Encoder[2](self.FAM1(self.feat_extract[2](res2), z4))

        z42 = F.interpolate(z, scale_factor=2)
        fused2 = self.AFFs[1](F.interpolate(res1, scale_factor=0.5), res2, z42)
        fused1 = self.AFFs[0](res1, F.interpolate(res2, scale_factor=2), F.interpolate(z42, scale_factor=2))

        z = self.Decoder[0](z)
        side4 = self.ConvsOut[0](z) + x4 if multi_scale else None
        z = self.Decoder[1](self.Convs[0](torch.cat([self.feat_extract[3](z), fused2], dim=1)))
        side2 = self.ConvsOut[1](z) + x2 if multi_scale else None
        z = self.Decoder[2](self.Convs[1](torch.cat([self.feat_extract[4](z), fused1], dim=1)))
        out = self.feat_extract[5](z) + x
        return (out, side2, side4) if multi_scale else out


# ----------------------------------------------------------------------------------------------- tiling


def _axis_tiles(size: int, win: int) -> list[tuple[int, int]]:
    """(window start, first row/column this window writes) along one axis, as test.py tiles it:
    a grid of whole windows from 0, then one window flush with the far edge that fills only the rest."""
    grid = size - size % win
    tiles = [(s, s) for s in range(0, grid, win)]
    if grid != size:
        tiles.append((size - win, grid))
    return tiles


def tiled_apply(fn, x: torch.Tensor, win: int) -> torch.Tensor:
    """Run ``fn`` on non-overlapping ``win``x``win`` windows and reassemble, without blending.

    Windows: the top-left grid, plus windows flush with the right edge, the bottom edge and the corner
    when the size is not a multiple of ``win``; those edge windows overlap the grid but only fill the
    remainder strips (``layers.py::window_partitionx/window_reversex``). All windows go through ``fn``
    as one batch. A side shorter than ``win`` is processed whole (the official code cannot do that).
    """
    b, _, h, w = x.shape
    wh, ww = min(win, h), min(win, w)
    tiles = [(ys, yw, xs, xw) for ys, yw in _axis_tiles(h, wh) for xs, xw in _axis_tiles(w, ww)]
    batch = torch.cat([x[..., ys : ys + wh, xs : xs + ww] for ys, _, xs, _ in tiles], dim=0)
    pred = fn(batch)
    out = pred.new_zeros(b, pred.shape[1], h, w)
    for n, (ys, yw, xs, xw) in enumerate(tiles):
        out[..., yw : ys + wh, xw : xs + ww] = pred[n * b : (n + 1) * b, :, yw - ys :, xw - xs :]
    return out


# ---------------------------------------------------------------------------------------------- wrapper


class DeepRFT(nn.Module):
    """Suite wrapper around :class:`DeepRFTNet` (held as ``self.net``).

    | convention   | official test (``test.py``, README defocus command)  | here                                   |
    |--------------|------------------------------------------------------|----------------------------------------|
    | views        | single image: DPDD ``test_c/source`` (C)             | ``batch["center"]``                    |
    | colour/range | RGB, [0, 1] (PIL + to_tensor: 8-bit)                 | RGB [0, 1]; 8-bit (``checkpoints.yaml``)|
    | weights      | DO-Conv file folded into the inference model         | ``doconv=False``: folded on load       |
    | tiling       | 512x512 windows, edge windows fill the remainder     | ``tile=512`` (default); ``None`` whole |
    | size         | DPDD 1120x1680 (multiples of 4 needed)               | reflect-padded to 4, cropped back      |
    | output       | residual (last conv + input), clamp [0, 1]           | same; clamp in eval only               |

    ``doconv=True`` builds the training form (over-parameterised, as the authors train); in training
    mode ``out["side_outputs"]`` holds the x1/2 and x1/4 predictions of the authors' multi-scale loss.
    Tiling applies in eval mode only.
    """

    input_views = ("center",)
    size_multiple = (4, 4)
    size_mode = "pad"

    def __init__(self, num_res: int = 8, doconv: bool = False, tile: int | None = DPDD_WINDOW):
        super().__init__()
        if tile is not None and (tile <= 0 or tile % 4):
            raise ValueError(f"DeepRFT tile must be a positive multiple of 4, got {tile}")
        self.tile = tile
        self.net = DeepRFTNet(num_res=num_res, doconv=doconv)

    def forward(self, batch: dict) -> dict:
        x = batch["center"]
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.size_multiple)
        if self.training:
            out, side2, side4 = self.net(x, multi_scale=True)
            return {"output": out[..., :h, :w], "side_outputs": [side2, side4]}
        out = tiled_apply(self.net, x, self.tile) if self.tile else self.net(x)
        return {"output": out[..., :h, :w].clamp(0, 1)}


def fold_doconv_state_dict(sd: dict) -> dict:
    """Training-form state dict -> inference-form: every DO-Conv ``X.W`` (3-D) becomes its folded 4-D
    kernel and ``X.D`` / ``X.D_diag`` disappear; other tensors (transposed convs) pass through."""
    out = {}
    for k, v in sd.items():
        leaf = k.rsplit(".", 1)[-1]
        stem = k[: len(k) - len(leaf)]  # "" for a bare DOConv2d's own state dict
        if leaf in ("D", "D_diag"):
            continue  # folded into their W below; a file without that W then fails the strict load, naming it
        if leaf == "W" and v.dim() == 3:
            out[k] = fold_doconv(v, sd.get(stem + "D"), sd.get(stem + "D_diag"))
        else:
            out[k] = v
    return out


def checkpoint_filter_fn(state_dict: dict, model: nn.Module | None = None) -> dict:
    """``{'epoch', 'state_dict', 'optimizer'}`` (keys with or without ``module.``) -> wrapper state dict,
    folded unless ``model`` holds the DO-Conv training form."""
    doconv = model is not None and model.net.doconv
    if not isinstance(state_dict, dict):
        raise TypeError(f"DeepRFT checkpoint: expected a dict, got {type(state_dict).__name__}")
    sd = state_dict["state_dict"] if isinstance(state_dict.get("state_dict"), dict) else state_dict
    sd = strip_prefix(sd, "module.")
    folded_file = not any(k.rsplit(".", 1)[-1] == "D" for k in sd)
    if doconv and folded_file:
        raise ValueError(
            "DeepRFT checkpoint: file is already folded (no DO-Conv D tensors); "
            "load it into the inference form (doconv=False)"
        )
    if not doconv:
        sd = fold_doconv_state_dict(sd)
    return {f"net.{k}": v for k, v in sd.items()}


# ----------------------------------------------------------------------------------- registered variants


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def deeprft(**kw) -> DeepRFT:
    """DeepRFT (num_res 8) DPDD single-image defocus weights, folded, official 512x512 tiling."""
    return DeepRFT(**kw)


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def deeprft_wholeimage(**kw) -> DeepRFT:
    """Same weights, one pass over the whole image (the FFT branch then sees the full frame)."""
    return DeepRFT(**{"tile": None, **kw})
