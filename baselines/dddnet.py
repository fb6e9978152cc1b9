"""DDDNet: simultaneous defocus-disparity estimation and deblurring from a dual-pixel pair.

Pan, Chowdhury, Hartley, Liu, Zhang, Li, "Dual Pixel Exploration: Simultaneous Depth Estimation and
Image Restoration", CVPR 2021.

Official code: github.com/panpanfei/Dual-Pixel-Exploration-Simultaneous-Depth-Estimation-and-Image-Restoration
@ 9fb81c17d30e3b4b5e111d4f7e965ca712bb8718 (``DDDNet/model_test.py``, ``DDDNet/dual_pixel_test_MB.py``);
no LICENSE file, README: "for academic use only". That code was read for facts only (module tree, tensor
names and shapes, layer order); this file is an independent re-implementation. The published weights
(``checkpoints/model_dpd/{Estd,Esti}.pkl``) keep the authors' academic-only terms.

Two networks, two files:

* ``Estd`` (:class:`DisparityNet`, the authors' ``YRStereonet_3D``): a shared 2-D feature extractor on L
  and R, a 4-plane cost volume (R shifted by 0..3 px against L), a small 3-D hourglass, trilinear resize
  to 12 planes, soft-min and disparity regression -> a blur/disparity map in [0, 11].
* ``Esti`` (:class:`DeblurNet`, the authors' ``Mydeblur``): a DMPHN-style three-level encoder/decoder
  on cat(L, R, disparity) (quarter tiles, halves, full image), plus an 8x8 stride-4 conv on
  cat(L - R, disparity) with DANet channel attention added to the full-level features; one decoder
  gives the image (direct, no residual), another a refined disparity.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.common import pad_to_multiple
from k3dn.checkpoint import strip_prefix
from k3dn.registry import register_model

__all__ = ["DisparityNet", "DeblurNet", "DDDNet", "checkpoint_filter_fn", "filter_estd", "filter_esti"]

MAX_DISP = 12
COST_PLANES = MAX_DISP // 3  # shifts 0..3 px actually built into the cost volume


# ----------------------------------------------------------------------------------------------- blocks


class _BatchStatsMixin:
    """BatchNorm that can keep using the batch's own statistics in eval mode.

    The official test script never calls ``.eval()``, so the published numbers were produced with every
    BatchNorm of Estd normalising by the statistics of the image at hand (batch of one). Setting
    ``use_batch_stats`` reproduces that without touching the running buffers.
    """

    use_batch_stats = False

    def forward(self, x):
        if self.training or not self.use_batch_stats:
            return super().forward(x)
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class BatchNorm2d(_BatchStatsMixin, nn.BatchNorm2d):
    pass


class BatchNorm3d(_BatchStatsMixin, nn.BatchNorm3d):
    pass


class ConvBN(nn.Module):
    """Bias-free conv (2-D or 3-D, optionally transposed) -> BatchNorm -> ReLU.

    ``bn`` / ``relu`` switch the normalisation and activation off in the forward pass only: the BN
    module exists either way, because the published state dict holds its tensors even where unused.
    """

    def __init__(
        self, cin, cout, kernel, stride=1, padding=0, dilation=1, dims=2, transposed=False, bn=True, relu=True
    ):
        super().__init__()
        if dims == 3:
            conv = nn.ConvTranspose3d if transposed else nn.Conv3d
            norm = BatchNorm3d
        else:
            conv = nn.ConvTranspose2d if transposed else nn.Conv2d
            norm = BatchNorm2d
        extra = {} if transposed else {"dilation": dilation}
        self.conv = conv(cin, cout, kernel, stride=stride, padding=padding, bias=False, **extra)
        self.bn = norm(cout)
        self.use_bn, self.use_relu = bn, relu

    def forward(self, x):
        x = self.conv(x)
        if self.use_bn:
            x = self.bn(x)
        return F.relu(x) if self.use_relu else x


class PooledContext(nn.Sequential):
    """Average-pool by ``size``, 1x1 conv + BN + ReLU.

    Quirk kept: the authors' helper pads by the dilation (1) even for this 1x1 conv, so the pooled map
    grows a one-cell border that holds BN(0) = beta - gamma * mean / std after ReLU; the bilinear
    upsampling that follows stretches that border into the image.
    """

    def __init__(self, size, cin=128, cout=32):
        super().__init__(
            nn.AvgPool2d(size, stride=size),
            nn.Sequential(nn.Conv2d(cin, cout, 1, padding=1, bias=False), BatchNorm2d(cout)),
            nn.ReLU(),
        )


class FeatureNet(nn.Module):
    """Full-resolution dilated feature extractor with two pooled-context branches (64x64, 16x16)."""

    def __init__(self):
        super().__init__()
        self.start = nn.Sequential(ConvBN(3, 32, 3, padding=1), ConvBN(32, 64, 3, padding=1))
        self.layer1 = nn.Sequential(
            ConvBN(64, 128, 3, padding=4, dilation=4), ConvBN(128, 128, 3, padding=8, dilation=8)
        )
        self.branch1 = PooledContext(64)
        self.branch3 = PooledContext(16)
        self.end = nn.Sequential(ConvBN(192, 96, 3, padding=1), ConvBN(96, 32, 1, bn=False, relu=False))

    def forward(self, x):
        x = self.layer1(self.start(x))
        size = x.shape[-2:]
        ctx = [F.interpolate(b(x), size, mode="bilinear", align_corners=True) for b in (self.branch1, self.branch3)]
        return self.end(torch.cat([*ctx, x], dim=1))


class UpFuse3d(nn.Module):
    """Trilinear x2 upsample, 3-D conv, concatenate the skip, 3-D conv (the authors' ``Conv2x``)."""

    def __init__(self, cin, cout, transposed):
        super().__init__()
        kernel = 4 if transposed else 3
        self.conv1 = ConvBN(cin, cout, kernel, padding=1, dims=3, transposed=transposed)
        self.conv2 = ConvBN(2 * cout, cout, 3, padding=1, dims=3)

    def forward(self, x, skip):
        x = self.conv1(F.interpolate(x, scale_factor=2, mode="trilinear", align_corners=True))
        if x.shape != skip.shape:
            raise ValueError(
                f"DDDNet matching: upsampled {tuple(x.shape)} vs skip {tuple(skip.shape)}; "
                "H and W must be multiples of 4"
            )
        return self.conv2(torch.cat([x, skip], dim=1))


class CostMatching(nn.Module):
    """3-D hourglass over the cost volume. Only one level runs (start -> conv1a -> deconv1a -> end);
    ``conv2a``, ``conv3a``, ``deconv3a`` and ``deconv2a`` are built and saved but never used."""

    def __init__(self):
        super().__init__()
        c3 = dict(dims=3)
        self.start = nn.Sequential(
            ConvBN(64, 32, 3, padding=1, **c3), ConvBN(32, 48, 3, 2, 1, **c3), ConvBN(48, 48, 3, padding=1, **c3)
        )
        self.conv1a = nn.Sequential(ConvBN(48, 64, 3, 2, 1, **c3), ConvBN(64, 64, 3, padding=1, **c3))
        self.conv2a = nn.Sequential(ConvBN(64, 96, 3, 2, 1, **c3), ConvBN(96, 96, 3, padding=1, **c3))
        self.conv3a = nn.Sequential(ConvBN(96, 128, 3, 2, 1, **c3), ConvBN(128, 128, 3, padding=1, **c3))
        self.deconv3a = UpFuse3d(128, 96, transposed=True)
        self.deconv2a = UpFuse3d(96, 64, transposed=True)
        self.deconv1a = UpFuse3d(64, 48, transposed=False)
        self.end = nn.Sequential(
            ConvBN(48, 24, 4, 2, 1, transposed=True, **c3), ConvBN(24, 1, 3, padding=1, bn=False, relu=False, **c3)
        )

    def forward(self, cost):
        skip = self.start(cost)
        return self.end(self.deconv1a(self.conv1a(skip), skip))


def build_cost_volume(fl: torch.Tensor, fr: torch.Tensor, planes: int = COST_PLANES) -> torch.Tensor:
    """(B, 2C, planes, H, W): plane i holds L features and R features shifted right by i pixels.

    Deviation, on purpose: the official code allocates this tensor uninitialised and never writes the
    first i columns of plane i, so those cells hold whatever memory was there. Here they are zero,
    which makes the forward deterministic (and matches the official result wherever the garbage was 0).
    """
    b, c, h, w = fl.shape
    cost = fl.new_zeros(b, 2 * c, planes, h, w)
    for i in range(planes):
        cost[:, :c, i, :, i:] = fl[..., i:]
        cost[:, c:, i, :, i:] = fr[..., : w - i]
    return cost


# --------------------------------------------------------------------------------------------- networks


class DisparityNet(nn.Module):
    """``Estd``: (L, R) in [0, 1] RGB -> (B, H, W) expected disparity over 0..MAX_DISP-1.

    ``features`` is a second :class:`FeatureNet` that the authors built and saved but never call; it
    stays so that the published file loads strictly. Needs H, W >= 64 (64x64 pooling branch) and
    multiples of 4 (two stride-2 3-D convs undone by the hourglass).
    """

    def __init__(self, max_disp: int = MAX_DISP):
        super().__init__()
        self.max_disp = max_disp
        self.feature = FeatureNet()
        self.features = FeatureNet()
        self.matching = CostMatching()

    def forward(self, left, right):
        h, w = left.shape[-2:]
        if h < 64 or w < 64:
            raise ValueError(f"DDDNet Estd needs H, W >= 64 (64x64 average pooling), got {h}x{w}")
        cost = self.matching(build_cost_volume(self.feature(left), self.feature(right), self.max_disp // 3))
        cost = F.interpolate(cost, size=(self.max_disp, h, w), mode="trilinear", align_corners=False)
        prob = torch.softmax(-cost.squeeze(1), dim=1)  # soft-min over disparity planes
        levels = torch.arange(self.max_disp, device=prob.device, dtype=prob.dtype).view(1, -1, 1, 1)
        return (prob * levels).sum(dim=1)


class ResPair(nn.Sequential):
    """conv3x3 -> ReLU -> conv3x3; the caller adds the skip."""

    def __init__(self, ch):
        super().__init__(nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1))


class Encoder(nn.Module):
    """32 -> 64 -> 128 channels, two stride-2 convs, two residual pairs per scale (DMPHN encoder)."""

    def __init__(self, cin=7, feat=128):
        super().__init__()
        self.layer1 = nn.Conv2d(cin, 32, 3, padding=1)
        self.layer2, self.layer3 = ResPair(32), ResPair(32)
        self.layer5 = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.layer6, self.layer7 = ResPair(64), ResPair(64)
        self.layer9 = nn.Conv2d(64, 128, 3, stride=2, padding=1)
        self.layer10 = ResPair(128)
        self.layer11 = nn.Sequential(nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(), nn.Conv2d(128, feat, 3, padding=1))

    def forward(self, x):
        for down, pairs in (
            (self.layer1, (self.layer2, self.layer3)),
            (self.layer5, (self.layer6, self.layer7)),
            (self.layer9, (self.layer10, self.layer11)),
        ):
            x = down(x)
            for pair in pairs:
                x = pair(x) + x
        return x


class Decoder(nn.Module):
    """Mirror of :class:`Encoder` with 4x4 stride-2 transposed convs; no output activation."""

    def __init__(self, feat=128, cout=3):
        super().__init__()
        self.layer13, self.layer14 = ResPair(feat), ResPair(128)
        self.layer16 = nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1)
        self.layer17, self.layer18 = ResPair(64), ResPair(64)
        self.layer20 = nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)
        self.layer21, self.layer22 = ResPair(32), ResPair(32)
        self.layer24 = nn.Conv2d(32, cout, 3, padding=1)

    def forward(self, x):
        for pairs, up in (
            ((self.layer13, self.layer14), self.layer16),
            ((self.layer17, self.layer18), self.layer20),
            ((self.layer21, self.layer22), self.layer24),
        ):
            for pair in pairs:
                x = pair(x) + x
            x = up(x)
        return x


class ChannelAttention(nn.Module):
    """DANet channel attention: softmax over (rowmax(G) - G) of the channel Gram matrix G,
    applied to the channels, scaled by a learnt ``gamma`` (0 at init) and added back."""

    def __init__(self):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w)
        gram = torch.bmm(flat, flat.transpose(1, 2))
        attn = torch.softmax(gram.amax(dim=-1, keepdim=True) - gram, dim=-1)
        return self.gamma * torch.bmm(attn, flat).view(b, c, h, w) + x


class ConvAct(nn.Module):
    """Conv with bias, then sigmoid (the authors' ``ConvBlock(..., activation='sigmoid')``)."""

    def __init__(self, cin, cout, kernel, stride, padding):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding)

    def forward(self, x):
        return torch.sigmoid(self.conv(x))


class DeblurNet(nn.Module):
    """``Esti``: (L, R, disparity) -> (deblurred image, refined disparity). H, W multiples of 8.

    ``conv`` (128 -> 1, sigmoid) is built and saved by the authors but never called; kept for loading.
    """

    def __init__(self, feat: int = 128):
        super().__init__()
        self.encoder1, self.encoder2, self.encoder3 = (Encoder(7, feat) for _ in range(3))
        self.decoder1 = Decoder(feat, 3)
        self.decoder2 = Decoder(feat, 7)
        self.decoder3 = Decoder(feat, 7)
        self.decoderd = Decoder(feat, 1)
        self.cam_attention = ChannelAttention()
        self.down = ConvAct(4, feat, 8, 4, 2)
        self.conv = ConvAct(feat, 1, 3, 1, 1)

    def forward(self, left, right, disp):
        h, w = left.shape[-2:]
        if h % 8 or w % 8:
            raise ValueError(f"DDDNet Esti needs H, W multiples of 8, got {h}x{w}")
        d = disp.unsqueeze(1)
        x1 = torch.cat([left, right, d], dim=1)
        halves = list(x1.split(h // 2, dim=2))
        # level 3: four quarter tiles through encoder3; decoder3 runs on each merged half
        f3 = [torch.cat([self.encoder3(t) for t in half.split(w // 2, dim=3)], dim=3) for half in halves]
        r3 = [self.decoder3(f) for f in f3]
        # level 2: the two halves, each corrected by its level-3 residual
        f2 = torch.cat([self.encoder2(hf + r) for hf, r in zip(halves, r3)], dim=2) + torch.cat(f3, dim=2)
        r2 = self.decoder2(f2)
        # level 1: full image, plus the attention features of the L-R difference and the disparity
        f1 = self.encoder1(x1 + r2) + f2
        f1 = f1 + self.cam_attention(self.down(torch.cat([left - right, d], dim=1)))
        return self.decoder1(f1), self.decoderd(f1).squeeze(1)


# ---------------------------------------------------------------------------------------------- wrapper


class DDDNet(nn.Module):
    """Suite wrapper: ``estd`` then ``esti``, as ``dual_pixel_test_MB.py`` runs them.

    | convention      | official test                                   | here                                   |
    |-----------------|-------------------------------------------------|----------------------------------------|
    | views           | L, R: disp = Estd(L, R); out = Esti(L, R, disp) | ``batch["left"]``, ``batch["right"]``  |
    | colour order    | RGB (PIL ``convert('RGB')``)                     | RGB                                    |
    | value range     | [0, 1], 8-bit / 255                             | [0, 1]; 8-bit (``checkpoints.yaml``)   |
    | size            | H, W multiples of 8, >= 64; no padding         | reflect-padded to 8, cropped back      |
    | output          | direct (no residual), unclamped in the net      | clamped to [0, 1] in eval only         |
    | BatchNorm (Estd)| ``.eval()`` never called: batch statistics      | ``bn_batch_stats=True`` (default)      |
    | cost volume     | uninitialised memory in the first i columns     | zeros (deterministic; documented)      |
    | device          | CUDA only (``torch.cuda.current_device()``)     | any device                             |

    Extra outputs: ``disparity`` (Estd) and ``refined_disparity`` (Esti's second decoder).
    The two published files load with :meth:`load_published_pair`, or one at a time with
    ``k3dn.checkpoint.load_published(model.estd, path, filter_estd)`` (``esti``: :func:`filter_esti`).
    """

    input_views = ("left", "right")
    size_multiple = (8, 8)
    min_size = (64, 64)  # Estd's 64x64 average pooling
    size_mode = "pad"

    def __init__(self, bn_batch_stats: bool = True):
        super().__init__()
        self.estd = DisparityNet()
        self.esti = DeblurNet()
        for m in self.estd.modules():
            if isinstance(m, _BatchStatsMixin):
                m.use_batch_stats = bn_batch_stats

    def forward(self, batch: dict) -> dict:
        x = torch.cat([batch["left"], batch["right"]], dim=1)
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.size_multiple)
        left, right = x[:, :3], x[:, 3:]
        disp = self.estd(left, right)
        out, refined = self.esti(left, right, disp)
        out = out[..., :h, :w]
        if not self.training:
            out = out.clamp(0, 1)
        return {"output": out, "disparity": disp[..., :h, :w], "refined_disparity": refined[..., :h, :w]}

    def load_published_pair(self, estd_path, esti_path) -> DDDNet:
        from k3dn.checkpoint import load_published

        load_published(self.estd, estd_path, filter_estd)
        load_published(self.esti, esti_path, filter_esti)
        return self


def _plain_state_dict(raw, what: str) -> dict:
    if not isinstance(raw, dict):
        raise TypeError(f"DDDNet {what} checkpoint: expected a state dict, got {type(raw).__name__}")
    if "state_dict" in raw and isinstance(raw["state_dict"], dict):
        raw = raw["state_dict"]
    return strip_prefix(raw, "module.")


def filter_estd(state_dict: dict, model: nn.Module | None = None) -> dict:
    """``Estd.pkl`` (DataParallel state dict, ``module.`` keys) -> :class:`DisparityNet` state dict.

    Files saved by PyTorch < 0.4.1 have no ``num_batches_tracked``; the counter never affects the forward
    pass, so a missing one is filled with 0 rather than failing the strict load.
    """
    sd = dict(_plain_state_dict(state_dict, "Estd"))
    for k in [k for k in sd if k.endswith(".running_mean")]:
        sd.setdefault(k[: -len("running_mean")] + "num_batches_tracked", torch.tensor(0, dtype=torch.long))
    return sd


def filter_esti(state_dict: dict, model: nn.Module | None = None) -> dict:
    """``Esti.pkl`` (DataParallel state dict, ``module.`` keys) -> :class:`DeblurNet` state dict."""
    return _plain_state_dict(state_dict, "Esti")


def checkpoint_filter_fn(state_dict: dict, model: nn.Module | None = None) -> dict:
    """``{'estd': <Estd.pkl contents>, 'esti': <Esti.pkl contents>}`` -> :class:`DDDNet` state dict.

    DDDNet is published as two files, so the wrapper's filter takes both ``read_foreign`` results
    (keys ``estd``/``esti``, any case).
    """
    if not isinstance(state_dict, dict):
        raise TypeError(f"DDDNet checkpoint: expected {{'estd': ..., 'esti': ...}}, got {type(state_dict).__name__}")
    parts = {k.lower(): v for k, v in state_dict.items()}
    if set(parts) != {"estd", "esti"}:
        raise KeyError(f"DDDNet checkpoint: need the two files under keys 'estd' and 'esti', got {sorted(state_dict)}")
    sd = {f"estd.{k}": v for k, v in filter_estd(parts["estd"]).items()}
    sd.update({f"esti.{k}": v for k, v in filter_esti(parts["esti"]).items()})
    return sd


# ----------------------------------------------------------------------------------- registered variants


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def dddnet(**kw) -> DDDNet:
    """DDDNet (DPD-blur weights ``model_dpd``), dual-pixel L/R, legacy 8-bit protocol."""
    return DDDNet(**kw)
