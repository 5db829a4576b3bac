"""Parallel tempering (replica exchange) over likelihood temperatures, as a NumPyro kernel."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax import random
from jaxtyping import Array
from numpyro.infer.hmc import HMCState, hmc
from numpyro.infer.initialization import init_to_uniform
from numpyro.infer.mcmc import MCMCKernel
from numpyro.infer.util import ParamInfo
from numpyro.primitives import Messenger

from actfx._src.bayes.kernel_init import split_and_initialize

INNER_KERNELS = ("nuts", "hmc")


class _TemperObserved(Messenger):
    """Multiplies the log-density scale of every *observed* sample site by ``beta``."""

    def __init__(self, fn: Callable | None, beta: Any):
        self.beta = beta
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] == "sample" and msg.get("is_observed"):
            s = msg.get("scale")
            msg["scale"] = self.beta if s is None else self.beta * s


class _TemperedModel:
    """``model`` with one extra last positional argument ``beta``: the observed sites'
    log-density is multiplied by ``beta`` (a picklable object, not a closure)."""

    def __init__(self, model: Callable):
        self.model = model

    def __call__(self, *args, **kwargs):
        *args, beta = args
        with _TemperObserved(None, beta):
            return self.model(*args, **kwargs)


class TemperingState(NamedTuple):
    """State of :class:`ParallelTempering` for one chain (leaves vmap over chains).

    - **i** - iteration index (warm-up included).
    - **z** - unconstrained latent values of the ``beta = 1`` replica (the draws).
    - **replicas** - NumPyro ``HMCState`` of every replica, leading axis = temperature
      (``replicas.z`` holds every replica's position; step size and mass matrix stay with
      their temperature when positions are swapped).
    - **log_lik** - log-likelihood (observed sites) of every replica's position, ``(R,)``.
    - **potential_energy**, **accept_prob**, **mean_accept_prob**, **diverging**,
      **num_steps** - those of the ``beta = 1`` replica (as in ``HMCState``).
    - **swap_accept_prob** - Metropolis acceptance probability of this step's swap attempt
      per adjacent pair ``(k, k+1)``, ``(R - 1,)``; NaN for the pairs not attempted.
    - **mean_swap_accept_prob** - mean of ``swap_accept_prob`` over the attempts per pair,
      restarted after warm-up (so after sampling: the post-warm-up swap acceptance rates).
    - **num_swap_attempts** - attempts per pair counted in that mean.
    - **rng_key** - PRNG key of the swap moves.
    """

    i: Array
    z: dict
    replicas: Any
    log_lik: Array
    potential_energy: Array
    accept_prob: Array
    mean_accept_prob: Array
    diverging: Array
    num_steps: Array
    swap_accept_prob: Array
    mean_swap_accept_prob: Array
    num_swap_attempts: Array
    rng_key: Array


def geometric_betas(num_temperatures: int, min_beta: float) -> np.ndarray:
    r"""The geometric ladder :math:`\beta_k = \beta_{\min}^{k / (R - 1)}`, ``k = 0 .. R-1``.

    Example:
      >>> geometric_betas(3, 0.01).round(4).tolist()
      [1.0, 0.1, 0.01]
    """
    if (
        isinstance(num_temperatures, bool)
        or not isinstance(num_temperatures, numbers.Integral)
        or num_temperatures < 2
    ):
        raise ValueError(f"num_temperatures must be an int >= 2, got {num_temperatures!r}")
    if (
        isinstance(min_beta, bool)
        or not isinstance(min_beta, numbers.Real)
        or not (math.isfinite(min_beta) and 0 < min_beta < 1)
    ):
        raise ValueError(f"min_beta must be a float in (0, 1), got {min_beta!r}")
    k = np.arange(num_temperatures, dtype=np.float64)
    return float(min_beta) ** (k / (num_temperatures - 1))


def check_betas(betas: Any) -> np.ndarray:
    """``betas`` as a float64 array after checking it is a valid ladder: 1-D, at least two
    entries, finite, in (0, 1], first entry 1, strictly decreasing (ValueError otherwise)."""
    try:
        b = np.asarray(betas, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"betas must be a 1-D array of floats, got {betas!r}") from None
    if b.ndim != 1 or b.size < 2:
        raise ValueError(f"betas must be 1-D with at least 2 entries, got shape {b.shape}")
    if not np.all(np.isfinite(b)) or np.any(b <= 0) or np.any(b > 1):
        raise ValueError(f"betas must be finite and in (0, 1], got {b.tolist()}")
    if b[0] != 1.0:
        raise ValueError(f"betas[0] must be 1 (the target posterior), got {b[0]!r}")
    if np.any(np.diff(b) >= 0):
        raise ValueError(f"betas must be strictly decreasing, got {b.tolist()}")
    return b


class ParallelTempering(MCMCKernel):
    r"""Replica exchange over likelihood temperatures with NUTS or HMC inside each replica.

    Replica :math:`k` targets the tempered posterior

    .. math::
        \pi_k(z) \propto p(z)\, p(y \mid z)^{\beta_k}, \qquad
        1 = \beta_1 > \beta_2 > \dots > \beta_R > 0,

    i.e. only the *observed* sites' log-density (likelihood terms, ``numpyro.factor``
    included) is multiplied by :math:`\beta_k`; the prior is never tempered, so hot replicas
    sample near the prior and cross the likelihood's barriers between modes. Every step
    (1) moves each replica by one transition of NumPyro's HMC/NUTS (``numpyro.infer.hmc.hmc``,
    the functional core of ``HMC``/``NUTS``, vmapped over replicas; the model gets
    :math:`\beta_k` as an extra argument, so the potential is rebuilt per replica exactly as
    ``HMC.sample`` rebuilds it from ``model_args``), then (2) proposes to swap the positions
    of adjacent replicas :math:`(k, k+1)`, for even :math:`k` on even steps and odd
    :math:`k` on odd steps (the deterministic even-odd scheme of Syed et al. 2022), accepted
    with probability

    .. math::
        \min\big(1, \exp\{(\beta_k - \beta_{k+1})(\ell(z_{k+1}) - \ell(z_k))\}\big),
        \qquad \ell(z) = \log p(y \mid z).

    Each swap leaves the product of the :math:`\pi_k` invariant, so the ``beta = 1``
    replica's draws are draws of the posterior. Only those are returned (``state.z``, the
    ``sample_field``), so ``MCMC.get_samples()`` looks like plain NUTS output. Every
    temperature keeps its own step size and (diagonal or ``dense_mass``) mass matrix adapted
    during warm-up by NumPyro's ``warmup_adapter``; positions move between temperatures,
    adaptation states do not. All replicas start from the chain's start point (the init
    strategy's, or ``init_params``).

    Cost: ``R`` NUTS/HMC transitions plus one gradient per replica per step. Choose the
    ladder so that the swap acceptance rates (``state.mean_swap_accept_prob``, or the
    ``swap_accept_prob`` extra field) are not near 0: with :math:`d` effective
    parameters adjacent betas need roughly :math:`\log(\beta_k/\beta_{k+1}) \lesssim
    1/\sqrt{d}`; ``min_beta`` must be small enough that the hottest replica crosses the
    barriers (its likelihood barrier times ``min_beta`` of order one nat).

    Differences from NumPyro's ``NUTS``: ``init_params`` is one start point per chain (not
    per replica); ``find_heuristic_step_size`` is not offered; the kernel is not a
    ``Gibbs`` block.

    Args:
      model: NumPyro model with at least one observed site.
      betas: explicit ladder (1-D, ``betas[0] == 1``, strictly decreasing, in (0, 1]);
        overrides ``num_temperatures``/``min_beta``.
      num_temperatures: number of replicas ``R`` of the default geometric ladder
        (:func:`geometric_betas`).
      min_beta: smallest inverse temperature of the geometric ladder, in (0, 1).
      inner_kernel: ``"nuts"`` (default) or ``"hmc"`` (``num_leapfrog`` steps).
      dense_mass: as NumPyro's ``dense_mass`` (bool or list of site-name tuples).
      step_size: initial step size of every replica.
      target_accept_prob: dual-averaging target of every replica.
      max_tree_depth: NUTS's maximum tree depth (int or ``(warm-up, sampling)`` pair).
      num_leapfrog: leapfrog steps per HMC proposal (``inner_kernel="hmc"``).
      init_strategy: NumPyro init strategy for the start point.

    References:
      R. H. Swendsen, J.-S. Wang, *Replica Monte Carlo simulation of spin-glasses*, PRL 57,
      1986; C. J. Geyer, *Markov chain Monte Carlo maximum likelihood*, 1991; D. J. Earl,
      M. W. Deem, *Parallel tempering: theory, applications, and new perspectives*, PCCP 7,
      2005; S. Syed, A. Bouchard-Cote, G. Deligiannidis, A. Doucet, *Non-reversible parallel
      tempering: a scalable highly parallel MCMC scheme*, JRSS B 84, 2022.

    Example:
      >>> import jax, numpyro, numpyro.distributions as dist
      >>> from numpyro.infer import MCMC
      >>> def model():
      ...     t = numpyro.sample("t", dist.Normal(0.0, 3.0))
      ...     numpyro.sample("y", dist.Normal(t**2, 0.2), obs=4.0)
      >>> pt = ParallelTempering(model, num_temperatures=4, min_beta=0.01)
      >>> mcmc = MCMC(pt, num_warmup=100, num_samples=100, progress_bar=False)
      >>> mcmc.run(jax.random.key(0))
      >>> mcmc.get_samples()["t"].shape, mcmc.last_state.mean_swap_accept_prob.shape
      ((100,), (3,))
    """

    def __init__(
        self,
        model: Callable,
        *,
        betas: Any = None,
        num_temperatures: int = 8,
        min_beta: float = 0.01,
        inner_kernel: str = "nuts",
        dense_mass: bool | list = False,
        step_size: float = 1.0,
        target_accept_prob: float = 0.8,
        max_tree_depth: int | tuple[int, int] = 10,
        num_leapfrog: int = 10,
        init_strategy: Callable = init_to_uniform,
    ):
        if not callable(model):
            raise ValueError(f"model must be a callable NumPyro model, got {model!r}")
        if betas is None:
            b = geometric_betas(num_temperatures, min_beta)
        else:
            b = check_betas(betas)
        if inner_kernel not in INNER_KERNELS:
            raise ValueError(f"inner_kernel must be one of {INNER_KERNELS}, got {inner_kernel!r}")
        if not isinstance(dense_mass, (bool, list)):
            raise ValueError(
                f"dense_mass must be a bool or a list of site-name tuples, got {dense_mass!r}"
            )
        if isinstance(step_size, bool) or not (
            isinstance(step_size, numbers.Real) and math.isfinite(step_size) and step_size > 0
        ):
            raise ValueError(f"step_size must be a finite float > 0, got {step_size!r}")
        if isinstance(target_accept_prob, bool) or not (
            isinstance(target_accept_prob, numbers.Real) and 0 < target_accept_prob < 1
        ):
            raise ValueError(
                f"target_accept_prob must be a float in (0, 1), got {target_accept_prob!r}"
            )
        depths = max_tree_depth if isinstance(max_tree_depth, tuple) else (max_tree_depth,)
        for name, v in [("max_tree_depth", d) for d in depths] + [("num_leapfrog", num_leapfrog)]:
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        self._model = model
        self._tempered = _TemperedModel(model)
        self._betas = b
        self._algo = "NUTS" if inner_kernel == "nuts" else "HMC"
        self._dense_mass = dense_mass
        self._step_size = float(step_size)
        self._target_accept_prob = float(target_accept_prob)
        self._max_tree_depth = max_tree_depth
        self._num_leapfrog = int(num_leapfrog)
        self._init_strategy = init_strategy
        # set by init (closures: dropped by __getstate__, rebuilt by the next init)
        self._init_fn = None
        self._sample_fn = None
        self._potential_fn_gen = None
        self._postprocess_fn = None
        self._num_warmup = 0
        self._vectorized = False

    # -- properties ------------------------------------------------------------------
    @property
    def model(self) -> Callable:
        return self._model

    @property
    def betas(self) -> np.ndarray:
        """The inverse temperatures, ``betas[0] = 1`` (a copy)."""
        return self._betas.copy()

    @property
    def num_temperatures(self) -> int:
        return int(self._betas.size)

    @property
    def sample_field(self) -> str:
        return "z"

    @property
    def default_fields(self) -> tuple[str, ...]:
        return ("z", "diverging")

    def get_diagnostics_str(self, state: TemperingState) -> str:
        rates = " ".join(f"{float(r):.2f}" for r in np.ravel(state.mean_swap_accept_prob))
        return (
            f"{int(np.max(state.num_steps))} steps, acc. prob="
            f"{float(jnp.mean(state.mean_accept_prob)):.2f}, swap acc. {rates}"
        )

    def __getstate__(self):
        """Drop the closures of NumPyro's ``hmc`` (as ``HMC.__getstate__`` does), so the
        kernel pickles after a run; ``MCMC`` calls :meth:`init` again before sampling."""
        state = self.__dict__.copy()
        state["_init_fn"] = None
        state["_sample_fn"] = None
        return state

    def postprocess_fn(self, model_args, model_kwargs):
        if self._postprocess_fn is None:
            return lambda z: z
        return self._postprocess_fn(*model_args, 1.0, **(model_kwargs or {}))

    # -- MCMCKernel API --------------------------------------------------------------
    def init(self, rng_key, num_warmup, init_params=None, model_args=(), model_kwargs=None):
        model_kwargs = {} if model_kwargs is None else model_kwargs
        rng_key, vectorized, info = split_and_initialize(
            rng_key, self._tempered, self._init_strategy, (*model_args, 1.0), model_kwargs
        )
        if not any(s["type"] == "sample" and s["is_observed"] for s in info.model_trace.values()):
            raise ValueError(
                "ParallelTempering needs a model with at least one observed sample site "
                "(the likelihood it tempers); this model has none"
            )
        self._potential_fn_gen = info.potential_fn
        self._postprocess_fn = info.postprocess_fn
        self._num_warmup = int(num_warmup)
        self._vectorized = vectorized
        self._init_fn, self._sample_fn = hmc(potential_fn_gen=info.potential_fn, algo=self._algo)
        z0 = info.param_info.z if init_params is None else init_params
        if isinstance(z0, ParamInfo):
            z0 = z0.z
        dense = self._dense_mass
        if isinstance(dense, bool):  # structural form, as HMC.init builds it
            dense = [tuple(sorted(z0))] if dense else []
        # numpyro's init_kernel types are inferred from its defaults (dense_mass: bool, ...)
        init_fn = cast(Callable[..., Any], self._init_fn)
        betas = jnp.asarray(self._betas, dtype=jnp.result_type(float))

        def one_replica(z, beta, key):
            return init_fn(
                z,
                num_warmup=self._num_warmup,
                step_size=self._step_size,
                adapt_step_size=True,
                adapt_mass_matrix=True,
                dense_mass=dense,
                target_accept_prob=self._target_accept_prob,
                num_steps=self._num_leapfrog if self._algo == "HMC" else None,
                trajectory_length=None if self._algo == "HMC" else 2 * math.pi,
                max_tree_depth=self._max_tree_depth,
                model_args=(*model_args, beta),
                model_kwargs=model_kwargs,
                rng_key=key,
            )

        def one_chain(z, key):
            key, key_rep = random.split(key)
            keys = random.split(key_rep, betas.shape[0])
            reps = jax.vmap(one_replica, in_axes=(None, 0, 0))(z, betas, keys)
            ll = self._log_lik(reps.z, model_args, model_kwargs)
            npair = betas.shape[0] - 1
            zero = jnp.zeros((npair,), dtype=betas.dtype)
            return self._state(
                reps, ll, jnp.array(0), jnp.full((npair,), jnp.nan, betas.dtype), zero, zero, key
            )

        # one compiled program: run eagerly, the vmapped init dispatches (and compiles) every
        # primitive on its own, hundreds of small XLA compiles for a network model
        init = jax.jit(jax.vmap(one_chain) if vectorized else one_chain)
        return init(z0, rng_key)

    def sample(self, state, model_args, model_kwargs):
        model_kwargs = {} if model_kwargs is None else model_kwargs
        if self._sample_fn is None:
            raise RuntimeError("ParallelTempering.init must run before the kernel samples")
        step = lambda s: self._sample_one(s, model_args, model_kwargs)
        return jax.vmap(step)(state) if self._vectorized else step(state)

    # -- internals -------------------------------------------------------------------
    @staticmethod
    def _state(reps: HMCState, ll, i, swap_p, mean_swap, n_swap, key) -> TemperingState:
        first = jax.tree.map(lambda a: a[0], reps)
        return TemperingState(
            i=i,
            z=first.z,
            replicas=reps,
            log_lik=ll,
            potential_energy=first.potential_energy,
            accept_prob=first.accept_prob,
            mean_accept_prob=first.mean_accept_prob,
            diverging=first.diverging,
            num_steps=first.num_steps,
            swap_accept_prob=swap_p,
            mean_swap_accept_prob=mean_swap,
            num_swap_attempts=n_swap,
            rng_key=key,
        )

    def _log_lik(self, zs, model_args, model_kwargs) -> Array:
        """Log-likelihood of each replica's position: ``U_0(z) - U_1(z)`` (potentials at
        beta 0 and 1 differ by exactly the observed sites' log-density)."""
        gen = self._potential_fn_gen
        assert gen is not None
        u0 = gen(*model_args, 0.0, **model_kwargs)
        u1 = gen(*model_args, 1.0, **model_kwargs)
        return jax.vmap(lambda z: u0(z) - u1(z))(zs)

    def _sample_one(self, state: TemperingState, model_args, model_kwargs) -> TemperingState:
        sample_fn, gen = self._sample_fn, self._potential_fn_gen
        assert sample_fn is not None and gen is not None
        betas = jnp.asarray(self._betas, dtype=state.log_lik.dtype)
        R = betas.shape[0]
        # (1) one NUTS/HMC transition per replica, each on its own tempered potential
        reps = jax.vmap(lambda s, b: sample_fn(s, (*model_args, b), model_kwargs))(
            state.replicas, betas
        )
        ll = self._log_lik(reps.z, model_args, model_kwargs)
        # (2) swaps of adjacent pairs (k, k+1), k of this step's parity (even-odd scheme)
        key, k_u = random.split(state.rng_key)
        k = jnp.arange(R - 1)
        active = (k % 2) == (state.i % 2)
        log_r = (betas[:-1] - betas[1:]) * (ll[1:] - ll[:-1])
        log_r = jnp.where(jnp.isnan(log_r), -jnp.inf, log_r)
        p = jnp.exp(jnp.minimum(log_r, 0.0))
        acc = active & (random.uniform(k_u, (R - 1,), dtype=p.dtype) < p)
        up = jnp.zeros(R, bool).at[k].set(acc)  # replica k takes k+1's position
        down = jnp.zeros(R, bool).at[k + 1].set(acc)  # replica k+1 takes k's position
        perm = jnp.arange(R) + up.astype(jnp.int32) - down.astype(jnp.int32)
        swapped = up | down
        z_new = jax.tree.map(lambda a: a[perm], reps.z)
        ll_new = ll[perm]

        def refreshed(z, b):
            return jax.value_and_grad(gen(*model_args, b, **model_kwargs))(z)

        pe_new, grad_new = jax.vmap(refreshed)(z_new, betas)

        def pick(new, old):
            m = swapped.reshape((R,) + (1,) * (jnp.ndim(old) - 1))
            return jnp.where(m, new, old)

        reps = reps._replace(
            z=jax.tree.map(pick, z_new, reps.z),
            z_grad=jax.tree.map(pick, grad_new, reps.z_grad),
            potential_energy=pick(pe_new, reps.potential_energy),
        )
        # swap statistics: running mean over attempts, restarted when warm-up ends
        restart = state.i == self._num_warmup
        n_prev = jnp.where(restart, 0.0, state.num_swap_attempts)
        m_prev = jnp.where(restart, 0.0, state.mean_swap_accept_prob)
        n = n_prev + active
        mean = jnp.where(active, m_prev + (p - m_prev) / jnp.maximum(n, 1.0), m_prev)
        swap_p = jnp.where(active, p, jnp.nan)
        return self._state(reps, ll_new, state.i + 1, swap_p, mean, n, key)
