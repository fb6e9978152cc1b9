"""Known answers for each training loss term and for the combined multi-scale loss."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from k3dn.losses import K3DNLoss, charbonnier, edge_loss, frequency_loss, laplacian, pyramid

EPS = 1e-3


def test_charbonnier_known_values():
    x = torch.zeros(1, 3, 4, 4)
    assert charbonnier(x, x).item() == pytest.approx(EPS, rel=1e-6)
    assert charbonnier(x + 0.5, x).item() == pytest.approx(math.sqrt(0.25 + EPS**2), rel=1e-6)
    d = torch.tensor([0.0, 0.3, -0.4, 1.0]).reshape(1, 1, 2, 2)
    want = np.mean(np.sqrt(np.array([0, 0.09, 0.16, 1.0]) + EPS**2))
    assert charbonnier(d, torch.zeros_like(d)).item() == pytest.approx(want, rel=1e-6)


def _laplacian_reference(img):
    """Independent numpy/scipy version: replicate ('nearest') borders, zero-insertion upsampling."""
    g1 = np.array([0.05, 0.25, 0.4, 0.25, 0.05])
    g = np.outer(g1, g1)
    blur = ndimage.convolve(img, g, mode="nearest")
    up = np.zeros_like(img)
    up[::2, ::2] = 4 * blur[::2, ::2]
    return img - ndimage.convolve(up, g, mode="nearest")


@pytest.mark.parametrize("shape", [(8, 8), (9, 12)])
def test_laplacian_matches_scipy_reference(rng, shape):
    img = rng.random(shape)
    got = laplacian(torch.from_numpy(img)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(got, _laplacian_reference(img), atol=1e-12)


def test_laplacian_of_a_constant_vanishes_inside():
    # With zero insertion, every interior pixel receives Gaussian weights summing to 1/4, times 4.
    lap = laplacian(torch.full((1, 1, 16, 16), 0.7, dtype=torch.float64))
    assert lap[..., 4:-4, 4:-4].abs().max().item() < 1e-12


def test_edge_loss_ignores_what_the_laplacian_cannot_see_and_sees_edges():
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    assert edge_loss(x, x).item() == pytest.approx(EPS)
    y = x.clone()
    y[..., 8, 8] += 1.0  # an impulse: Lap = delta - G*(4 up0(down2(G*delta)))
    assert edge_loss(x, y).item() > EPS * 5


def test_frequency_loss_known_values():
    x = torch.rand(2, 3, 8, 6, dtype=torch.float64)
    # A constant offset c lives only in the DC bin: |c * H * W| / (H * W) = |c|.
    assert frequency_loss(x + 0.25, x).item() == pytest.approx(0.25, rel=1e-12)
    y = torch.rand_like(x)
    want = np.abs(np.fft.fft2(x.numpy()) - np.fft.fft2(y.numpy())).mean()
    assert frequency_loss(x, y).item() == pytest.approx(want, rel=1e-10)


def test_pyramid_is_area_downsampling():
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(1, 1, 2, 2)  # 8x8
    p = pyramid(x, 3)
    assert [t.shape[-1] for t in p] == [8, 4]  # stops: a third level would be 2 px
    assert p[1][0, 0, 0, 0].item() == pytest.approx((0 + 1 + 4 + 5) / 4)


def test_full_loss_known_answers():
    t = torch.rand(2, 3, 32, 32)
    batch = {"target": t}
    crit = K3DNLoss()
    total, parts = crit({"output": t.clone()}, batch)
    # Three scales; at each Charbonnier and the edge term give eps, the frequency term 0.
    assert total.item() == pytest.approx(3 * EPS * (1 + 0.05), rel=1e-5)
    # A constant offset c: Charbonnier sqrt(c^2+eps^2) and FFT |c| at each scale; Lap of c+x - Lap x = Lap c.
    c = 0.1
    out = {"output": t + c}
    total, parts = crit(out, batch)
    lap_c = edge_loss(torch.full((1, 3, 32, 32), c), torch.zeros(1, 3, 32, 32)).item()
    lap_c += edge_loss(torch.full((1, 3, 16, 16), c), torch.zeros(1, 3, 16, 16)).item()
    lap_c += edge_loss(torch.full((1, 3, 8, 8), c), torch.zeros(1, 3, 8, 8)).item()
    want = 3 * math.sqrt(c * c + EPS**2) + 0.05 * lap_c + 0.01 * 3 * c
    assert total.item() == pytest.approx(want, rel=1e-4)


def test_reblur_term_weight_and_switch():
    t = torch.rand(1, 3, 16, 16)
    out = {"output": t, "reblurred": torch.zeros(1, 3, 16, 16), "reblur_target": torch.full((1, 3, 16, 16), 0.5)}
    base, _ = K3DNLoss()({"output": t}, {"target": t})
    with_reb, parts = K3DNLoss()(out, {"target": t})
    assert parts["reblur"].item() == pytest.approx(0.25)
    assert with_reb.item() - base.item() == pytest.approx(0.1 * 0.25, rel=1e-5)
    stage2, parts2 = K3DNLoss()(out, {"target": t}, reblur=False)
    assert "reblur" not in parts2 and stage2.item() == pytest.approx(base.item())


def test_loss_is_float32_under_bf16_inputs():
    t = torch.rand(1, 3, 16, 16)
    total, _ = K3DNLoss()({"output": t.bfloat16()}, {"target": t})
    assert total.dtype == torch.float32
