"""Flax NNX module for Top-K activation sparsity."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from flax import nnx
from jaxtyping import Array, ArrayLike

from actfx._src.nn._common import as_input, check_bool, check_dtype, check_int
from actfx._src.topk import topk, validate_topk_args


def validate_topk_module_args(k, axis, by, method, enabled, dtype):
    """Shared NNX/Linen checks; returns the normalised ``axis``."""
    validate_topk_args(k=k, by=by, method=method)
    check_bool("enabled", enabled)
    check_dtype("dtype", dtype)
    if isinstance(axis, bool):
        raise ValueError(f"axis must be an int or a tuple of ints, got {axis!r}")
    if isinstance(axis, int):
        return axis
    try:
        return tuple(check_int("axis", a) for a in axis)
    except TypeError:
        raise ValueError(f"axis must be an int or a tuple of ints, got {axis!r}") from None


class TopK(nnx.Module):
    """Spatial Top-K sparsity as an NNX module; thin over :func:`actfx.topk`.

    ``enabled`` is a plain attribute: set ``module.enabled = False`` to run the network
    dense, or insert a ``TopK`` at inference time into a network trained without it
    (the shape-bias experiments do both).

    Args:
      k: fraction kept per pool, in (0, 1].
      axis, by, method: as :func:`actfx.topk`.
      enabled: ``False`` makes the module the identity.
      dtype: computation dtype; ``None`` (default) computes in ``x``'s dtype.
      rngs: accepted for a uniform module signature (no parameters).

    Raises:
      ValueError: a bad ``k``/``by``/``method``/``axis``/``enabled``/``dtype``.

    Reference:
      T. Li, Z. Wen, Y. Li, T. S. Lee, *Emergence of Shape Bias in Convolutional Neural
      Networks through Activation Sparsity*, NeurIPS 2023, arXiv:2310.18894.

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
        dtype=None,
        rngs: nnx.Rngs | None = None,
    ):
        self.axis = validate_topk_module_args(k, axis, by, method, enabled, dtype)
        self.k = float(k)
        self.by: Literal["abs", "value"] = by
        self.method: Literal["exact", "approx"] = method
        self.enabled = bool(enabled)
        self.dtype = dtype

    def __call__(self, x: ArrayLike) -> Array:
        x = as_input(x, self.dtype)
        if not self.enabled:
            return x
        return topk(x, self.k, axis=self.axis, by=self.by, method=self.method)
