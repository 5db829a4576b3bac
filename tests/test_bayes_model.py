"""SparseMLP: site names, shapes, priors, likelihoods and input validation."""

import numpy as np
import numpyro.distributions as dist
import pytest
from numpyro import handlers
from numpyro.infer.util import log_density

from actfx.bayes import PRIORS, SparseMLP, check_data


def _trace(model, x, y=None, seed=0):
    return handlers.trace(handlers.seed(model, seed)).get_trace(x, y)


X = np.random.default_rng(0).normal(size=(7, 3)).astype("float32")
YB = (X[:, 0] > 0).astype("float32")


@pytest.mark.parametrize("prior", PRIORS)
def test_site_names_and_shapes(prior):
    m = SparseMLP((3, 5, 4, 1), prior=prior)
    tr = _trace(m, X, YB)
    scale = "tau" if prior == "horseshoe" else "scale"
    for l, (i, o) in enumerate([(3, 5), (5, 4), (4, 1)]):
        assert tr[f"layer{l}/w"]["value"].shape == (i, o)
        assert tr[f"layer{l}/b"]["value"].shape == (o,)
        assert tr[f"layer{l}/{scale}"]["value"].shape == ()
        assert tr[f"layer{l}/w"]["type"] == "deterministic"  # non-centred by default
        assert tr[f"layer{l}/w_z"]["value"].shape == (i, o)
    for l in (0, 1):
        for p in ("c", "lam", "gamma"):
            assert tr[f"layer{l}/act/{p}"]["value"].shape == ()
    assert "layer2/act/c" not in tr  # output layer is linear
    assert tr["y"]["is_observed"] and tr["y"]["value"].shape == (7,)
    assert m.activation_sites() == [
        f"layer{l}/act/{p}" for l in (0, 1) for p in ("c", "lam", "gamma")
    ]
    assert m.scale_sites() == [f"layer{l}/{scale}" for l in range(3)]


def test_per_unit_and_prelu_shapes():
    tr = _trace(SparseMLP((3, 5, 1), activation="prelu", per_unit=True), X, YB)
    assert tr["layer0/act/slope"]["value"].shape == (5,)
    tr = _trace(SparseMLP((3, 5, 1), per_unit=True), X, YB)
    assert tr["layer0/act/lam"]["value"].shape == (5,)
    assert "layer0/act/c" not in _trace(SparseMLP((3, 5, 1), activation="relu"), X, YB)


def test_centred_weights_are_sample_sites_with_scale():
    tr = _trace(SparseMLP((3, 2, 1), prior="laplace", centered=True), X, YB)
    w = tr["layer0/w"]
    assert w["type"] == "sample" and "layer0/w_z" not in tr
    base = w["fn"].base_dist.base_dist
    assert isinstance(base, dist.Laplace)
    np.testing.assert_allclose(base.scale, tr["layer0/scale"]["value"])


def test_non_centred_w_is_scale_times_z():
    tr = _trace(SparseMLP((3, 2, 1), prior="soft_laplace"), X, YB)
    np.testing.assert_allclose(
        tr["layer0/w"]["value"], tr["layer0/scale"]["value"] * tr["layer0/w_z"]["value"], rtol=1e-6
    )
    tr = _trace(SparseMLP((3, 2, 1), prior="horseshoe"), X, YB)
    np.testing.assert_allclose(
        tr["layer0/w"]["value"],
        tr["layer0/tau"]["value"] * tr["layer0/w_lambda"]["value"] * tr["layer0/w_z"]["value"],
        rtol=1e-6,
    )


def test_forward_matches_numpy_reference_and_likelihood():
    m = SparseMLP((3, 4, 1))
    tr = _trace(m, X, YB, seed=3)
    v = {k: np.asarray(s["value"], np.float64) for k, s in tr.items()}
    h = X @ v["layer0/w"] + v["layer0/b"]
    c, lam, g = v["layer0/act/c"], v["layer0/act/lam"], v["layer0/act/gamma"]
    h = (1 - c) * np.maximum(h, 0) + c * np.maximum(lam - np.abs(h - g), 0)
    logits = (h @ v["layer1/w"] + v["layer1/b"])[:, 0]
    params = {k: s["value"] for k, s in tr.items()}
    np.testing.assert_allclose(m.forward(params, X)[:, 0], logits, rtol=1e-5, atol=1e-6)
    # the observation log-density is the Bernoulli log-likelihood of those logits
    ll_ref = np.sum(YB * logits - np.logaddexp(0, logits))
    np.testing.assert_allclose(tr["y"]["fn"].log_prob(YB).sum(), ll_ref, rtol=1e-5)


def test_log_density_matches_independent_prior_sum():
    m = SparseMLP((3, 2, 1), prior="laplace", activation="prelu")
    tr = _trace(m, X, YB, seed=1)
    params = {
        k: s["value"] for k, s in tr.items() if s["type"] == "sample" and not s["is_observed"]
    }
    lp, _ = log_density(m, (X, YB), {}, params)
    from scipy import stats

    ref = 0.0
    for l in (0, 1):
        s = float(params[f"layer{l}/scale"])
        ref += stats.invgamma(2.0, scale=0.2).logpdf(s)
        ref += stats.laplace.logpdf(np.asarray(params[f"layer{l}/w_z"])).sum()
        ref += stats.norm.logpdf(np.asarray(params[f"layer{l}/b"])).sum()
    ref += stats.uniform(-1, 2).logpdf(float(params["layer0/act/slope"]))
    allv = {k: s["value"] for k, s in tr.items()}
    logits = np.asarray(m.forward(allv, X)[:, 0], np.float64)
    ref += np.sum(YB * logits - np.logaddexp(0, logits))
    np.testing.assert_allclose(lp, ref, rtol=1e-4)


def test_categorical_and_normal_likelihoods():
    yc = np.array([0, 1, 2, 2, 1, 0, 1])
    tr = _trace(SparseMLP((3, 4, 3), likelihood="categorical"), X, yc)
    assert tr["y"]["fn"].probs.shape == (7, 3)
    yn = X[:, 1] * 2.0
    tr = _trace(SparseMLP((3, 4, 1), likelihood="normal"), X, yn)
    assert tr["noise/scale"]["value"] > 0
    np.testing.assert_allclose(tr["y"]["fn"].scale, tr["noise/scale"]["value"])
    tr = _trace(SparseMLP((3, 4, 2), likelihood="normal"), X, np.stack([yn, yn], 1))
    assert tr["y"]["value"].shape == (7, 2)


def test_prior_predictive_when_y_is_none():
    tr = _trace(SparseMLP((3, 2, 1)), X, None)
    assert not tr["y"]["is_observed"] and set(np.unique(tr["y"]["value"])) <= {0.0, 1.0}


@pytest.mark.parametrize(
    "x, y, match",
    [
        (X[:5], YB, "y must have 5 rows"),
        (X, YB[:4], "y must have 7 rows"),
        (X[:, :2], YB, r"x must have shape \(N, 3\)"),
        (X, YB + 1, "y must hold binary labels"),
        (X, np.full(7, 0.5), "y must hold binary labels"),
        (X.astype(int), YB, "x must have a floating dtype"),
        (np.where(X > 1, np.nan, X), YB, "x must be finite"),
    ],
)
def test_bad_data_raises_naming_the_argument(x, y, match):
    m = SparseMLP((3, 2, 1))
    with pytest.raises(ValueError, match=match):
        _trace(m, x, y)
    with pytest.raises(ValueError, match=match):
        m.check_data(x, y)


def test_bad_categorical_and_normal_targets():
    with pytest.raises(ValueError, match=r"y must hold integer classes in \[0, 3\)"):
        check_data(X, np.array([0, 1, 3, 0, 0, 0, 0]), "categorical", 3, 3)
    with pytest.raises(ValueError, match="y must have shape"):
        check_data(X, np.zeros((7, 3)), "normal", 3, 2)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"layer_sizes": (3,)}, "layer_sizes"),
        ({"layer_sizes": (3, 0, 1)}, "layer_sizes"),
        ({"layer_sizes": (3, 2, 2)}, "layer_sizes must end in 1"),
        ({"layer_sizes": (3, 2, 1), "likelihood": "categorical"}, "layer_sizes must end in >= 2"),
        ({"layer_sizes": (3, 2, 1), "prior": "cauchy"}, "prior must be one of"),
        ({"layer_sizes": (3, 2, 1), "activation": "gelu"}, "activation must be one of"),
        ({"layer_sizes": (3, 2, 1), "likelihood": "poisson"}, "likelihood must be one of"),
        ({"layer_sizes": (3, 2, 1), "prior": "horseshoe", "centered": True}, "centered"),
        ({"layer_sizes": (3, 2, 1), "scale_rate": 0.0}, "scale_rate"),
    ],
)
def test_bad_config_raises(kw, match):
    with pytest.raises(ValueError, match=match):
        SparseMLP(**kw)


def test_model_is_hashable_static_config():
    assert hash(SparseMLP((3, 2, 1))) == hash(SparseMLP([3, 2, 1]))


def test_ditac_theta_has_cpa_gaussian_prior_and_forward_uses_ditac():
    from scipy import stats

    import actfx
    from actfx._src.bayes.activation_priors import DITAC_CELLS, ditac_prior_covariance
    from actfx.cpab import Tessellation, prior_covariance

    m = SparseMLP((3, 4, 1), activation="ditac")
    tr = _trace(m, X, YB, seed=2)
    theta = np.asarray(tr["layer0/act/theta"]["value"])
    assert theta.shape == (DITAC_CELLS - 1,) and m.activation_sites() == ["layer0/act/theta"]
    S = prior_covariance(
        Tessellation(DITAC_CELLS), kernel="ditac", length_scale=5.0, output_variance=2.0
    )
    np.testing.assert_allclose(ditac_prior_covariance(), S, rtol=1e-4, atol=1e-6 * np.trace(S))
    ref = stats.multivariate_normal(np.zeros(len(S)), ditac_prior_covariance()).logpdf(theta)
    np.testing.assert_allclose(tr["layer0/act/theta"]["fn"].log_prob(theta), ref, rtol=1e-4)
    params = {k: s["value"] for k, s in tr.items()}
    h = X @ params["layer0/w"] + params["layer0/b"]
    out = actfx.ditac(h, theta) @ params["layer1/w"] + params["layer1/b"]
    np.testing.assert_allclose(m.forward(params, X), out, rtol=1e-5, atol=1e-6)


def test_mmelu_network_scale_symmetry_that_the_experiment_normalises_out():
    """(W0, b0, lam, gamma, W1) -> (W0/a, b0/a, lam/a, gamma/a, a W1) leaves the network unchanged:
    lam and gamma are not identifiable, c and gamma/lam are (experiments/bayes_sparse.py)."""
    import jax.numpy as jnp

    r = np.random.default_rng(3)
    m = SparseMLP((4, 3, 1), activation="mmelu", likelihood="normal")
    p = {
        "layer0/w": r.normal(size=(4, 3)),
        "layer0/b": r.normal(size=3),
        "layer1/w": r.normal(size=(3, 1)),
        "layer1/b": r.normal(size=1),
        "layer0/act/c": 0.6,
        "layer0/act/lam": 1.5,
        "layer0/act/gamma": 0.5,
    }
    p = {k: jnp.asarray(v, jnp.float32) for k, v in p.items()}
    x = r.normal(size=(50, 4)).astype("float32")
    a = 2.7
    q = dict(p)
    for k in ("layer0/w", "layer0/b", "layer0/act/lam", "layer0/act/gamma"):
        q[k] = p[k] / a
    q["layer1/w"] = p["layer1/w"] * a
    np.testing.assert_allclose(m.forward(q, x), m.forward(p, x), rtol=2e-5, atol=2e-5)
    q["layer0/act/gamma"] = p["layer0/act/gamma"]  # changing gamma/lam does change the function
    assert np.max(np.abs(np.asarray(m.forward(q, x) - m.forward(p, x)))) > 1e-2


def test_ditac_prior_factorised_once_not_in_the_potential():
    """The CPA prior's Cholesky factor is computed once (cached), so the potential that MCMC
    evaluates at every leapfrog step contains no cholesky (it used to refactorise)."""
    import jax
    from numpyro.infer.util import initialize_model

    from actfx._src.bayes.activation_priors import _ditac_prior_scale_tril, ditac_prior_covariance

    L = _ditac_prior_scale_tril(8)
    np.testing.assert_allclose(L @ L.T, ditac_prior_covariance(8), rtol=1e-10, atol=1e-12)
    assert _ditac_prior_scale_tril(8) is L
    m = SparseMLP((2, 3, 1), activation="ditac", likelihood="normal")
    x, y = np.ones((4, 2), "float32"), np.zeros(4, "float32")
    info = initialize_model(jax.random.key(0), m, model_args=(x, y))
    jaxpr = str(jax.make_jaxpr(jax.grad(info.potential_fn))(info.param_info.z))
    assert "cholesky" not in jaxpr
