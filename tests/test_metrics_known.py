"""Known-answer tests of the DPDD metric convention (k3dn.metrics reference path)."""

import math

import cv2
import numpy as np
import pytest
import torch

from k3dn.io import read_image
from k3dn.metrics import batch_metrics, image_metrics, metric_row, psnr, ssim, to_tensor


def test_identical_images(rng):
    x = rng.random((20, 24, 3))
    m = image_metrics(x, x)
    assert m["psnr"] == math.inf and m["ssim"] == pytest.approx(1.0) and m["rmse"] == 0 and m["mae"] == 0
    t = batch_metrics(to_tensor(x), to_tensor(x))
    assert torch.isinf(t["psnr"]).all() and t["psnr"].item() > 0
    assert t["ssim"].item() == pytest.approx(1.0) and t["rmse"].item() == 0


@pytest.mark.parametrize("c", [0.5, 0.1, 1e-2, 1e-3, 3e-5])
def test_constant_offset(rng, c):
    y = rng.random((16, 18, 3)) * 0.5
    x = y + c
    m = image_metrics(x, y)
    assert m["psnr"] == pytest.approx(-20 * math.log10(c), abs=1e-9)
    assert m["rmse"] == pytest.approx(c, rel=1e-9) and m["mae"] == pytest.approx(c, rel=1e-9)
    t = batch_metrics(to_tensor(x), to_tensor(y))
    assert t["psnr"].item() == pytest.approx(-20 * math.log10(c), abs=1e-9)


def test_psnr_over_all_pixels_and_channels():
    y = np.zeros((4, 4, 3))
    x = y.copy()
    x[..., 0] = 0.1  # one channel off by 0.1: MSE = 0.01 / 3
    assert psnr(x, y) == pytest.approx(10 * math.log10(3 / 0.01), abs=1e-12)


def test_ssim_is_mean_of_per_channel(rng):
    from skimage.metrics import structural_similarity

    x, y = rng.random((2, 30, 32, 3))
    per = [structural_similarity(x[..., c], y[..., c], data_range=1.0) for c in range(3)]
    assert ssim(x, y) == pytest.approx(np.mean(per), abs=1e-12)


def test_ssim_single_channel(rng):
    from skimage.metrics import structural_similarity

    x, y = rng.random((2, 30, 32))
    ref = structural_similarity(x, y, data_range=1.0)
    assert ssim(x, y) == pytest.approx(ref, abs=1e-12)
    assert ssim(x[..., None], y[..., None]) == pytest.approx(ref, abs=1e-12)


def test_8bit_vs_16bit_reading_known_relation(tmp_path, rng):
    # v = 256 k + r: the 8-bit reading is k / 255, the 16-bit one (256 k + r) / 65535 = (257 k + r - k) / 65535
    # = k / 255 + (r - k) / 65535, so the two readings differ by exactly (r - k) / 65535.
    k = rng.integers(0, 256, size=(12, 14, 3))
    r = rng.integers(0, 256, size=(12, 14, 3))
    v = (256 * k + r).astype(np.uint16)
    p = tmp_path / "v.png"
    cv2.imwrite(str(p), v[..., ::-1])
    a16 = read_image(p, "16bit").astype(np.float64)
    a8 = read_image(p, "8bit").astype(np.float64)
    assert np.allclose(a8, k / 255, atol=1e-7)
    assert np.allclose(a16 - a8, (r - k) / 65535, atol=1e-7)
    want = 20 * math.log10(65535) - 10 * math.log10(np.mean((r - k) ** 2.0))
    assert psnr(a16, a8) == pytest.approx(want, abs=1e-4)  # float32 readings
    # values 257 k (8-bit data stored in 16 bits) read identically under both protocols
    w = (257 * k).astype(np.uint16)
    cv2.imwrite(str(p), w[..., ::-1])
    assert np.array_equal(read_image(p, "16bit"), read_image(p, "8bit"))


def test_metric_row_records_protocol(rng):
    x, y = rng.random((2, 10, 10, 3))
    row = metric_row(x, y, "8bit", id="a")
    assert row["protocol"] == "8bit" and row["id"] == "a" and set(row) >= {"psnr", "ssim", "rmse", "mae"}
    with pytest.raises(ValueError, match="protocol"):
        metric_row(x, y, "10bit")


def test_shape_mismatch_raises(rng):
    with pytest.raises(ValueError, match="shape"):
        image_metrics(rng.random((8, 8, 3)), rng.random((8, 9, 3)))
