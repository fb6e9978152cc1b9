"""baselines.wiener: two-view Wiener deconvolution with per-patch scale selection, on synthetic DP blur
whose true kernels are known (half-disks of a given signed radius, different per region)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.wiener import DPWiener, half_disk_kernels, load_kernels, scale_kernel, wiener
from k3dn.metrics import psnr

H, W, P = 64, 128, 32


@pytest.fixture(scope="module")
def sharp():
    from skimage import data
    from skimage.transform import resize

    img = resize(data.astronaut()[40:300, 100:480] / 255.0, (H, W), anti_aliasing=True)
    return torch.from_numpy(img.transpose(2, 0, 1)).float()[None]


def _blur(x, k):
    """True (not flipped) convolution with a reflect-padded border."""
    k = torch.as_tensor(np.ascontiguousarray(k), dtype=torch.float32)
    r = k.shape[-1] // 2
    w = k.flip(-1, -2)[None, None].expand(x.shape[1], 1, *k.shape).contiguous()
    return F.conv2d(F.pad(x, (r, r, r, r), mode="reflect"), w, groups=x.shape[1])


def _two_regions(x, kernels_a, kernels_b):
    """Left half of the frame blurred by pair a, right half by pair b."""
    views = []
    for ka, kb in zip(kernels_a, kernels_b):
        views.append(torch.cat([_blur(x, ka)[..., : W // 2], _blur(x, kb)[..., W // 2 :]], dim=-1))
    return views


def _inside(model, region, buffer=8):
    """Columns of the patches lying in the left (0) or right (1) half of the frame, ``buffer`` px from the
    boundary (a patch touching it deconvolves context blurred by the other region's kernels)."""
    xs = model.tile_starts(W)
    cols = [j for j, x0 in enumerate(xs) if (x0 + P <= W // 2 - buffer if region == 0 else x0 >= W // 2 + buffer)]
    assert len(cols) >= 2
    return cols


def _np(t):
    return t[0].numpy().transpose(1, 2, 0).astype(np.float64)


def test_half_disk_kernels():
    kl, kr = half_disk_kernels([-3, 0, 4])
    assert kl.shape == kr.shape == (3, 11, 11)
    assert np.allclose(kl.sum((1, 2)), 1) and np.allclose(kr.sum((1, 2)), 1)
    assert np.allclose(kr, kl[:, :, ::-1])  # K_R(x, y) = K_L(-x, y)
    assert kl[1, 5, 5] == 1 and kr[1, 5, 5] == 1  # r = 0: delta
    xs = np.arange(11) - 5
    cx = lambda k: float((k.sum(0) * xs).sum())  # noqa: E731
    assert cx(kl[2]) < -1 and cx(kr[2]) > 1  # r > 0: left kernel on the left
    assert cx(kl[0]) > 1 and cx(kr[0]) < -1  # r < 0: swapped
    k4 = half_disk_kernels([4])[0][0]
    assert np.allclose(kl[0], half_disk_kernels([3], size=11)[1][0])
    assert abs(cx(k4) + 4 * 4 / (3 * np.pi)) < 0.15  # centroid of a half-disk: 4r / 3pi


def test_scale_kernel():
    k = half_disk_kernels([8], size=31)[0][0]
    assert np.allclose(scale_kernel(k, 1.0, 31), k, atol=1e-12)
    assert np.allclose(scale_kernel(k, -1.0, 31), k[::-1, ::-1], atol=1e-12)  # point reflection
    assert scale_kernel(k, 0.0, 9)[4, 4] == 1
    half = scale_kernel(k, 0.5, 31)
    assert half.sum() == pytest.approx(1) and np.abs(half - half_disk_kernels([4], size=31)[0][0]).sum() < 0.35
    big = scale_kernel(k, 1.5, 41)
    assert (big > 0).sum() > 2 * (k > 0).sum()  # enlarged without holes
    assert np.abs(big - half_disk_kernels([12], size=41)[0][0]).sum() < 0.2


def test_parametric_recovers_radius_per_region_and_deblurs(sharp):
    ra, rb = 3, -5
    ka, kb = half_disk_kernels([ra], size=13), half_disk_kernels([rb], size=13)
    left, right = _two_regions(sharp, (ka[0][0], ka[1][0]), (kb[0][0], kb[1][0]))
    g = torch.Generator().manual_seed(0)
    left = left + 0.002 * torch.randn(left.shape, generator=g)
    right = right + 0.002 * torch.randn(right.shape, generator=g)
    m = wiener(radii=np.arange(-6, 7), patch=P)
    out = m({"left": left, "right": right})
    scale = out["scale"][0].numpy()
    assert scale.shape == (len(m.tile_starts(H)), len(m.tile_starts(W)))
    assert (scale[:, _inside(m, 0)] == ra).all(), scale
    assert (scale[:, _inside(m, 1)] == rb).all(), scale
    y = _np(sharp)
    blurry = psnr(_np(((left + right) / 2).clamp(0, 1)), y)
    got = psnr(_np(out["output"]), y)
    assert got > blurry + 3, (got, blurry)
    assert out["output"].shape == sharp.shape and out["output"].min() >= 0 and out["output"].max() <= 1


def test_calibrated_kernels_per_cell_and_scale(sharp, tmp_path):
    # two calibrated kernels on a 1x2 grid: a half-disk (left cell) and a half-box (right cell)
    disk_l, disk_r = (k[0] for k in half_disk_kernels([8], size=21))
    box_l = np.zeros((21, 21))
    box_l[4:17, 3:10] = 1
    box_l /= box_l.sum()
    box_r = box_l[:, ::-1].copy()
    np.savez(
        tmp_path / "k.npz",
        left=np.stack([disk_l, box_l]).astype(np.float32),
        right=np.stack([disk_r, box_r]).astype(np.float32),
    )
    scales = np.linspace(-1, 1, 9)  # step 0.25
    sa, sb = 0.5, -0.75
    size = 21
    pair_a = (scale_kernel(disk_l, sa, size), scale_kernel(disk_r, sa, size))
    pair_b = (scale_kernel(box_l, sb, size), scale_kernel(box_r, sb, size))
    left, right = _two_regions(sharp, pair_a, pair_b)
    m = wiener(kernels=str(tmp_path / "k.npz"), grid=(1, 2), scales=scales, patch=P)
    assert m.mode == "calibrated" and m.kernels_left.shape[:2] == (2, 9)
    out = m({"left": left, "right": right})
    scale = out["scale"][0].numpy()
    assert np.allclose(scale[:, _inside(m, 0)], sa), scale
    assert np.allclose(scale[:, _inside(m, 1)], sb), scale
    y = _np(sharp)
    assert psnr(_np(out["output"]), y) > psnr(_np((left + right) / 2), y) + 3


def test_registry_contract_and_pixel_format(tmp_path):
    m = wiener(radii=[-1, 0, 1], patch=16)
    assert m.input_views == ("left", "right") and m.size_multiple == (1, 1) and m.size_mode == "pad"
    assert len(list(m.parameters())) == 0 and len(m.state_dict()) == 0
    x = torch.rand(2, 3, 20, 28)
    out = m({"left": x, "right": x})
    assert out["output"].shape == x.shape and out["scale"].shape[0] == 2
    # Pixel layout: calibration/blur_kernels_{left,right}.npy, (48, 61, 61) -> a 6x8 grid
    kl, kr = half_disk_kernels([5], size=61)
    np.save(tmp_path / "blur_kernels_left.npy", np.repeat(kl, 48, 0).astype(np.float32))
    np.save(tmp_path / "blur_kernels_right.npy", np.repeat(kr, 48, 0).astype(np.float32))
    assert load_kernels(tmp_path)[0].shape == (48, 61, 61)
    pm = DPWiener(kernels=tmp_path, scales=[-1, 0, 1], patch=16)
    assert pm.grid == (6, 8) and pm.kernels_left.shape[:2] == (48, 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="blur_kernels_left.npy"):
        load_kernels(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="nothing_here.npz: kernel file not found"):
        load_kernels(tmp_path / "nothing_here.npz")
    with pytest.raises(ValueError, match="grid"):
        DPWiener(kernels=(np.repeat(kl, 5, 0), np.repeat(kr, 5, 0)))


def test_pair_centroid_moves_both_kernels_and_scales_with_the_blur_size():
    from baselines.wiener import centroid, pair_shifts

    kl, kr = half_disk_kernels([5.0], size=31)
    kl, kr = np.roll(kl[0], (-1, 2), (0, 1)), np.roll(kr[0], (-1, 2), (0, 1))  # pair centroid at (-1, +2)
    np.testing.assert_allclose((centroid(kl) + centroid(kr)) / 2, [-1.0, 2.0], atol=1e-12)
    shift = pair_shifts(kl[None], kr[None], (0.5, -1.0))[0]
    np.testing.assert_allclose(shift, [1.5, -3.0], atol=1e-12)
    for s in (1.0, 1.7, -0.6):
        a, b = scale_kernel(kl, s, 41, shift), scale_kernel(kr, s, 41, shift)
        # bilinear splatting keeps the first moment: the pair's centroid is exactly s x the target
        np.testing.assert_allclose((centroid(a) + centroid(b)) / 2, [0.5 * s, -1.0 * s], atol=1e-9)
        # both kernels moved by the same amount: their separation (the disparity) is untouched
        np.testing.assert_allclose(centroid(b) - centroid(a), s * (centroid(kr) - centroid(kl)), atol=1e-9)
    np.testing.assert_array_equal(pair_shifts(kl[None], kr[None], None), [[0.0, 0.0]])
    with pytest.raises(ValueError, match="pair_centroid"):
        DPWiener(pair_centroid=(0.0, 0.0))  # no calibrated kernels to move
    with pytest.raises(ValueError, match="two finite numbers"):
        pair_shifts(kl[None], kr[None], (0.0, float("nan")))


def test_pair_centroid_registers_the_result_with_the_sharp_image(sharp):
    """Views blurred by a centred pair, deconvolved with the same pair stored 2 px off (a calibration whose origin
    is not the ground truth's): as stored, the result is shifted by those 2 px; with ``pair_centroid=(0, 0)`` it
    is registered with the sharp image again."""
    from skimage.registration import phase_cross_correlation

    kl, kr = half_disk_kernels([4.0], size=21)
    views = [_blur(sharp, k) for k in (kl[0], kr[0])]
    stored = tuple(np.roll(k, (0, -2), (0, 1))[None] for k in (kl[0], kr[0]))
    results = {}
    for name, kw in {"stored": {}, "centred": {"pair_centroid": (0.0, 0.0)}}.items():
        m = DPWiener(kernels=stored, grid=(1, 1), scales=[1.0], patch=P, **kw)
        out = m.deblur(*views)[0]
        ours, want = _np(out)[8:-8, 8:-8], _np(sharp)[8:-8, 8:-8]
        shift = phase_cross_correlation(want.mean(-1), ours.mean(-1), upsample_factor=10)[0]
        results[name] = (psnr(ours, want), shift)
    # measured: stored 16.5 dB, shifted by 2.0 px in x (the blurry input: 19.3 dB); centred 29.6 dB, no shift
    assert abs(results["stored"][1][1]) > 1.5 and np.abs(results["centred"][1]).max() < 0.3
    assert results["centred"][0] > results["stored"][0] + 3
