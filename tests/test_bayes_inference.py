"""Inference drivers and posterior summaries on tiny problems with a planted truth."""

import numpy as np
import pytest
from planted_prelu import PRELU, XP, YP, rng  # the planted PReLU teacher (rng continues its stream)
from sklearn.metrics import brier_score_loss, log_loss

from actfx.bayes import (
    SparseMLP,
    brier_score,
    default_chain_method,
    diagnostics_table,
    expected_calibration_error,
    map_estimate,
    negative_log_likelihood,
    posterior_predictive,
    prob_small,
    prune_masks,
    pruned_accuracy,
    reliability_curve,
    run_mcmc,
    site_r_hats,
    to_inference_data,
)


@pytest.fixture(scope="module")
def prelu_run():
    # 6 vmapped MAP restarts of 600 steps: most restarts of this 1-1-1 net stall in a flat
    # "noise explains everything" mode (loss 96.1); the best reaches the global mode (-42)
    return run_mcmc(
        PRELU,
        XP,
        YP,
        num_warmup=150,
        num_samples=150,
        num_chains=2,
        map_steps=600,
        map_restarts=6,
        seed=1,
    )


def test_nuts_recovers_planted_activation_slope(prelu_run):
    s = np.asarray(prelu_run.samples["layer0/act/slope"])
    assert s.shape == (2, 150)
    lo, hi = np.quantile(s, [0.005, 0.995])  # 99 % credible interval
    assert lo < 0.3 < hi, (lo, hi)
    assert hi - lo < 0.3  # and the data pin it down (prior 99 % width is 1.98)
    sig = np.asarray(prelu_run.samples["noise/scale"])
    lo, hi = np.quantile(sig, [0.005, 0.995])
    assert lo < 0.1 < hi, (lo, hi)


def test_diagnostics_table_reports_rhat_on_identifiable_quantities(prelu_run, capsys):
    d = diagnostics_table(prelu_run, PRELU, XP, YP)
    names = [r["name"] for r in d["rows"]]
    assert names == [
        "layer0/act/slope",
        "layer0/scale",
        "layer1/scale",
        "noise/scale",
        "log_lik",
        "predictive[worst]",
    ]
    assert all(np.isfinite(r["r_hat"]) and r["ess"] > 0 for r in d["rows"])
    assert d["max_r_hat"] == max(r["r_hat"] for r in d["rows"])
    assert np.isfinite(d["max_r_hat"]) and d["max_r_hat"] < 1.2
    assert 0 <= d["divergence_rate"] <= 1 and d["wall_time"] > 0
    assert "r_hat" in capsys.readouterr().out
    # posterior predictive mean tracks the teacher
    pp = posterior_predictive(PRELU, prelu_run.samples, XP, grouped=True)
    teacher = np.maximum(XP[:, 0], 0) + 0.3 * np.minimum(XP[:, 0], 0)
    assert np.sqrt(np.mean((pp["mean"] - teacher) ** 2)) < 0.08
    assert np.all(pp["lower"] <= pp["mean"]) and np.all(pp["mean"] <= pp["upper"])
    assert np.mean((pp["lower"] <= teacher) & (teacher <= pp["upper"])) > 0.7


def test_bad_input_to_drivers_raises():
    with pytest.raises(ValueError, match="y must have 60 rows"):
        run_mcmc(PRELU, XP, YP[:10])
    with pytest.raises(ValueError, match="y must hold binary labels"):
        run_mcmc(SparseMLP((1, 2, 1)), XP, YP)
    with pytest.raises(ValueError, match="kernel must be one of"):
        run_mcmc(PRELU, XP, YP, kernel="slice")
    with pytest.raises(ValueError, match="num_restarts must be an int >= 1"):
        map_estimate(PRELU, XP, YP, num_restarts=0)
    with pytest.raises(ValueError, match="init must be"):
        run_mcmc(PRELU, XP, YP, init="zeros")
    with pytest.raises(ValueError, match="kernel='gibbs' needs activation parameters"):
        run_mcmc(
            SparseMLP((1, 2, 1), activation="relu", likelihood="normal"),
            XP,
            YP,
            kernel="gibbs",
            init="median",
        )


def test_default_chain_method_single_device():
    assert default_chain_method(4) == "vectorized"


def test_calibration_metrics_match_independent_references():
    p = rng.uniform(size=200)
    y = (rng.uniform(size=200) < p).astype(int)
    assert np.isclose(brier_score(p, y), 2 * brier_score_loss(y, p))
    assert np.isclose(negative_log_likelihood(p, y), log_loss(y, p))
    pk = rng.dirichlet(np.ones(4), size=200)
    yk = rng.integers(0, 4, size=200)
    assert np.isclose(negative_log_likelihood(pk, yk), log_loss(yk, pk, labels=range(4)))
    # ECE by an explicit loop over bins
    conf, pred = np.maximum(p, 1 - p), (p > 0.5).astype(int)
    ece = 0.0
    for lo in np.arange(10) / 10:
        inb = (conf > lo) & (conf <= lo + 0.1)
        if inb.any():
            ece += inb.mean() * abs((pred[inb] == y[inb]).mean() - conf[inb].mean())
    assert np.isclose(expected_calibration_error(p, y), ece)
    assert reliability_curve(p, y)["count"].sum() == 200
    with pytest.raises(ValueError, match="y must hold integer labels"):
        brier_score(p, y + 2)


def test_sparsity_utilities():
    w = np.zeros((100, 2, 3))
    w[:, 0, :] = 1.0
    w[:50, 1, 0] = 1.0  # P(|w| < eps) = 0.5 exactly: kept at threshold 0.5
    np.testing.assert_allclose(prob_small(w, 0.1), [[0, 0, 0], [0.5, 1, 1]])
    m = SparseMLP((2, 3, 1), activation="relu")
    s = {
        "layer0/w": w,
        "layer0/b": np.zeros((100, 3)),
        "layer1/w": np.ones((100, 3, 1)),
        "layer1/b": np.zeros((100, 1)),
    }
    masks = prune_masks(m, s, eps=0.1)
    assert (
        masks["layer0/w"].tolist() == [[True] * 3, [True, False, False]] and masks["layer1/w"].all()
    )
    x = rng.normal(size=(50, 2)).astype("float32")
    y = (x[:, 0] > 0).astype(
        int
    )  # relu(x0) summed: logit > 0 iff x0 > 0 (when x1 part pruned or not)
    out = pruned_accuracy(m, s, x, y, eps=0.1)
    assert np.isclose(out["fraction_pruned"], 2 / 9)
    with pytest.raises(ValueError, match="eps must be a finite float > 0"):
        prob_small(w, 0.0)


def test_run_warns_exactly_when_diagnostics_say_so(prelu_run):
    res = prelu_run
    expect_div = res.divergence_rate > 0.01
    expect_rhat = res.max_r_hat > 1.01
    assert any("diverged" in m for m in res.warnings) == expect_div
    assert any("R-hat" in m for m in res.warnings) == expect_rhat
    # max_r_hat covers every sample site (weights included), not just the reported ones
    assert res.max_r_hat == pytest.approx(
        max(
            site_r_hats(
                {
                    k: res.samples[k]
                    for k in (
                        "layer0/w_z",
                        "layer0/b",
                        "layer0/scale",
                        "layer1/w_z",
                        "layer1/b",
                        "layer1/scale",
                        "layer0/act/slope",
                        "noise/scale",
                    )
                }
            ).values()
        )
    )


def test_wall_time_includes_map_initialisation(prelu_run):
    res = prelu_run
    assert res.map_time > 0 and res.sampling_time > 0
    assert res.wall_time == pytest.approx(res.map_time + res.sampling_time)


# --- ArviZ export of the fixture's run --------------------------------------------------
def test_to_inference_data(prelu_run):
    az = pytest.importorskip("arviz")
    res = prelu_run
    idata = to_inference_data(res, PRELU, XP, YP)
    assert idata.posterior["layer0/act/slope"].shape == (2, 150)
    assert idata.posterior["layer0/w"].shape == (2, 150, 1, 1)
    assert idata.log_likelihood["y"].shape == (2, 150, 60)
    assert idata.sample_stats["diverging"].shape == (2, 150)
    np.testing.assert_array_equal(
        idata.posterior["layer0/act/slope"].values, np.asarray(res.samples["layer0/act/slope"])
    )
    summ = az.summary(idata, var_names=["layer0/act/slope"])
    ours = site_r_hats({"s": res.samples["layer0/act/slope"]})["s"]
    assert (
        abs(float(summ["r_hat"].iloc[0]) - ours) < 0.02
    )  # ArviZ's rank-normalised vs NumPyro's split R-hat
    loo = az.loo(idata)
    assert np.isfinite(loo.elpd_loo)
    with pytest.raises(ValueError, match="together"):
        to_inference_data(res, PRELU, XP)
    with pytest.raises(ValueError, match="grouped by chain"):
        to_inference_data({"a": np.zeros(3)})


# the notebook's planted-teacher cell runs init="map_per_chain" in the default suite
@pytest.mark.slow
def test_chains_start_from_their_own_map_restart():
    r = run_mcmc(
        PRELU,
        XP,
        YP,
        init="map_per_chain",
        num_warmup=3,
        num_samples=4,
        num_chains=2,
        map_steps=30,
        max_r_hat=float("inf"),
        max_divergence_rate=1.0,
        seed=2,
    )
    assert (
        isinstance(r.init_values, list) and len(r.init_values) == 2 and r.map_losses.shape == (2,)
    )
    a, b = (float(v["layer0/act/slope"]) for v in r.init_values)
    assert a != b
    assert r.map_time > 0 and r.wall_time == pytest.approx(r.map_time + r.sampling_time)
    assert r.warnings == ()  # thresholds disabled


@pytest.mark.slow
@pytest.mark.parametrize(
    "kernel, prior", [("gibbs", "soft_laplace"), ("proximal", "laplace"), ("hmc", "soft_laplace")]
)
def test_other_kernels_run_and_recover_slope(kernel, prior):
    m = SparseMLP((1, 1, 1), activation="prelu", prior=prior, likelihood="normal")
    r = run_mcmc(
        m, XP, YP, kernel=kernel, num_warmup=300, num_samples=300, num_chains=2, map_steps=300
    )
    lo, hi = np.quantile(np.asarray(r.samples["layer0/act/slope"]), [0.005, 0.995])
    assert lo < 0.3 < hi
