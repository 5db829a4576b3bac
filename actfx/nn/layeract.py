"""Flax NNX module for LayerAct."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from flax import nnx
from jaxtyping import Array, ArrayLike

from actfx.layeract import layeract, validate_layeract_args


class LayerAct(nnx.Module):
    """Layer-level activation (LA-SiLU / LA-HardSiLU) as an NNX module.

    Thin over :func:`actfx.layeract` (see it for the formula and arguments); no
    parameters and no running statistics, so train and eval behave the same.

    Example:
      >>> import jax.numpy as jnp
      >>> from actfx.nn import LayerAct
      >>> LayerAct("hardsilu")(jnp.ones((2, 4, 4, 3))).shape
      (2, 4, 4, 3)
    """

    def __init__(
        self,
        kind: Literal["silu", "hardsilu"] = "silu",
        *,
        alpha: float = 1e-5,
        axis: int | Sequence[int] | None = None,
        ddof: int = 1,
        grad: Literal["autodiff", "paper"] = "autodiff",
    ):
        validate_layeract_args(kind=kind, alpha=alpha, ddof=ddof, grad=grad)
        self.kind = kind
        self.alpha = float(alpha)
        self.axis = axis if axis is None or isinstance(axis, int) else tuple(axis)
        self.ddof = ddof
        self.grad = grad

    def __call__(self, x: ArrayLike) -> Array:
        return layeract(
            x, kind=self.kind, alpha=self.alpha, axis=self.axis, ddof=self.ddof, grad=self.grad
        )
