"""ParallelTempering (replica exchange): closed-form and quadrature posteriors, a bimodal
target where NUTS from one start misses a mode, NumPyro's kernel protocol, run_mcmc wiring."""

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.diagnostics import effective_sample_size
from numpyro.infer import MCMC, NUTS
from numpyro.infer.initialization import init_to_value

from actfx.bayes import KERNELS, ParallelTempering, SparseMLP, run_mcmc

# --- conjugate Normal mean: mu ~ N(M0, S0^2), y_i ~ N(mu, 1) ------------------------------
M0, S0 = 0.5, 2.0
Y_CONJ = np.random.default_rng(0).normal(1.3, 1.0, size=12).astype(np.float32)
BETAS_CONJ = np.array([1.0, 0.2, 0.03])


def conj_model(y):
    mu = numpyro.sample("mu", dist.Normal(M0, S0))
    numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def conj_posterior(beta: float) -> tuple[float, float]:
    """Mean and variance of the tempered posterior N(M0, S0^2) * prod N(y_i | mu, 1)^beta."""
    prec = 1 / S0**2 + beta * Y_CONJ.size
    return (M0 / S0**2 + beta * float(np.sum(Y_CONJ, dtype=np.float64))) / prec, 1 / prec


# --- bimodal: z ~ N(m0, 3^2), y = 4 ~ N(z^2, 0.2^2): modes near z = +-2 -------------------
def bimodal_model(m0):
    z = numpyro.sample("z", dist.Normal(m0, 3.0))
    numpyro.sample("y", dist.Normal(z**2, 0.2), obs=4.0)


def weight_positive(m0: float) -> float:
    """P(z > 0 | y) by quadrature (float64 grid fine enough for the 0.05-wide modes)."""
    z = np.linspace(-12.0, 12.0, 480_001)
    logp = -0.5 * ((z - m0) / 3.0) ** 2 - 0.5 * ((4.0 - z**2) / 0.2) ** 2
    p = np.exp(logp - logp.max())
    return float(p[z > 0].sum() / p.sum())


# the prior mean giving P(z > 0 | y) ~ 0.7: the prior density ratio at +-2 is exp(8 m0 / 18)
M0_ASYM = 18 * np.log(0.7 / 0.3) / 8
START = init_to_value(values={"z": 2.0})
NW, NS, NC = 300, 2000, 4


def _fraction_and_mcse(z: np.ndarray) -> tuple[float, float]:
    """Fraction of draws with z > 0 and its Monte Carlo standard error, from the ESS of the
    indicator over all chains (z: (chains, draws))."""
    ind = (np.asarray(z) > 0).astype(np.float64)
    frac = float(ind.mean())
    if ind.std() == 0:
        return frac, 0.0
    ess = float(effective_sample_size(ind))
    return frac, float(np.sqrt(frac * (1 - frac) / ess))


@pytest.fixture(scope="module")
def conj_run():
    pt = ParallelTempering(conj_model, betas=BETAS_CONJ)
    mcmc = MCMC(
        pt,
        num_warmup=200,
        num_samples=1000,
        num_chains=2,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.key(1), jnp.asarray(Y_CONJ), extra_fields=("replicas.z",))
    return mcmc


@pytest.fixture(scope="module")
def bimodal_runs():
    """NUTS and ParallelTempering from z = +2 on the symmetric target (m0 = 0), then the same
    compiled PT sampler on the asymmetric one (m0 = M0_ASYM)."""
    nuts = MCMC(
        NUTS(bimodal_model, init_strategy=START),
        num_warmup=NW,
        num_samples=NS,
        num_chains=NC,
        chain_method="vectorized",
        progress_bar=False,
    )
    nuts.run(jax.random.key(0), 0.0)
    pt = MCMC(
        ParallelTempering(bimodal_model, num_temperatures=5, min_beta=0.005, init_strategy=START),
        num_warmup=NW,
        num_samples=NS,
        num_chains=NC,
        chain_method="vectorized",
        progress_bar=False,
        jit_model_args=True,
    )
    pt.run(jax.random.key(0), jnp.float32(0.0))
    sym = (np.asarray(pt.get_samples(group_by_chain=True)["z"]), pt.last_state)
    pt.run(jax.random.key(2), jnp.float32(M0_ASYM))
    asym = (np.asarray(pt.get_samples(group_by_chain=True)["z"]), pt.last_state)
    return np.asarray(nuts.get_samples(group_by_chain=True)["z"]), sym, asym


def test_conjugate_posterior_moments_within_mcse(conj_run):
    mean, var = conj_posterior(1.0)
    mu = np.asarray(conj_run.get_samples(group_by_chain=True)["mu"], dtype=np.float64)
    assert mu.shape == (2, 1000)
    ess = float(effective_sample_size(mu))
    assert ess > 200, ess
    assert abs(mu.mean() - mean) < 4 * np.sqrt(var / ess), (mu.mean(), mean, ess)
    # the variance's MCSE: Var(s^2) ~ 2 var^2 / ESS for a Gaussian
    assert abs(mu.var() - var) < 4 * var * np.sqrt(2 / ess), (mu.var(), var)


def test_every_replica_targets_its_tempered_posterior(conj_run):
    """Replica k's positions are draws of N(M0, S0^2) * likelihood^beta_k (closed form):
    fails if the tempering scaled the prior too, or if a swap broke detailed balance."""
    z = np.asarray(conj_run.get_extra_fields(group_by_chain=True)["replicas.z"]["mu"])
    assert z.shape == (2, 1000, 3)
    for k, beta in enumerate(BETAS_CONJ):
        mean, var = conj_posterior(float(beta))
        zk = z[..., k].astype(np.float64)
        ess = float(effective_sample_size(zk))
        assert abs(zk.mean() - mean) < 4 * np.sqrt(var / ess), (k, zk.mean(), mean, ess)
        assert abs(zk.var() - var) < 4 * var * np.sqrt(2 / ess), (k, zk.var(), var, ess)
    # swaps happen: post-warm-up acceptance per adjacent pair, per chain
    rates = np.asarray(conj_run.last_state.mean_swap_accept_prob)
    assert rates.shape == (2, 2) and np.all((rates > 0.05) & (rates <= 1)), rates


def test_nuts_from_one_start_misses_a_mode(bimodal_runs):
    nuts_z, _, _ = bimodal_runs
    frac, _ = _fraction_and_mcse(nuts_z)
    assert frac > 0.99, frac  # stuck at z = +2: the mode at -2 (weight 0.5) is never visited


def test_tempering_finds_both_modes_with_the_right_weights(bimodal_runs):
    nuts_z, (z_sym, st_sym), (z_asym, st_asym) = bimodal_runs
    w_sym = weight_positive(0.0)
    assert abs(w_sym - 0.5) < 1e-6
    frac, mcse = _fraction_and_mcse(z_sym)
    assert 0 < mcse < 0.05, mcse
    assert abs(frac - w_sym) < 4 * mcse, (frac, mcse)
    # the same check rejects plain NUTS's answer
    frac_nuts, _ = _fraction_and_mcse(nuts_z)
    assert abs(frac_nuts - w_sym) > 4 * mcse
    w_asym = weight_positive(M0_ASYM)
    assert 0.65 < w_asym < 0.75, w_asym
    frac, mcse = _fraction_and_mcse(z_asym)
    assert abs(frac - w_asym) < 4 * mcse, (frac, w_asym, mcse)
    for st in (st_sym, st_asym):
        rates = np.asarray(st.mean_swap_accept_prob)
        assert rates.shape == (NC, 4) and np.all(rates > 0.1), rates


def test_runs_sequential_chains_and_pickles_after_a_run():
    pt = ParallelTempering(conj_model, betas=[1.0, 0.1], inner_kernel="hmc", num_leapfrog=5)
    mcmc = MCMC(
        pt,
        num_warmup=30,
        num_samples=40,
        num_chains=2,
        chain_method="sequential",
        progress_bar=False,
    )
    y = jnp.asarray(Y_CONJ)
    mcmc.run(jax.random.key(0), y)
    s = mcmc.get_samples(group_by_chain=True)
    assert set(s) == {"mu"} and s["mu"].shape == (2, 40)
    assert np.all(np.isfinite(np.asarray(s["mu"])))
    assert mcmc.get_extra_fields()["diverging"].shape == (80,)
    back = pickle.loads(pickle.dumps(mcmc))  # the kernel drops its closures
    assert back.sampler._sample_fn is None and back.sampler.num_temperatures == 2
    # and the restored MCMC samples again (MCMC re-inits the kernel's closures)
    back.run(jax.random.key(1), y)
    assert back.get_samples()["mu"].shape == (80,)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"betas": [1.0, 1.0]}, "strictly decreasing"),
        ({"betas": [0.9, 0.5]}, r"betas\[0\] must be 1"),
        ({"betas": [1.0, 0.5, 0.0]}, r"\(0, 1\]"),
        ({"betas": [1.0, np.nan]}, r"\(0, 1\]"),
        ({"betas": [[1.0, 0.5]]}, "1-D"),
        ({"betas": [1.0]}, "at least 2"),
        ({"betas": "hot"}, "betas"),
        ({"num_temperatures": 1}, "num_temperatures must be an int >= 2"),
        ({"num_temperatures": 2.5}, "num_temperatures"),
        ({"min_beta": 1.0}, r"min_beta must be a float in \(0, 1\)"),
        ({"min_beta": 0.0}, "min_beta"),
        ({"inner_kernel": "mala"}, "inner_kernel"),
        ({"dense_mass": "yes"}, "dense_mass"),
        ({"step_size": -1.0}, "step_size"),
        ({"target_accept_prob": 1.0}, "target_accept_prob"),
        ({"max_tree_depth": 0}, "max_tree_depth"),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ParallelTempering(conj_model, **kwargs)


def test_geometric_ladder_and_betas_property():
    pt = ParallelTempering(conj_model, num_temperatures=4, min_beta=0.001)
    np.testing.assert_allclose(pt.betas, [1.0, 0.1, 0.01, 0.001], rtol=1e-12)
    pt.betas[0] = 5.0  # a copy
    assert pt.betas[0] == 1.0


def test_model_without_observed_site_is_refused():
    def prior_only():
        numpyro.sample("a", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="observed sample site"):
        ParallelTempering(prior_only, num_temperatures=2).init(jax.random.key(0), 10, None, (), {})


# --- run_mcmc wiring -----------------------------------------------------------------------
TINY = SparseMLP((1, 2, 1), activation="prelu", likelihood="normal")
XT = np.random.default_rng(3).normal(size=(30, 1)).astype(np.float32)
YT = (np.maximum(XT[:, 0], 0) + 0.05 * np.random.default_rng(4).normal(size=30)).astype(np.float32)
START_TINY = {"layer0/act/slope": np.float32(0.25)}
# shallow trees keep these wiring tests cheap (a vmapped NUTS waits for its deepest lane)
QUIET = {"max_r_hat": float("inf"), "max_divergence_rate": 1.0, "max_tree_depth": 3}


def test_run_mcmc_tempering_kernel():
    assert "tempering" in KERNELS
    res = run_mcmc(
        TINY,
        XT,
        YT,
        kernel="tempering",
        betas=[1.0, 0.3],
        dense_mass=True,
        init=START_TINY,
        num_warmup=10,
        num_samples=10,
        num_chains=1,
        **QUIET,
    )
    assert res.kernel == "tempering"
    assert res.samples["layer0/act/slope"].shape == (1, 10)
    assert res.swap_accept_rates.shape == (1, 1)
    assert np.all((res.swap_accept_rates >= 0) & (res.swap_accept_rates <= 1))
    # dense_mass reaches the replicas: one dense inverse mass matrix per chain and replica
    imm = res.mcmc.last_state.replicas.adapt_state.inverse_mass_matrix
    (block,) = imm.values()
    d = block.shape[-1]
    assert block.shape == (2, d, d) and d > 1


def test_run_mcmc_accepts_a_kernel_instance_and_dense_mass():
    k = NUTS(TINY, dense_mass=True, max_tree_depth=3)
    res = run_mcmc(
        TINY,
        XT,
        YT,
        kernel=k,
        init=START_TINY,
        num_warmup=10,
        num_samples=10,
        num_chains=1,
        **QUIET,
    )
    assert res.kernel == "NUTS" and res.mcmc.sampler is k
    assert res.samples["layer0/act/slope"].shape == (1, 10)
    assert res.swap_accept_rates is None
    assert np.ndim(next(iter(res.mcmc.last_state.adapt_state.inverse_mass_matrix.values()))) == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kernel": "tempering", "num_temperatures": 1}, "num_temperatures"),
        ({"kernel": "tempering", "min_beta": 2.0}, "min_beta"),
        ({"kernel": "tempering", "betas": [1.0, 0.5, 0.7]}, "strictly decreasing"),
        ({"kernel": "nuts", "betas": [1.0, 0.5]}, "betas is used only by kernel='tempering'"),
        ({"kernel": "hmc", "num_temperatures": 4}, "num_temperatures is used only"),
        ({"dense_mass": 1}, "dense_mass must be a bool"),
        ({"kernel": "proximal", "dense_mass": True}, "dense_mass"),
        ({"kernel": NUTS(TINY), "dense_mass": True}, "set it on the instance"),
        ({"kernel": "mala"}, "kernel must be one of"),
        ({"kernel": NUTS}, "kernel must be one of"),  # the class, not an instance
    ],
)
def test_run_mcmc_bad_tempering_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_mcmc(TINY, XT, YT, init="median", **kwargs)


# --- the planted network of experiments/bayes_sparse.py (slow) ------------------------------
@pytest.mark.slow
def test_tempering_on_the_planted_network():
    """``run_mcmc(kernel="tempering")`` on the planted 8-3-1 MMeLU regression (n = 200, seed
    0), chains started as the experiment starts them (annealed MAP restarts): every chain
    near the teacher's training log-likelihood and all-chain split R-hat <= 1.05 on the
    identifiable quantities (c, gamma/lam, noise scale, training log-likelihood, F at
    held-out points). Measured: R-hat max 1.014 (log-lik), chain mean train log-lik
    183.2-184.4 vs the teacher's 186, swap rates 0.05-0.26, 7/800 divergences, sampling
    273 s at load ~10 on 2 cores; NUTS from the same starts: R-hat 1.017 (bayes_sparse.py)."""
    from types import SimpleNamespace

    from numpyro.diagnostics import split_gelman_rubin
    from numpyro.infer.util import log_likelihood

    from actfx.bayes import predictive_draws
    from experiments.bayes_sparse import HID, IN, chain_starts, make_data, teacher_loglik

    (x, y), (xt, _, _) = make_data(0, 200, 1000)
    xt = xt[:20]
    model = SparseMLP((IN, HID, 1), activation="mmelu", likelihood="normal")
    cfg = SimpleNamespace(starts="annealed", restarts=128, map_steps=1500, mode_tol=10.0, chains=4)
    starts, _, _ = chain_starts(cfg, model, x, y, 0)
    res = run_mcmc(
        model,
        x,
        y,
        kernel="tempering",
        num_temperatures=4,
        min_beta=0.3,
        init=starts,
        num_warmup=200,
        num_samples=200,
        num_chains=4,
        target_accept_prob=0.9,
        max_r_hat=float("inf"),
    )
    s = {k: np.asarray(v) for k, v in res.samples.items()}
    C, S = s["layer0/act/c"].shape
    flat = {k: v.reshape((C * S,) + v.shape[2:]) for k, v in s.items()}
    ll = np.asarray(log_likelihood(model, flat, x, y)["y"]).sum(-1).reshape(C, S)
    F = np.asarray(predictive_draws(model, s, xt, grouped=True)).reshape(C, S, -1)
    quantities = {
        "c": s["layer0/act/c"],
        "gamma/lam": s["layer0/act/gamma"] / s["layer0/act/lam"],
        "noise/scale": s["noise/scale"],
        "log_lik": ll,
    }
    quantities.update({f"F[{i}]": F[..., i] for i in range(F.shape[-1])})
    r_hat = {k: float(split_gelman_rubin(v.astype(np.float64))) for k, v in quantities.items()}
    near = ll.mean(1) >= teacher_loglik(model, x, y) - 10.0
    print(
        f"tempering planted: R-hat max {max(r_hat.values()):.3f} {r_hat}; chain mean ll "
        f"{ll.mean(1).round(1)}; swap rates {res.swap_accept_rates.round(2).tolist()}; "
        f"divergences {res.num_divergences}; sampling {res.sampling_time:.0f} s"
    )
    assert near.all(), ll.mean(1)
    assert max(r_hat.values()) <= 1.05, r_hat
    # every adjacent pair exchanges (measured 0.05-0.26 on 2 loaded cores: a usable ladder)
    assert np.all(res.swap_accept_rates > 0), res.swap_accept_rates
