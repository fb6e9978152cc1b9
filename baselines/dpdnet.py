"""DPDNet (Abuolaim & Brown, "Defocus Deblurring Using Dual-Pixel Data", ECCV 2020), ported from Keras.

Two published Keras HDF5 checkpoints load strictly into this PyTorch re-implementation:

* ``defocus_deblurring_dp_l5_s512_f0.7_d0.4.hdf5`` from Abdullah-Abuolaim/defocus-deblurring-dual-pixel
  @ 7ebf77e71a073de0f8ff79510274a8af1e84a5ad (MIT licence): the dual-pixel model, 6-channel cat(L, R) BGR,
  trained on 16-bit DPDD (manifest ``dpdnet_dual_keras``, 31,035,151 parameters);
* the file of the same name in lingyanruan/DPDNet @ 33761598b218fae8a2ef4344b3a58dec32bc00d6 (MIT licence file;
  the README badge says AGPL): the same Keras ``unet`` retrained by the DRBNet authors (LFDOF -> DPDD) as a
  **single-image** model on C, BGR 8-bit (manifest ``dpdnet_retrained_single_keras``, 31,033,423 parameters).

Facts used (``DPDNet/model.py::unet``): a plain 5-level U-Net, every conv
'same', bias, ReLU; [3x3 conv x2] at 64/128/256/512/1024 with 2x2 max-pool between levels, Dropout(0.4) after
the level-4 and level-5 convs (level-4's dropped output is also the skip); decoder level: UpSampling2D(2,
nearest) -> **2x2** 'same' conv (halves channels, ReLU) -> concat(skip, upsampled) -> two 3x3 convs; then a 3x3
conv to 3 channels **with ReLU** and a 1x1 conv 3 -> 3 with **sigmoid**. No code of the original is copied.

Quirks the weights depend on (reproduced): Keras 'same' for the even 2x2 kernel pads 0 top/left and 1
bottom/right (:class:`baselines.keras_weights.SameConv2d`); concat order is (skip, upsampled); channels are
**BGR** because the official pipeline reads with ``cv2.imread`` and never converts; the 3-channel conv before the
output has a ReLU.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.common import pad_to_multiple
from baselines.keras_weights import ConvReLU, SameConv2d, UpConv, keras_state_dict
from baselines.published import manifest_for_model
from k3dn.registry import register_model

__all__ = ["DPDNet", "DPDNetDefocus", "dpdnet_dual", "dpdnet_single_retrained"]


# ----------------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------------------------


class DPDNet(nn.Module):
    """The Keras ``unet``: (B, in_ch, H, W) in [0, 1] (BGR) -> sigmoid (B, 3, H, W); H, W multiples of 16."""

    # Keras creation order of the 24 Conv2D layers (conv2d_1 ... conv2d_24): the file's topological order.
    KERAS_ORDER = (
        "enc1a",
        "enc1b",
        "enc2a",
        "enc2b",
        "enc3a",
        "enc3b",
        "enc4a",
        "enc4b",
        "enc5a",
        "enc5b",
        "up4",
        "dec4a",
        "dec4b",
        "up3",
        "dec3a",
        "dec3b",
        "up2",
        "dec2a",
        "dec2b",
        "up1",
        "dec1a",
        "dec1b",
        "to_rgb",
        "out",
    )

    def __init__(self, in_ch: int = 6, out_ch: int = 3, dropout: float = 0.4):
        super().__init__()
        w = (64, 128, 256, 512, 1024)
        self.enc1a, self.enc1b = ConvReLU(in_ch, w[0], 3), ConvReLU(w[0], w[0], 3)
        self.enc2a, self.enc2b = ConvReLU(w[0], w[1], 3), ConvReLU(w[1], w[1], 3)
        self.enc3a, self.enc3b = ConvReLU(w[1], w[2], 3), ConvReLU(w[2], w[2], 3)
        self.enc4a, self.enc4b = ConvReLU(w[2], w[3], 3), ConvReLU(w[3], w[3], 3)
        self.enc5a, self.enc5b = ConvReLU(w[3], w[4], 3), ConvReLU(w[4], w[4], 3)
        self.up4, self.dec4a, self.dec4b = UpConv(w[4], w[3]), ConvReLU(2 * w[3], w[3], 3), ConvReLU(w[3], w[3], 3)
        self.up3, self.dec3a, self.dec3b = UpConv(w[3], w[2]), ConvReLU(2 * w[2], w[2], 3), ConvReLU(w[2], w[2], 3)
        self.up2, self.dec2a, self.dec2b = UpConv(w[2], w[1]), ConvReLU(2 * w[1], w[1], 3), ConvReLU(w[1], w[1], 3)
        self.up1, self.dec1a, self.dec1b = UpConv(w[1], w[0]), ConvReLU(2 * w[0], w[0], 3), ConvReLU(w[0], w[0], 3)
        self.to_rgb = ConvReLU(w[0], 3, 3)  # ReLU here too, as in the original
        self.out = SameConv2d(3, out_ch, 1)
        self.drop = nn.Dropout(dropout)  # Keras Dropout: active only in training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = self.enc1b(self.enc1a(x))
        s2 = self.enc2b(self.enc2a(F.max_pool2d(s1, 2)))
        s3 = self.enc3b(self.enc3a(F.max_pool2d(s2, 2)))
        s4 = self.drop(self.enc4b(self.enc4a(F.max_pool2d(s3, 2))))  # the dropped tensor is also the skip
        y = self.drop(self.enc5b(self.enc5a(F.max_pool2d(s4, 2))))
        y = self.dec4b(self.dec4a(torch.cat([s4, self.up4(y)], 1)))
        y = self.dec3b(self.dec3a(torch.cat([s3, self.up3(y)], 1)))
        y = self.dec2b(self.dec2a(torch.cat([s2, self.up2(y)], 1)))
        y = self.dec1b(self.dec1a(torch.cat([s1, self.up1(y)], 1)))
        return torch.sigmoid(self.out(self.to_rgb(y)))


def rgb_bgr(x: torch.Tensor) -> torch.Tensor:
    """Swap channels 0 and 2 of each 3-channel view (its own inverse)."""
    return x.flip(1)


# ----------------------------------------------------------------------------------------------------------
# The wrapper
# ----------------------------------------------------------------------------------------------------------


class DPDNetDefocus(nn.Module):
    """DPDNet behind the suite's batch interface, with each published checkpoint's conventions.

    | variant                    | views read  | network input         | colour | range | output          | protocol |
    |----------------------------|-------------|-----------------------|--------|-------|-----------------|----------|
    | ``dpdnet_dual``            | left, right | cat(L, R), 6 ch       | BGR    | [0,1] | sigmoid, BGR    | 16-bit   |
    | ``dpdnet_single_retrained``| center      | C, 3 ch               | BGR    | [0,1] | sigmoid, BGR    | 8-bit    |

    The suite's RGB views are flipped to BGR on the way in and the output back to RGB. Sizes: the official test
    builds a fixed 1120x1680 ``Input``, but every layer is fully convolutional, so any H, W that are multiples
    of 16 (four 2x2 max-pools) give the same per-pixel computation; other sizes are reflect-padded
    bottom/right to the next multiple of 16 and cropped back. The sigmoid keeps the output in [0, 1]; eval
    additionally clamps (a no-op) and training returns the sigmoid output as the official MSE saw it.
    """

    size_multiple = (16, 16)
    size_mode = "pad"

    def __init__(self, dual_pixel: bool = True, dropout: float = 0.4):
        super().__init__()
        self.dual_pixel = dual_pixel
        self.net = DPDNet(in_ch=6 if dual_pixel else 3, dropout=dropout)
        self.input_views = ("left", "right") if dual_pixel else ("center",)

    def forward(self, batch: dict) -> dict:
        if self.dual_pixel:
            x = torch.cat([rgb_bgr(batch["left"]), rgb_bgr(batch["right"])], 1)
        else:
            x = rgb_bgr(batch["center"])
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.size_multiple[0])
        out = rgb_bgr(self.net(x)[..., :h, :w])
        if not self.training:
            out = out.clamp(0, 1)
        return {"output": out}

    def keras_targets(self) -> list[tuple[str, list[str]]]:
        """Our keys for each Keras weighted layer, in the file's topological order (kernel, bias)."""
        return [(n, [f"net.{n}.weight", f"net.{n}.bias"]) for n in DPDNet.KERAS_ORDER]


def checkpoint_filter_fn(state_dict: dict, model: nn.Module) -> dict:
    """Keras full-model HDF5 (``read_foreign`` output) -> our state dict, matched topologically."""
    return keras_state_dict(
        state_dict, manifest_for_model(model.registry_name), model.keras_targets(), model.state_dict()
    )


# ----------------------------------------------------------------------------------------------------------
# Registered variants
# ----------------------------------------------------------------------------------------------------------


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def dpdnet_dual(**kw) -> DPDNetDefocus:
    return DPDNetDefocus(dual_pixel=True, **kw)


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def dpdnet_single_retrained(**kw) -> DPDNetDefocus:
    return DPDNetDefocus(dual_pixel=False, **kw)
