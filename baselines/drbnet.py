"""DRBNet (Ruan et al., "Learning to Deblur using Light Field Generated and Real Defocus Images", CVPR 2022).

Re-implemented from the paper and the architecture facts of the official code (commit in
``baselines/checkpoints.yaml``) so that the two published checkpoints of ``ckpts.zip`` load with ``strict=True``:

* ``ckpts/single/single_image_defocus_deblurring.pth`` (``DRBNet_single``; C only; LFDOF pre-training + DPDD
  fine-tuning; manifest ``drbnet_single``, 11,689,616 parameters);
* ``ckpts/dual/dual_images_defocus_deblurring.pth`` (``DeblurNet_dual``; C, R, L; manifest ``drbnet_dual``,
  11,690,480 parameters; no dual result is reported in the paper).

Source of the facts (module names, shapes, layer order): lingyanruan/DRBNet @ 0fa89a56381130637ca44bf10b023a2d66a71d87,
``models/DRBNet.py`` and ``run.py``. That code is GNU AGPL-3.0; none of it is copied here. The weights come with
the repository's terms (AGPL-3.0, no separate weight licence stated).

Network in one paragraph: a 4-level conv encoder (32/64/128/256 channels, stride-2 at the first conv of levels
2-4, LeakyReLU 0.1) and a decoder of transposed convs with additive skips and residual blocks. Next to the
feature decoder runs an image-space branch, coarse to fine at 1/8, 1/4, 1/2, 1/1: the current image estimate
(at 1/8: the area-downsampled C) is embedded by three convs, concatenated with the decoder features, and two
heads predict a per-pixel 7x7 filter (49 channels, shared by the three colour channels) and a 3-channel residual;
the estimate becomes ``img + filter(img) + residual`` and is area-upsampled by 2 for the next scale. The dual
model differs only in its first conv, which sees cat(R, L); its image branch still starts from C.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.common import pad_to_multiple
from k3dn.checkpoint import strip_prefix
from k3dn.registry import register_model

__all__ = ["DRBNet", "DRBNetDefocus", "filter_adaptive_conv", "drbnet_single", "drbnet_dual"]

KERNEL_SIZE = 7


# ----------------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------------


def conv_act(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    """Conv + LeakyReLU(0.1); a Sequential so the conv's weights are named ``<name>.0.*``."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, padding=k // 2), nn.LeakyReLU(0.1, inplace=True))


def upconv_act(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, padding=1), nn.LeakyReLU(0.1, inplace=True))


class ResBlock(nn.Module):
    """x + conv(lrelu(conv(x))), with NO activation after the sum (unlike IFAN's block).

    ``stem`` is a one-element ModuleList so the names read ``stem.0.0`` / ``stem.0.2`` as in the checkpoint.
    """

    def __init__(self, ch: int):
        super().__init__()
        self.stem = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv2d(ch, ch, 3, padding=1), nn.LeakyReLU(0.1, inplace=True), nn.Conv2d(ch, ch, 3, padding=1)
                )
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.stem[0](x)


def filter_adaptive_conv(img: torch.Tensor, kernel: torch.Tensor, k: int = KERNEL_SIZE) -> torch.Tensor:
    """Per-pixel k x k filtering of ``img`` (B, C, H, W) by ``kernel`` (B, k*k, H, W), one kernel for all channels.

    Kernel channel ``dy * k + dx`` weights the pixel at offset (dy - k//2, dx - k//2); borders are
    replicate-padded, as in the published model.
    """
    b, c, h, w = img.shape
    if kernel.shape != (b, k * k, h, w):
        raise ValueError(f"kernel shape {tuple(kernel.shape)} does not fit image {tuple(img.shape)} with k={k}")
    p = k // 2
    patches = F.unfold(F.pad(img, (p, p, p, p), mode="replicate"), k)  # (B, C*k*k, H*W), offsets row-major
    patches = patches.view(b, c, k * k, h, w)
    return (patches * kernel.unsqueeze(1)).sum(2)


def _img_branch(*widths: int) -> nn.Sequential:
    """Embedding of the current image estimate: three conv+LReLU layers 3 -> widths[0] -> widths[1] -> widths[2]."""
    chans = (3, *widths)
    return nn.Sequential(*[conv_act(chans[i], chans[i + 1]) for i in range(3)])


def _kernel_head(cin: int, mid1: int, mid2: int) -> nn.Sequential:
    # Last layer is a bare 1x1 conv (no activation): filter weights may be negative.
    return nn.Sequential(conv_act(cin, mid1), conv_act(mid1, mid2), nn.Conv2d(mid2, KERNEL_SIZE**2, 1))


def _res_head(cin: int, mid1: int, mid2: int) -> nn.Sequential:
    # Quirk kept from the published model: the 1x1 conv producing the residual image is followed by a
    # LeakyReLU, so negative residuals are scaled by 0.1. The weights were trained that way.
    return nn.Sequential(conv_act(cin, mid1), conv_act(mid1, mid2), conv_act(mid2, 3, k=1))


# ----------------------------------------------------------------------------------------------------------
# The network (attribute names = the published state-dict names)
# ----------------------------------------------------------------------------------------------------------


class DRBNet(nn.Module):
    """DRBNet on raw tensors in [-1, 1]: ``forward(C)`` (single) or ``forward(C, R, L)`` (dual) -> [-1, 1].

    H and W must be multiples of 16 (three stride-2 convs plus the 1/8 area downsampling and exact 2x
    re-upsampling of the image branch).
    """

    def __init__(self, dual: bool = False):
        super().__init__()
        self.dual = dual
        c1, c2, c3, c4 = 32, 64, 128, 256
        self.conv1_1 = conv_act(6 if dual else 3, c1)
        self.conv1_2 = conv_act(c1, c1)
        self.conv1_3 = conv_act(c1, c1)
        self.conv2_1 = conv_act(c1, c2, stride=2)
        self.conv2_2 = conv_act(c2, c2)
        self.conv2_3 = conv_act(c2, c2)
        self.conv3_1 = conv_act(c2, c3, stride=2)
        self.conv3_2 = conv_act(c3, c3)
        self.conv3_3 = conv_act(c3, c3)
        self.conv4_1 = conv_act(c3, c4, stride=2)
        self.conv4_2 = conv_act(c4, c4)
        self.conv4_3 = conv_act(c4, c4)
        self.conv4_4 = nn.Sequential(conv_act(c4, c4), ResBlock(c4), ResBlock(c4), conv_act(c4, c4))

        # 1/8 scale (decoder features: 256 ch)
        self.upconv3_u = upconv_act(c4, c3)
        self.upconv3_1 = ResBlock(c3)
        self.upconv3_2 = ResBlock(c3)
        self.img_d8_feature = _img_branch(c2, c3, c4)
        self.upconv3_kernel = _kernel_head(c4 * 2, c4, c3)
        self.upconv3_res = _res_head(c4 * 2, c4, c2)
        # 1/4 scale (128 ch)
        self.upconv2_u = upconv_act(c3, c2)
        self.upconv2_1 = ResBlock(c2)
        self.upconv2_2 = ResBlock(c2)
        self.img_d4_feature = _img_branch(c2, c3, c3)
        self.upconv2_kernel = _kernel_head(c3 * 2, c3, c3)
        self.upconv2_res = _res_head(c3 * 2, c3, c2)
        # 1/2 scale (64 ch)
        self.img_d2_feature = _img_branch(c2, c2, c2)
        self.upconv1_u = upconv_act(c2, c1)
        self.upconv1_1 = ResBlock(c1)
        self.upconv1_2 = ResBlock(c1)
        # 1/1 scale (32 ch)
        self.img_d1_feature = _img_branch(c2, c2, c1)
        self.upconv1_kernel = _kernel_head(c2 * 2, c2, c2)
        self.upconv1_res = _res_head(c2 * 2, c2, c2)
        self.upconv0_kernel = _kernel_head(c1 * 2, c2, c2)
        self.upconv0_res = _res_head(c1 * 2, c2, c2)

    @staticmethod
    def _refine(img, feat, embed, kernel_head, res_head):
        joint = torch.cat([feat, embed(img)], 1)
        return img + filter_adaptive_conv(img, kernel_head(joint)) + res_head(joint)

    def forward(self, C: torch.Tensor, R: torch.Tensor | None = None, L: torch.Tensor | None = None) -> torch.Tensor:
        if self.dual:
            if R is None or L is None:
                raise ValueError("dual DRBNet needs forward(C, R, L)")
            x = torch.cat([R, L], 1)  # R first: the published dual weights expect this order
        else:
            x = C
        f1 = self.conv1_3(self.conv1_2(self.conv1_1(x)))
        f2 = self.conv2_3(self.conv2_2(self.conv2_1(f1)))
        f3 = self.conv3_3(self.conv3_2(self.conv3_1(f2)))
        f = self.conv4_4(self.conv4_3(self.conv4_2(self.conv4_1(f3))))

        # The image branch always starts from C (also in the dual model).
        est = F.interpolate(C, scale_factor=1 / 8, mode="area")
        est = self._refine(est, f, self.img_d8_feature, self.upconv3_kernel, self.upconv3_res)

        f = self.upconv3_2(self.upconv3_1(self.upconv3_u(f) + f3))
        est = F.interpolate(est, scale_factor=2, mode="area")
        est = self._refine(est, f, self.img_d4_feature, self.upconv2_kernel, self.upconv2_res)

        f = self.upconv2_2(self.upconv2_1(self.upconv2_u(f) + f2))
        est = F.interpolate(est, scale_factor=2, mode="area")
        est = self._refine(est, f, self.img_d2_feature, self.upconv1_kernel, self.upconv1_res)

        f = self.upconv1_2(self.upconv1_1(self.upconv1_u(f) + f1))
        est = F.interpolate(est, scale_factor=2, mode="area")
        est = self._refine(est, f, self.img_d1_feature, self.upconv0_kernel, self.upconv0_res)
        # The published network clips inside its forward, in training too; kept so retraining matches.
        return est.clamp(-1.0, 1.0)


# ----------------------------------------------------------------------------------------------------------
# Suite wrapper
# ----------------------------------------------------------------------------------------------------------


class DRBNetDefocus(DRBNet):
    """DRBNet behind the suite's batch interface, with the published checkpoints' conventions.

    | variant          | views read           | network call                    | colour | range   | output                   | protocol |
    |------------------|----------------------|---------------------------------|--------|---------|--------------------------|----------|
    | ``drbnet_single``| center               | net(C)                          | RGB    | [-1, 1] | multi-scale residual on C | 8-bit   |
    | ``drbnet_dual``  | center, right, left  | net(C, R, L), encoder cat(R, L) | RGB    | [-1, 1] | multi-scale residual on C | 8-bit   |

    The wrapper maps [0,1] -> [-1,1] (x*2-1) on the way in and back ((y+1)/2) on the way out; the network
    clips to [-1,1] itself, so the output is in [0,1] in training and eval alike (as officially).
    Sizes: the official test crops to multiples of 16; here other sizes are reflect-padded bottom/right to the
    next multiple of 16 and cropped back (the network is fully convolutional).
    """

    size_multiple = (16, 16)
    size_mode = "pad"

    def __init__(self, dual: bool):
        super().__init__(dual=dual)
        self.input_views = ("center", "right", "left") if dual else ("center",)

    def forward(self, batch: dict) -> dict:
        h, w = batch["center"].shape[-2:]
        views = [batch["center"]] + ([batch["right"], batch["left"]] if self.dual else [])
        views = [pad_to_multiple(v * 2.0 - 1.0, self.size_multiple[0]) for v in views]
        out = (super().forward(*views)[..., :h, :w] + 1.0) / 2.0
        if not self.training:
            out = out.clamp(0, 1)
        return {"output": out}


def checkpoint_filter_fn(state_dict: dict, model: nn.Module | None = None) -> dict:
    """Published files are plain state dicts with no prefix; ``module.`` is stripped should a re-save carry it."""
    if not isinstance(state_dict, dict):
        raise TypeError(f"DRBNet checkpoint: expected a state dict, got {type(state_dict).__name__}")
    return strip_prefix(state_dict, "module.")


# ----------------------------------------------------------------------------------------------------------
# Registered variants
# ----------------------------------------------------------------------------------------------------------


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def drbnet_single(**kw) -> DRBNetDefocus:
    return DRBNetDefocus(dual=False, **kw)


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def drbnet_dual(**kw) -> DRBNetDefocus:
    return DRBNetDefocus(dual=True, **kw)
