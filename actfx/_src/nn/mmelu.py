"""Flax NNX module for MMeLU with constrained trainable parameters."""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, ArrayLike

from actfx._src.mmelu import mmelu
from actfx._src.nn._common import (
    as_input,
    broadcast_param,
    channel_param_shape,
    check_dtype,
    check_int,
    check_num_features,
    check_real,
    fit_param,
    positive,
    positive_raw,
    unit_interval,
    unit_raw,
)


def validate_mmelu_args(
    num_features, c_init, lam_init, gamma_init, channel_axis, dtype, param_dtype
):
    """Shared NNX/Linen checks; returns ``(num_features, c_raw, lam_raw, gamma_raw)``: the
    stored (unconstrained) initial values, each checked to fit ``param_dtype``."""
    num_features = check_num_features(num_features)
    c = check_real("c_init", c_init, low=0.0, high=1.0)
    lam = check_real("lam_init", lam_init, low=0.0)
    gamma = check_real("gamma_init", gamma_init)
    check_int("channel_axis", channel_axis)
    check_dtype("dtype", dtype)
    check_dtype("param_dtype", param_dtype, allow_none=False)
    c_raw = unit_raw("c_init", c, param_dtype)
    lam_raw = positive_raw("lam_init", lam, param_dtype)
    gamma_raw = fit_param("gamma_init", gamma, gamma, param_dtype)
    return num_features, c_raw, lam_raw, gamma_raw


class MMeLU(nnx.Module):
    r"""MMeLU ``(1-c) relu(x) + c relu(lam - |x - gamma|)`` with trainable ``c, lam, gamma``.

    Thin over :func:`actfx.mmelu`. The trainable values are ``nnx.Param`` s stored
    unconstrained -- ``c_raw``, ``lam_raw``, ``gamma_raw`` -- and read through the read-only
    properties :attr:`c`, :attr:`lam`, :attr:`gamma`:

    * ``c = clip(sigmoid(c_raw), 1e-6, 1 - 1e-6)`` lies *strictly* in (0, 1),
    * ``lam = max(softplus(lam_raw), 1e-6)`` is strictly positive,
    * ``gamma = gamma_raw`` is free,

    each evaluated in float32 (or ``param_dtype`` if wider), so no optimiser step puts
    ``c`` on 0 or 1 or ``lam`` on 0. With ``num_features=None`` one set is shared by the
    layer; with ``num_features=C`` there is one per channel (the ``channel_axis`` of ``x``).

    Args:
      num_features: ``None`` (per-layer) or the number of channels (per-channel).
      c_init: initial mixing weight in (0, 1).
      lam_init: initial half-width, > 0.
      gamma_init: initial centre.
      channel_axis: the channel axis of ``x`` (per-channel only; default last).
      dtype: computation dtype; ``None`` (default) computes in the dtype of ``x`` (the
        parameters are cast to it, as ``nnx.PReLU`` does), so an activation keeps its
        input's dtype. Flax's layers would promote bfloat16 inputs to the float32
        parameters; an activation deliberately does not.
      param_dtype: storage dtype of the parameters (default float32).
      rngs: accepted for a uniform module signature; initialisation is deterministic.

    Raises:
      ValueError: ``num_features`` not ``None``/positive; ``c_init`` outside
        ``[1e-6, 1 - 1e-6]`` or ``lam_init < 1e-6`` (values the transforms cannot
        represent: raised, not clipped); a non-finite or non-real init, or one whose stored
        value overflows ``param_dtype`` (e.g. ``lam_init=1e5`` in float16); a non-floating
        ``dtype``/``param_dtype``; ``x`` without ``num_features`` channels on
        ``channel_axis``.

    Reference:
      M. Fakhfakh, L. Chaari, *Bayesian optimization for sparse neural networks with
      trainable activation functions*, arXiv:2304.04455.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from actfx.nn import MMeLU
      >>> act = MMeLU(3, c_init=0.25, rngs=nnx.Rngs(0))
      >>> act(jnp.ones((2, 3))).shape, act.c.shape, round(float(act.c[0]), 6)
      ((2, 3), (3,), 0.25)
      >>> MMeLU(2, channel_axis=1)(jnp.ones((1, 2, 5))).shape   # NCW input
      (1, 2, 5)
    """

    def __init__(
        self,
        num_features: int | None = None,
        *,
        c_init: float = 0.5,
        lam_init: float = 1.0,
        gamma_init: float = 0.0,
        channel_axis: int = -1,
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs | None = None,
    ):
        num_features, c_raw, lam_raw, gamma_raw = validate_mmelu_args(
            num_features, c_init, lam_init, gamma_init, channel_axis, dtype, param_dtype
        )
        shape = () if num_features is None else (num_features,)
        self.num_features = num_features
        self.channel_axis = int(channel_axis)
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.c_raw = nnx.Param(jnp.full(shape, c_raw, param_dtype))
        self.lam_raw = nnx.Param(jnp.full(shape, lam_raw, param_dtype))
        self.gamma_raw = nnx.Param(jnp.full(shape, gamma_raw, param_dtype))

    @property
    def c(self) -> Array:
        """Mixing weight in (0, 1) (read-only; train ``c_raw``)."""
        return unit_interval(self.c_raw[...])

    @property
    def lam(self) -> Array:
        """Half-width > 0 (read-only; train ``lam_raw``)."""
        return positive(self.lam_raw[...])

    @property
    def gamma(self) -> Array:
        """Centre of the bump (read-only; train ``gamma_raw``)."""
        return self.gamma_raw[...]

    def __call__(self, x: ArrayLike) -> Array:
        x = as_input(x, self.dtype)
        shape = channel_param_shape(x, self.num_features, self.channel_axis)
        dt = x.dtype
        return mmelu(
            x,
            broadcast_param(self.c, shape, dt),
            broadcast_param(self.lam, shape, dt),
            broadcast_param(self.gamma, shape, dt),
        )
