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
# 2. a planted teacher: does the posterior of the activation function cover the teacher's?
#    (on the identifiable, scale-normalised shape), and export to ArviZ;
# 3. sample it on the offline breast-cancer data, read the convergence diagnostics;
# 4. posterior predictive, calibration and sparsity;
# 5. the posterior of the activation shape on real data;
# 6. the proximal (non-smooth) HMC kernel on an exact Laplace prior, checked against quadrature.
#
# Set `ACTFX_NOTEBOOK_QUICK=1` for the tiny configuration the tests run.

# %% [markdown]
# ## Install actfx (skipped when it is already importable)
#
# Set `ACTFX_SOURCE` (environment variable, or edit the line below) to where pip should get
# actfx from: a local clone (`/content/actfx`), a built wheel (`/content/actfx-0.1.0-py3-none-any.whl`)
# or a git URL (`git+https://github.com/<owner>/actfx.git`).
#
# Colab preinstalls `jax`, `jaxlib` (and `libtpu` on a TPU runtime) built for its accelerator;
# a plain `pip install` could replace them with another build. So this cell installs actfx
# itself with `--no-deps`, then only those of its requirements that are *missing*, under a
# constraints file that pins every preinstalled jax/jaxlib/libtpu to the version already
# there (pip then picks versions of the missing packages that work with them, or stops with
# a resolution error; it never swaps the accelerator build).

# %%
import importlib.metadata as _md
import importlib.util
import os
import re
import subprocess
import sys
import tempfile

ACTFX_SOURCE = os.environ.get("ACTFX_SOURCE", "")  # or e.g. "git+https://github.com/<owner>/actfx.git"
ACTFX_EXTRAS = ("experiments",)  # = data (offline datasets) + bayes (ArviZ) + matplotlib
PINNED = ("jax", "jaxlib", "libtpu", "libtpu-nightly", "jax-cuda12-plugin", "jax-cuda12-pjrt")


def _pip(*args):
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *args])


def _missing_requirements(extras):
    """actfx's requirements for `extras` (closed over "actfx[...]" self-references) that no
    installed distribution provides. jax & co. count as present whatever their version."""
    todo, seen, missing = [""] + list(extras), set(), []
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for req in _md.requires("actfx") or []:
            spec, _, marker = req.partition(";")
            want = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
            if (want.group(1) if want else "") != extra:
                continue
            name = re.match(r"\s*([A-Za-z0-9._-]+)", spec).group(1)
            sub = re.search(r"\[([^\]]*)\]", spec)
            if name.lower() == "actfx":
                todo += [e.strip() for e in sub.group(1).split(",")] if sub else []
                continue
            try:
                _md.version(name)
            except _md.PackageNotFoundError:
                missing.append(spec.strip())
    return sorted(set(missing))


if importlib.util.find_spec("actfx") is not None:
    import actfx

    print(f"actfx {actfx.__version__} is already installed ({os.path.dirname(actfx.__file__)}): "
          "nothing to install.")
elif not ACTFX_SOURCE:
    print(
        "actfx is not installed, and ACTFX_SOURCE is not set.\n"
        "Set it to a local clone, a built wheel or a git URL of actfx, e.g. run a cell with\n"
        "    import os; os.environ['ACTFX_SOURCE'] = 'git+https://github.com/<owner>/actfx.git'\n"
        "(or upload a wheel built with `pip wheel --no-deps .` and point ACTFX_SOURCE at it),\n"
        "then re-run this cell."
    )
    raise RuntimeError("actfx is not installed: set ACTFX_SOURCE (see the message above)")
else:
    _pip("--no-deps", ACTFX_SOURCE)
    importlib.invalidate_caches()
    missing = _missing_requirements(ACTFX_EXTRAS)
    pins = []
    for name in PINNED:
        try:
            pins.append(f"{name}=={_md.version(name)}")
        except _md.PackageNotFoundError:
            pass
    if missing:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("\n".join(pins) + "\n")
        print("installing the missing requirements:", ", ".join(missing))
        print("keeping the preinstalled:", ", ".join(pins) or "(none)")
        _pip("-c", f.name, *missing)
    import actfx

    print(f"installed actfx {actfx.__version__} from {ACTFX_SOURCE}")

# %%
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
    to_inference_data,
)

QUICK = os.environ.get("ACTFX_NOTEBOOK_QUICK") == "1"
CFG = (
    # quick: a smoke run (seconds, not a converged posterior): short chains, NUTS trees of at
    # most 2^4 leapfrog steps, 2 MAP restarts; the full config uses NumPyro's default depth 10
    dict(hidden=4, warmup=40, samples=40, chains=2, map_steps=50, map_restarts=2, tree_depth=4, planted_n=60)
    if QUICK
    else dict(hidden=16, warmup=500, samples=500, chains=4, map_steps=1000, map_restarts=4, tree_depth=10,
              planted_n=300)
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
# ## 2. A planted teacher: the posterior of the activation function
# Data from a 2-3-1 MMeLU teacher (`c = 0.6, lam = 1.5, gamma = 0.5`), Normal noise 0.1.
# MMeLU is positively homogeneous in `(x, lam, gamma)`, so the rescaling
# `(W0, b0, lam, gamma, W1) -> (W0/a, b0/a, lam/a, gamma/a, a W1)` leaves the network
# unchanged: `lam` and `gamma` alone are not identifiable, but `c`, `gamma/lam` and the
# scale-normalised activation `g(u) = f(lam u)/lam` are. Each chain starts from its own MAP
# restart (`init="map_per_chain"`) so chains stuck in different modes show in R-hat.
# `python -m experiments.bayes_sparse` runs the full version (3 seeds, two priors, support
# recovery, coverage and verdicts).

# %%
teacher = {"layer0/w": jnp.array([[1.5, -1.0, 0.0], [0.0, 1.2, -1.4]]), "layer0/b": jnp.array([0.2, -0.3, 0.1]),
           "layer1/w": jnp.array([[1.5], [-1.2], [1.4]]), "layer1/b": jnp.array([0.3]),
           "layer0/act/c": 0.6, "layer0/act/lam": 1.5, "layer0/act/gamma": 0.5}
pm = SparseMLP((2, 3, 1), activation="mmelu", prior="horseshoe", likelihood="normal")
rng = np.random.default_rng(1)
xp = rng.normal(size=(CFG["planted_n"], 2)).astype("float32")
yp = np.asarray(pm.forward(teacher, xp))[:, 0] + 0.1 * rng.normal(size=len(xp)).astype("float32")
pres = run_mcmc(pm, xp, yp, init="map_per_chain", num_warmup=CFG["warmup"], num_samples=CFG["samples"],
                num_chains=CFG["chains"], map_steps=CFG["map_steps"], max_tree_depth=CFG["tree_depth"],
                max_r_hat=float("inf"))
ps = pres.flat_samples()
c_d, ratio_d = np.asarray(ps["layer0/act/c"]), np.asarray(ps["layer0/act/gamma"] / ps["layer0/act/lam"])
u = np.linspace(-2, 3, 101)
g = (1 - c_d[:, None]) * np.maximum(u, 0) + c_d[:, None] * np.maximum(1 - np.abs(u - ratio_d[:, None]), 0)
g_true = 0.4 * np.maximum(u, 0) + 0.6 * np.maximum(1 - np.abs(u - 0.5 / 1.5), 0)
g_lo, g_hi = np.quantile(g, [0.05, 0.95], axis=0)
print(f"c: 90 % CI [{np.quantile(c_d, .05):.2f}, {np.quantile(c_d, .95):.2f}] (teacher 0.6); gamma/lam: "
      f"[{np.quantile(ratio_d, .05):.2f}, {np.quantile(ratio_d, .95):.2f}] (teacher 0.33); teacher g inside the "
      f"90 % band on {np.mean((g_lo <= g_true + 1e-6) & (g_true <= g_hi + 1e-6)):.0%} of the grid; "
      f"wall {pres.wall_time:.1f} s (MAP {pres.map_time:.1f} s + sampling {pres.sampling_time:.1f} s)")
fig, ax = plt.subplots(figsize=(5.5, 3.5))
ax.fill_between(u, g_lo, g_hi, alpha=0.3, label="posterior 90 % band")
ax.plot(u, g.mean(0), label="posterior mean")
ax.plot(u, g_true, "k--", label="teacher")
ax.set_xlabel("u = x / lam")
ax.set_title("normalised activation g(u) = f(lam u) / lam")
ax.legend()
plt.show()

# %% [markdown]
# The draws export to ArviZ (`pip install 'actfx[bayes]'`) for its diagnostics and plots;
# here R-hat/ESS of the identifiable `c` (hidden-unit weights are not identifiable).

# %%
try:
    import arviz as az

    idata = to_inference_data(pres, pm, xp, yp)
    print(az.summary(idata, var_names=["layer0/act/c"], kind="diagnostics"))
except ImportError as e:
    print(e)

# %% [markdown]
# ## 3. Sample the posterior on breast cancer (569 x 30, binary, ships with scikit-learn)

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
    map_steps=CFG["map_steps"], map_restarts=CFG["map_restarts"], max_tree_depth=CFG["tree_depth"],
)
diag = diagnostics_table(res, model, xtr, ytr)

# %% [markdown]
# Hidden-unit weights are not identifiable (units can be permuted), so R-hat and ESS are
# reported on the activation parameters, the layer scales, the log-likelihood and the
# posterior predictive mean — quantities that are.

# %% [markdown]
# ## 4. Posterior predictive, calibration, sparsity

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
# ## 5. The posterior of the activation shape on breast cancer
# (no teacher here; the raw `f(x)` is shown, which the scale symmetry leaves partly undetermined)

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
# ## 6. Proximal HMC on an exact Laplace prior
# `ProximalHMC` runs the leapfrog with the gradient of the Moreau envelope of the l1 term
# (soft-thresholding) and accepts with the exact non-smooth energy, so it samples the exact
# posterior. Here: `t ~ Laplace(0, 0.5)`, two observations `N(t, 1)`; compare with quadrature.


# %%
def toy():
    t = numpyro.sample("t", dist.Laplace(0.0, 0.5))
    numpyro.sample("y", dist.Normal(t, 1.0), obs=jnp.array([0.8, 0.1]))


n = 500 if QUICK else 4000
mcmc = MCMC(ProximalHMC(toy, num_leapfrog=5), num_warmup=200 if QUICK else 300, num_samples=n, num_chains=2,
            chain_method="vectorized", progress_bar=False)
mcmc.run(jax.random.key(1))
t = np.asarray(mcmc.get_samples()["t"])
g = np.linspace(-8, 8, 20001)
dens = np.exp(-np.abs(g) / 0.5 - 0.5 * ((0.8 - g) ** 2 + (0.1 - g) ** 2))
dens /= np.trapezoid(dens, g)
print(f"posterior mean: MCMC {t.mean():.3f} vs quadrature {np.trapezoid(g * dens, g):.3f}; "
      f"P(t < 0): MCMC {np.mean(t < 0):.3f} vs quadrature {np.trapezoid(dens * (g < 0), g):.3f}")
