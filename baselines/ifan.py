"""IFAN (Lee et al., "Iterative Filter Adaptive Network for Single Image Defocus Deblurring", CVPR 2021).

Re-implemented from the paper and the architecture facts of the official code (commit in
``baselines/checkpoints.yaml``) so that the published checkpoints of ``checkpoints.zip`` load with ``strict=True``:

* ``ckpt/IFAN.pytorch``      (single image C; manifest ``ifan_single``, 10,476,996 parameters; the same tensors
  as ``IFAN_16bit.pytorch``, which differs only in its training data's bit depth);
* ``ckpt/IFAN_dual.pytorch`` (C plus the DP views R, L; manifest ``ifan_dual``, 10,477,860 parameters).

Source of the facts (module names, shapes, layer order): codeslake/IFAN @ 66bf136315360da7dfb2ff9b898460d24cb68ff1,
``models/archs/IFAN.py``, ``IFAN_dual.py``, ``models/nn_common.py``, ``models/IAC.py``, ``configs/config_IFAN.py``.
That code is GNU AGPL-3.0 (exemptions need a licence from POSTECH); none of it is copied here. The weights come
with the repository's terms.

Network in one paragraph: a conv feature extractor (32/64/128/128 channels, stride 2 at the first conv of levels
2-4) encodes C to 1/8 resolution. A filter encoder of the same shape (input C, or cat(R, L) for the dual model)
feeds a disparity-map estimator (DME, 1 channel) whose map is re-embedded (``conv_DME``) and fused with the filter
features (``conv4_4``); the predictor ``F`` then outputs, per 1/8-res pixel, N=17 pairs of separable 3-tap filters
for each of the 128 channels plus 17 bias vectors (15,232 channels). IAC applies them iteratively to the features
of C (filter, add bias, LeakyReLU; 17 times); a reconstructor with transposed convs and skip adds decodes the
result to a residual that is added to C.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.common import pad_to_multiple
from k3dn.registry import register_model

__all__ = ["IFAN", "IFANDefocus", "iac", "separable_adaptive_conv", "ifan_single", "ifan_dual"]

N_ITER = 17  # IAC iterations (config_IFAN: N)
FILTER_TAPS = 3  # separable filter length (config_IFAN: Fs)


# ----------------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------------


def conv_act(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    """Conv + LeakyReLU(0.1); a Sequential so the conv's weights are named ``<name>.0.*``."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, padding=k // 2), nn.LeakyReLU(0.1, inplace=True))


def upconv_act(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, padding=1), nn.LeakyReLU(0.1, inplace=True))


class ResBlock(nn.Module):
    """``n`` chained units x <- lrelu(x + conv(lrelu(conv(x)))); for n > 1 the block input is added once more.

    The activation after each sum and the extra outer skip for n > 1 are part of what the published weights
    were trained with (DRBNet's block, by contrast, has neither).
    """

    def __init__(self, ch: int, n: int = 1):
        super().__init__()
        self.stem = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv2d(ch, ch, 3, padding=1), nn.LeakyReLU(0.1, inplace=True), nn.Conv2d(ch, ch, 3, padding=1)
                )
                for _ in range(n)
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for unit in self.stem:
            y = F.leaky_relu(y + unit(y), 0.1)
        return y + x if len(self.stem) > 1 else y


def _trunk(ch: int, out: nn.Module, first_in: int | None = None, res_units: int = 2) -> nn.Sequential:
    """conv + 2 ResBlocks + ``out``: the shape shared by ``conv4_4``, ``DME`` and ``F``."""
    return nn.Sequential(conv_act(first_in or ch, ch), ResBlock(ch, res_units), ResBlock(ch, res_units), out)


def _encoder(prefix: str, module: nn.Module, cin: int, widths=(32, 64, 128, 128)) -> None:
    """Register ``<prefix>{1..4}_{1..3}``: three convs per level, the first of levels 2-4 with stride 2."""
    prev = cin
    for lvl, w in enumerate(widths, start=1):
        for j in (1, 2, 3):
            module.add_module(f"{prefix}{lvl}_{j}", conv_act(prev, w, stride=2 if (j == 1 and lvl > 1) else 1))
            prev = w


def _run_encoder(module: nn.Module, prefix: str, x: torch.Tensor, keep: bool = False):
    skips = []
    for lvl in (1, 2, 3, 4):
        for j in (1, 2, 3):
            x = getattr(module, f"{prefix}{lvl}_{j}")(x)
        skips.append(x)
    return skips if keep else x


def separable_adaptive_conv(
    feat: torch.Tensor, vertical: torch.Tensor, horizontal: torch.Tensor, taps: int = FILTER_TAPS
) -> torch.Tensor:
    """Per-pixel, per-channel separable filtering: a ``taps``-long vertical pass, then a horizontal one.

    ``feat`` (B, C, H, W); ``vertical``/``horizontal`` (B, C*taps, H, W) with channel ``c*taps + j`` weighting
    offset ``j - taps//2`` of channel c. Borders are replicate-padded along the filtered axis only.
    """
    b, c, h, w = feat.shape
    p = taps // 2
    kv = vertical.view(b, c, taps, h, w)
    kh = horizontal.view(b, c, taps, h, w)
    padded = F.pad(feat, (0, 0, p, p), mode="replicate")
    out = sum(padded[:, :, j : j + h, :] * kv[:, :, j] for j in range(taps))
    padded = F.pad(out, (p, p, 0, 0), mode="replicate")
    return sum(padded[:, :, :, j : j + w] * kh[:, :, j] for j in range(taps))


def iac(feat: torch.Tensor, filters: torch.Tensor, n_iter: int = N_ITER, taps: int = FILTER_TAPS) -> torch.Tensor:
    """Iterative adaptive convolution: ``n_iter`` times feat <- lrelu(SAC(feat) + bias_i).

    ``filters`` holds n_iter blocks of [vertical (C*taps) | horizontal (C*taps)] followed by n_iter biases (C).

    Reproduced bug: the published IFAN code applies the *vertical* filters again in the horizontal pass, so the
    predicted horizontal filters are never used. The released checkpoints were trained that way (noted in the
    official ``models/IAC.py`` and README), so the port does the same.
    """
    c = feat.shape[1]
    per_iter = 2 * c * taps
    if filters.shape[1] != n_iter * (per_iter + c):
        raise ValueError(
            f"IAC: {filters.shape[1]} filter channels, expected {n_iter * (per_iter + c)} "
            f"for {n_iter} iterations of {c} channels x {taps} taps"
        )
    biases = filters[:, n_iter * per_iter :]
    for i in range(n_iter):
        vertical = filters[:, i * per_iter : i * per_iter + c * taps]
        feat = separable_adaptive_conv(feat, vertical, vertical, taps)  # bug kept: horizontal := vertical
        feat = F.leaky_relu(feat + biases[:, i * c : (i + 1) * c], 0.1)
    return feat


# ----------------------------------------------------------------------------------------------------------
# The network (attribute names = the published state-dict names after ``module.Network.``)
# ----------------------------------------------------------------------------------------------------------


class IFAN(nn.Module):
    """IFAN on raw tensors in [0, 1]: ``forward(C)`` (single) or ``forward(C, R, L)`` (dual) -> unclamped C + residual.

    H and W must be multiples of 8 (three stride-2 convs, mirrored by three transposed convs).
    """

    def __init__(self, dual: bool = False, ch: int = 32, n_iter: int = N_ITER, taps: int = FILTER_TAPS):
        super().__init__()
        self.dual, self.n_iter, self.taps = dual, n_iter, taps
        c1, c2, c3, c4 = ch, ch * 2, ch * 4, ch * 4  # level 4 stays at 4*ch (not 8*ch)
        self.ch4 = c4
        # feature extractor (on C)
        _encoder("conv", self, 3, (c1, c2, c3, c4))
        self.conv4_4 = _trunk(c4, conv_act(c4, c4), first_in=2 * c4)
        # reconstructor
        self.conv_res = nn.Sequential(conv_act(c4, c4), ResBlock(c4, 3), conv_act(c4, c4))
        self.upconv3_u = upconv_act(c4, c3)
        self.upconv3_1 = ResBlock(c3)
        self.upconv3_2 = ResBlock(c3)
        self.upconv2_u = upconv_act(c3, c2)
        self.upconv2_1 = ResBlock(c2)
        self.upconv2_2 = ResBlock(c2)
        self.upconv1_u = upconv_act(c2, c1)
        self.upconv1_1 = ResBlock(c1)
        self.upconv1_2 = ResBlock(c1)
        # Quirk kept: the residual-image conv is followed by a LeakyReLU (negative residuals scaled by 0.1).
        self.out_res = conv_act(c1, 3)
        # filter encoder (on C, or on cat(R, L) for the dual model)
        _encoder("kconv", self, 6 if dual else 3, (c1, c2, c3, c4))
        # disparity map estimator: one channel at 1/8 resolution, no activation on its last conv
        self.DME = _trunk(c4, nn.Conv2d(c4, 1, 3, padding=1))
        self.conv_DME = conv_act(1, c4)
        # filter predictor
        self.kernel_dim = n_iter * (c4 * taps * 2) + n_iter * c4
        self.F = _trunk(c4, nn.Conv2d(c4, self.kernel_dim, 1))

    def forward(self, C: torch.Tensor, R: torch.Tensor | None = None, L: torch.Tensor | None = None) -> torch.Tensor:
        f1, f2, f3, f_c = _run_encoder(self, "conv", C, keep=True)
        if self.dual:
            if R is None or L is None:
                raise ValueError("dual IFAN needs forward(C, R, L)")
            k_in = torch.cat([R, L], 1)  # R first: the published dual weights expect this order
        else:
            k_in = C
        k = _run_encoder(self, "kconv", k_in)
        disparity = self.DME(k)
        filters = self.F(self.conv4_4(torch.cat([k, self.conv_DME(disparity)], 1)))

        f = self.conv_res(iac(f_c, filters, self.n_iter, self.taps))
        f = self.upconv3_2(self.upconv3_1(self.upconv3_u(f) + f3))
        f = self.upconv2_2(self.upconv2_1(self.upconv2_u(f) + f2))
        f = self.upconv1_2(self.upconv1_1(self.upconv1_u(f) + f1))
        return self.out_res(f) + C


# ----------------------------------------------------------------------------------------------------------
# Suite wrapper
# ----------------------------------------------------------------------------------------------------------


class IFANDefocus(IFAN):
    """IFAN behind the suite's batch interface, with the published checkpoints' conventions.

    | variant        | views read          | network call                          | colour | range | output       | protocol |
    |----------------|---------------------|---------------------------------------|--------|-------|--------------|----------|
    | ``ifan_single``| center              | net(C)                                | RGB    | [0,1] | C + residual | 8-bit    |
    | ``ifan_dual``  | center, right, left | net(C, R, L), filter encoder cat(R, L) | RGB   | [0,1] | C + residual | 8-bit    |
    | ``ifan_single.16bit`` | center       | net(C) (``IFAN_16bit.pytorch``)       | RGB    | [0,1] | C + residual | 16-bit   |

    The protocol belongs to the weights, not the network: ``ifan_single.16bit`` is ``ifan_single`` with the tag
    that selects the 16-bit checkpoint in ``baselines/checkpoints.yaml``.

    Sizes: the official test crops bottom/right to multiples of 8 (``refine_image``, a no-op on DPDD); here
    other sizes are reflect-padded to the next multiple of 8 and cropped back (fully convolutional).
    Output: clipped to [0,1] in eval (as the official ``is_train=False`` path), raw in training (as its
    ``is_train=True`` path). The official training's auxiliary disparity (DPD warping) and reblurring losses
    are not reproduced; a retrain through the suite's trainer uses its image loss only.
    """

    size_multiple = (8, 8)
    size_mode = "pad"

    def __init__(self, dual: bool):
        super().__init__(dual=dual)
        self.input_views = ("center", "right", "left") if dual else ("center",)

    def forward(self, batch: dict) -> dict:
        h, w = batch["center"].shape[-2:]
        views = [batch["center"]] + ([batch["right"], batch["left"]] if self.dual else [])
        views = [pad_to_multiple(v, self.size_multiple[0]) for v in views]
        out = super().forward(*views)[..., :h, :w]
        if not self.training:
            out = out.clamp(0, 1)
        return {"output": out}


def checkpoint_filter_fn(state_dict: dict, model: nn.Module | None = None) -> dict:
    """Published file: the state dict of DataParallel(DeblurNet) -> keep ``module.Network.*`` minus the prefix.

    The training-only reblurring network (``module.reblurNet.*``, 19.1 M parameters) is dropped. The official
    loader uses ``strict=False``, so a wrong prefix would silently load nothing; here the result is loaded
    strictly. Files re-saved without DataParallel (``Network.*``) are accepted too.
    """
    if not isinstance(state_dict, dict):
        raise TypeError(f"IFAN checkpoint: expected a state dict, got {type(state_dict).__name__}")
    out = {}
    for k, v in state_dict.items():
        if k.startswith(("module.reblurNet.", "reblurNet.")):
            continue
        for prefix in ("module.Network.", "Network."):
            if k.startswith(prefix):
                k = k[len(prefix) :]
                break
        out[k] = v
    return out


# ----------------------------------------------------------------------------------------------------------
# Registered variants
# ----------------------------------------------------------------------------------------------------------


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def ifan_single(**kw) -> IFANDefocus:
    return IFANDefocus(dual=False, **kw)


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def ifan_dual(**kw) -> IFANDefocus:
    return IFANDefocus(dual=True, **kw)
