"""MMeLU: the mixture of a ReLU and a triangular bump (Fakhfakh & Chaari)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from actfx._checks import check_finite, check_floating


def mmelu(x: ArrayLike, c: ArrayLike, lam: ArrayLike, gamma: ArrayLike) -> Array:
    r"""MMeLU activation: a convex mix of a ReLU and a triangular bump.

    .. math::
        f(x) = (1 - c)\,\max(x, 0) + c\,\max(\lambda - |x - \gamma|, 0)

    ``c`` in [0, 1] weighs the bump, ``lam`` > 0 is its half-width (and height) and
    ``gamma`` its centre. ``c``, ``lam`` and ``gamma`` broadcast against ``x`` (scalars for a
    per-layer activation, shape ``(C,)`` for per-channel on a channel-last ``x``). The output
    dtype is the result dtype of ``x`` and the parameters (pass parameters of ``x``'s dtype to
    keep it). Constraints on ``c``/``lam`` are the caller's business (``actfx.nn.MMeLU``
    enforces them through sigmoid/softplus); concrete NaN/inf parameters raise.

    Args:
      x: input array, any shape.
      c: mixing weight, broadcastable to ``x``.
      lam: bump half-width, broadcastable to ``x``.
      gamma: bump centre, broadcastable to ``x``.

    Returns:
      Array of the broadcast shape of ``x`` and the parameters.

    References:
      M. Fakhfakh, L. Chaari, *Bayesian optimization for sparse neural networks with
      trainable activation functions*, arXiv:2304.04455.

    Example:
      >>> import jax.numpy as jnp, actfx
      >>> actfx.mmelu(jnp.array([-2.0, 0.0, 0.5, 2.0]), c=0.5, lam=1.0, gamma=0.0)
      Array([0. , 0.5, 0.5, 1. ], dtype=float32)
    """
    check_floating("x", x)
    for name, p in (("c", c), ("lam", lam), ("gamma", gamma)):
        check_finite(name, p)
    dtype = jnp.result_type(x, c, lam, gamma)  # Python scalars are weak: x's dtype wins.
    x, c, lam, gamma = (jnp.asarray(a, dtype) for a in (x, c, lam, gamma))
    return (1 - c) * jax.nn.relu(x) + c * jax.nn.relu(lam - jnp.abs(x - gamma))
