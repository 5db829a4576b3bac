"""MMeLU: the mixture of a ReLU and a triangular bump (Fakhfakh & Chaari)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from actfx._src._checks import ArgumentTypeError, check_finite, check_floating, is_concrete


def _check_param(name: str, value, lo: float | None, hi: float | None) -> None:
    """Type, finiteness and (for concrete values) range of one MMeLU parameter."""
    if isinstance(value, (str, bytes)) or value is None:
        raise ArgumentTypeError(f"{name} must be a real number or a floating array, got {value!r}")
    try:
        dtype = jnp.result_type(value)
    except (TypeError, ValueError):
        raise ArgumentTypeError(
            f"{name} must be a real number or a floating array, got {type(value).__name__}"
        ) from None
    if not (
        jnp.issubdtype(dtype, jnp.integer)
        or jnp.issubdtype(dtype, jnp.floating)
        or dtype == jnp.bool_
    ):
        raise ArgumentTypeError(f"{name} must be real (integer or floating), got dtype {dtype}")
    check_finite(name, value)
    if is_concrete(value):
        arr = np.asarray(value, np.float64)
        if lo is not None and np.any(arr < lo):
            raise ValueError(f"{name} must be >= {lo}, got {value!r}")
        if hi is not None and np.any(arr > hi):
            raise ValueError(f"{name} must be <= {hi}, got {value!r}")


@jax.jit
def _mmelu(x: Array, c: Array, lam: Array, gamma: Array) -> Array:
    """The formula on arrays already checked and cast to one dtype (compiled once per
    shape and dtype)."""
    return (1 - c) * jax.nn.relu(x) + c * jax.nn.relu(lam - jnp.abs(x - gamma))


def mmelu(x: ArrayLike, c: ArrayLike, lam: ArrayLike, gamma: ArrayLike) -> Array:
    r"""MMeLU activation: a convex mix of a ReLU and a triangular bump.

    .. math::
        f(x) = (1 - c)\,\max(x, 0) + c\,\max(\lambda - |x - \gamma|, 0)

    ``c`` in [0, 1] weighs the bump, ``lam`` >= 0 is its half-width (and height; at
    ``lam = 0`` the bump vanishes -- the value a softplus-parametrised ``lam`` reaches
    after large steps) and ``gamma`` its centre. ``c``, ``lam`` and ``gamma`` broadcast
    against ``x`` (scalars for a per-layer activation, shape ``(C,)`` for per-channel on a
    channel-last ``x``). The output dtype is the result dtype of ``x`` and the parameters
    (pass parameters of ``x``'s dtype to keep it).

    Checks: concrete parameters must be finite, ``0 <= c <= 1`` and ``lam >= 0``
    (``actfx.nn.MMeLU`` keeps them there through sigmoid/softplus). Traced parameters
    (inside ``jit``/``grad``) cannot be checked; the formula is then evaluated as written
    (a NaN parameter gives NaN). Extreme ``x`` stays finite (``x - gamma`` overflowing to
    ``+-inf`` only switches the bump off, which it is there anyway); ``x = +inf`` gives
    ``+inf`` (``(1 - c) relu(x)``, ``c < 1``) and NaN ``x`` gives NaN, both documented
    exceptions.

    Compiled like ``jax.nn``'s activations, but the checks run first, in Python: the
    formula is a ``jax.jit``-compiled kernel called after them. (Jitting ``mmelu`` itself
    would make every argument a tracer -- MMeLU has no static arguments to mark with
    ``static_argnames`` -- so a concrete ``c = 1.5`` would no longer raise.)

    Args:
      x: input array, any shape.
      c: mixing weight, broadcastable to ``x``.
      lam: bump half-width, broadcastable to ``x``.
      gamma: bump centre, broadcastable to ``x``.

    Returns:
      Array of the broadcast shape of ``x`` and the parameters.

    Raises:
      ValueError: a concrete parameter NaN/inf, ``c`` outside [0, 1], ``lam < 0``;
        shapes that do not broadcast.
      TypeError: ``x`` not floating, a parameter not a real number/array (an
        ``ArgumentTypeError``, a ``TypeError`` that is also a ``ValueError``).

    References:
      M. Fakhfakh, L. Chaari, *Bayesian optimization for sparse neural networks with
      trainable activation functions*, arXiv:2304.04455.

    Example:
      >>> import jax.numpy as jnp, actfx
      >>> actfx.mmelu(jnp.array([-2.0, 0.0, 0.5, 2.0]), c=0.5, lam=1.0, gamma=0.0)
      Array([0. , 0.5, 0.5, 1. ], dtype=float32)
    """
    check_floating("x", x)
    _check_param("c", c, 0.0, 1.0)
    _check_param("lam", lam, 0.0, None)
    _check_param("gamma", gamma, None, None)
    try:
        np.broadcast_shapes(*(np.shape(a) for a in (x, c, lam, gamma)))
    except ValueError:
        raise ValueError(
            f"x {np.shape(x)}, c {np.shape(c)}, lam {np.shape(lam)} and gamma "
            f"{np.shape(gamma)} do not broadcast together"
        ) from None
    dtype = jnp.result_type(x, c, lam, gamma)  # Python scalars are weak: x's dtype wins.
    return _mmelu(*(jnp.asarray(a, dtype) for a in (x, c, lam, gamma)))
