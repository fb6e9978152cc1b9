"""Bootstrap intervals on known cases: identical methods, a constant offset, coverage, determinism."""

import numpy as np
import pytest

from k3dn.report.stats import mean_ci, paired_diff_ci


def test_identical_methods_differ_by_an_interval_around_zero():
    a = np.random.default_rng(1).normal(26, 3, 76)
    d = paired_diff_ci(a, a.copy())
    assert d["mean"] == d["low"] == d["high"] == 0.0 and not d["excludes_zero"]


def test_same_method_with_noise_straddles_zero():
    rng = np.random.default_rng(2)
    a = rng.normal(26, 3, 76)
    d = paired_diff_ci(a + rng.normal(0, 0.2, 76), a + rng.normal(0, 0.2, 76))
    assert d["low"] < 0 < d["high"] and not d["excludes_zero"]


def test_a_constant_half_db_offset_is_resolved():
    a = np.random.default_rng(3).normal(26, 3, 76)
    d = paired_diff_ci(a + 0.5, a)
    assert d["low"] == pytest.approx(0.5) and d["high"] == pytest.approx(0.5) and d["excludes_zero"]
    # with per-image noise around the offset, 17 images (the Pixel set) still resolve it
    rng = np.random.default_rng(4)
    b = rng.normal(26, 3, 17)
    d = paired_diff_ci(b + 0.5 + rng.normal(0, 0.3, 17), b)
    assert 0 < d["low"] < 0.5 < d["high"] and d["excludes_zero"]
    # unpaired, the same gap is hidden by the image-to-image spread
    lo_a, hi_a = mean_ci(b + 0.5)
    lo_b, hi_b = mean_ci(b)
    assert lo_a < hi_b


def test_mean_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(5)
    hits = 0
    for trial in range(200):
        lo, hi = mean_ci(rng.normal(25.0, 3.0, 76), n_boot=2000, seed=trial)
        hits += lo <= 25.0 <= hi
    assert 0.88 <= hits / 200 <= 0.99


def test_fixed_seed_same_numbers_and_bad_input_named():
    v = np.random.default_rng(6).normal(26, 3, 76)
    assert mean_ci(v) == mean_ci(v.copy())
    assert mean_ci(v, seed=1) != mean_ci(v)
    with pytest.raises(ValueError, match="dpdd.csv: 1 non-finite"):
        mean_ci([1.0, np.inf], name="dpdd.csv")
    with pytest.raises(ValueError, match="differ in length"):
        paired_diff_ci([1.0, 2.0], [1.0])
