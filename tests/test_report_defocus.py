"""Defocus-map metrics (Table 7b): affine invariance, the unlabelled mask, and a constant map's floor."""

import numpy as np
import pytest

from k3dn.report.defocus import score_map


def test_an_affine_image_of_the_truth_is_perfect(rng):
    gt = rng.uniform(1, 255, (24, 32))
    s = score_map(-3.0 * gt + 7.0, gt)  # sign and scale do not matter
    assert s["aiwe1"] < 1e-4 and s["aiwe2"] < 1e-4 and s["one_minus_spearman"] < 1e-12


def test_unlabelled_pixels_do_not_count(rng):
    gt = rng.uniform(1, 255, (24, 32))
    pred = gt.copy()
    gt[:, :8] = 0  # unlabelled
    pred[:, :8] = rng.uniform(-1e3, 1e3, (24, 8))  # garbage there is ignored
    assert score_map(pred, gt)["aiwe2"] < 1e-4
    with pytest.raises(ValueError, match="no labelled pixel"):
        score_map(pred, np.zeros_like(gt))


def test_a_constant_map_scores_the_spread_of_the_truth(rng):
    gt = rng.uniform(1, 255, (24, 32))
    s = score_map(np.zeros_like(gt), gt)
    assert s["aiwe2"] == pytest.approx(gt.std(), rel=1e-4) and s["one_minus_spearman"] == 1.0
    # L1 after the IRLS affine fit: about the mean absolute deviation from the median
    assert s["aiwe1"] == pytest.approx(np.abs(gt - np.median(gt)).mean(), rel=0.05)
    noisy = score_map(gt + rng.normal(0, 20, gt.shape), gt)
    assert noisy["aiwe2"] < s["aiwe2"] and 0 < noisy["one_minus_spearman"] < 0.5
