"""Flax NNX module for Top-K activation sparsity."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from flax import nnx
from jaxtyping import Array, ArrayLike

from actfx.topk import topk, validate_topk_args


class TopK(nnx.Module):
    """Spatial Top-K sparsity as an NNX module; thin over :func:`actfx.topk`.

    ``enabled`` is a plain attribute: set ``module.enabled = False`` to run the network
    dense, or insert a ``TopK`` at inference time into a network trained without it
    (the shape-bias experiments do both).

    Example:
      >>> import jax.numpy as jnp
      >>> from actfx.nn import TopK
      >>> y = TopK(0.25)(jnp.arange(32.0).reshape(1, 4, 4, 2))
      >>> int((y != 0).sum())   # 4 of 16 positions kept in each of 2 channels
      8
    """

    def __init__(
        self,
        k: float,
        *,
        axis: int | Sequence[int] = (-3, -2),
        by: Literal["abs", "value"] = "abs",
        method: Literal["exact", "approx"] = "exact",
        enabled: bool = True,
    ):
        validate_topk_args(k=k, by=by, method=method)
        self.k = float(k)
        self.axis = axis if isinstance(axis, int) else tuple(axis)
        self.by = by
        self.method = method
        self.enabled = enabled

    def __call__(self, x: ArrayLike) -> Array:
        if not self.enabled:
            return x
        return topk(x, self.k, axis=self.axis, by=self.by, method=self.method)
