"""Inference drivers: MAP/SVI initialisation, NUTS, block Gibbs and proximal HMC runs."""

from __future__ import annotations

import dataclasses
import math
import numbers
import time
import warnings
from collections.abc import Callable
from typing import Any, cast

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike
from numpyro import handlers
from numpyro.diagnostics import split_gelman_rubin
from numpyro.infer import HMC, MCMC, NUTS, SVI, Gibbs, Trace_ELBO
from numpyro.infer.autoguide import AutoDelta
from numpyro.infer.initialization import init_to_median, init_to_value
from numpyro.infer.mcmc import MCMCKernel
from numpyro.infer.util import initialize_model

from actfx._src.bayes.model import SparseMLP
from actfx._src.bayes.proximal_hmc import ProximalHMC
from actfx._src.bayes.tempering import ParallelTempering, check_betas, geometric_betas

KERNELS = ("nuts", "hmc", "gibbs", "proximal", "tempering")
CHAIN_METHODS = ("parallel", "vectorized", "sequential")
# Start of MAP restarts 1, 2, ...: init_to_median of 15 prior draws with the restart's key
# (restart 0 is the AutoDelta guide's own init). On a 1-1-1 PReLU net it reached the global
# mode in 1 of 6 restarts; init_to_uniform(radius=2) in 0 of 6.
_RESTART_INIT = init_to_median(num_samples=15)


class MCMCConvergenceWarning(UserWarning):
    """Issued by :func:`run_mcmc` when more than 1 % of the transitions diverged or a site's
    split R-hat exceeds 1.01: the draws may not represent the posterior."""


class MAPDivergedError(FloatingPointError):
    """:func:`map_estimate` ended at a non-finite loss or point (e.g. a too large
    ``learning_rate``); such a point is never used to start MCMC."""


def _check_int(name: str, v: Any, low: int = 1) -> None:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
        raise ValueError(f"{name} must be an int >= {low}, got {v!r}")


def _check_positive_float(name: str, v: Any) -> None:
    if (
        isinstance(v, bool)
        or not isinstance(v, numbers.Real)
        or not (math.isfinite(v) and float(v) > 0)
    ):
        raise ValueError(f"{name} must be a finite float > 0, got {v!r}")


def default_chain_method(num_chains: int) -> str:
    """``"parallel"`` when there is one device per chain, else ``"vectorized"`` (one device).

    Example:
      >>> default_chain_method(1)
      'vectorized'
    """
    return "parallel" if num_chains > 1 and jax.local_device_count() >= num_chains else "vectorized"


def _optimizer(learning_rate, optimizer):
    if optimizer is None:
        _check_positive_float("learning_rate", learning_rate)
        return optax.adam(learning_rate)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(
            f"optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}"
        )
    return optimizer


def multistart_map(
    model: SparseMLP,
    x: ArrayLike,
    y: ArrayLike,
    *,
    num_restarts: int,
    num_steps: int = 1000,
    learning_rate: float = 1e-2,
    optimizer: optax.GradientTransformation | None = None,
    seed: int = 0,
) -> tuple[list[dict[str, Array]], np.ndarray]:
    """``num_restarts`` MAP fits from different random starts, optimised together (vmapped).

    Restart 0 is ``SVI.run`` with the key ``jax.random.key(seed)``; restart ``r >= 1`` starts
    from ``init_to_median(num_samples=15)`` drawn with the key ``jax.random.key(seed + r)``
    (a different small random network each). Every restart takes
    ``num_steps`` optimiser steps on the negative log joint (SVI with an ``AutoDelta``
    guide). All restarts share one compiled step.

    Returns:
      ``(points, losses)``: the constrained MAP values of each restart (site -> value, for
      ``init_to_value``) and the final loss of each (mean of the last 20 steps; ``inf``
      where the loss or the point is not finite).

    Raises:
      ValueError: as :func:`map_estimate`.

    Example:
      >>> import numpy as np
      >>> m = SparseMLP((2, 3, 1))
      >>> x = np.random.default_rng(0).normal(size=(20, 2)).astype("float32")
      >>> y = (x[:, 0] > 0).astype("float32")
      >>> pts, losses = multistart_map(m, x, y, num_restarts=2, num_steps=10)
      >>> len(pts), losses.shape, bool(pts[0]["layer0/act/c"] != pts[1]["layer0/act/c"])
      (2, (2,), True)
    """
    model.check_data(x, y)
    _check_int("num_steps", num_steps)
    _check_int("num_restarts", num_restarts)
    _check_int("seed", seed, low=0)
    optimizer = _optimizer(learning_rate, optimizer)
    x, y = jnp.asarray(x), jnp.asarray(y)
    guide = AutoDelta(model, init_loc_fn=init_to_median(num_samples=15))
    svi = SVI(model, guide, optimizer, Trace_ELBO())
    state0 = svi.init(jax.random.key(seed), x, y)
    names = list(svi.optim.get_params(state0.optim_state))
    states = [state0]  # restart 0: the guide's own init (as a single SVI run with this seed)
    for r in range(1, num_restarts):
        key = jax.random.key(seed + r)
        z = initialize_model(
            key, model, init_strategy=_RESTART_INIT, model_args=(x, y)
        ).param_info.z
        params = {n: z[n[: -len("_auto_loc")]] for n in names}
        states.append(state0._replace(optim_state=svi.optim.init(params), rng_key=key))
    batch = jax.tree.map(lambda *a: jnp.stack(a), *states)

    @jax.jit
    def fit(batch):
        def step(st, _):
            return jax.vmap(lambda s: svi.update(s, x, y))(st)

        return jax.lax.scan(step, batch, None, length=num_steps)

    batch, losses = fit(batch)
    params = jax.vmap(svi.get_params)(batch)
    losses = np.asarray(losses)
    final = np.mean(losses[-min(20, num_steps) :], axis=0)
    points, out_losses = [], []
    for r in range(num_restarts):
        pt = guide.median(jax.tree.map(lambda a: a[r], params))
        finite = np.isfinite(final[r]) and all(
            bool(np.all(np.isfinite(np.asarray(v)))) for v in pt.values()
        )
        points.append(dict(pt))
        out_losses.append(float(final[r]) if finite else np.inf)
    return points, np.asarray(out_losses)


def _split_potential(model: SparseMLP, x: Array, y: Array, z_like: dict):
    """``(pe, ll, unravel)``: the unconstrained potential (negative log joint with the
    transforms' Jacobians, what MCMC samples; NumPyro's ``potential_energy``, as
    ``initialize_model`` builds it) and the log-likelihood of ``y``, both on a flat
    unconstrained vector, and the map from that vector to the sites' dict shaped like
    ``z_like`` (arrays or ``ShapeDtypeStruct``)."""
    from numpyro.infer.util import constrain_fn, potential_energy

    _, unravel = jax.flatten_util.ravel_pytree(
        jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), z_like)
    )

    def pe(zf):
        return potential_energy(model, (x, y), {}, unravel(zf))

    def ll(zf):
        params = constrain_fn(model, (x, y), {}, unravel(zf))
        tr = handlers.trace(handlers.substitute(model, data=params)).get_trace(x, y)
        site = tr["y"]
        return jnp.sum(site["fn"].log_prob(site["value"]))

    return pe, ll, unravel


def annealed_map(
    model: SparseMLP,
    x: ArrayLike,
    y: ArrayLike,
    *,
    num_restarts: int = 64,
    num_steps: int = 2000,
    anneal_fraction: float = 0.5,
    prior_weight_start: float = 1.0,
    learning_rate: float = 2e-2,
    seed: int = 0,
) -> tuple[list[dict[str, Array]], np.ndarray, np.ndarray]:
    r"""Many MAP restarts in one vectorised batch, ranked by the posterior density.

    Restart ``r`` starts from a draw of the prior (``numpyro.infer.Predictive``, key
    ``jax.random.key(seed)``), mapped to the unconstrained space MCMC samples in, and takes
    ``num_steps`` Adam steps (learning rate on a cosine decay from ``learning_rate`` to 1 %
    of it) on

    .. math::
        U_\beta(z) = -\log p(y \mid z) - \beta_t \big(\log p(z) + \log|J(z)|\big),

    where :math:`\beta_t` rises geometrically from ``prior_weight_start`` to 1 over the first
    ``anneal_fraction`` of the steps and stays 1 after, so every end point is a mode of the
    density MCMC samples (Jacobian included). The default ``prior_weight_start=1`` does not
    anneal: on the planted 8-3-1 MMeLU problem of ``experiments/bayes_sparse.py`` (n = 200)
    annealing from 0.01 or 1e-4 found the teacher's basin no more often (1/64 and 2/64
    restarts on seeds 0 and 1, vs 1/64 and 5/64 without), nor did injected exploration noise
    (0/64 on seeds 0 and 2). What helps is the number of restarts and their spread: prior
    draws reached the basin in 1-5 % of restarts (5/128, 7/128, 1/128 on seeds 0-2), SVI
    restarts from ``init_to_median`` in 0 of 32. All restarts share one compiled
    ``lax.scan``, so their cost grows with the batch, not with Python overhead.

    Returns:
      ``(points, losses, log_liks)``: constrained points (site -> value, for
      ``init_to_value``), the final potential :math:`U_1` (negative log joint in the
      unconstrained space; ``inf`` where not finite) and the training log-likelihood of each.
      Rank restarts by ``losses`` (the posterior density), not by ``log_liks``.

    Raises:
      ValueError: bad data, or an argument out of range (named).

    Example:
      >>> import numpy as np
      >>> m = SparseMLP((2, 3, 1), likelihood="normal")
      >>> x = np.random.default_rng(0).normal(size=(20, 2)).astype("float32")
      >>> pts, losses, lls = annealed_map(m, x, x[:, 0], num_restarts=3, num_steps=20)
      >>> len(pts), losses.shape, lls.shape
      (3, (3,), (3,))
    """
    from numpyro.infer import Predictive
    from numpyro.infer.util import constrain_fn, unconstrain_fn

    model.check_data(x, y)
    _check_int("num_restarts", num_restarts)
    _check_int("num_steps", num_steps)
    _check_int("seed", seed, low=0)
    _check_positive_float("learning_rate", learning_rate)
    for name, v in (
        ("anneal_fraction", anneal_fraction),
        ("prior_weight_start", prior_weight_start),
    ):
        if isinstance(v, bool) or not (isinstance(v, numbers.Real) and 0 < v <= 1):
            raise ValueError(f"{name} must be a float in (0, 1], got {v!r}")
    x, y = jnp.asarray(x), jnp.asarray(y)
    key_prior, _ = jax.random.split(jax.random.key(seed))
    latent = _latent_sample_sites(model, x, y)
    # Everything below runs traced (jit, eval_shape): NumPyro's Predictive / initialize_model
    # run eagerly dispatch and compile the model's ops one by one (~300 small XLA compiles,
    # most of a small call's time).
    draws = jax.jit(lambda k: Predictive(model, num_samples=num_restarts)(k, x, None))(key_prior)
    draws = {k: v for k, v in draws.items() if k in latent}

    def unconstrain(d):
        return unconstrain_fn(model, (x, y), {}, d)

    one = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), draws)
    pe, ll, unravel = _split_potential(model, x, y, jax.eval_shape(unconstrain, one))
    z_batch = jax.jit(jax.vmap(lambda d: jax.flatten_util.ravel_pytree(unconstrain(d))[0]))(draws)
    n_anneal = max(1, int(anneal_fraction * num_steps))
    log_b0 = math.log(prior_weight_start)

    def beta(t):
        return jnp.exp(log_b0 * jnp.clip(1.0 - t / n_anneal, 0.0, 1.0))

    def objective(zf, b):
        lik = ll(zf)
        return b * pe(zf) - (1.0 - b) * lik  # = -lik - b * (log prior + log|J|)

    opt = optax.adam(optax.cosine_decay_schedule(learning_rate, num_steps, alpha=0.01))

    @jax.jit
    def fit(zb):
        st = jax.vmap(opt.init)(zb)

        def step(carry, t):
            z, s = carry
            g = jax.vmap(jax.grad(objective), in_axes=(0, None))(z, beta(t))
            g = jnp.where(jnp.isfinite(g), g, 0.0)
            upd, s = jax.vmap(opt.update)(g, s, z)
            return (optax.apply_updates(z, upd), s), None

        (z, _), _ = jax.lax.scan(step, (zb, st), jnp.arange(num_steps))
        return z, jax.vmap(pe)(z), jax.vmap(ll)(z)

    z, losses, lls = fit(z_batch)
    losses, lls = np.asarray(losses, dtype=np.float64), np.asarray(lls, dtype=np.float64)
    ok = np.isfinite(losses) & np.all(np.isfinite(np.asarray(z)), axis=1)
    losses = np.where(ok, losses, np.inf)
    # One traced, vectorised map back to the constrained space (an eager constrain_fn per
    # restart dispatched the model's ops one by one: most of a small call's time).
    cz = jax.jit(jax.vmap(lambda zr: constrain_fn(model, (x, y), {}, unravel(zr))))(z)
    cz = {k: v for k, v in cz.items() if k in latent}
    points = jax.jit(lambda c: [{k: v[r] for k, v in c.items()} for r in range(num_restarts)])(cz)
    return points, losses, lls


def map_estimate(
    model: SparseMLP,
    x: ArrayLike,
    y: ArrayLike,
    *,
    num_steps: int = 1000,
    learning_rate: float = 1e-2,
    optimizer: optax.GradientTransformation | None = None,
    seed: int = 0,
    num_restarts: int = 1,
) -> dict[str, Array]:
    """MAP point estimate of every latent site by SVI with an ``AutoDelta`` guide (Adam).

    Returns constrained values keyed by site name, ready for ``init_to_value``. (This is the
    MAP of the joint density in the unconstrained parameterisation NumPyro samples in.)
    With ``num_restarts > 1`` the fit is repeated from ``num_restarts`` random starts
    (:func:`multistart_map`, seeds ``seed, seed + 1, ...``) and the one with the lowest final
    loss is returned: neural-network posteriors have many local modes. Restarts whose loss
    or point is not finite are discarded; if every restart diverges,
    :class:`MAPDivergedError` is raised.

    Args:
      model: the :class:`SparseMLP`.
      x, y: data (validated by :meth:`SparseMLP.check_data`).
      num_steps: SVI (optimiser) steps per restart.
      learning_rate: Adam step size, a finite float > 0 (ignored when ``optimizer`` is given).
      optimizer: any ``optax.GradientTransformation`` to use instead of Adam.
      seed: PRNG seed of the first restart.
      num_restarts: number of random restarts.

    Raises:
      ValueError: bad data, ``num_steps``/``num_restarts`` not an int >= 1, ``learning_rate``
        not a finite float > 0, or ``optimizer`` not an optax transformation.
      MAPDivergedError: every restart ended at a non-finite loss or point.

    Example:
      >>> import numpy as np
      >>> m = SparseMLP((2, 3, 1))
      >>> x = np.random.default_rng(0).normal(size=(20, 2)).astype("float32")
      >>> v = map_estimate(m, x, (x[:, 0] > 0).astype("float32"), num_steps=10)
      >>> sorted(v)[:3]
      ['layer0/act/c', 'layer0/act/gamma', 'layer0/act/lam']
    """
    points, losses = multistart_map(
        model,
        x,
        y,
        num_restarts=num_restarts,
        num_steps=num_steps,
        learning_rate=learning_rate,
        optimizer=optimizer,
        seed=seed,
    )
    if not np.any(np.isfinite(losses)):
        lr = (
            "the optimizer's step size"
            if optimizer is not None
            else f"learning_rate={learning_rate!r}"
        )
        raise MAPDivergedError(
            f"map_estimate diverged in all {num_restarts} restart(s): the MAP point is not finite. "
            f"Lower {lr}; a non-finite point is never used to start MCMC."
        )
    return points[int(np.argmin(losses))]


@dataclasses.dataclass
class MCMCResult:
    """Outcome of :func:`run_mcmc`.

    Attributes:
      samples: posterior draws grouped by chain, ``site -> (chains, draws, ...)``
        (deterministic sites such as ``layer0/w`` included); an ArviZ-compatible dict (see
        :func:`to_inference_data`).
      wall_time: seconds of the whole run, ``map_time + sampling_time``; ESS/s divides by it.
      num_divergences: divergent transitions after warm-up, all chains.
      num_draws: post-warm-up draws, all chains.
      kernel: MCMC kernel name (the class name for a kernel instance).
      mcmc: the ``numpyro.infer.MCMC`` object.
      map_time: seconds of the MAP initialisation (0 unless ``init="map"``).
      sampling_time: seconds of ``MCMC.run`` (compilation, warm-up and sampling).
      max_r_hat: largest split R-hat over every element of every sample site (NaN with
        fewer than 4 draws); hidden-unit weights are not identifiable, so this is a
        conservative (pessimistic) summary, see :func:`diagnostics_table`.
      warnings: the :class:`MCMCConvergenceWarning` messages issued.
      init_values: the constrained start point(s): one dict, or one per chain
        (``init="map_per_chain"`` or a list); None for ``init="median"``.
      map_losses: final MAP losses (negative log joint) of the start point(s), or None.
      swap_accept_rates: ``kernel="tempering"`` (or a :class:`ParallelTempering` instance):
        post-warm-up swap acceptance rate of each adjacent temperature pair,
        ``(chains, num_temperatures - 1)``; None for other kernels.
    """

    samples: dict[str, Array]
    wall_time: float
    num_divergences: int
    num_draws: int
    kernel: str
    mcmc: Any
    map_time: float = 0.0
    sampling_time: float = 0.0
    max_r_hat: float = float("nan")
    warnings: tuple[str, ...] = ()
    init_values: Any = None
    map_losses: Any = None
    swap_accept_rates: Any = None

    @property
    def divergence_rate(self) -> float:
        """``num_divergences / num_draws``."""
        return self.num_divergences / self.num_draws

    def flat_samples(self) -> dict[str, Array]:
        """Draws with the chain axis merged: ``site -> (chains * draws, ...)``."""
        return {k: v.reshape((-1,) + v.shape[2:]) for k, v in self.samples.items()}


def site_r_hats(samples: dict[str, ArrayLike]) -> dict[str, float]:
    """Largest split R-hat (NumPyro's ``split_gelman_rubin``) over the elements of each site.

    ``samples`` are grouped by chain, ``site -> (chains, draws, ...)``; sites with fewer than
    4 draws per chain are skipped.

    Example:
      >>> import numpy as np
      >>> r = site_r_hats({"a": np.random.default_rng(0).normal(size=(2, 100))})
      >>> bool(r["a"] < 1.1)
      True
    """
    out = {}
    for k, v in samples.items():
        v = np.asarray(v)
        if v.ndim < 2 or v.shape[1] < 4:
            continue
        r = np.asarray(split_gelman_rubin(v.reshape(v.shape[:2] + (-1,)).astype(np.float64)))
        out[k] = float(np.nanmax(r)) if np.any(np.isfinite(r)) else float("nan")
    return out


def _convergence_warnings(
    samples: dict,
    sample_sites: list[str],
    num_div: int,
    num_draws: int,
    max_divergence_rate: float,
    max_r_hat: float,
) -> tuple[tuple[str, ...], float]:
    msgs = []
    rate = num_div / num_draws
    if rate > max_divergence_rate:
        msgs.append(
            f"run_mcmc: {num_div} of {num_draws} post-warm-up transitions diverged "
            f"({100 * rate:.1f} % > {100 * max_divergence_rate:g} %); the draws may be biased. "
            "Raise target_accept_prob, reparameterise (centered=False) or use a smoother prior."
        )
    rh = site_r_hats({k: samples[k] for k in sample_sites if k in samples})
    worst = sorted(((v, k) for k, v in rh.items() if np.isfinite(v)), reverse=True)
    top = worst[0][0] if worst else float("nan")
    bad = [(v, k) for v, k in worst if v > max_r_hat]
    if bad:
        shown = ", ".join(f"{k} {v:.3f}" for v, k in bad[:4])
        msgs.append(
            f"run_mcmc: split R-hat > {max_r_hat} on {len(bad)} of {len(rh)} sample sites "
            f"(worst: {shown}); chains have not mixed. Hidden-unit weights are not identifiable "
            "(unit permutations, sign flips): check the identifiable quantities with "
            "diagnostics_table, or run longer."
        )
    for m in msgs:
        warnings.warn(m, MCMCConvergenceWarning, stacklevel=3)
    return tuple(msgs), top


def run_mcmc(
    model: SparseMLP,
    x: ArrayLike,
    y: ArrayLike,
    *,
    kernel: str | MCMCKernel = "nuts",
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 2,
    seed: int = 0,
    init: str | dict | list = "map",
    map_steps: int = 1000,
    map_restarts: int = 4,
    map_learning_rate: float = 1e-2,
    chain_method: str | None = None,
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 10,
    num_leapfrog: int = 10,
    max_divergence_rate: float = 0.01,
    max_r_hat: float = 1.01,
    progress_bar: bool = False,
    dense_mass: bool = False,
    num_temperatures: int | None = None,
    min_beta: float | None = None,
    betas: ArrayLike | None = None,
) -> MCMCResult:
    """Sample the posterior of ``model`` given ``(x, y)``.

    Kernels: ``"nuts"`` (default), ``"hmc"`` (``num_leapfrog`` leapfrog steps),
    ``"gibbs"`` (block updates: a NUTS block on the activation parameters given the rest,
    then a NUTS block on everything else given the activation parameters; NumPyro's
    :class:`~numpyro.infer.Gibbs`, the general form of ``HMCGibbs``), ``"proximal"``
    (:class:`ProximalHMC`, for ``prior="laplace"``), ``"tempering"``
    (:class:`ParallelTempering`: replica exchange over the likelihood temperatures
    ``betas``, NUTS inside every replica, only the ``beta = 1`` draws returned; by default
    a geometric ladder of ``num_temperatures`` (default 8) from 1 down to ``min_beta``
    (default 0.01), or the explicit ladder ``betas``, which overrides both; costs about
    ``num_temperatures`` times a NUTS run; the swap acceptance rates come back as
    ``swap_accept_rates``). ``kernel`` may also be any ``numpyro.infer.mcmc.MCMCKernel``
    instance built on ``model`` (e.g. ``NUTS(model, dense_mass=True)`` or a configured
    ``ParallelTempering``): it is used as given (``target_accept_prob``,
    ``max_tree_depth``, ``num_leapfrog`` configure only the kernels run_mcmc builds, and
    ``dense_mass=True`` is refused); the start point(s) of ``init`` reach it as
    unconstrained ``init_params`` (one per chain; ``init="median"`` leaves the kernel's own
    ``init_strategy``), and divergences are counted when its state has a ``diverging``
    field. NUTS's ``max_tree_depth`` defaults to 10, as in NumPyro.

    ``dense_mass=True`` adapts a dense (full) inverse mass matrix during warm-up instead of
    a diagonal one (NumPyro's ``dense_mass``; kernels ``"nuts"``, ``"hmc"``, ``"gibbs"``
    and ``"tempering"``; ``"proximal"`` is diagonal only). It pays when the posterior is
    strongly correlated and there are few parameters (tens to a few hundred): the adapted
    matrix costs :math:`O(d^2)` per leapfrog step and :math:`O(d^3)` per adaptation window,
    and needs a warm-up long enough to estimate :math:`d(d+1)/2` covariances.

    ``init="map"`` starts every chain from a :func:`map_estimate` (``map_steps`` Adam steps
    of size ``map_learning_rate``, best of ``map_restarts``) through ``init_to_value``
    (avoids failed initialisations); ``"median"`` uses ``init_to_median``; a dict gives the
    constrained values directly; a list of ``num_chains`` dicts gives one start point per
    chain; ``"map_per_chain"`` starts chain ``k`` from its own MAP restart
    (:func:`multistart_map`, a different random init per chain): scattered starts, so that
    R-hat can detect chains stuck in different modes. ``chain_method`` defaults to
    :func:`default_chain_method`.

    After sampling, a :class:`MCMCConvergenceWarning` is issued when more than
    ``max_divergence_rate`` of the transitions diverged, or when the split R-hat of any
    sample site exceeds ``max_r_hat`` (pass ``max_r_hat=float("inf")`` to silence it).
    ``wall_time`` includes the MAP initialisation (``map_time``) and ``MCMC.run``
    (``sampling_time``).

    ``num_leapfrog`` is NumPyro's ``HMC(num_steps=...)``: actfx keeps ``num_steps`` for
    optimiser (SVI) steps, one name per concept.

    Raises:
      ValueError: bad data (naming ``x``/``y``), unknown ``kernel``, ``init`` or
        ``chain_method``, an argument out of range (named: ``num_temperatures`` not an int
        >= 2, ``min_beta`` not in (0, 1), ``betas`` not a decreasing ladder from 1 in
        (0, 1], ``dense_mass`` not a bool or ``True`` with ``kernel="proximal"``), or a
        ``"gibbs"`` run on a model without activation parameters; ``num_temperatures``,
        ``min_beta`` or ``betas`` given with another kernel than ``"tempering"``.
      MAPDivergedError: ``init="map"`` and the MAP fit diverged.
    """
    model.check_data(x, y)
    if not isinstance(dense_mass, bool):
        raise ValueError(f"dense_mass must be a bool, got {dense_mass!r}")
    if dense_mass and kernel == "proximal":
        raise ValueError("dense_mass=True is not supported by kernel='proximal' (diagonal mass)")
    if dense_mass and isinstance(kernel, MCMCKernel):
        raise ValueError(
            "dense_mass=True configures the kernels run_mcmc builds; for a kernel instance "
            "set it on the instance (e.g. NUTS(model, dense_mass=True))"
        )
    ladder = None
    if kernel == "tempering":
        if betas is not None:
            ladder = check_betas(betas)
        else:
            ladder = geometric_betas(
                8 if num_temperatures is None else num_temperatures,
                0.01 if min_beta is None else min_beta,
            )
    else:
        for name, v in (
            ("num_temperatures", num_temperatures),
            ("min_beta", min_beta),
            ("betas", betas),
        ):
            if v is not None:
                raise ValueError(
                    f"{name} is used only by kernel='tempering', got kernel={kernel!r}"
                )
    kernel_name = kernel if isinstance(kernel, str) else type(kernel).__name__
    _check_run_args(
        kernel=kernel,
        ints={
            "num_warmup": num_warmup,
            "num_samples": num_samples,
            "num_chains": num_chains,
            "map_steps": map_steps,
            "map_restarts": map_restarts,
            "num_leapfrog": num_leapfrog,
        },
        seed=seed,
        max_tree_depth=max_tree_depth,
        target_accept_prob=target_accept_prob,
        max_divergence_rate=max_divergence_rate,
        max_r_hat=max_r_hat,
        chain_method=chain_method,
    )
    x, y = jnp.asarray(x), jnp.asarray(y)
    start = _initial_point(
        model,
        x,
        y,
        init,
        num_chains=num_chains,
        map_restarts=map_restarts,
        map_steps=map_steps,
        map_learning_rate=map_learning_rate,
        seed=seed,
    )
    init_params = start.init_params
    if isinstance(kernel, MCMCKernel):
        k = kernel
        if init_params is None and isinstance(start.init_values, dict):
            init_params = _per_chain_init(model, [start.init_values] * num_chains, x, y)
        if init_params is not None and num_chains == 1:
            init_params = jax.tree.map(lambda a: a[0], init_params)
    else:
        k = _make_kernel(
            kernel,
            model,
            start,
            target_accept_prob=target_accept_prob,
            max_tree_depth=max_tree_depth,
            num_leapfrog=num_leapfrog,
            dense_mass=dense_mass,
            betas=ladder,
        )
    mcmc, samples, div, sampling_time = _sample(
        k,
        x,
        y,
        kernel=kernel_name,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method=chain_method,
        init_params=init_params,
        seed=seed,
        progress_bar=progress_bar,
    )
    samples = {k_: v for k_, v in samples.items() if k_ != "y"}
    num_draws = num_chains * num_samples
    sample_sites = [s_ for s_ in samples if s_ in _latent_sample_sites(model, x, y)]
    msgs, top = _convergence_warnings(
        samples, sample_sites, div, num_draws, max_divergence_rate, max_r_hat
    )
    swap_rates = None
    if isinstance(k, ParallelTempering):
        swap_rates = np.asarray(cast(Any, mcmc.last_state).mean_swap_accept_prob).reshape(
            num_chains, k.num_temperatures - 1
        )
    return MCMCResult(
        samples,
        start.map_time + sampling_time,
        div,
        num_draws,
        kernel_name,
        mcmc,
        map_time=start.map_time,
        sampling_time=sampling_time,
        max_r_hat=top,
        warnings=msgs,
        init_values=start.init_values,
        map_losses=start.map_losses,
        swap_accept_rates=swap_rates,
    )


def _sample(
    k: Any,
    x: Array,
    y: Array,
    *,
    kernel: str,
    num_warmup: int,
    num_samples: int,
    num_chains: int,
    chain_method: str | None,
    init_params: Any,
    seed: int,
    progress_bar: bool,
) -> tuple[MCMC, dict[str, Array], int, float]:
    """Run NumPyro's ``MCMC`` with kernel ``k``; return it, the draws grouped by chain, the
    number of divergent transitions and the sampling wall time."""
    mcmc_chain_method: str | Callable[..., Any] = chain_method or default_chain_method(num_chains)
    if (kernel == "gibbs" or isinstance(k, Gibbs)) and mcmc_chain_method == "vectorized":
        mcmc_chain_method = jax.vmap  # Gibbs takes one key per chain; vmap the whole chain instead
    mcmc = MCMC(
        k,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        # numpyro documents chain_method as a name or a callable jax transform (jax.vmap);
        # its inferred type is that of the default ("parallel")
        chain_method=mcmc_chain_method,  # pyright: ignore[reportArgumentType]
        progress_bar=progress_bar,
    )
    t0 = time.perf_counter()
    if kernel == "gibbs":
        div_fields: tuple[str, ...] = ("block_states.0.diverging", "block_states.1.diverging")
    else:
        div_fields = ("diverging",) if "diverging" in k.default_fields else ()
    mcmc.run(jax.random.key(seed), x, y, extra_fields=div_fields, init_params=init_params)
    samples = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(samples)
    sampling_time = time.perf_counter() - t0
    extra = mcmc.get_extra_fields()
    div = int(sum(np.sum(np.asarray(extra[f])) for f in div_fields))
    return mcmc, samples, div, sampling_time


def _check_run_args(
    *,
    kernel: str | MCMCKernel,
    ints: dict[str, int],
    seed: int,
    max_tree_depth: int | tuple[int, int],
    target_accept_prob: float,
    max_divergence_rate: float,
    max_r_hat: float,
    chain_method: str | None,
) -> None:
    """The argument checks of :func:`run_mcmc` (each error names the argument)."""
    if not isinstance(kernel, MCMCKernel) and kernel not in KERNELS:
        raise ValueError(
            f"kernel must be one of {KERNELS} or a numpyro MCMCKernel instance, got {kernel!r}"
        )
    for name, v in ints.items():
        _check_int(name, v)
    _check_int("seed", seed, low=0)
    if isinstance(max_tree_depth, tuple):
        if len(max_tree_depth) != 2:
            raise ValueError(
                f"max_tree_depth must be an int >= 1 or a pair of them, got {max_tree_depth!r}"
            )
        for v in max_tree_depth:
            _check_int("max_tree_depth", v)
    else:
        _check_int("max_tree_depth", max_tree_depth)
    if isinstance(target_accept_prob, bool) or not (
        isinstance(target_accept_prob, numbers.Real) and 0 < target_accept_prob < 1
    ):
        raise ValueError(
            f"target_accept_prob must be a float in (0, 1), got {target_accept_prob!r}"
        )
    if not (isinstance(max_divergence_rate, numbers.Real) and 0 <= max_divergence_rate <= 1):
        raise ValueError(
            f"max_divergence_rate must be a float in [0, 1], got {max_divergence_rate!r}"
        )
    if not (isinstance(max_r_hat, numbers.Real) and max_r_hat >= 1):
        raise ValueError(f"max_r_hat must be a float >= 1, got {max_r_hat!r}")
    if chain_method is not None and chain_method not in CHAIN_METHODS:
        raise ValueError(
            f"chain_method must be None or one of {CHAIN_METHODS}, got {chain_method!r}"
        )


@dataclasses.dataclass(frozen=True)
class _Start:
    """Where the chains start: NumPyro's init strategy, optional per-chain unconstrained
    points, and what the MAP initialisation found (reported in :class:`MCMCResult`)."""

    strategy: Any
    init_params: Any
    init_values: Any
    map_losses: Any
    map_time: float


def _initial_point(
    model: SparseMLP,
    x: Array,
    y: Array,
    init: str | dict | list,
    *,
    num_chains: int,
    map_restarts: int,
    map_steps: int,
    map_learning_rate: float,
    seed: int,
) -> _Start:
    """Resolve ``run_mcmc(init=...)``: a dict, a list of per-chain dicts, ``"map"``,
    ``"map_per_chain"`` (MAP fits, timed) or ``"median"``."""
    map_time = 0.0
    init_params = None
    init_values, map_losses = (init if isinstance(init, (dict, list, tuple)) else None), None
    if isinstance(init, (list, tuple)):
        if len(init) != num_chains or not all(isinstance(d, dict) for d in init):
            raise ValueError(
                f"init as a list must hold num_chains={num_chains} dicts of site values, "
                f"got {len(init)}"
            )
        for i, d in enumerate(init):
            _check_init_values(model, x, y, d, f"init[{i}]")
        init_params = _per_chain_init(model, init, x, y)
        strategy = init_to_value(values=init[0])
    elif isinstance(init, dict):
        _check_init_values(model, x, y, init, "init")
        strategy = init_to_value(values=init)
    elif init in ("map", "map_per_chain"):
        t0 = time.perf_counter()
        per_chain = init == "map_per_chain"
        points, losses = multistart_map(
            model,
            x,
            y,
            num_restarts=num_chains if per_chain else map_restarts,
            num_steps=map_steps,
            learning_rate=map_learning_rate,
            seed=seed,
        )
        finite = np.isfinite(losses)
        if not (finite.all() if per_chain else finite.any()):
            which = (
                f"for chain(s) {np.flatnonzero(~finite).tolist()}"
                if per_chain
                else f"in all {map_restarts} restart(s)"
            )
            raise MAPDivergedError(
                f"map_estimate diverged {which} (map_learning_rate={map_learning_rate!r}); "
                "a non-finite point is never used to start MCMC."
            )
        if per_chain:
            init_params = _per_chain_init(model, points, x, y)
            strategy = init_to_value(values=points[0])
            init_values, map_losses = points, losses
        else:
            best = int(np.argmin(losses))
            init_values, map_losses = points[best], losses[best]
            strategy = init_to_value(values=points[best])
        map_time = time.perf_counter() - t0
    elif init == "median":
        strategy = init_to_median(num_samples=15)
    else:
        raise ValueError(
            "init must be 'map', 'map_per_chain', 'median', a dict or a list of dicts of site "
            f"values, got {init!r}"
        )
    return _Start(strategy, init_params, init_values, map_losses, map_time)


def _make_kernel(
    kernel: str,
    model: SparseMLP,
    start: _Start,
    *,
    target_accept_prob: float,
    max_tree_depth: int,
    num_leapfrog: int,
    dense_mass: bool = False,
    betas: np.ndarray | None = None,
) -> Any:
    """The NumPyro kernel that ``run_mcmc(kernel=...)`` names, started at ``start``."""
    nuts = lambda: NUTS(
        model,
        init_strategy=start.strategy,
        target_accept_prob=target_accept_prob,
        max_tree_depth=max_tree_depth,
        dense_mass=dense_mass,
    )
    if kernel == "nuts":
        return nuts()
    if kernel == "tempering":
        return ParallelTempering(
            model,
            betas=betas,
            dense_mass=dense_mass,
            target_accept_prob=target_accept_prob,
            max_tree_depth=max_tree_depth,
            # numpyro's init_to_* are unannotated (see "proximal" below)
            init_strategy=cast(Callable[..., Any], start.strategy),
        )
    if kernel == "hmc":
        return HMC(
            model,
            init_strategy=start.strategy,
            num_steps=num_leapfrog,
            # None: the trajectory is num_steps leapfrog steps (numpyro documents None; the
            # parameter's type is inferred from its default 2 pi)
            trajectory_length=None,  # pyright: ignore[reportArgumentType]
            target_accept_prob=target_accept_prob,
            dense_mass=dense_mass,
        )
    if kernel == "proximal":
        return ProximalHMC(
            model,
            # numpyro's init_to_* are unannotated (inferred as maybe None); with site=None
            # they return the partial init strategy
            init_strategy=cast(Callable[..., Any], start.strategy),
            num_leapfrog=num_leapfrog,
            target_accept_prob=target_accept_prob,
        )
    # kernel == "gibbs"
    act = model.activation_sites()
    if not act:
        raise ValueError(
            f"kernel='gibbs' needs activation parameters; activation={model.activation!r} has none"
        )
    if start.init_params is not None:
        raise ValueError("init as a list of per-chain dicts is not supported for kernel='gibbs'")
    return Gibbs([(nuts(), act), (nuts(), None)])


def _latent_sample_sites(model: SparseMLP, x: Array, y: Array) -> set[str]:
    names: set[str] = set()

    def names_of(x, y):  # traced abstractly: no op is run or compiled
        tr = handlers.trace(handlers.seed(model, 0)).get_trace(x, y)
        names.update(k for k, s in tr.items() if s["type"] == "sample" and not s["is_observed"])
        return 0

    jax.eval_shape(names_of, x, y)
    return names


def _check_init_values(model: SparseMLP, x: Array, y: Array, values: dict, name: str) -> None:
    """Start values must name latent sample sites, match their shapes, be finite and lie in
    each site's support (a NaN would surface as "invalid logits", a wrong shape as a
    broadcasting error deep inside NumPyro)."""
    tr = handlers.trace(handlers.seed(model, 0)).get_trace(x, y)
    latent = {k: s for k, s in tr.items() if s["type"] == "sample" and not s["is_observed"]}
    deterministic = {k for k, s in tr.items() if s["type"] == "deterministic"}
    unknown = sorted(set(values) - set(latent) - deterministic)
    if unknown:
        raise ValueError(
            f"{name} names sites {unknown} that are not latent sample sites of the model "
            f"({sorted(latent)})"
        )
    for k, v in values.items():
        if k in deterministic:
            continue  # ignored by init_to_value, as before
        v = np.asarray(v)
        want = tuple(jnp.shape(latent[k]["value"]))
        if v.shape != want:
            raise ValueError(f"{name}[{k!r}] must have shape {want}, got {v.shape}")
        if not np.all(np.isfinite(v)):
            raise ValueError(
                f"{name}[{k!r}] must be finite, got a non-finite (NaN or infinite) entry"
            )
        if not bool(np.all(np.asarray(latent[k]["fn"].support(jnp.asarray(v))))):
            raise ValueError(
                f"{name}[{k!r}] lies outside the support of its prior "
                f"({latent[k]['fn'].support}), got {v}"
            )


def _per_chain_init(model: SparseMLP, inits: list[dict], x: Array, y: Array) -> dict[str, Array]:
    """Unconstrained per-chain start points ``site -> (chains, ...)`` from constrained dicts."""
    zs = []
    for d in inits:
        bad = [k for k, v in d.items() if not np.all(np.isfinite(np.asarray(v)))]
        if bad:
            raise ValueError(f"init holds non-finite values at sites {bad}")
        info = initialize_model(
            jax.random.key(0), model, init_strategy=init_to_value(values=d), model_args=(x, y)
        )
        zs.append(info.param_info.z)
    return jax.tree.map(lambda *a: jnp.stack(a), *zs)
