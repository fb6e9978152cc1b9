"""K3DN building blocks: kernel symmetry and Fourier inverse, LU point conv, correlation, windows, size fitting."""

import math

import pytest
import torch
import torch.nn.functional as F

from k3dn.models.blocks import fit_to_multiple, restore_from_multiple, window_merge, window_partition
from k3dn.models.disparity import DisparityEstimator, cost_volume, window_pool
from k3dn.models.psf import (
    InvertiblePointConv,
    PSFStack,
    SymmetricKernelSet,
    full_kernels,
    hermitian_project,
    spectrum_shape,
)
from k3dn.models.srp import local_correlation


@pytest.mark.parametrize("k", [3, 9, 13])
def test_kernels_are_exactly_left_right_symmetric_and_unit_norm(k):
    ks = SymmetricKernelSet(7, k)
    for inverse in (False, True):
        kern, left = ks.kernels(inverse)
        assert kern.shape == (7, k, k) and left.shape == (7, k, (k + 1) // 2)
        assert torch.equal(kern, kern.flip(-1))
        assert torch.allclose(kern.pow(2).sum((-2, -1)), torch.ones(7), atol=1e-5)
        assert torch.equal(left, kern[:, :, : (k + 1) // 2])


@pytest.mark.parametrize("k", [3, 9, 13])
def test_fourier_kernel_and_inverse_multiply_to_one_on_full_spectrum(k):
    n = k + 1
    spec = torch.complex(
        torch.randn(5, *spectrum_shape(k), dtype=torch.float64), torch.randn(5, *spectrum_shape(k), dtype=torch.float64)
    )
    # the Hermitian projection leaves the forward kernel unchanged (irfft2 ignores the non-Hermitian part)
    assert torch.allclose(torch.fft.irfft2(spec, s=(n, n)), full_kernels(spec, k), atol=1e-12)
    fwd = torch.fft.fft2(full_kernels(spec, k, eps=0.0))
    inv = torch.fft.fft2(full_kernels(spec, k, reciprocal=True, eps=0.0))
    assert fwd.shape == (5, n, n)
    assert torch.allclose(fwd * inv, torch.ones_like(fwd), atol=1e-9)
    # and the half spectrum of the real full kernel is the projected parameter
    assert torch.allclose(torch.fft.rfft2(full_kernels(spec, k)), hermitian_project(spec), atol=1e-12)


def test_inverse_kernel_undoes_kernel_approximately_after_crop():
    # After the 9x9 crop + mirror + normalisation the pair is no longer an exact inverse (reconstruction: "only an
    # approximate inverse"); check it is a different kernel set, but symmetric, finite, of the same shape.
    ks = SymmetricKernelSet(4, 9)
    k, _ = ks.kernels()
    ki, _ = ks.kernels(inverse=True)
    assert torch.isfinite(ki).all() and not torch.allclose(k, ki)


def test_lu_point_conv_reverse_inverts_forward():
    torch.manual_seed(1)
    pc = InvertiblePointConv(16)
    w, wi = pc.weight(), pc.inverse_weight()
    assert torch.allclose(wi @ w, torch.eye(16), atol=1e-5)
    # QR-orthogonal init
    assert torch.allclose(w @ w.T, torch.eye(16), atol=1e-5)
    x = torch.randn(3, 16, 5, 4)
    y = F.conv2d(x, w[:, :, None, None])
    assert torch.allclose(F.conv2d(y, wi[:, :, None, None]), x, atol=1e-5)
    # with the disparity modulation: reverse(forward(x)) = x * s * ŝ = x / ||1/s||, a positive per-window constant
    # (no reciprocal truncated: truncate raised so 1/s <= truncate everywhere)
    pc.truncate = 1e6
    r = torch.randn(3, 256)
    back = pc(pc(x, r), r, reverse=True)
    s = pc.scales(r)
    scale = 1.0 / (1.0 / (s + 1e-8)).norm(dim=-1)
    assert torch.allclose(back, x * scale[:, None, None, None], rtol=1e-4, atol=1e-6)


def test_point_conv_modulation_is_softmax_over_channels():
    pc = InvertiblePointConv(8)
    s = pc.scales(torch.randn(5, 256))
    assert torch.allclose(s.sum(-1), torch.ones(5)) and (s > 0).all()
    rs = pc.reciprocal_scales(torch.randn(5, 256))
    assert torch.allclose(rs.norm(dim=-1), torch.ones(5), atol=1e-6)


def test_psf_interaction_starts_as_identity_and_reverse_runs_blocks_backwards():
    stack = PSFStack(8, 3, 5)
    r = torch.randn(4, 256)
    seq = stack.disparity_sequence(r)
    assert all(torch.equal(s, r) for s in seq)  # T is zero at init: r is not changed yet
    with torch.no_grad():
        for blk in stack.blocks:
            blk.interaction.T.normal_()
    seq = stack.disparity_sequence(r)
    assert not torch.allclose(seq[0], r) and not torch.allclose(seq[2], seq[1])
    x = torch.randn(4, 8, 6, 5)
    y = stack(x, r)
    assert y.shape == x.shape and not torch.allclose(stack(x, r, reverse=True), y)


def test_local_correlation_known_answer_and_gradcheck():
    torch.manual_seed(0)
    q = torch.randn(2, 3, 6, 7, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 3, 6, 7, dtype=torch.float64, requires_grad=True)
    a = local_correlation(q, k)
    assert a.shape == (2, 81, 6, 7)
    # brute force with unfold: channel (dy+4)*9 + (dx+4) holds mean_c q(p) k(p + (dy, dx))
    ku = F.unfold(k, 9, padding=4).view(2, 3, 81, 6, 7)
    ref = (q.unsqueeze(2) * ku).mean(1)
    assert torch.allclose(a, ref, atol=1e-12)
    # δ = 0 is channel 40: mean_c q*k at the same pixel
    assert torch.allclose(a[:, 40], (q * k).mean(1))
    # the hand-written backward, at radius 1 (9 shifts) to keep gradcheck fast; borders included
    qs, ks = q[:1, :2, :4, :5].detach().requires_grad_(), k[:1, :2, :4, :5].detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: local_correlation(a, b, radius=1), (qs, ks))


def test_cost_volume_is_zero_filled_and_shifted():
    fl, fr = torch.randn(1, 2, 3, 5), torch.randn(1, 2, 3, 5)
    c = cost_volume(fl, fr, planes=4)
    assert c.shape == (1, 4, 4, 3, 5)
    assert torch.equal(c[:, :2, 2, :, 2:], fl[..., 2:]) and torch.equal(c[:, 2:, 2, :, 2:], fr[..., :-2])
    assert (c[:, :, 3, :, :3] == 0).all()


@pytest.mark.parametrize("window", [(9, 9), (14, 18), (18, 14), (18, 18), (27, 27)])
def test_every_table9_window_gives_one_disparity_cell_per_window(window):
    from k3dn.models.k3dn import size_multiple_for

    mh, mw = size_multiple_for(window)
    assert mh % (8 * window[0]) == 0 and mw % (8 * window[1]) == 0 and mh % 32 == 0 and mw % 32 == 0
    # the head alone (the backbone is size-generic): 1/32-res map of a (mh, mw) input -> nh × nw cells
    est = DisparityEstimator(window).eval()
    grid = (mh // (8 * window[0]), mw // (8 * window[1]))
    with torch.no_grad():
        r = est.head(torch.randn(1, 64, mh // 32, mw // 32), grid)
    assert r.shape == (1, 256) + grid
    assert window_pool((18, 14)) == (5, 4)  # the reconstruction's AvgPool(5, 4)


def test_disparity_vectors_respond_to_a_shift_of_the_right_view():
    torch.manual_seed(0)
    # training-mode BatchNorm: at init the eval-mode running statistics (0, 1) let the signal decay through the
    # untrained 12-layer stack until r is nearly input-independent; batch statistics keep it at unit scale
    est = DisparityEstimator((4, 4)).train()
    left = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        r0 = est(left, left.clone(), (4, 4))
        r1 = est(left, torch.roll(left, 8, dims=-1), (4, 4))
        r2 = est(left, left.clone(), (4, 4))
    assert r0.shape == (1, 256, 4, 4)
    assert torch.allclose(r0, r2)  # deterministic
    assert (r0 - r1).abs().max() > 1e-2 * r0.abs().max()


def test_window_partition_round_trip_and_order():
    x = torch.arange(2 * 3 * 8 * 6, dtype=torch.float32).view(2, 3, 8, 6)
    w = window_partition(x, (4, 3))
    assert w.shape == (2 * 2 * 2, 3, 4, 3)
    assert torch.equal(w[1], x[0, :, 0:4, 3:6]) and torch.equal(w[6], x[1, :, 4:8, 0:3])
    assert torch.equal(window_merge(w, 2, (2, 2)), x)


@pytest.mark.parametrize("mode", ["resize", "pad"])
def test_fit_to_multiple_round_trip(mode):
    x = torch.rand(1, 3, 37, 29)
    y, size = fit_to_multiple(x, (32, 16), mode)
    assert y.shape[-2:] == (64, 32) and size == (37, 29)
    back = restore_from_multiple(y, size, mode)
    assert back.shape == x.shape
    if mode == "pad":
        assert torch.equal(back, x)
        assert torch.equal(y[..., 37, :29], x[..., 35, :])  # reflected, not constant
    else:
        assert (back - x).abs().mean() < 0.1
    same, _ = fit_to_multiple(torch.rand(1, 3, 64, 32), (32, 16), mode)
    assert same.shape[-2:] == (64, 32)
    with pytest.raises(ValueError, match="size mode"):
        fit_to_multiple(x, (32, 16), "crop")


def test_pad_mode_reflects_beyond_the_image_size():
    x = torch.rand(1, 1, 5, 5)
    y, _ = fit_to_multiple(x, (32, 32), "pad")
    assert y.shape[-2:] == (32, 32) and torch.equal(y[..., :5, :5], x)
    assert math.isclose(float(y.min()), float(x.min())) and math.isclose(float(y.max()), float(x.max()))
