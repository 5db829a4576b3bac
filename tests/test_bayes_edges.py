"""Bad input to actfx.bayes raises a ValueError naming the argument (issue 22's Bayes edges),
and the vectorised MAP restarts that start the chains (issue 25)."""

import jax.numpy as jnp
import numpy as np
import pytest
from planted_prelu import PRELU, XP, YP  # the planted PReLU teacher

from actfx.bayes import (
    SparseMLP,
    activation_prior,
    annealed_map,
    moreau_envelope_abs,
    posterior_predictive,
    predictive_draws,
    pruned_accuracy,
    run_mcmc,
    to_inference_data,
)


def test_zero_rows_rejected_by_check_data():
    with pytest.raises(ValueError, match="x must have at least one row"):
        PRELU.check_data(np.zeros((0, XP.shape[1]), "float32"), np.zeros(0, "float32"))


def _good_init():
    return {
        "layer0/scale": 0.5,
        "layer0/w_z": np.zeros(PRELU_W0),
        "layer1/scale": 0.5,
        "layer1/w_z": np.zeros(PRELU_W1),
        "layer0/b": np.zeros(PRELU_W0[1]),
        "layer1/b": np.zeros(PRELU_W1[1]),
        "layer0/act/slope": 0.1,
    }


PRELU_W0 = (PRELU.layer_sizes[0], PRELU.layer_sizes[1])
PRELU_W1 = (PRELU.layer_sizes[1], PRELU.layer_sizes[2])


@pytest.mark.parametrize(
    "change, match",
    [
        ({"layer0/b": np.full(PRELU_W0[1], np.nan)}, r"init\['layer0/b'\] must be finite"),
        ({"layer0/w_z": np.zeros((7, 7))}, r"init\['layer0/w_z'\] must have shape"),
        ({"layer0/scale": -1.0}, r"init\['layer0/scale'\] lies outside the support"),
        ({"nope": 1.0}, r"init names sites \['nope'\]"),
    ],
)
def test_run_mcmc_init_dict_checked(change, match):
    init = {**_good_init(), **change}
    with pytest.raises(ValueError, match=match):
        run_mcmc(PRELU, XP, YP, init=init, num_warmup=2, num_samples=2, num_chains=1)


def _draws(model, s=4, nan=False):
    rng = np.random.default_rng(0)
    d = {}
    for l in range(model.num_layers):
        fi, fo = model.layer_sizes[l], model.layer_sizes[l + 1]
        d[f"layer{l}/w"] = rng.normal(size=(s, fi, fo)).astype("float32")
        d[f"layer{l}/b"] = np.zeros((s, fo), "float32")
    d["layer0/act/slope"] = np.full(s, 0.2, "float32")
    if nan:
        d["layer0/w"][1, 0, 0] = np.nan
    return d


def test_posterior_helpers_check_x_and_draws():
    d = _draws(PRELU)
    with pytest.raises(ValueError, match=r"x must have shape \(N, "):
        predictive_draws(PRELU, d, np.ones((3, PRELU.layer_sizes[0] + 1), "float32"))
    with pytest.raises(ValueError, match="x must be finite"):
        posterior_predictive(PRELU, d, np.full((3, PRELU.layer_sizes[0]), np.nan, "float32"))
    with pytest.raises(ValueError, match=r"samples must be finite.*layer0/w"):
        predictive_draws(PRELU, _draws(PRELU, nan=True), XP)
    with pytest.raises(ValueError, match=r"missing \['layer0/act/slope'\]"):
        predictive_draws(PRELU, {k: v for k, v in d.items() if "act" not in k}, XP)


def test_pruned_accuracy_rejects_labels_outside_the_likelihood():
    clf = SparseMLP((1, 1, 1), activation="prelu", prior="normal")  # Bernoulli
    y = (XP[:, 0] > 0).astype("float32")
    assert 0 <= pruned_accuracy(clf, _draws(clf), XP, y)["accuracy"] <= 1
    with pytest.raises(ValueError, match="y must hold binary labels"):
        pruned_accuracy(clf, _draws(clf), XP, np.full(len(XP), 2.0, "float32"))


@pytest.mark.parametrize("width", [0, -1, 2.5, True])
def test_activation_prior_width_checked(width):
    with pytest.raises(ValueError, match="width must be an int >= 1"):
        activation_prior("a", "mmelu", width, per_unit=True)


@pytest.mark.parametrize("kw", [{"scale": 0.0}, {"scale": -1.0}, {"delta": 0.0}])
def test_moreau_envelope_rejects_non_positive_scale(kw):
    args = {"scale": 1.0, "delta": 0.1, **kw}
    with pytest.raises(ValueError, match=f"{next(iter(kw))} must be finite and > 0"):
        moreau_envelope_abs(jnp.array([0.5]), args["scale"], args["delta"])


@pytest.mark.parametrize("name", ["bias_scale", "scale_rate", "scale_concentration"])
@pytest.mark.parametrize("v", [float("inf"), float("nan"), 0.0])
def test_sparse_mlp_scales_finite(name, v):
    with pytest.raises(ValueError, match=f"{name} must be a finite float > 0"):
        SparseMLP((2, 3, 1), **{name: v})


def test_to_inference_data_refuses_ragged_sites():
    with pytest.raises(ValueError, match=r"same \(chains, draws\) for every site"):
        to_inference_data({"a": np.zeros((2, 5)), "b": np.zeros((2, 4))})


def test_annealed_map_ranks_by_the_potential_and_reaches_a_good_fit():
    """Restarts from prior draws: losses are the exact negative log joint of each returned
    point (checked against NumPyro's potential_energy), and the best restart fits the
    planted PReLU teacher better than the worst."""
    from numpyro.infer.util import potential_energy, unconstrain_fn

    pts, losses, lls = annealed_map(PRELU, XP, YP, num_restarts=6, num_steps=300, seed=0)
    assert len(pts) == 6 and np.all(np.isfinite(losses))
    for p, loss in zip(pts[:2], losses[:2]):
        z = unconstrain_fn(PRELU, (XP, YP), {}, p)
        np.testing.assert_allclose(
            float(potential_energy(PRELU, (XP, YP), {}, z)), loss, rtol=1e-4, atol=1e-3
        )
    assert lls[np.argmin(losses)] >= lls.min()
    with pytest.raises(ValueError, match="anneal_fraction"):
        annealed_map(PRELU, XP, YP, num_restarts=2, num_steps=5, anneal_fraction=0.0)
