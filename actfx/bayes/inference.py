"""Inference drivers: MAP/SVI initialisation, NUTS, block Gibbs and proximal HMC runs."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike
from numpyro.infer import HMC, MCMC, NUTS, SVI, Gibbs, Trace_ELBO
from numpyro.infer.autoguide import AutoDelta
from numpyro.infer.initialization import init_to_median, init_to_value

from actfx.bayes.model import SparseMLP
from actfx.bayes.proximal_hmc import ProximalHMC

KERNELS = ("nuts", "hmc", "gibbs", "proximal")


def default_chain_method(num_chains: int) -> str:
    """``"parallel"`` when there is one device per chain, else ``"vectorized"`` (one device).

    Example:
      >>> default_chain_method(1)
      'vectorized'
    """
    return "parallel" if num_chains > 1 and jax.local_device_count() >= num_chains else "vectorized"


def map_estimate(
    model: SparseMLP,
    x: ArrayLike,
    y: ArrayLike,
    *,
    num_steps: int = 1000,
    learning_rate: float = 1e-2,
    seed: int = 0,
    num_restarts: int = 1,
) -> dict[str, Array]:
    """MAP point estimate of every latent site by SVI with an ``AutoDelta`` guide (Adam).

    Returns constrained values keyed by site name, ready for ``init_to_value``. (This is the
    MAP of the joint density in the unconstrained parameterisation NumPyro samples in.)
    With ``num_restarts > 1`` the fit is repeated from ``num_restarts`` random starts
    (seeds ``seed, seed + 1, ...``) and the one with the lowest final loss is returned:
    neural-network posteriors have many local modes.

    Example:
      >>> import numpy as np
      >>> m = SparseMLP((2, 3, 1))
      >>> x = np.random.default_rng(0).normal(size=(20, 2)).astype("float32")
      >>> v = map_estimate(m, x, (x[:, 0] > 0).astype("float32"), num_steps=10)
      >>> sorted(v)[:3]
      ['layer0/act/c', 'layer0/act/gamma', 'layer0/act/lam']
    """
    model.check_data(x, y)
    if not (isinstance(num_steps, int) and num_steps >= 1):
        raise ValueError(f"num_steps must be an int >= 1, got {num_steps!r}")
    if not (isinstance(num_restarts, int) and num_restarts >= 1):
        raise ValueError(f"num_restarts must be an int >= 1, got {num_restarts!r}")
    guide = AutoDelta(model, init_loc_fn=init_to_median(num_samples=15))
    svi = SVI(model, guide, optax.adam(learning_rate), Trace_ELBO())
    best, best_loss = None, np.inf
    for r in range(num_restarts):
        res = svi.run(jax.random.key(seed + r), num_steps, jnp.asarray(x), jnp.asarray(y), progress_bar=False)
        loss = float(np.mean(np.asarray(res.losses[-20:])))
        if best is None or loss < best_loss:
            best, best_loss = res.params, loss
    return {k: v for k, v in guide.median(best).items()}


@dataclasses.dataclass
class MCMCResult:
    """Outcome of :func:`run_mcmc`.

    Attributes:
      samples: posterior draws grouped by chain, ``site -> (chains, draws, ...)``
        (deterministic sites such as ``layer0/w`` included); an ArviZ-compatible dict.
      wall_time: seconds of ``MCMC.run`` (compilation, warm-up and sampling).
      num_divergences: divergent transitions after warm-up, all chains.
      num_draws: post-warm-up draws, all chains.
      kernel: kernel name.
      mcmc: the ``numpyro.infer.MCMC`` object.
    """

    samples: dict[str, Array]
    wall_time: float
    num_divergences: int
    num_draws: int
    kernel: str
    mcmc: Any

    def flat_samples(self) -> dict[str, Array]:
        """Draws with the chain axis merged: ``site -> (chains * draws, ...)``."""
        return {k: v.reshape((-1,) + v.shape[2:]) for k, v in self.samples.items()}


def run_mcmc(
    model: SparseMLP,
    x: ArrayLike,
    y: ArrayLike,
    *,
    kernel: str = "nuts",
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 2,
    seed: int = 0,
    init: str | dict = "map",
    map_steps: int = 1000,
    map_restarts: int = 1,
    chain_method: str | None = None,
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 8,
    num_steps: int = 10,
    progress_bar: bool = False,
) -> MCMCResult:
    """Sample the posterior of ``model`` given ``(x, y)``.

    Kernels: ``"nuts"`` (default), ``"hmc"`` (``num_steps`` leapfrog steps),
    ``"gibbs"`` (block updates: a NUTS block on the activation parameters given the rest,
    then a NUTS block on everything else given the activation parameters; NumPyro's
    :class:`~numpyro.infer.Gibbs`, the general form of ``HMCGibbs``), ``"proximal"``
    (:class:`ProximalHMC`, for ``prior="laplace"``).

    ``init="map"`` starts every chain from a :func:`map_estimate` (``map_steps`` Adam steps,
    best of ``map_restarts``) through
    ``init_to_value`` (avoids failed initialisations); ``"median"`` uses ``init_to_median``;
    a dict gives the constrained values directly. ``chain_method`` defaults to
    :func:`default_chain_method`.

    Raises:
      ValueError: bad data (naming ``x``/``y``), unknown ``kernel`` or ``init``, or a
        ``"gibbs"`` run on a model without activation parameters.
    """
    model.check_data(x, y)
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    for name, v in (("num_warmup", num_warmup), ("num_samples", num_samples), ("num_chains", num_chains)):
        if not (isinstance(v, int) and v >= 1):
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    x, y = jnp.asarray(x), jnp.asarray(y)
    if isinstance(init, dict):
        strategy = init_to_value(values=init)
    elif init == "map":
        point = map_estimate(model, x, y, num_steps=map_steps, seed=seed, num_restarts=map_restarts)
        strategy = init_to_value(values=point)
    elif init == "median":
        strategy = init_to_median(num_samples=15)
    else:
        raise ValueError(f"init must be 'map', 'median' or a dict of site values, got {init!r}")
    nuts = lambda: NUTS(  # noqa: E731
        model, init_strategy=strategy, target_accept_prob=target_accept_prob, max_tree_depth=max_tree_depth
    )
    if kernel == "nuts":
        k = nuts()
    elif kernel == "hmc":
        k = HMC(model, init_strategy=strategy, num_steps=num_steps, target_accept_prob=target_accept_prob)
    elif kernel == "proximal":
        k = ProximalHMC(model, init_strategy=strategy, num_steps=num_steps, target_accept_prob=target_accept_prob)
    else:
        act = model.activation_sites()
        if not act:
            raise ValueError(f"kernel='gibbs' needs activation parameters; activation={model.activation!r} has none")
        k = Gibbs([(nuts(), act), (nuts(), None)])
    chain_method = chain_method or default_chain_method(num_chains)
    if kernel == "gibbs" and chain_method == "vectorized":
        chain_method = jax.vmap  # Gibbs takes one key per chain; vmap the whole chain instead
    mcmc = MCMC(
        k,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method=chain_method,
        progress_bar=progress_bar,
    )
    t0 = time.perf_counter()
    div_fields = ("block_states.0.diverging", "block_states.1.diverging") if kernel == "gibbs" else ("diverging",)
    mcmc.run(jax.random.key(seed), x, y, extra_fields=div_fields)
    samples = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(samples)
    wall = time.perf_counter() - t0
    extra = mcmc.get_extra_fields()
    div = int(sum(np.sum(np.asarray(extra[f])) for f in div_fields))
    samples = {k_: v for k_, v in samples.items() if k_ != "y"}
    return MCMCResult(samples, wall, div, num_chains * num_samples, kernel, mcmc)
