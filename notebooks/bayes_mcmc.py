# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Bayesian sparse networks with trainable activations, by MCMC (`actfx.bayes`)
#
# The weights of a small MLP get a hierarchical sparsity prior (per-layer scale
# `s_l ~ InverseGamma(2, 0.2)`, weights `w = s_l * z`, `z ~ SoftLaplace(0, 1)`: the
# non-centred form that avoids the scale/weight funnel), and the parameters of its MMeLU
# activation `f(x) = (1 - c) max(x, 0) + c max(lam - |x - gamma|, 0)` are random variables
# too. NumPyro's NUTS samples the joint posterior, started from an optax MAP fit.
#
# 1. build the model and look at its sites;
# 2. sample it on the offline breast-cancer data, read the convergence diagnostics;
# 3. posterior predictive, calibration and sparsity;
# 4. the posterior of the activation shape;
# 5. the proximal (non-smooth) HMC kernel on an exact Laplace prior, checked against quadrature.
#
# Set `ACTFX_NOTEBOOK_QUICK=1` for the tiny configuration the tests run.

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.infer import MCMC
from sklearn.datasets import load_breast_cancer

import actfx
from actfx.bayes import (
    ProximalHMC,
    SparseMLP,
    brier_score,
    diagnostics_table,
    expected_calibration_error,
    negative_log_likelihood,
    posterior_predictive,
    pruned_accuracy,
    reliability_curve,
    run_mcmc,
)

QUICK = os.environ.get("ACTFX_NOTEBOOK_QUICK") == "1"
CFG = (
    dict(hidden=4, warmup=60, samples=60, chains=2, map_steps=100)
    if QUICK
    else dict(hidden=16, warmup=500, samples=500, chains=2, map_steps=1000)
)
print(jax.devices(), CFG)

# %% [markdown]
# ## 1. The model and its sites
# Site names are explicit: `layer{l}/scale`, `layer{l}/w_z` (the unit draw), `layer{l}/w`
# (deterministic `scale * w_z`), `layer{l}/b`, `layer{l}/act/{c, lam, gamma}`, `y`.

# %%
model = SparseMLP((30, CFG["hidden"], 1), activation="mmelu", prior="soft_laplace", likelihood="bernoulli")
tr = handlers.trace(handlers.seed(model, 0)).get_trace(jnp.zeros((2, 30)), jnp.zeros(2))
for name, site in tr.items():
    print(f"{name:16s} {site['type']:13s} {tuple(jnp.shape(site['value']))}")

# %% [markdown]
# ## 2. Sample the posterior on breast cancer (569 x 30, binary, ships with scikit-learn)

# %%
data = load_breast_cancer()
rng = np.random.default_rng(0)
idx = rng.permutation(len(data.target))
te, trn = idx[:171], idx[171:]
mu, sd = data.data[trn].mean(0), data.data[trn].std(0)
x = ((data.data - mu) / sd).astype("float32")
y = data.target.astype("float32")
if QUICK:
    trn = trn[:120]
xtr, ytr, xte, yte = x[trn], y[trn], x[te], y[te]

res = run_mcmc(
    model, xtr, ytr, num_warmup=CFG["warmup"], num_samples=CFG["samples"], num_chains=CFG["chains"],
    map_steps=CFG["map_steps"],
)
diag = diagnostics_table(res, model, xtr, ytr)

# %% [markdown]
# Hidden-unit weights are not identifiable (units can be permuted), so R-hat and ESS are
# reported on the activation parameters, the layer scales, the log-likelihood and the
# posterior predictive mean — quantities that are.

# %% [markdown]
# ## 3. Posterior predictive, calibration, sparsity

# %%
pp = posterior_predictive(model, res.samples, xte, prob=0.9, grouped=True)
p = pp["mean"]
print(f"test accuracy {np.mean((p > 0.5) == yte):.3f}  NLL {negative_log_likelihood(p, yte):.3f}  "
      f"ECE {expected_calibration_error(p, yte):.3f}  Brier {brier_score(p, yte):.3f}")
print("mean 90 % credible-interval width of P(y=1):", float(np.mean(pp["upper"] - pp["lower"])))
pr = pruned_accuracy(model, res.samples, xte, yte, eps=0.1, grouped=True)
print(f"pruning weights with P(|w| < 0.1) > 0.5: {100 * pr['fraction_pruned']:.1f} % pruned, "
      f"pruned test accuracy {pr['accuracy']:.3f}")

# %% [markdown]
# ## 4. The posterior of the activation shape

# %%
flat = res.flat_samples()
grid = jnp.linspace(-3, 3, 201)
curves = jax.vmap(lambda c, l, g: actfx.mmelu(grid, c, l, g))(
    flat["layer0/act/c"], flat["layer0/act/lam"], flat["layer0/act/gamma"]
)
lo, hi = np.quantile(np.asarray(curves), [0.05, 0.95], axis=0)
rel = reliability_curve(p, yte)
fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
ax[0].fill_between(grid, lo, hi, alpha=0.3, label="90 % band")
ax[0].plot(grid, np.asarray(curves).mean(0), label="posterior mean")
ax[0].set_title("layer-0 MMeLU")
ax[0].legend()
ok = rel["count"] > 0
ax[1].plot(rel["confidence"][ok], rel["accuracy"][ok], "o-")
ax[1].plot([0.5, 1], [0.5, 1], "k:")
ax[1].set_title("reliability")
plt.show()

# %% [markdown]
# ## 5. Proximal HMC on an exact Laplace prior
# `ProximalHMC` runs the leapfrog with the gradient of the Moreau envelope of the l1 term
# (soft-thresholding) and accepts with the exact non-smooth energy, so it samples the exact
# posterior. Here: `t ~ Laplace(0, 0.5)`, two observations `N(t, 1)`; compare with quadrature.


# %%
def toy():
    t = numpyro.sample("t", dist.Laplace(0.0, 0.5))
    numpyro.sample("y", dist.Normal(t, 1.0), obs=jnp.array([0.8, 0.1]))


n = 500 if QUICK else 4000
mcmc = MCMC(ProximalHMC(toy, num_steps=5), num_warmup=300, num_samples=n, num_chains=2,
            chain_method="vectorized", progress_bar=False)
mcmc.run(jax.random.key(1))
t = np.asarray(mcmc.get_samples()["t"])
g = np.linspace(-8, 8, 20001)
dens = np.exp(-np.abs(g) / 0.5 - 0.5 * ((0.8 - g) ** 2 + (0.1 - g) ** 2))
dens /= np.trapezoid(dens, g)
print(f"posterior mean: MCMC {t.mean():.3f} vs quadrature {np.trapezoid(g * dens, g):.3f}; "
      f"P(t < 0): MCMC {np.mean(t < 0):.3f} vs quadrature {np.trapezoid(dens * (g < 0), g):.3f}")
