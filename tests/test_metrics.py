"""actfx.metrics: paired-difference intervals and robustness summaries against
hand-computed values (the shape-bias metric is tested in test_shape_bias.py)."""

import math

import numpy as np
import pytest
from scipy import stats

from actfx.metrics import (
    CORRUPTION_FAMILIES,
    corruption_family,
    family_accuracy,
    mean_corruption_accuracy,
    paired_difference,
    relative_change,
    relative_drop,
)


def test_paired_t_interval_hand_computed():
    # d = [0.02, 0.02, 0.01, 0.03]: mean 0.02, s_d = sqrt(2e-4 / 3), t_{0.975, 3} = 3.18245
    d = paired_difference([0.90, 0.92, 0.91, 0.93], [0.88, 0.90, 0.90, 0.90])
    sd = math.sqrt(2e-4 / 3)
    half = 3.182446305284263 * sd / 2
    assert d.mean == pytest.approx(0.02)
    assert d.std == pytest.approx(sd)
    assert (d.low, d.high) == pytest.approx((0.02 - half, 0.02 + half))
    assert d.n == 4 and d.method == "t" and d.excludes_zero()
    # 90 % interval is narrower; swapping a and b negates everything
    d90 = paired_difference([0.90, 0.92, 0.91, 0.93], [0.88, 0.90, 0.90, 0.90], confidence=0.9)
    assert d90.high - d90.low < d.high - d.low
    neg = paired_difference([0.88, 0.90, 0.90, 0.90], [0.90, 0.92, 0.91, 0.93])
    assert (neg.mean, neg.low, neg.high) == pytest.approx((-d.mean, -d.high, -d.low))


def test_paired_t_interval_matches_scipy_and_uses_pairing():
    rng = np.random.default_rng(0)
    base = rng.normal(0.8, 0.05, size=7)  # large between-seed variance
    a, b = base + 0.01 + rng.normal(0, 0.002, 7), base
    d = paired_difference(a, b)
    ref = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert (d.low, d.high) == pytest.approx((ref.low, ref.high))
    assert d.low > 0  # pairing removes the seed variance; an unpaired interval would not
    unpaired = stats.ttest_ind(a, b).confidence_interval(0.95)
    assert unpaired.low < 0


def test_paired_bootstrap_interval():
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    d = paired_difference(a, a - np.array([1.0, 1.0, 1.0, 1.0, 1.0]), method="bootstrap")
    assert (d.mean, d.low, d.high) == (1.0, 1.0, 1.0)  # constant differences
    d = paired_difference(a, np.zeros(5), method="bootstrap", num_resamples=4000, seed=1)
    assert d.low < 3.0 < d.high and 1.0 <= d.low and d.high <= 5.0
    assert d == paired_difference(a, np.zeros(5), method="bootstrap", num_resamples=4000, seed=1)


def test_paired_difference_single_pair_and_errors():
    d = paired_difference([0.5], [0.4])
    assert d.mean == pytest.approx(0.1) and d.low == -math.inf and d.high == math.inf
    assert not d.excludes_zero()
    with pytest.raises(ValueError, match="equal non-zero length"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        paired_difference([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(ValueError, match="confidence"):
        paired_difference([1.0, 2.0], [1.0, 2.0], confidence=1.5)
    with pytest.raises(ValueError, match="method"):
        paired_difference([1.0, 2.0], [1.0, 2.0], method="z")
    with pytest.raises(ValueError, match="num_resamples"):
        paired_difference([1.0, 2.0], [1.0, 2.0], method="bootstrap", num_resamples=0)


def test_paired_difference_format():
    d = paired_difference([0.9, 0.92], [0.9, 0.9])
    assert d.format(100).startswith("+1.00 [")


def test_robustness_summaries_hand_computed():
    acc = {
        "gaussian_noise": [0.9, 0.7],
        "impulse_noise": [0.6, 0.6],
        "gaussian_blur": [0.8, 0.8],
        "contrast": [0.2, 0.4],
    }
    # corruption means 0.8, 0.6, 0.8, 0.3 -> 2.5 / 4
    assert mean_corruption_accuracy(acc) == pytest.approx(0.625)
    fam = family_accuracy(acc)
    assert fam == {
        "noise": pytest.approx(0.7),
        "blur": pytest.approx(0.8),
        "contrast": pytest.approx(0.3),
    }
    assert relative_drop(0.8, 0.625) == pytest.approx(0.21875)
    assert corruption_family("jpeg_compression") == "digital"
    assert all(corruption_family(c) == f for f, cs in CORRUPTION_FAMILIES.items() for c in cs)
    with pytest.raises(ValueError, match="in no family"):
        corruption_family("rain")
    with pytest.raises(ValueError, match="in no family"):
        family_accuracy({"rain": [0.5]})
    with pytest.raises(ValueError, match="non-empty"):
        mean_corruption_accuracy({})
    with pytest.raises(ValueError, match="finite"):
        mean_corruption_accuracy({"contrast": [float("nan")]})
    with pytest.raises(ValueError, match="clean"):
        relative_drop(0.0, 0.5)


def test_relative_change_hand_computed():
    clean = np.array([[[3.0, 4.0]], [[1.0, 0.0]], [[0.0, 0.0]]])
    noisy = np.array([[[3.0, 5.0]], [[0.0, 1.0]], [[0.0, 0.0]]])
    np.testing.assert_allclose(relative_change(clean, noisy), [0.2, math.sqrt(2), 0.0])
    assert relative_change(np.zeros((1, 2)), np.ones((1, 2)))[0] == math.inf
    with pytest.raises(ValueError, match="same shape"):
        relative_change(np.zeros((2, 3)), np.zeros((2, 4)))
