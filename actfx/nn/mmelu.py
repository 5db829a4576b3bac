"""Flax NNX module for MMeLU with constrained trainable parameters."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, ArrayLike

from actfx._checks import check_finite
from actfx.mmelu import mmelu


def _inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class MMeLU(nnx.Module):
    r"""MMeLU ``(1-c) relu(x) + c relu(lam - |x - gamma|)`` with trainable ``c, lam, gamma``.

    Parameters are stored unconstrained as ``nnx.Param``: ``c = sigmoid(c_raw)`` lies in
    (0, 1) and ``lam = softplus(lam_raw)`` is positive; ``gamma`` is free. With
    ``channels=None`` one set is shared by the layer; with ``channels=C`` there is one per
    channel (the last axis of ``x``).

    Args:
      channels: ``None`` (per-layer) or the number of channels (per-channel).
      c_init: initial mixing weight in (0, 1).
      lam_init: initial half-width, > 0.
      gamma_init: initial centre.
      dtype: parameter dtype.
      rngs: accepted for a uniform module signature (initialisation is deterministic).

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from actfx.nn import MMeLU
      >>> act = MMeLU(channels=3, rngs=nnx.Rngs(0))
      >>> act(jnp.ones((2, 3))).shape, act.c.shape
      ((2, 3), (3,))
    """

    def __init__(
        self,
        channels: int | None = None,
        *,
        c_init: float = 0.5,
        lam_init: float = 1.0,
        gamma_init: float = 0.0,
        dtype=jnp.float32,
        rngs: nnx.Rngs | None = None,
    ):
        if channels is not None and (not isinstance(channels, int) or channels < 1):
            raise ValueError(f"channels must be None or a positive int, got {channels!r}")
        for name, v in (("c_init", c_init), ("lam_init", lam_init), ("gamma_init", gamma_init)):
            check_finite(name, v)
        if not 0.0 < c_init < 1.0:
            raise ValueError(f"c_init must be in (0, 1), got {c_init!r}")
        if not lam_init > 0.0:
            raise ValueError(f"lam_init must be > 0, got {lam_init!r}")
        shape = () if channels is None else (channels,)
        self.channels = channels
        self.c_raw = nnx.Param(jnp.full(shape, math.log(c_init / (1 - c_init)), dtype))
        self.lam_raw = nnx.Param(jnp.full(shape, _inverse_softplus(lam_init), dtype))
        self.gamma = nnx.Param(jnp.full(shape, gamma_init, dtype))

    @property
    def c(self) -> Array:
        """Mixing weight ``sigmoid(c_raw)`` in (0, 1)."""
        return jax.nn.sigmoid(self.c_raw[...])

    @property
    def lam(self) -> Array:
        """Half-width ``softplus(lam_raw)`` > 0."""
        return jax.nn.softplus(self.lam_raw[...])

    def __call__(self, x: ArrayLike) -> Array:
        x = jnp.asarray(x)
        if self.channels is not None and (x.ndim == 0 or x.shape[-1] != self.channels):
            raise ValueError(
                f"x must have {self.channels} channels on its last axis, got shape {x.shape}"
            )
        dt = x.dtype
        return mmelu(x, self.c.astype(dt), self.lam.astype(dt), self.gamma[...].astype(dt))
