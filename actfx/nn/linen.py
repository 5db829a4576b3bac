"""Thin Flax Linen wrappers over the functional core, for users still on Linen."""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from actfx.layeract import layeract
from actfx.mmelu import mmelu
from actfx.topk import topk


class LayerAct(nn.Module):
    """Linen :func:`actfx.layeract` (no parameters).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from actfx.nn.linen import LayerAct
      >>> LayerAct().apply({}, jnp.ones((2, 5))).shape
      (2, 5)
    """

    kind: str = "silu"
    alpha: float = 1e-5
    axis: int | Sequence[int] | None = None
    ddof: int = 1
    grad: str = "autodiff"

    @nn.compact
    def __call__(self, x):
        return layeract(
            x, kind=self.kind, alpha=self.alpha, axis=self.axis, ddof=self.ddof, grad=self.grad
        )


class TopK(nn.Module):
    """Linen :func:`actfx.topk` (no parameters)."""

    k: float
    axis: int | Sequence[int] = (-3, -2)
    by: str = "abs"
    method: str = "exact"

    @nn.compact
    def __call__(self, x):
        return topk(x, self.k, axis=self.axis, by=self.by, method=self.method)


class MMeLU(nn.Module):
    """Linen MMeLU: ``c = sigmoid(c_raw)``, ``lam = softplus(lam_raw)``, free ``gamma``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from actfx.nn.linen import MMeLU
      >>> m = MMeLU(channels=4)
      >>> v = m.init(jax.random.key(0), jnp.ones((2, 4)))
      >>> sorted(v["params"]), m.apply(v, jnp.ones((2, 4))).shape
      (['c_raw', 'gamma', 'lam_raw'], (2, 4))
    """

    channels: int | None = None
    c_init: float = 0.5
    lam_init: float = 1.0
    gamma_init: float = 0.0

    @nn.compact
    def __call__(self, x):
        shape = () if self.channels is None else (self.channels,)
        const = lambda v: (lambda key, s: jnp.full(s, v, jnp.float32))  # noqa: E731
        c_raw = self.param("c_raw", const(math.log(self.c_init / (1 - self.c_init))), shape)
        lam_raw = self.param(
            "lam_raw", const(self.lam_init + math.log(-math.expm1(-self.lam_init))), shape
        )
        gamma = self.param("gamma", const(self.gamma_init), shape)
        dt = jnp.asarray(x).dtype
        return mmelu(
            x,
            jax.nn.sigmoid(c_raw).astype(dt),
            jax.nn.softplus(lam_raw).astype(dt),
            gamma.astype(dt),
        )
