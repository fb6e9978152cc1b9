"""Shared building blocks of K3DN: MIMO-UNet style convolutions, window partitioning, and size fitting.

K3DN (Yang, Pan, Liu, Liu, CVPR 2023) uses the layer vocabulary of MIMO-UNet (Cho et al., ICCV 2021):
``BasicConv`` (conv + LeakyReLU 0.2, no bias, no normalisation), ``ResBlock`` (conv-lrelu-conv + identity) and
``EBlock`` (a stack of ResBlocks). Written from the description in the supplement (Tab. 13) and
the K3DN paper and its supplement; no code was copied.

Size fitting (``fit_to_multiple`` / ``restore_from_multiple``, padding by ``pad_to_multiple``) is the one place that
turns an arbitrary image size into one a network accepts: ``k3dn.infer`` calls it with the model's ``size_multiple``
and ``size_mode``, the baseline wrappers pad inside their forward with ``pad_to_multiple``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

LRELU_SLOPE = 0.2


class BasicConv(nn.Module):
    """Conv (or 4x4/s2 transposed conv) + optional LeakyReLU(0.2). No normalisation, bias off by default."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        *,
        bias: bool = False,
        act: bool = True,
        transpose: bool = False,
    ):
        super().__init__()
        if transpose:
            # k=4, s=2, p=1 doubles the size exactly (the U-net's upsampling layer).
            self.conv = nn.ConvTranspose2d(
                in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2 - 1, bias=bias
            )
        else:
            self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2, bias=bias)
        self.act = nn.LeakyReLU(LRELU_SLOPE) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class ResBlock(nn.Module):
    """conv3x3-lrelu-conv3x3 plus identity (MIMO-UNet ResBlock: no activation after the sum)."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(BasicConv(ch, ch, 3), BasicConv(ch, ch, 3, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class EBlock(nn.Sequential):
    """``num`` ResBlocks at constant width (Tab. 13 rows of type *res*, Num = bn)."""

    def __init__(self, ch: int, num: int):
        super().__init__(*[ResBlock(ch) for _ in range(num)])


# ----------------------------------------------------------------------------------------------------------------
# Windows: the 1/8-resolution bottleneck is cut into non-overlapping windows, one disparity vector each.
# ----------------------------------------------------------------------------------------------------------------


def window_partition(x: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """(B, C, nh*wh, nw*ww) -> (B*nh*nw, C, wh, ww), windows in row-major (B, nh, nw) order."""
    b, c, h, w = x.shape
    wh, ww = window
    if h % wh or w % ww:
        raise ValueError(f"feature map {h}x{w} is not a whole number of {wh}x{ww} windows")
    nh, nw = h // wh, w // ww
    x = x.view(b, c, nh, wh, nw, ww).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b * nh * nw, c, wh, ww)


def window_merge(x: torch.Tensor, batch: int, grid: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B*nh*nw, C, wh, ww) -> (B, C, nh*wh, nw*ww)."""
    nh, nw = grid
    _, c, wh, ww = x.shape
    x = x.view(batch, nh, nw, c, wh, ww).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(batch, c, nh * wh, nw * ww)


def to_channels_last(module: nn.Module) -> nn.Module:
    """Put the weights of every 2-D (transposed) convolution in channels-last memory, in place.

    Not ``Module.to(memory_format=...)``: it refuses a model that also holds 5-D weights (K3DN's 3D cost-volume
    convolutions), and it would also reorder 4-D tensors that are not images, such as the PSF kernels' (C, n, m, 2)
    spectra, which ``view_as_complex`` needs with a unit last stride.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last)
    return module


# ----------------------------------------------------------------------------------------------------------------
# Size fitting for inference
# ----------------------------------------------------------------------------------------------------------------


def _next_multiple(n: int, m: int) -> int:
    return -(-n // m) * m


def _reflect_pad(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    # torch's reflect padding needs pad < size; repeat it so a small image can be padded to a large multiple
    # (the result is the image reflected back and forth, never a constant border).
    while pad_h > 0 or pad_w > 0:
        ph = min(pad_h, x.shape[-2] - 1)
        pw = min(pad_w, x.shape[-1] - 1)
        if ph <= 0 and pw <= 0:  # a 1-pixel image cannot be reflected: replicate it
            return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        pad_h, pad_w = pad_h - ph, pad_w - pw
    return x


#: What :func:`pad_to_multiple` does where a pad is at least as large as the image side it extends.
TOO_SMALL = ("replicate", "reflect")


def pad_to_multiple(x: torch.Tensor, multiple: int | tuple[int, int], too_small: str = "replicate") -> torch.Tensor:
    """Reflect-pad the bottom and right of a (..., H, W) tensor up to the next multiple of ``multiple`` (an int for
    both sides, or (mh, mw)); ``[..., :H, :W]`` of the output undoes it.

    One reflection needs each pad to be smaller than the side it extends. Where one is not, ``too_small`` decides:
    ``"replicate"`` replicate-pads instead, both sides (the baseline wrappers and :func:`k3dn.infer.fit_batch`),
    ``"reflect"`` reflects again and again, the image mirrored back and forth (only a 1-pixel side is
    replicated; :func:`fit_to_multiple`'s default). Where one reflection suffices both give the same pixels.
    """
    if too_small not in TOO_SMALL:
        raise ValueError(f"too_small must be one of {TOO_SMALL}, got {too_small!r}")
    mh, mw = (multiple, multiple) if isinstance(multiple, int) else multiple
    h, w = x.shape[-2:]
    ph, pw = (-h) % mh, (-w) % mw
    if not (ph or pw):
        return x
    if too_small == "reflect":
        return _reflect_pad(x, ph, pw)
    return F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")


def _bicubic(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    # half-precision inputs are resampled in float32 and cast back, so the fitting adds no rounding of its own
    work = torch.promote_types(x.dtype, torch.float32)
    return F.interpolate(x.to(work), size=size, mode="bicubic", align_corners=False).to(x.dtype)


def fit_to_multiple(x: torch.Tensor, multiple: tuple[int, int], mode: str = "resize", too_small: str = "reflect"):
    """Fit a (B, C, H, W) tensor to the next (H, W) multiple of ``multiple``.

    ``mode="resize"`` (K3DN's paper protocol, supplement Sec. C): bicubic resize (torch bicubic, a = -0.75, no
    antialias: the same kernel as cv2.INTER_CUBIC) up to the next multiples, e.g. DPDD 1120x1680 -> 1152x1792.
    ``mode="pad"``: reflect-pad at the bottom and right (:func:`pad_to_multiple`, with its ``too_small``).
    Returns ``(fitted, (H, W))``; pass both to :func:`restore_from_multiple` to get back to the original size.
    """
    if x.dim() != 4:
        raise ValueError(f"fit_to_multiple expects (B, C, H, W), got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    th, tw = _next_multiple(h, multiple[0]), _next_multiple(w, multiple[1])
    if (th, tw) == (h, w):
        return x, (h, w)
    if mode == "resize":
        return _bicubic(x, (th, tw)), (h, w)
    if mode == "pad":
        return pad_to_multiple(x, tuple(multiple), too_small), (h, w)
    raise ValueError(f"size mode must be 'resize' or 'pad', got {mode!r}")


def restore_from_multiple(y: torch.Tensor, size: tuple[int, int], mode: str = "resize") -> torch.Tensor:
    """Inverse of :func:`fit_to_multiple`: bicubic back to ``size`` (resize) or crop the top-left ``size`` (pad)."""
    h, w = size
    if tuple(y.shape[-2:]) == (h, w):
        return y
    if mode == "resize":
        return _bicubic(y, (h, w))
    if mode == "pad":
        return y[..., :h, :w]
    raise ValueError(f"size mode must be 'resize' or 'pad', got {mode!r}")
