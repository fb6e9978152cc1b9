"""RDPD+ (Abuolaim, Delbracio, Kelly, Brown, Milanfar, "Learning to Reduce Defocus Blur by Realistically Modeling
Dual-Pixel Data", ICCV 2021), ported from Keras 2.4 / TF 2.2.

The published ``RDPD+.hdf5`` (sync.com "all trained models" link of
Abdullah-Abuolaim/recurrent-defocus-deblurring-synth-dual-pixel @ 03d592a8ec970843ae49579bc8a87ce019043092,
Apache-2.0; reference only, nothing copied) loads strictly into this re-implementation (manifest
``rdpd_plus_keras``, 24,278,703 parameters, of which the ConvLSTM 18,876,416).

Facts used (``rdpd_code/model.py::unet`` with ``linear_layer=True``,
``radial_mask=True``): a DPDNet-style U-Net whose every conv is ``TimeDistributed`` (applied per frame), widths
32/64/128/256 with 2x2 max-pools, a 3x3 conv 256 -> 512 at 1/16 and a ``ConvLSTM2D(512, 3x3, 'same',
return_sequences=True, dropout=0.4)`` as the bottleneck; decoder per level: nearest UpSampling2D(2) -> 2x2
'same' conv (ReLU) -> concat(skip, up) -> two 3x3 convs; a 3x3 conv to 3 channels (ReLU), a linear 1x1 conv
3 -> 3 and ``backend.clip(0, 1)`` inside the graph.

Quirks the weights depend on (reproduced): Keras gate order i, f, c, o along the ConvLSTM kernels' last axis
(kept as the output-channel order of one fused conv, split with ``chunk(4)``); ``recurrent_activation =
hard_sigmoid`` = clip(0.2 x + 0.5, 0, 1) (Keras 2.x definition), ``activation = tanh``; the 2x2 'same' convs pad
bottom/right only; BGR channel order (cv2); the 7th input channel is a radial mask.

The radial mask. ``config.py`` reads ``rdpd_code/real_radial_mask.png`` (8-bit grey, 1120 x 1680, committed in
the repository) / 255 as channel 7. That PNG is exactly ``round(255 * d / d_max)`` with ``d = hypot(i - h/2,
j - w/2)`` and ``d_max = hypot(h/2, w/2)`` in float64, NumPy rounding, dividing before multiplying (all 1,881,600
pixels equal; ``255 * d / d_max`` would differ by one at 8 exact ties), so :func:`radial_mask` computes it instead
of shipping the file. The official test feeds whole 1120 x 1680 images; for any other size its loader's
``resize_flag`` branch resizes the float mask with ``cv2.resize`` (default bilinear), and so does
:func:`radial_mask`, keeping the mask the network was trained with rather than redrawing it for the new shape.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.common import pad_to_multiple
from baselines.keras_weights import ConvReLU, SameConv2d, UpConv, hard_sigmoid, keras_state_dict
from baselines.published import manifest_for_model
from k3dn.registry import register_model

__all__ = ["KerasConvLSTM2d", "RDPDNet", "RDPDDefocus", "radial_mask", "rdpd_plus"]


# ----------------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------------


class KerasConvLSTM2d(nn.Module):
    """Keras ``ConvLSTM2D(filters, k, padding='same', return_sequences=True)`` over (B, T, C, H, W).

    Per step, with x-convs ``W * x + b`` and h-convs ``U * h`` split into gates (i, f, c, o)::

        i = hs(Wi x + Ui h + bi)   f = hs(Wf x + Uf h + bf)   o = hs(Wo x + Uo h + bo)
        c' = f c + i tanh(Wc x + Uc h + bc)                   h' = o tanh(c')

    with hs = hard_sigmoid and zero initial state. ``input_conv`` holds Keras ``kernel`` + ``bias`` and
    ``recurrent_conv`` Keras ``recurrent_kernel``, both with the 4*filters output channels in Keras' order.
    ``dropout`` is Keras' input dropout: in training, one mask per gate, fixed over the time steps.
    """

    def __init__(self, in_ch: int, filters: int, kernel_size: int = 3, dropout: float = 0.0):
        super().__init__()
        self.filters, self.dropout = filters, dropout
        self.input_conv = SameConv2d(in_ch, 4 * filters, kernel_size)
        self.recurrent_conv = SameConv2d(filters, 4 * filters, kernel_size, bias=False)

    def _input_gates(self, x: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        if masks is None:
            return self.input_conv(x)
        w, b = self.input_conv.weight.chunk(4), self.input_conv.bias.chunk(4)
        return torch.cat(
            [F.conv2d(x * m, wg, bg, padding=self.input_conv.kernel_size[0] // 2) for m, wg, bg in zip(masks, w, b)], 1
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _, h, w = x.shape
        masks = None
        if self.training and self.dropout > 0:
            keep = 1.0 - self.dropout
            masks = torch.bernoulli(x.new_full((4, b, x.shape[2], h, w), keep)) / keep
        hid = c = None
        outs = []
        for step in range(t):
            z = self._input_gates(x[:, step], masks)
            if hid is not None:  # the zero initial state contributes nothing at step 0
                z = z + self.recurrent_conv(hid)
            i, f, g, o = z.chunk(4, dim=1)
            c = hard_sigmoid(i) * torch.tanh(g) if c is None else hard_sigmoid(f) * c + hard_sigmoid(i) * torch.tanh(g)
            hid = hard_sigmoid(o) * torch.tanh(c)
            outs.append(hid)
        return torch.stack(outs, 1)


_MASK_SIZE = (1120, 1680)  # real_radial_mask.png: the DPDD images' size


@functools.lru_cache(maxsize=1)
def _official_mask_u8() -> np.ndarray:
    h, w = _MASK_SIZE
    d = np.hypot(np.arange(h, dtype=np.float64)[:, None] - h / 2, np.arange(w, dtype=np.float64)[None, :] - w / 2)
    m = np.round(d / np.hypot(h / 2, w / 2) * 255).astype(np.uint8)  # this order: see the module docstring
    m.setflags(write=False)
    return m


def radial_mask(h: int, w: int) -> np.ndarray:
    """(h, w) float32 in [0, 1]: ``real_radial_mask.png`` / 255 at 1120 x 1680 (see the module docstring); other
    sizes resize that array with ``cv2.resize`` (bilinear, its default), as the official loader does."""
    m = _official_mask_u8() / 255.0  # float64, as config.py's (imread(...) - 0) / 255
    if (h, w) != _MASK_SIZE:
        import cv2

        m = cv2.resize(m, (w, h))
    return m.astype(np.float32)


# ----------------------------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------------------------


class RDPDNet(nn.Module):
    """The Keras ``unet``: (B, T, 7, H, W) -> (B, T, 3, H, W) clipped to [0, 1]; H, W multiples of 16."""

    # Keras order of the weighted layers (time_distributed, _1, _3, ... conv_lst_m2d ... _30)
    KERAS_ORDER = (
        "enc1a",
        "enc1b",
        "enc2a",
        "enc2b",
        "enc3a",
        "enc3b",
        "enc4a",
        "enc4b",
        "enc5",
        "lstm",
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

    def __init__(self, in_ch: int = 7, out_ch: int = 3, dropout: float = 0.4):
        super().__init__()
        w = (32, 64, 128, 256, 512)
        self.enc1a, self.enc1b = ConvReLU(in_ch, w[0], 3), ConvReLU(w[0], w[0], 3)
        self.enc2a, self.enc2b = ConvReLU(w[0], w[1], 3), ConvReLU(w[1], w[1], 3)
        self.enc3a, self.enc3b = ConvReLU(w[1], w[2], 3), ConvReLU(w[2], w[2], 3)
        self.enc4a, self.enc4b = ConvReLU(w[2], w[3], 3), ConvReLU(w[3], w[3], 3)
        self.enc5 = ConvReLU(w[3], w[4], 3)
        self.lstm = KerasConvLSTM2d(w[4], w[4], 3, dropout=dropout)
        self.up4, self.dec4a, self.dec4b = UpConv(w[4], w[3]), ConvReLU(2 * w[3], w[3], 3), ConvReLU(w[3], w[3], 3)
        self.up3, self.dec3a, self.dec3b = UpConv(w[3], w[2]), ConvReLU(2 * w[2], w[2], 3), ConvReLU(w[2], w[2], 3)
        self.up2, self.dec2a, self.dec2b = UpConv(w[2], w[1]), ConvReLU(2 * w[1], w[1], 3), ConvReLU(w[1], w[1], 3)
        self.up1, self.dec1a, self.dec1b = UpConv(w[1], w[0]), ConvReLU(2 * w[0], w[0], 3), ConvReLU(w[0], w[0], 3)
        self.to_rgb = ConvReLU(w[0], 3, 3)
        self.out = SameConv2d(3, out_ch, 1)  # linear (linear_layer=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        x = x.flatten(0, 1)  # TimeDistributed: frames fold into the batch for every per-frame layer
        s1 = self.enc1b(self.enc1a(x))
        s2 = self.enc2b(self.enc2a(F.max_pool2d(s1, 2)))
        s3 = self.enc3b(self.enc3a(F.max_pool2d(s2, 2)))
        s4 = self.enc4b(self.enc4a(F.max_pool2d(s3, 2)))
        y = self.enc5(F.max_pool2d(s4, 2))
        y = self.lstm(y.unflatten(0, (b, t))).flatten(0, 1)
        y = self.dec4b(self.dec4a(torch.cat([s4, self.up4(y)], 1)))
        y = self.dec3b(self.dec3a(torch.cat([s3, self.up3(y)], 1)))
        y = self.dec2b(self.dec2a(torch.cat([s2, self.up2(y)], 1)))
        y = self.dec1b(self.dec1a(torch.cat([s1, self.up1(y)], 1)))
        # backend.clip is part of the Keras graph, so training sees the clipped output too
        return self.out(self.to_rgb(y)).clamp(0, 1).unflatten(0, (b, t))


# ----------------------------------------------------------------------------------------------------------
# The wrapper
# ----------------------------------------------------------------------------------------------------------


class RDPDDefocus(nn.Module):
    """RDPD+ on single images behind the suite's batch interface.

    | variant     | views read  | network input (1 frame)           | colour | range | output              | protocol |
    |-------------|-------------|-----------------------------------|--------|-------|---------------------|----------|
    | ``rdpd_plus``| left, right | cat(L, R, radial mask), 7 ch     | BGR    | [0,1] | linear, clip [0,1]  | 8-bit    |

    The official image test feeds one frame (T = 1) of 1120x1680; with a zero initial state the ConvLSTM then
    reduces to o * tanh(i * tanh(c-gate)) of the input convs. All layers are convolutional, so any H, W that
    are multiples of 16 work; other sizes are reflect-padded bottom/right (views only; the mask is built for
    the padded size) and cropped back. The mask is built for the size the network sees unless ``mask`` was
    given, which must then have exactly that size.
    """

    size_multiple = (16, 16)
    size_mode = "pad"
    input_views = ("left", "right")

    def __init__(self, dropout: float = 0.4, mask: np.ndarray | None = None):
        super().__init__()
        self.net = RDPDNet(dropout=dropout)
        # not in the state dict: the checkpoint has no such tensor
        self.register_buffer(
            "mask", None if mask is None else torch.as_tensor(np.asarray(mask, np.float32)), persistent=False
        )

    def _mask(self, h: int, w: int, ref: torch.Tensor) -> torch.Tensor:
        if self.mask is None:
            return torch.from_numpy(radial_mask(h, w)).to(ref)
        if tuple(self.mask.shape) != (h, w):
            raise ValueError(f"rdpd_plus: radial mask is {tuple(self.mask.shape)}, the network input is {(h, w)}")
        return self.mask.to(ref)

    def forward(self, batch: dict) -> dict:
        x = torch.cat([batch["left"].flip(1), batch["right"].flip(1)], 1)  # RGB -> BGR per view
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.size_multiple[0])
        m = self._mask(*x.shape[-2:], x).expand(x.shape[0], 1, -1, -1)
        out = self.net(torch.cat([x, m], 1)[:, None])[:, 0, :, :h, :w]
        return {"output": out.flip(1)}  # BGR -> RGB; already in [0, 1]

    def keras_targets(self) -> list[tuple[str, list[str]]]:
        out = []
        for n in RDPDNet.KERAS_ORDER:
            if n == "lstm":
                out.append(
                    (n, ["net.lstm.input_conv.weight", "net.lstm.recurrent_conv.weight", "net.lstm.input_conv.bias"])
                )  # Keras: kernel, recurrent_kernel, bias
            else:
                out.append((n, [f"net.{n}.weight", f"net.{n}.bias"]))
        return out


def checkpoint_filter_fn(state_dict: dict, model: nn.Module) -> dict:
    """Keras HDF5 -> our state dict, matched topologically as the official ``m.load_weights`` does."""
    return keras_state_dict(
        state_dict, manifest_for_model(model.registry_name), model.keras_targets(), model.state_dict()
    )


# ----------------------------------------------------------------------------------------------------------
# Registered variants
# ----------------------------------------------------------------------------------------------------------


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def rdpd_plus(**kw) -> RDPDDefocus:
    return RDPDDefocus(**kw)
