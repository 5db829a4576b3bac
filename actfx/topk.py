"""Top-K spatial activation sparsity (Li, Wen, Li, Lee, NeurIPS 2023)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from actfx._checks import check_floating, normalize_axes

_BY = ("abs", "value")
_METHODS = ("exact", "approx")
_UINT = {2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint64}
# Bits resolved per counting pass of the radix select: 2**_RADIX_BITS - 1 comparisons per
# element per pass, ceil(nbits / _RADIX_BITS) passes. Compares dominate the cost on CPU, so
# 1 or 2 bits per pass are fastest (2 halves the number of fused passes).
_RADIX_BITS = 2


def num_kept(k: float, pool: int) -> int:
    """``m = max(1, int(k * pool))``: entries kept per pool for a fraction ``k`` in (0, 1]."""
    _check_k(k)
    return max(1, int(k * pool))


def _check_k(k) -> None:
    if isinstance(k, jax.core.Tracer) or not np.isscalar(k) and np.ndim(k) != 0:
        raise ValueError(f"k must be a Python float in (0, 1] (static), got {k!r}")
    k = float(k)
    if not (0.0 < k <= 1.0) or math.isnan(k):
        raise ValueError(f"k must be a fraction in (0, 1], got {k!r}")


def validate_topk_args(*, k: float, by: str, method: str) -> None:
    """Raise ``ValueError`` for a bad static argument of :func:`topk`."""
    _check_k(k)
    if by not in _BY:
        raise ValueError(f"by must be one of {_BY}, got {by!r}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")


def _sortable_bits(x: Array, by: str) -> Array:
    """Unsigned integers whose order is the order of ``|x|`` (by="abs") or ``x``."""
    utype = _UINT[x.dtype.itemsize]
    if by == "abs":
        # The bit pattern of a non-negative float is monotone in its value.
        return jax.lax.bitcast_convert_type(jnp.abs(x), utype)
    b = jax.lax.bitcast_convert_type(x, utype)
    sign = utype(1 << (8 * x.dtype.itemsize - 1))
    # Negative floats: flip every bit (larger magnitude -> smaller key). Positive: set sign.
    return jnp.where(b & sign, ~b, b | sign)


def _kth_largest(u: Array, m: Array | int, axes: tuple[int, ...], nbits: int) -> Array:
    """Per pool, the ``m``-th largest value of unsigned ``u`` (exact), with keepdims shape.

    Radix select from the most significant bit: each pass counts, for every candidate
    next digit ``d``, how many entries are ``>= prefix | d << shift`` and keeps the largest
    ``d`` whose count is still ``>= m``. Only compares and sums: it fuses into one
    memory pass per digit, with no sort, gather or scatter.
    """
    utype = u.dtype.type
    prefix = jnp.zeros([1 if a in axes else s for a, s in enumerate(u.shape)], u.dtype)
    shift = nbits
    while shift > 0:
        r = min(_RADIX_BITS, shift)
        shift -= r
        digits = (jnp.arange(1, 2**r, dtype=u.dtype) << utype(shift)).astype(u.dtype)
        thresholds = prefix[..., None] | digits  # (..., D)
        counts = jnp.sum(u[..., None] >= thresholds, axis=axes, keepdims=True, dtype=jnp.int32)
        d = jnp.sum(counts >= jnp.asarray(m)[..., None], axis=-1, dtype=u.dtype)
        prefix = prefix | (d << utype(shift))
    return prefix


def _position_keys(shape: tuple[int, ...], axes: tuple[int, ...], dtype) -> Array:
    """``pool - position`` of each entry in its (row-major flattened) pool: first = largest."""
    pos = jnp.zeros((), jnp.int32)
    for a in axes:
        pos = pos * shape[a] + jax.lax.broadcasted_iota(jnp.int32, shape, a)
    pool = math.prod(shape[a] for a in axes)
    return (pool - pos).astype(dtype)


def _exact_mask(x: Array, m: int, axes: tuple[int, ...], by: str) -> Array:
    u = _sortable_bits(x, by)
    nbits = 8 * x.dtype.itemsize - (1 if by == "abs" else 0)
    t = _kth_largest(u, m, axes, nbits)
    above = u > t
    n_above = jnp.sum(above, axis=axes, keepdims=True, dtype=jnp.int32)
    n_at = jnp.sum(u == t, axis=axes, keepdims=True, dtype=jnp.int32)

    def no_excess_ties(_):
        return u >= t

    def break_ties_by_position(_):
        # Among entries equal to the threshold keep the first (m - n_above) by position.
        pool = math.prod(x.shape[a] for a in axes)
        pos_key = jnp.where(u == t, _position_keys(x.shape, axes, jnp.uint32), jnp.uint32(0))
        need = m - n_above
        t_pos = _kth_largest(pos_key, need, axes, max(1, pool.bit_length()))
        return above | (pos_key >= t_pos) & (pos_key > 0)

    return jax.lax.cond(
        jnp.all(n_above + n_at == m), no_excess_ties, break_ties_by_position, None
    )


def _approx_mask(x: Array, m: int, axes: tuple[int, ...], by: str) -> Array:
    rest = tuple(a for a in range(x.ndim) if a not in axes)
    perm = rest + axes
    xt = jnp.transpose(x, perm)
    flat = xt.reshape(xt.shape[: len(rest)] + (-1,))
    score = jnp.abs(flat) if by == "abs" else flat
    _, idx = jax.lax.approx_max_k(score, m)
    mask = jnp.zeros(flat.shape, bool)
    mask = jnp.put_along_axis(mask, idx, True, axis=-1, inplace=False)
    return jnp.transpose(mask.reshape(xt.shape), np.argsort(perm))


def topk(
    x: ArrayLike,
    k: float,
    *,
    axis: int | Sequence[int] = (-3, -2),
    by: Literal["abs", "value"] = "abs",
    method: Literal["exact", "approx"] = "exact",
) -> Array:
    r"""Top-K activation sparsity: keep the ``m`` largest entries of each pool, zero the rest.

    The pools are the slices over ``axis`` (default ``(-3, -2)``: the spatial ``H, W`` of an
    NHWC feature map, so one pool per sample and channel). With ``P`` entries per pool,

    .. math::
        m = \max(1, \lfloor k P \rfloor), \qquad
        \mathrm{topk}(x)_i = x_i \,[\, i \in \text{the } m \text{ largest } s(x) \text{ of its pool}]

    with the score ``s(x) = |x|`` (``by="abs"``) or ``s(x) = x`` (``by="value"``).

    ``method="exact"`` keeps exactly ``m`` entries per pool, ties at the threshold broken by
    position (earlier entries in row-major order win), like ``jax.lax.top_k``. It finds the
    ``m``-th largest score by a radix select on the float's bit pattern (monotone in the
    value), so it costs a few fused compare-and-count passes instead of a sort.
    ``method="approx"`` uses ``jax.lax.approx_max_k`` (fast on TPU; recall < 1 allowed).

    The mask is a constant for autodiff: gradients flow to the kept entries only.

    Args:
      x: floating array, e.g. ``(N, H, W, C)``.
      k: fraction of each pool to keep, a Python float in (0, 1]; ``k=1`` is the identity.
      axis: the axes forming one pool.
      by: ``"abs"`` or ``"value"``.
      method: ``"exact"`` or ``"approx"``.

    Returns:
      Array with the shape and dtype of ``x``.

    Raises:
      ValueError: ``k`` outside (0, 1] or not static, unknown ``by``/``method``, an
        ``axis`` out of range for ``x``, or a non-floating ``x``.

    References:
      T. Li, Z. Wen, Y. Li, T. S. Lee, *Emergence of Shape Bias in Convolutional Neural
      Networks through Activation Sparsity*, NeurIPS 2023, arXiv:2310.18894.

    Example:
      >>> import jax.numpy as jnp, actfx
      >>> x = jnp.array([[3.0, -1.0, 0.5, -4.0]])
      >>> actfx.topk(x, 0.5, axis=-1)
      Array([[ 3.,  0.,  0., -4.]], dtype=float32)
      >>> actfx.topk(x, 0.5, axis=-1, by="value")
      Array([[3. , 0. , 0.5, 0. ]], dtype=float32)
    """
    validate_topk_args(k=k, by=by, method=method)
    check_floating("x", x)
    x = jnp.asarray(x)
    if x.ndim == 0:
        raise ValueError("x must have at least one axis, got a scalar")
    axes = normalize_axes("axis", axis, x.ndim)
    pool = math.prod(x.shape[a] for a in axes)
    if pool == 0:
        return x
    m = num_kept(k, pool)
    if m >= pool:
        return x
    xs = jax.lax.stop_gradient(x)
    if method == "exact":
        mask = _exact_mask(xs, m, axes, by)
    else:
        mask = _approx_mask(xs, m, axes, by)
    return jnp.where(mask, x, jnp.zeros((), x.dtype))
