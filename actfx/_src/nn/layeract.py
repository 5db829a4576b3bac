"""Flax NNX module for LayerAct."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from flax import nnx
from jaxtyping import Array, ArrayLike

from actfx._src.layeract import layeract, validate_layeract_args
from actfx._src.nn._common import as_input, check_dtype, check_int


def validate_layeract_module_args(kind, alpha, axis, ddof, grad, dtype, implementation=None):
    """Shared NNX/Linen checks; returns the normalised ``axis``."""
    validate_layeract_args(
        kind=kind, alpha=alpha, ddof=ddof, grad=grad, implementation=implementation
    )
    check_dtype("dtype", dtype)
    if isinstance(axis, bool):
        raise ValueError(f"axis must be None, an int or a tuple of ints, got {axis!r}")
    if axis is None or isinstance(axis, int):
        return axis
    try:
        axis = tuple(check_int("axis", a) for a in axis)
    except TypeError:
        raise ValueError(f"axis must be None, an int or a tuple of ints, got {axis!r}") from None
    return axis


class LayerAct(nnx.Module):
    """Layer-level activation (LA-SiLU / LA-HardSiLU) as an NNX module.

    Thin over :func:`actfx.layeract` (see it for the formula and arguments); no
    parameters and no running statistics, so train and eval behave the same.

    Args:
      kind: ``"silu"`` or ``"hardsilu"``.
      alpha, axis, ddof, grad, implementation: as :func:`actfx.layeract` (``implementation=None``
        uses the compiled CPU kernel where it applies, ``"xla"`` forces pure XLA).
      dtype: computation dtype; ``None`` (default) computes in ``x``'s dtype.
      rngs: accepted for a uniform module signature (no parameters).

    Raises:
      ValueError: a bad ``kind``/``alpha``/``ddof``/``grad``/``axis``/``dtype``/
        ``implementation``.

    Reference:
      K. Yoon, J. Lim, *LayerAct: Advanced Activation Mechanism for Robust Inference of
      CNNs*, AAAI 2025, arXiv:2306.04940.

    Example:
      >>> import jax.numpy as jnp
      >>> from actfx.nn import LayerAct
      >>> LayerAct("hardsilu")(jnp.ones((2, 4, 4, 3))).shape
      (2, 4, 4, 3)
      >>> LayerAct(dtype=jnp.bfloat16)(jnp.ones((2, 3))).dtype
      dtype(bfloat16)
    """

    def __init__(
        self,
        kind: Literal["silu", "hardsilu"] = "silu",
        *,
        alpha: float = 1e-5,
        axis: int | Sequence[int] | None = None,
        ddof: int = 1,
        grad: Literal["autodiff", "paper"] = "autodiff",
        dtype=None,
        implementation: Literal["xla", "native"] | None = None,
        rngs: nnx.Rngs | None = None,
    ):
        self.axis = validate_layeract_module_args(
            kind, alpha, axis, ddof, grad, dtype, implementation
        )
        self.implementation: Literal["xla", "native"] | None = implementation
        self.kind: Literal["silu", "hardsilu"] = kind
        self.alpha = float(alpha)
        self.ddof = ddof
        self.grad: Literal["autodiff", "paper"] = grad
        self.dtype = dtype

    def __call__(self, x: ArrayLike) -> Array:
        return layeract(
            as_input(x, self.dtype),
            kind=self.kind,
            alpha=self.alpha,
            axis=self.axis,
            ddof=self.ddof,
            grad=self.grad,
            implementation=self.implementation,
        )
