"""The batched torch metrics reproduce the scikit-image reference (PSNR to 1e-6 dB, SSIM to 1e-5)."""

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from k3dn.metrics import batch_metrics, image_metrics, to_tensor


def _astronaut(size=160):
    from skimage import data
    from skimage.transform import resize

    return resize(data.astronaut() / 255.0, (size, size + 24), anti_aliasing=True)


def _check(pairs, dtype=torch.float64, psnr_tol=1e-6, ssim_tol=1e-5, other_tol=1e-9):
    x = torch.cat([to_tensor(p) for p, _ in pairs])
    y = torch.cat([to_tensor(t) for _, t in pairs])
    got = batch_metrics(x, y, dtype=dtype)
    for i, (p, t) in enumerate(pairs):
        ref = image_metrics(p, t)
        assert abs(got["psnr"][i].item() - ref["psnr"]) < psnr_tol, (i, got["psnr"][i].item(), ref["psnr"])
        assert abs(got["ssim"][i].item() - ref["ssim"]) < ssim_tol, (i, got["ssim"][i].item(), ref["ssim"])
        assert abs(got["rmse"][i].item() - ref["rmse"]) < other_tol
        assert abs(got["mae"][i].item() - ref["mae"]) < other_tol


def test_parity_random(rng):
    pairs = []
    for noise in (0.02, 0.1, 0.5):
        t = rng.random((37, 53, 3))
        pairs.append((np.clip(t + noise * rng.standard_normal(t.shape), 0, 1), t))
    _check(pairs)


def test_parity_real_looking_blur():
    sharp = _astronaut()
    pairs = [(gaussian_filter(sharp, sigma=(s, s, 0)), sharp) for s in (0.7, 2.0, 4.0)]
    # a quantised 16-bit prediction too
    pairs.append((np.round(pairs[1][0] * 65535) / 65535, sharp))
    _check(pairs)


def test_parity_single_channel(rng):
    sharp = _astronaut().mean(axis=-1, keepdims=True)
    pairs = [(gaussian_filter(sharp, sigma=(1.5, 1.5, 0)), sharp), (rng.random(sharp.shape), rng.random(sharp.shape))]
    _check(pairs)


def test_float32_path_is_close():
    sharp = _astronaut()
    pairs = [(gaussian_filter(sharp, sigma=(2, 2, 0)), sharp)]
    _check(pairs, dtype=torch.float32, psnr_tol=1e-3, ssim_tol=1e-4, other_tol=1e-6)


def test_too_small_raises():
    with pytest.raises(ValueError, match="at least 7x7"):
        batch_metrics(torch.rand(1, 3, 6, 20), torch.rand(1, 3, 6, 20))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_parity_cuda():
    sharp = _astronaut()
    blur = gaussian_filter(sharp, sigma=(2, 2, 0))
    got = batch_metrics(to_tensor(blur, "cuda"), to_tensor(sharp, "cuda"))
    ref = image_metrics(blur, sharp)
    assert abs(got["psnr"].item() - ref["psnr"]) < 1e-6 and abs(got["ssim"].item() - ref["ssim"]) < 1e-5
