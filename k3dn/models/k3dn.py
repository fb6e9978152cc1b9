"""K3DN: Disparity-aware Kernel Estimation for Dual-Pixel Defocus Deblurring.

Yan Yang, Liyuan Pan, Liu Liu, Miaomiao Liu. CVPR 2023, pp. 13263-13272.
https://openaccess.thecvf.com/content/CVPR2023/html/Yang_K3DN_Disparity-Aware_Kernel_Estimation_for_Dual-Pixel_Defocus_Deblurring_CVPR_2023_paper.html

Written independently from the supplement (Tab. 6, 9-11, 13) and the reconstruction in
the K3DN paper and its supplement The K3DN-style repository those notes describe has no licence; none of
its code was copied or fetched.

Network (bc = base channels, bn = ResBlocks per EBlock, Tab. 6: Tiny (2, 24), Lightweight (2, 32), Large (4, 48))::

    x = [B_L, B_R] - 0.5                                   (6 ch; single-image: B_C - 0.5, 3 ch)
    e1 = EBlock_bn(conv s2 6→bc)  e2 = EBlock_bn(conv s2 bc→2bc)  e3 = EBlock_bn(conv s2 2bc→4bc)     (1/8 res)
    windows of e3 (18×14 at 1/8 res by default) → 2·bn PSF blocks with one disparity vector r per window → merge
    d2 = EBlock_bn(skip(e2, up 4bc→2bc))   d1 = EBlock_bn(skip(e1, up 4bc→bc))   d0 = EBlock_bn(skip(x, up 2bc→bc))
    y  = conv3×3 (bc+6 → 3)(d0)                            (no global residual)
    skip = SRP block (stage 2 / inference) or plain concatenation (stage 1)

Output: training → ``y + 0.5`` unclipped (the clip's zero gradient outside [-1, 1] would silently stop learning on
saturated pixels, and the losses need none); eval → ``clip(y, -1, 1) + 0.5`` then clipped to [0, 1] as in the
reconstructed evaluation (together simply ``clip(y + 0.5, 0, 1)``).

Reblurring (L_reb, stage 1 only). Tab. 13's "Reblurring framework" feeds **{I, I}**, the deblurred output I duplicated
as a DP pair (I alone in single-image mode), through the shared encoder, the PSF blocks in reverse (inverse kernels
from the reciprocal spectrum, reciprocal modulation, blocks in reverse order, reusing the per-block disparity vectors
of the *blurry* pair), and the shared decoder with plain concatenation skips ({I, I, u5} at the last stage), to a
3-channel blurry image B. We follow it: ``reblur_input="output"`` (default) feeds the training output I with its
gradient (a cycle-consistency regulariser on the deblurring network, kernels and disparity features, "unsupervised");
``reblur_input="target"`` feeds the ground-truth sharp image instead (the alternative the notes leave open).
Target: the blurry centre view ``batch["center"]`` when the batch has it, else ``(B_L + B_R)/2``. Returned only in
training, with ``reblur=True``, in stage 1 (the supplement drops L_reb in stage 2), and when the batch has ``target``.

Stages (``set_stage``): a freshly built model runs SRP (the inference model) with every parameter trainable.
``set_stage(1)``: SRP bypassed and frozen, the rest trainable. ``set_stage(2)``: SRP on, only SRP trainable, no
reblurring output. ``srp=False`` builds the model without SRP blocks (then only stage 1 exists).

Size handling: ``size_multiple = (lcm(8·wh, 32), lcm(8·ww, 32))`` for a (wh, ww) window at 1/8 res: 8·wh makes the
bottleneck a whole number of windows, 32 makes the disparity branch's 1/32-res grid exact (two stride-2 3D convs
after a stride-2 feature layer on the ÷4 views). Default 18×14 → (288, 224), the reconstruction's ``pad_scale``;
9×9 → (288, 288), 14×18 → (224, 288), 18×18 → (288, 288), 27×27 → (864, 864). ``size_mode = "resize"`` (the paper
resizes to the multiple and back). :func:`fit_to_multiple` / :func:`restore_from_multiple` do the fitting.

Ablation knobs (supplement Sec. C, all on ``k3dn_lightweight``), each exactly one override of ``create_model``:

==============================  ==========================================================================
Tab. 9  H_f/H_d × W_f/W_d       ``window=(9, 9) | (14, 18) | (18, 14) [default] | (18, 18) | (27, 27)``
Tab. 10 kernel set H_k × W_k    ``kernel_size=3 | 5 | 7 | 9 [default] | 11 | 13``
Tab. 11 number of PSF blocks    ``num_psf_blocks=1 .. 7`` (default 2·bn = 4)
Tab. 8  single image            ``dual_pixel=False`` (or the registered ``k3dn_*_single``)
SRP on/off                      ``srp=False``
reblurring loss on/off          ``reblur=False``
==============================  ==========================================================================

Other overrides: ``bn``, ``bc``, ``srp_depth`` (ResBlocks in each SRP output branch; 4 = the reconstruction's
``psf_out_layer``; the paper states no value for Tiny/Light, we use 4 for all three variants because it is the only
documented value and it reproduces the reconstruction's per-module counts of all three), ``reblur_input``
(``"output"`` | ``"target"``), ``truncate`` (reciprocal-modulation clip, 100). :data:`ABLATIONS` lists them.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from k3dn.checkpoint import strip_prefix
from k3dn.registry import register_model

from .blocks import BasicConv, EBlock, fit_to_multiple, restore_from_multiple, window_merge, window_partition
from .disparity import DisparityEstimator, SingleImageDisparity
from .psf import PSFStack
from .srp import SRPBlock

__all__ = ["K3DN", "ABLATIONS", "checkpoint_filter_fn", "fit_to_multiple", "restore_from_multiple", "size_multiple_for"]

ABLATIONS: dict[str, dict[str, dict]] = {
    "table9_window": {f"{h}x{w}": {"window": (h, w)} for h, w in [(9, 9), (14, 18), (18, 14), (18, 18), (27, 27)]},
    "table10_kernel": {f"{k}x{k}": {"kernel_size": k} for k in (3, 5, 7, 9, 11, 13)},
    "table11_psf_blocks": {str(n): {"num_psf_blocks": n} for n in range(1, 8)},
}


def size_multiple_for(window: tuple[int, int]) -> tuple[int, int]:
    """Input (H, W) multiple for a (wh, ww) bottleneck window: lcm(8·w, 32) per axis (see module docstring)."""
    return math.lcm(8 * window[0], 32), math.lcm(8 * window[1], 32)


class _Concat(nn.Module):
    def forward(self, old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        return torch.cat([old, new], dim=1)


class K3DN(nn.Module):
    size_mode = "resize"

    def __init__(
        self,
        bn: int = 2,
        bc: int = 32,
        *,
        kernel_size: int = 9,
        num_psf_blocks: int | None = None,
        window: tuple[int, int] = (18, 14),
        srp: bool = True,
        srp_depth: int = 4,
        reblur: bool = True,
        reblur_input: str = "output",
        dual_pixel: bool = True,
        truncate: float = 100.0,
    ):
        super().__init__()
        window = tuple(int(v) for v in window)
        if len(window) != 2 or min(window) < 1:
            raise ValueError(f"window must be two positive ints (rows, cols at 1/8 res), got {window}")
        if reblur_input not in ("output", "target"):
            raise ValueError(f"reblur_input must be 'output' or 'target', got {reblur_input!r}")
        if bn < 1 or bc < 1 or srp_depth < 0:
            raise ValueError(f"bn, bc must be >= 1 and srp_depth >= 0, got bn={bn}, bc={bc}, srp_depth={srp_depth}")
        num_psf_blocks = 2 * bn if num_psf_blocks is None else int(num_psf_blocks)
        self.config = dict(
            bn=bn,
            bc=bc,
            kernel_size=kernel_size,
            num_psf_blocks=num_psf_blocks,
            window=window,
            srp=srp,
            srp_depth=srp_depth,
            reblur=reblur,
            reblur_input=reblur_input,
            dual_pixel=dual_pixel,
            truncate=truncate,
        )
        self.window, self.reblur, self.reblur_input, self.dual_pixel = window, reblur, reblur_input, dual_pixel
        self.input_views = ("left", "right") if dual_pixel else ("center",)
        self.in_ch = 3 * len(self.input_views)
        self.size_multiple = size_multiple_for(window)

        # ---- disparity estimator
        self.disparity = DisparityEstimator(window) if dual_pixel else SingleImageDisparity(window)

        # ---- encoder (shared by deblurring and reblurring)
        self.enc_conv = nn.ModuleList(
            [BasicConv(self.in_ch, bc, 3, 2), BasicConv(bc, 2 * bc, 3, 2), BasicConv(2 * bc, 4 * bc, 3, 2)]
        )
        self.enc_blocks = nn.ModuleList([EBlock(bc, bn), EBlock(2 * bc, bn), EBlock(4 * bc, bn)])

        # ---- PSF blocks at the bottleneck
        self.psf = PSFStack(4 * bc, num_psf_blocks, kernel_size, truncate=truncate)

        # ---- decoder (shared); skip widths: old + new
        self.up = nn.ModuleList(
            [
                BasicConv(4 * bc, 2 * bc, 4, 2, transpose=True),
                BasicConv(4 * bc, bc, 4, 2, transpose=True),
                BasicConv(2 * bc, bc, 4, 2, transpose=True),
            ]
        )
        skip_ch = (4 * bc, 2 * bc, bc + self.in_ch)
        self.dec_blocks = nn.ModuleList([EBlock(c, bn) for c in skip_ch])
        self.srp = nn.ModuleList([SRPBlock(c, srp_depth) for c in skip_ch]) if srp else None
        self.concat = _Concat()
        self.head = BasicConv(bc + self.in_ch, 3, 3, act=False)

        self.stage: int | None = None
        self.srp_active = srp

    # ------------------------------------------------------------------ stages
    def srp_parameters(self):
        return [] if self.srp is None else list(self.srp.parameters())

    def set_stage(self, stage: int) -> K3DN:
        """Stage 1: SRP bypassed and frozen. Stage 2: SRP on, every non-SRP parameter frozen, no L_reb."""
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage!r}")
        if stage == 2 and self.srp is None:
            raise ValueError("stage 2 trains the SRP blocks, but this model was built with srp=False")
        srp_ids = {id(p) for p in self.srp_parameters()}
        for p in self.parameters():
            p.requires_grad_((id(p) in srp_ids) == (stage == 2))
        self.stage, self.srp_active = stage, stage == 2
        return self.train(self.training)

    def train(self, mode: bool = True) -> K3DN:
        """In stage 2 only SRP trains: every other module stays in eval mode, so frozen BatchNorm layers (the
        disparity estimator's) keep their running statistics instead of drifting with stage-2 batches."""
        super().train(mode)
        if mode and self.stage == 2:
            for name, child in self.named_children():
                if name != "srp":
                    child.eval()
        return self

    # ------------------------------------------------------------------ input checks
    def grid(self, h: int, w: int) -> tuple[int, int]:
        return h // (8 * self.window[0]), w // (8 * self.window[1])

    def _views(self, batch: dict) -> torch.Tensor:
        missing = [k for k in self.input_views if k not in batch]
        if missing:
            raise KeyError(
                f"K3DN ({'dual-pixel' if self.dual_pixel else 'single-image'}) needs batch keys "
                f"{self.input_views}; missing {missing}"
            )
        views = []
        for k in self.input_views:
            v = batch[k]
            if v.dim() != 4 or v.shape[1] != 3:
                raise ValueError(f"batch[{k!r}] must be (B, 3, H, W) RGB, got shape {tuple(v.shape)}")
            views.append(v)
        h, w = views[0].shape[-2:]
        mh, mw = self.size_multiple
        if h % mh or w % mw or any(v.shape != views[0].shape for v in views):
            raise ValueError(
                f"K3DN with window {self.window} needs H % {mh} == 0 and W % {mw} == 0 and equal view "
                f"shapes, got {[tuple(v.shape) for v in views]}; fit the input with "
                f"k3dn.models.k3dn.fit_to_multiple(x, model.size_multiple, model.size_mode)"
            )
        return torch.cat(views, dim=1)

    # ------------------------------------------------------------------ network
    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats, f = [], x
        for conv, blk in zip(self.enc_conv, self.enc_blocks):
            f = blk(conv(f))
            feats.append(f)
        return feats

    def _decode(self, x: torch.Tensor, e1: torch.Tensor, e2: torch.Tensor, e3: torch.Tensor, use_srp: bool):
        skips = self.srp if (use_srp and self.srp is not None) else [self.concat] * 3
        d = e3
        for up, skip, blk, old in zip(self.up, skips, self.dec_blocks, (e2, e1, x)):
            d = blk(skip(old, up(d)))
        return self.head(d)

    def _run(self, x: torch.Tensor, r: torch.Tensor, *, reverse: bool, use_srp: bool) -> torch.Tensor:
        e1, e2, e3 = self._encode(x)
        b, grid = x.shape[0], (r.shape[-2], r.shape[-1])
        rw = r.permute(0, 2, 3, 1).reshape(b * grid[0] * grid[1], -1)
        e3 = window_merge(self.psf(window_partition(e3, self.window), rw, reverse=reverse), b, grid)
        return self._decode(x, e1, e2, e3, use_srp)

    def estimate_disparity(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 6|3, H, W) shifted views -> (B, 256, nh, nw) disparity vectors, one per bottleneck window."""
        grid = self.grid(*x.shape[-2:])
        if self.dual_pixel:
            return self.disparity(x[:, :3], x[:, 3:], grid)
        return self.disparity(x, grid)

    def forward(self, batch: dict) -> dict:
        x = self._views(batch) - 0.5
        r = self.estimate_disparity(x)
        y = self._run(x, r, reverse=False, use_srp=self.srp_active)
        out = {"output": (y + 0.5) if self.training else torch.clamp(torch.clamp(y, -1, 1) + 0.5, 0, 1), "disparity": r}
        if self.training and self.reblur and self.stage != 2 and "target" in batch:
            sharp = y if self.reblur_input == "output" else batch["target"] - 0.5
            xs = sharp.repeat(1, len(self.input_views), 1, 1)
            out["reblurred"] = self._run(xs, r, reverse=True, use_srp=False) + 0.5
            if "center" in batch:
                out["reblur_target"] = batch["center"]
            elif self.dual_pixel:
                out["reblur_target"] = 0.5 * (batch["left"] + batch["right"])
            else:  # single-image input is the centre view itself
                out["reblur_target"] = batch[self.input_views[0]]
        return out


def checkpoint_filter_fn(state_dict: dict, model: nn.Module | None = None) -> dict:
    """Our own weights are saved as plain state dicts (identity). Also accepts a ``{'state_dict'|'model'|'params':
    sd}`` container and strips a DataParallel ``module.`` prefix. No published K3DN checkpoint exists to map from."""
    sd = state_dict
    if isinstance(sd, dict):
        for key in ("state_dict", "model", "params", "net"):
            if key in sd and isinstance(sd[key], dict):
                sd = sd[key]
                break
    if not isinstance(sd, dict):
        raise TypeError(f"checkpoint_filter_fn: expected a state dict, got {type(state_dict).__name__}")
    return strip_prefix(sd, "module.")


# ---------------------------------------------------------------------------------------------------------------
# Registered variants (supplement Tab. 6); overrides are the ablation knobs listed in the module docstring.
# ---------------------------------------------------------------------------------------------------------------


def _create(bn: int, bc: int, dual_pixel: bool, overrides: dict) -> K3DN:
    params = dict(bn=bn, bc=bc, dual_pixel=dual_pixel)
    params.update(overrides)
    return K3DN(**params)


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def k3dn_tiny(**kw):
    return _create(2, 24, True, kw)


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def k3dn_lightweight(**kw):
    return _create(2, 32, True, kw)


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def k3dn_large(**kw):
    return _create(4, 48, True, kw)


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def k3dn_tiny_single(**kw):
    return _create(2, 24, False, kw)


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def k3dn_lightweight_single(**kw):
    return _create(2, 32, False, kw)


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def k3dn_large_single(**kw):
    return _create(4, 48, False, kw)
