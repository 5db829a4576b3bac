"""Reliability of actfx.bayes: bad arguments named, diverged MAP fits refused, convergence
warnings, wall time with the MAP initialisation, range checks of the calibration metrics and
the pruning utilities, and the ArviZ export."""

import inspect
import sys
import warnings

import numpy as np
import pytest
from planted_prelu import PRELU, XP, YP  # the planted PReLU teacher

from actfx._src.bayes.inference import _convergence_warnings
from actfx.bayes import (
    MAPDivergedError,
    MCMCConvergenceWarning,
    ProximalHMC,
    SparseMLP,
    brier_score,
    expected_calibration_error,
    map_estimate,
    multistart_map,
    negative_log_likelihood,
    prob_small,
    prune_masks,
    reliability_curve,
    run_mcmc,
    site_r_hats,
    to_inference_data,
)


# --- MAP initialisation --------------------------------------------------------------------
@pytest.mark.parametrize("lr", [float("nan"), float("inf"), 0.0, -1e-3, "0.01", True])
def test_map_learning_rate_validated(lr):
    with pytest.raises(ValueError, match="learning_rate must be a finite float > 0"):
        map_estimate(PRELU, XP, YP, num_steps=5, learning_rate=lr)


def test_map_that_diverges_is_an_error_never_a_start_point():
    with pytest.raises(MAPDivergedError, match="learning_rate=1000000.0"):
        map_estimate(PRELU, XP, YP, num_steps=50, learning_rate=1e6)
    with pytest.raises(MAPDivergedError):  # run_mcmc never samples from it
        run_mcmc(PRELU, XP, YP, map_steps=50, map_learning_rate=1e6, num_warmup=5, num_samples=5)
    with pytest.raises(ValueError, match="optimizer must be an optax.GradientTransformation"):
        map_estimate(PRELU, XP, YP, num_steps=5, optimizer="adam")


def test_multistart_map_restarts_really_differ_and_best_is_returned():
    pts, losses = multistart_map(PRELU, XP, YP, num_restarts=3, num_steps=30, seed=4)
    slopes = [float(p["layer0/act/slope"]) for p in pts]
    assert len(set(np.round(slopes, 5))) == 3, (
        slopes
    )  # distinct random starts, not one start thrice
    assert losses.shape == (3,) and np.all(np.isfinite(losses))
    best = map_estimate(PRELU, XP, YP, num_restarts=3, num_steps=30, seed=4)
    np.testing.assert_allclose(best["layer0/act/slope"], slopes[int(np.argmin(losses))], rtol=1e-5)
    # restart 0 of a multistart is the single-start fit with the same seed
    one = map_estimate(PRELU, XP, YP, num_restarts=1, num_steps=30, seed=4)
    np.testing.assert_allclose(one["layer0/act/slope"], slopes[0], rtol=1e-5)


# --- argument checks -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, name",
    [
        ({"max_tree_depth": 0}, "max_tree_depth"),
        ({"max_tree_depth": 2.5}, "max_tree_depth"),
        ({"max_tree_depth": (3, 0)}, "max_tree_depth"),
        ({"num_leapfrog": 0}, "num_leapfrog"),
        ({"map_steps": 0}, "map_steps"),
        ({"num_samples": 10.0}, "num_samples"),
        ({"seed": -1}, "seed"),
        ({"target_accept_prob": float("nan")}, "target_accept_prob"),
        ({"target_accept_prob": 1.0}, "target_accept_prob"),
        ({"chain_method": "threads"}, "chain_method"),
        ({"max_r_hat": 0.5}, "max_r_hat"),
        ({"max_divergence_rate": float("nan")}, "max_divergence_rate"),
        ({"init": [{}]}, "init"),
    ],
)
def test_run_mcmc_arguments_named(kw, name):
    with pytest.raises(ValueError, match=name):
        run_mcmc(PRELU, XP, YP, **kw)


def test_numpyro_default_tree_depth_and_leapfrog_name():
    sig = inspect.signature(run_mcmc).parameters
    assert sig["max_tree_depth"].default == 10  # NumPyro's NUTS default
    assert "num_leapfrog" in sig and "num_steps" not in sig  # num_steps = optimiser steps only
    assert "num_leapfrog" in inspect.signature(ProximalHMC).parameters


def test_per_chain_init_rejects_non_finite_points():
    good = map_estimate(PRELU, XP, YP, num_steps=20)
    bad = dict(good, **{"layer0/act/slope": np.float32(np.nan)})
    with pytest.raises(ValueError, match="non-finite"):
        run_mcmc(PRELU, XP, YP, init=[good, bad], num_warmup=5, num_samples=5)


# --- convergence warnings and timing --------------------------------------------------------
def test_convergence_warning_logic():
    r = np.random.default_rng(1)
    mixed = {"a": r.normal(size=(2, 200)), "b": r.normal(size=(2, 200, 3))}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        msgs, top = _convergence_warnings(mixed, ["a", "b"], 1, 400, 0.01, 1.01)
    assert msgs == () and top < 1.01
    stuck = {"a": np.stack([r.normal(size=200), 5 + r.normal(size=200)]), "b": mixed["b"]}
    with pytest.warns(
        MCMCConvergenceWarning, match=r"R-hat > 1.01 on 1 of 2 sample sites \(worst: a "
    ):
        msgs, top = _convergence_warnings(stuck, ["a", "b"], 0, 400, 0.01, 1.01)
    assert top > 2
    with pytest.warns(
        MCMCConvergenceWarning, match=r"5 of 400 post-warm-up transitions diverged \(1.2 %"
    ):
        _convergence_warnings(mixed, ["a", "b"], 5, 400, 0.01, 1.01)
    np.testing.assert_allclose(site_r_hats(stuck)["a"], top)


@pytest.mark.slow
def test_divergent_run_warns_end_to_end():
    with pytest.warns(MCMCConvergenceWarning, match="diverged"):
        run_mcmc(
            PRELU, XP, YP, num_warmup=10, num_samples=40, map_steps=50, target_accept_prob=0.99
        )


# --- calibration metrics ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "fn", [expected_calibration_error, brier_score, negative_log_likelihood, reliability_curve]
)
@pytest.mark.parametrize(
    "p, y, match",
    [
        ([1.5, 0.2], [1, 0], r"p must hold probabilities in \[0, 1\]"),
        ([-0.2, 0.2], [1, 0], r"p must hold probabilities in \[0, 1\]"),
        ([np.nan, 0.2], [1, 0], "p must hold finite probabilities"),
        ([[0.7, 0.7], [0.5, 0.5]], [1, 0], "rows that sum to 1"),
        ([0.5, 0.2], [1, np.nan], "y must hold integer labels"),
        ([0.5, 0.2], [1, 2], "y must hold integer labels"),
        ([0.5, 0.2, 0.1], [1, 0], "p must be"),
        ([], [], "N >= 1"),
    ],
)
def test_calibration_rejects_out_of_range_inputs(fn, p, y, match):
    with pytest.raises(ValueError, match=match):
        fn(p, y)


def test_calibration_bins_and_eps_validated():
    with pytest.raises(ValueError, match="num_bins must be an int >= 1"):
        expected_calibration_error([0.5], [1], num_bins=0)
    with pytest.raises(ValueError, match="eps must be a float in"):
        negative_log_likelihood([0.5], [1], eps=float("nan"))
    # the valid edge: probabilities exactly 0 and 1
    assert brier_score([1.0, 0.0], [1, 0]) == 0.0


# --- pruning -----------------------------------------------------------------------------------
def test_prune_masks_reject_nan_threshold_and_eps():
    m = SparseMLP((2, 3, 1), activation="relu")
    s = {"layer0/w": np.ones((10, 2, 3)), "layer1/w": np.ones((10, 3, 1))}
    for thr in (float("nan"), -0.1, 1.5, "0.5"):
        with pytest.raises(ValueError, match="threshold must be a float in"):
            prune_masks(m, s, threshold=thr)
    for eps in (float("nan"), float("inf"), 0.0, -1.0):
        with pytest.raises(ValueError, match="eps must be a finite float > 0"):
            prune_masks(m, s, eps=eps)
        with pytest.raises(ValueError, match="eps must be a finite float > 0"):
            prob_small(s["layer0/w"], eps)
    with pytest.raises(ValueError, match="missing"):
        prune_masks(m, {"layer0/w": s["layer0/w"]})
    assert all(v.all() for v in prune_masks(m, s).values())  # nothing pruned at |w| = 1


# --- ArviZ export (the run-based test lives in test_bayes_inference.py) ------------------------
def test_to_inference_data_without_arviz_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "arviz", None)
    with pytest.raises(ImportError, match=r"pip install 'actfx\[bayes\]'"):
        to_inference_data({"a": np.zeros((2, 3))})
