"""The inference fast paths give the outputs of the plain computations they replace (CPU, small sizes).

Tolerances: the K3DN caches return the very tensors the plain path computes (bit-identical); the banded local
correlation only reorders loops (bit-identical); the Wiener rewrite evaluates the same residuals through
precomputed per-cell filters and a cropped inverse FFT, so it is held to 1e-5 on the output and to the same
selected scale in every patch; the ``torch.compile``d forward (inductor on the CPU) fuses operations, so it is held
to 1e-5, and to having run compiled rather than through its eager fallback.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import k3dn.models.srp as srp
from baselines.wiener import DPWiener, _pad
from k3dn.infer import forward_fitted, prepare_inference
from k3dn.registry import create_model


def _pair(h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(1, 3, h, w, generator=g) for k in ("left", "right")}


def test_k3dn_inference_cache_matches_uncached_forward_and_follows_new_weights():
    torch.manual_seed(0)
    model = create_model("k3dn_tiny").eval()
    batch = _pair(288, 224)
    settings = prepare_inference(model, "cpu")
    assert settings == {"fast": True, "compile": False}
    with torch.enable_grad():  # autograd on: no cache is used
        plain = model(batch)["output"].detach()
    cached = forward_fitted(model, batch)
    assert torch.equal(cached, plain)
    assert len(model.psf.blocks[0].kernel_set._cache._store) > 0
    # new weights (load_state_dict copies in place) must not be served the old kernels
    torch.manual_seed(1)
    other = create_model("k3dn_tiny").eval()
    model.load_state_dict(other.state_dict())
    assert torch.equal(forward_fitted(model, batch), forward_fitted(other, batch))


def _naive_correlation(q, k, r):
    d = 2 * r + 1
    kp = F.pad(k, (r, r, r, r))
    h, w = q.shape[-2:]
    return torch.stack([(q * kp[..., dy : dy + h, dx : dx + w]).mean(1) for dy in range(d) for dx in range(d)], 1)


@pytest.mark.parametrize("band", [1 << 20, 7 * 11 * 2])  # one band; bands of a few rows with a ragged last one
def test_banded_local_correlation_equals_naive(monkeypatch, band):
    monkeypatch.setattr(srp, "CORR_BAND_ELEMS", band)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 7, 13, 11, generator=g), torch.randn(2, 7, 13, 11, generator=g)
    torch.testing.assert_close(
        srp.local_correlation(q, k), _naive_correlation(q, k, srp.CORR_RADIUS), rtol=1e-5, atol=1e-6
    )


def _wiener_reference(m: DPWiener, left, right):
    """The textbook form, tile by tile: F_s = (conj(K_L) B_L + conj(K_R) B_R) / D for every candidate, the
    reblur residual of both views on the patch, argmin, then the per-channel deconvolution with the winner."""
    _, c, h, w = left.shape
    p, mg, t, _s = m.patch, m.margin, m.tile, m.patch // 2
    ys, xs = m.tile_starts(h), m.tile_starts(w)
    hc, wc = ys[-1] + p, xs[-1] + p
    kl, kr, reg = m._spectra(left.device)
    kl, kr = kl[0], kr[0]
    den = kl.abs() ** 2 + kr.abs() ** 2 + reg
    win, taper = m._window(left.device, torch.float32), m._taper(left.device)
    views = _pad(torch.stack([left[0], right[0]]), mg, mg + hc - h, mg, mg + wc - w)
    num = torch.zeros(c, hc, wc)
    wsum = torch.zeros(1, hc, wc)
    best = []
    for y0 in ys:
        for x0 in xs:
            tl = views[:, :, y0 : y0 + t, x0 : x0 + t]
            mu = tl.mean(dim=(-2, -1), keepdim=True)
            tl = mu + (tl - mu) * taper
            g = torch.fft.rfft2(tl.mean(1))
            fs = (kl.conj() * g[0] + kr.conj() * g[1]) / den
            crop = (slice(None), slice(mg, mg + p), slice(mg, mg + p))
            rl = torch.fft.irfft2(kl * fs, s=(t, t))[crop]
            rr = torch.fft.irfft2(kr * fs, s=(t, t))[crop]
            err = (
                (
                    (rl - tl[0].mean(0)[mg : mg + p, mg : mg + p]) ** 2
                    + (rr - tl[1].mean(0)[mg : mg + p, mg : mg + p]) ** 2
                )
                * win
            ).sum(dim=(-2, -1))
            i = int(err.argmin())
            best.append(i)
            bf = torch.fft.rfft2(tl)
            out = torch.fft.irfft2((kl[i].conj() * bf[0] + kr[i].conj() * bf[1]) / den[i], s=(t, t))
            num[:, y0 : y0 + p, x0 : x0 + p] += out[:, mg : mg + p, mg : mg + p] * win
            wsum[:, y0 : y0 + p, x0 : x0 + p] += win
    sel = m.candidates[torch.tensor(best)].reshape(len(ys), len(xs))
    return (num / wsum)[None, :, :h, :w], sel[None]


def test_wiener_fast_path_equals_textbook_form():
    m = DPWiener(radii=np.arange(-4, 5), patch=16)
    batch = _pair(40, 56, seed=3)
    # blur the views so that the selection has something to find
    kl, kr = m.kernels_left[0, 6], m.kernels_right[0, 6]
    pad = kl.shape[-1] // 2
    for key, k in (("left", kl), ("right", kr)):
        x = F.pad(batch[key], (pad,) * 4, mode="reflect")
        batch[key] = F.conv2d(x, k.flip(-2, -1).expand(3, 1, *k.shape), groups=3)
    out, sel = m.deblur(batch["left"], batch["right"])
    ref_out, ref_sel = _wiener_reference(m, batch["left"], batch["right"])
    assert torch.equal(sel, ref_sel)
    assert math.isclose(float((out - ref_out).abs().max()), 0.0, abs_tol=1e-5)


def test_channels_last_conversion_keeps_the_output_and_skips_5d_weights():
    from k3dn.models import to_channels_last

    torch.manual_seed(0)
    model = create_model("k3dn_tiny").eval()
    batch = _pair(288, 224)
    ref = forward_fitted(model, batch)
    to_channels_last(model)
    conv = model.enc_conv[0].conv.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert model.disparity.aggregate[0][0].weight.is_contiguous()  # the 3D convolution's 5-D weight
    assert model.psf.blocks[0].kernel_set.spectrum.is_contiguous()  # 4-D, but not an image
    torch.testing.assert_close(forward_fitted(model, batch), ref, rtol=0, atol=1e-5)


class _FewConvs(torch.nn.Module):
    """Two convolutions in the batch format: enough for torch.compile to capture a graph, cheap to compile."""

    input_views = ("left", "right")

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(6, 8, 3, padding=1), torch.nn.LeakyReLU(0.2), torch.nn.Conv2d(8, 3, 3, padding=1)
        )

    def forward(self, batch):
        x = torch.cat([batch["left"], batch["right"]], 1)
        return {"output": (batch["left"] + self.body(x)).clamp(0, 1)}


def test_compiled_forward_is_the_path_that_runs_and_matches_eager(monkeypatch):
    """``prepare_inference(compile=True)`` on the CPU with the default (inductor) backend. The fallback to eager
    would give the same numbers, so the test also requires that the compiled callable returned the output, that
    Dynamo captured a graph, and that ``compile`` is still recorded as on."""
    from torch._dynamo.utils import counters

    real_compile = torch.compile
    completed = []

    def counting_compile(fn, *args, **kwargs):
        compiled = real_compile(fn, *args, **kwargs)

        def call(*a, **k):
            out = compiled(*a, **k)  # an exception here is what sends prepare_inference to eager
            completed.append(True)
            return out

        return call

    torch._dynamo.reset()
    counters.clear()
    monkeypatch.setattr(torch._dynamo.config, "suppress_errors", False)  # Dynamo's own silent fallback, off
    monkeypatch.setattr(torch, "compile", counting_compile)
    torch.manual_seed(0)
    model = _FewConvs().eval()
    batch = _pair(16, 24)
    with torch.no_grad():
        eager = model(batch)["output"]
    used = prepare_inference(model, "cpu", fast=True, compile=True)
    try:
        with torch.no_grad():
            out = model(batch)["output"]
        if not used["compile"]:
            try:  # a machine that cannot compile anything is a skip; a fallback where compiling works is a failure
                real_compile(lambda x: x * 2 + 1)(torch.ones(3))
            except Exception as e:
                pytest.skip(f"torch.compile cannot run here: {type(e).__name__}: {e}")
        assert used == {"fast": True, "compile": True}
        assert completed == [True]
        assert counters["stats"]["unique_graphs"] >= 1 and counters["frames"]["ok"] >= 1
        # measured 1.3e-7: inductor fuses the convolution epilogues, the same values up to float rounding
        torch.testing.assert_close(out, eager, rtol=0, atol=1e-5)
    finally:
        torch._dynamo.reset()
