"""Physics of the synthetic DP renderer: thin lens, half-aperture PSFs, layered rendering with occlusion."""

import math

import numpy as np
import pytest

from k3dn.synth.optics import coc_scale_px, depth_for_coc, signed_coc_px
from k3dn.synth.psf import centroid_x, disparity_map, half_aperture_psfs, psf_disparity_px
from k3dn.synth.render import quantise_coc, render_dp, render_layers


# ---------------------------------------------------------------- thin lens
def test_coc_known_answer_and_sign():
    # f = 50 mm, N = 2 -> A = 25 mm; focus 2 m, depth 4 m: c = 25 * 50/1950 * 0.5 mm = 0.320513 mm = 64.1026 px @ 5 µm
    c = signed_coc_px(4.0, 2.0, 50.0, 2.0, pixel_pitch_um=5.0)
    assert c == pytest.approx(0.025 * 0.05 / 1.95 * 0.5 / 5e-6, rel=1e-12)
    assert c == pytest.approx(64.1026, abs=1e-3)
    assert signed_coc_px(2.0, 2.0, 50.0, 2.0, pixel_pitch_um=5.0) == 0.0
    assert signed_coc_px(1.0, 2.0, 50.0, 2.0, pixel_pitch_um=5.0) < 0  # in front of the focal plane
    # f_pix convention (DDDNet): pitch = f / f_pix
    assert signed_coc_px(4.0, 2.0, 50.0, 2.0, f_pix=10000) == pytest.approx(c)
    scale = coc_scale_px(2.0, 50.0, 2.0, pixel_pitch_um=5.0)
    assert depth_for_coc(c, 2.0, scale) == pytest.approx(4.0)
    with pytest.raises(ValueError):
        signed_coc_px(0.0, 2.0, 50.0, 2.0, pixel_pitch_um=5.0)


# ---------------------------------------------------------------- PSFs
@pytest.mark.parametrize("kind", ["disk", "butterworth"])
@pytest.mark.parametrize("coc", [0.0, 0.7, 1.3, 3.0, 9.5, 24.0])
def test_psfs_normalised_mirrored_and_swapped(kind, coc):
    kl, kr, kc = half_aperture_psfs(coc, kind=kind)
    for k in (kl, kr, kc):
        assert k.dtype == np.float64 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
        assert k.sum() == pytest.approx(1.0, abs=1e-12)
        assert k.min() >= 0
    np.testing.assert_array_equal(kr, kl[:, ::-1])
    np.testing.assert_allclose(kc, kc[:, ::-1], atol=1e-15)
    np.testing.assert_allclose(kc, (kl + kr) / 2, atol=1e-15)
    nl, nr, nc = half_aperture_psfs(-coc, kind=kind)
    np.testing.assert_array_equal(nl, kr)
    np.testing.assert_array_equal(nr, kl)
    if coc >= 3:
        assert centroid_x(kl) > 0 > centroid_x(kr)  # positive CoC: left view's PSF on the right half


def test_zero_radius_is_delta_and_blur_grows_smoothly():
    kl, kr, kc = half_aperture_psfs(0.0)
    assert kl.shape == (1, 1) and kl[0, 0] == 1.0
    cocs = np.linspace(0.0, 4.0, 81)
    spread = []
    for c in cocs:
        k = half_aperture_psfs(c, size=9)[2]
        y, x = np.mgrid[-4:5, -4:5]
        spread.append(float((k * (x**2 + y**2)).sum()))
    spread = np.array(spread)
    assert np.all(np.diff(spread) >= -1e-12)  # monotone
    assert np.max(np.diff(spread)) < 0.25  # no jumps between 0.05 px steps
    assert spread[-1] == pytest.approx(2.0**2 / 2 + 1 / 6, rel=0.05)  # E[ρ²] = r²/2 (+1/6 from pixel area)


def test_disk_disparity_matches_half_disk_centroids():
    for c in (10.0, 30.0, -30.0):
        assert psf_disparity_px(c) == pytest.approx(4 * c / (3 * math.pi), rel=0.01)
    d = disparity_map(np.array([[-20.0, 0.0, 20.0]]))
    assert d[0, 0] == pytest.approx(-d[0, 2]) and d[0, 1] == 0 and d[0, 2] > 8


# ---------------------------------------------------------------- rendering
def _texture(rng, h=48, w=64):
    return rng.uniform(0, 1, (h, w, 3))


def test_in_focus_scene_renders_to_its_input(rng):
    img = _texture(rng)
    v = render_dp(img, np.zeros(img.shape[:2]), n_layers=16)
    for x in (v.left, v.right, v.center):
        np.testing.assert_allclose(x, img, atol=1e-7)


def _point_views(coc, size=61):
    img = np.zeros((size, size, 1))
    img[size // 2, size // 2] = 1.0
    return render_dp(img, np.full((size, size), coc), n_layers=4)


def test_point_source_shift_flips_sign_and_grows_energy_kept():
    def centroid(im):
        x = np.arange(im.shape[1])
        return float((im[..., 0].sum(axis=0) * x).sum() / im.sum())

    shifts = {}
    for coc in (-16.0, -8.0, -3.0, 3.0, 8.0, 16.0):
        v = _point_views(coc)
        for x in (v.left, v.right, v.center):
            assert x.sum() == pytest.approx(1.0, abs=1e-5)  # kernel fully inside: energy preserved
        shifts[coc] = centroid(v.left) - centroid(v.right)
        assert centroid(v.center) == pytest.approx(30.0, abs=1e-4)
    for c in (3.0, 8.0, 16.0):
        assert shifts[c] > 0 > shifts[-c]
        assert shifts[c] == pytest.approx(-shifts[-c], abs=1e-5)
        assert shifts[c] == pytest.approx(psf_disparity_px(c), abs=1e-4)
    assert shifts[3.0] < shifts[8.0] < shifts[16.0]


def test_mirror_symmetric_scene_gives_mirrored_views(rng):
    half = _texture(rng, 40, 30)
    img = np.concatenate([half, half[:, ::-1]], axis=1)
    yy, xx = np.mgrid[:40, :30]
    coc_half = np.where((yy - 20) ** 2 + (xx - 18) ** 2 < 64, -9.0, 6.0 + 0.2 * xx)
    coc = np.concatenate([coc_half, coc_half[:, ::-1]], axis=1)
    v = render_dp(img, coc, n_layers=8)
    np.testing.assert_allclose(v.left, v.right[:, ::-1], atol=1e-6)
    np.testing.assert_allclose(v.center, v.center[:, ::-1], atol=1e-6)
    assert np.abs(v.left - v.right).max() > 0.05  # the views do differ


def test_uniform_scene_stays_uniform_and_mean_preserved(rng):
    coc = rng.uniform(-12, 12, (40, 50))
    v = render_dp(np.full((40, 50, 3), 0.37), coc, n_layers=10)
    for x in (v.left, v.right, v.center):
        np.testing.assert_allclose(x, 0.37, atol=1e-6)  # no dark fringes at layer boundaries
    img = _texture(rng, 64, 64)
    v = render_dp(img, np.full((64, 64), 7.0), n_layers=3)
    inner = (slice(12, -12), slice(12, -12))
    for x in (v.left, v.right, v.center):
        assert x[inner].mean() == pytest.approx(img[inner].mean(), abs=0.01)


def _occlusion_scene(fg_coc, bg_coc):
    h, w = 64, 64
    stripes = (np.arange(w) // 4 % 2).astype(float)
    img = np.repeat(np.repeat(stripes[None, :, None], h, 0), 3, 2) * 0.8 + 0.1
    fg = np.zeros((h, w), bool)
    fg[20:44, 20:44] = True
    img[fg] = [1.0, 0.0, 0.0]
    labels = fg.astype(int)
    return img, fg, labels, np.array([bg_coc, fg_coc])


def test_sharp_foreground_is_not_blurred_by_background_kernel():
    img, fg, labels, cocs = _occlusion_scene(fg_coc=0.0, bg_coc=14.0)
    v = render_layers(img, labels, cocs, order=[0, 1])
    for x in (v.left, v.right, v.center):
        np.testing.assert_allclose(x[fg], img[fg], atol=1e-7)  # occluder stays exactly sharp
        assert np.abs(x[~fg] - img[~fg]).max() > 0.2  # background is blurred
        assert x[~fg][:, 0].max() < 0.95  # and receives no red from the occluder


def test_blurred_foreground_spills_over_sharp_background():
    img, fg, labels, cocs = _occlusion_scene(fg_coc=-14.0, bg_coc=0.0)
    v = render_layers(img, labels, cocs, order=[0, 1])
    c = v.center
    ring = np.zeros_like(fg)
    ring[16:48, 16:48] = True
    ring &= ~fg
    red = c[..., 0] - c[..., 1]
    assert red[ring].mean() > 0.1  # foreground colour bleeds outward
    np.testing.assert_allclose(c[:8], img[:8], atol=1e-7)  # far from the occluder: sharp, unchanged

    # DP views of the near occluder are shifted in opposite directions (negative CoC: left view moves left)
    def colmass(x):
        return (x[..., 0] - x[..., 1]).clip(0).sum(0)

    xs = np.arange(64)
    cl = (colmass(v.left) * xs).sum() / colmass(v.left).sum()
    cr = (colmass(v.right) * xs).sum() / colmass(v.right).sum()
    assert cl < cr


def test_quantise_coc_keeps_constant_values_exact():
    labels, vals = quantise_coc(np.full((5, 5), 3.25), 16)
    assert labels.max() == 0 and vals[0] == 3.25
    labels, vals = quantise_coc(np.linspace(-10, 10, 100).reshape(10, 10), 4)
    assert len(vals) == 4 and np.all(np.diff(vals) > 0)
    with pytest.raises(ValueError):
        quantise_coc(np.array([[np.nan]]), 4)
