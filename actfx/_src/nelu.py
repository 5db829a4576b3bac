"""NeLU: the self-normalising ReLU, proximal map of the square-root lasso (Goldenstein et al.)."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, ArrayLike

from actfx._src._checks import check_floating, check_positive, is_concrete, normalize_axes
from actfx._src._sharding import is_explicitly_sharded, per_shard

_METHODS = ("exact", "fixed_point", "unrolled")


def _safe_sqrt(s: Array) -> Array:
    """``sqrt(s)`` for ``s >= 0`` with gradient 0 (not inf) at ``s = 0``."""
    pos = s > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, s, 1)), 0)


def _safe_norm(v: Array) -> Array:
    """Euclidean norm over the last axis (keepdims) with a finite gradient at ``v = 0``."""
    return _safe_sqrt(jnp.sum(v * v, axis=-1, keepdims=True))


def _residual_exact(x: Array, lam: Array) -> Array:
    """Residual norm ``r = ||min(x, lam r)||`` per row of ``x`` (last axis), by sorting.

    Sort ``u = x / lam`` descending. With the ``j`` largest entries active,
    ``S_j = sum_{i>j} x_(i)^2`` and ``L_j = sum_{i<=j} lam_(i)^2``; the entry ``j`` is active
    iff ``Phi(u_(j)) = S_j - (1 - L_j) u_(j)^2 < 0`` (and ``u_(j) > 0``), a condition that
    holds for a prefix ``j <= k`` of the sorted order. Then ``r = sqrt(S_k / (1 - L_k))``.
    The active set is a constant for autodiff; ``r`` is rebuilt from it in the original order
    so that gradients need no sort.
    """
    u = x / lam
    order = jnp.argsort(-u, axis=-1)
    us = jnp.take_along_axis(u, order, axis=-1)
    xs = jnp.take_along_axis(x, order, axis=-1)
    ls = jnp.take_along_axis(lam, order, axis=-1)
    sq = xs * xs
    # S_j = sum_{i > j} x_(i)^2 as a reverse cumulative sum (no cancellation).
    tail = jnp.flip(jnp.cumsum(jnp.flip(sq, -1), axis=-1), -1)
    s_after = jnp.concatenate([tail[..., 1:], jnp.zeros_like(tail[..., :1])], axis=-1)
    l_upto = jnp.cumsum(ls * ls, axis=-1)
    active_sorted = (us > 0) & (s_after < (1 - l_upto) * us * us)
    k = jnp.sum(active_sorted, axis=-1, keepdims=True)
    u_k = jnp.take_along_axis(us, jnp.maximum(k - 1, 0), axis=-1)
    active = jax.lax.stop_gradient((u >= u_k) & (k > 0))
    s = jnp.sum(jnp.where(active, 0, x * x), axis=-1, keepdims=True)
    ell = jnp.sum(jnp.where(active, lam * lam, 0), axis=-1, keepdims=True)
    denom = jnp.maximum(1 - ell, jnp.finfo(x.dtype).tiny)
    return _safe_sqrt(s / denom)


def _residual_fixed_point(x: Array, lam: Array, iters: int) -> Array:
    """``r_{j+1} = ||min(x, lam r_j)||`` from ``r_0 = ||x||`` (monotone decreasing to r)."""
    r0 = _safe_norm(x)
    return jax.lax.fori_loop(0, iters, lambda _, r: _safe_norm(jnp.minimum(x, lam * r)), r0)


def _code_unrolled(x: Array, lam: Array, iters: int, step: float) -> Array:
    """``iters`` proximal-gradient steps on ``||x - z|| + sum lam z``, ``z >= 0``, from 0.

    Step ``eta_j = step * ||x|| / sqrt(j + 1)`` (proportional to ``||x||`` so the map stays
    positively homogeneous; diminishing because the gradient of ``||z - x||`` is a unit
    vector, not Lipschitz). The first step from ``z = 0`` with ``step = 1`` gives
    ``relu(x - lam ||x||)``, the first fixed-point iterate.
    """
    scale = _safe_norm(x)

    def body(j, z):
        d = z - x
        g = d / jnp.maximum(_safe_norm(d), jnp.finfo(x.dtype).tiny) + lam
        eta = step * scale / jnp.sqrt(j + 1.0).astype(x.dtype)
        return jax.nn.relu(z - eta * g)

    return jax.lax.fori_loop(0, iters, body, jnp.zeros_like(x))


def _to_rows(a: Array, axes: tuple[int, ...]) -> tuple[Array, tuple[int, ...], tuple[int, ...]]:
    rest = tuple(i for i in range(a.ndim) if i not in axes)
    perm = rest + axes
    t = jnp.transpose(a, perm)
    pool = math.prod(t.shape[len(rest) :])  # explicit: reshape(-1) is ambiguous when empty
    return t.reshape(t.shape[: len(rest)] + (pool,)), t.shape, perm


def _exp2_int(k: Array, dtype) -> Array:
    """``2**k`` exactly for integer ``k``, built from its bits (``jnp.exp2`` is not exact
    for every integer on XLA CPU, ``jnp.ldexp`` mishandles subnormals); ``k`` is clamped
    to the normal range, which only matters where the product saturates anyway."""
    if jnp.dtype(dtype) == jnp.float64:
        kk = jnp.clip(k.astype(jnp.int64), -1022, 1023)
        return jax.lax.bitcast_convert_type((kk + 1023) << 52, jnp.float64)
    kk = jnp.clip(k.astype(jnp.int32), -126, 127)
    return jax.lax.bitcast_convert_type((kk + 127) << 23, jnp.float32).astype(dtype)


def _pow2(v: Array, k: Array) -> Array:
    """``v * 2**k`` for integer ``k`` (|k| <= ~300), exactly: two factors, each a normal
    power of two."""
    k1 = k // 2
    k2 = k - k1
    return v * _exp2_int(k1, v.dtype) * _exp2_int(k2, v.dtype)


def _pool_exponent(rows: Array):
    """``(e, finite)``: ``2^e <= max|row| < 2^(e+1)`` per row (0 for a zero row; the
    scaled row then lies in (-2, 2)), and whether the row is finite."""
    m = jax.lax.stop_gradient(jnp.max(jnp.abs(rows), axis=-1, keepdims=True))
    finite = jnp.isfinite(m)
    _, e = jnp.frexp(jnp.where(finite & (m > 0), m, 1.0))
    return e - 1, finite


def _check_lam(lam: ArrayLike, shape: tuple[int, ...]) -> None:
    check_positive("lam", lam)
    if is_concrete(lam) and np.any(np.asarray(lam) >= 1):
        raise ValueError(
            "lam must be < 1: an entry with lam >= 1 is always zero (and at lam = 1 the "
            f"square-root-lasso solution is not unique); got {lam!r}"
        )
    try:
        np.broadcast_shapes(np.shape(lam), shape)
    except ValueError:
        raise ValueError(
            f"lam of shape {np.shape(lam)} does not broadcast to x of shape {shape}"
        ) from None
    if np.broadcast_shapes(np.shape(lam), shape) != tuple(shape):
        raise ValueError(
            f"lam of shape {np.shape(lam)} must broadcast to x of shape {shape} without "
            "enlarging it"
        )


def nelu(
    x: ArrayLike,
    lam: ArrayLike,
    *,
    axis: int | Sequence[int] = -1,
    two_sided: bool = False,
    method: Literal["exact", "fixed_point", "unrolled"] = "exact",
    iters: int = 100,
    step: float = 1.0,
) -> Array:
    r"""Self-normalising ReLU: the proximal map of the square-root lasso.

    For each pool ``x`` (the entries over ``axis``: one sample's code), NeLU returns

    .. math::
        z = \operatorname*{argmin}_{z \ge 0} \|x - z\|_2 + \textstyle\sum_i \lambda_i z_i
          = \mathrm{relu}(x - \lambda r), \qquad r = \|x - z\|_2 = \|\min(x, \lambda r)\|_2 ,

    a ReLU whose threshold ``t = lam * r`` scales with the residual norm, so ``lam`` is
    *pivotal* (does not depend on the noise level) and the map is positively homogeneous,
    ``nelu(c x) = c nelu(x)`` for ``c > 0``. ``two_sided=True`` drops ``z >= 0`` (penalty
    ``lam |z|``): soft-thresholding ``z = sign(x) relu(|x| - lam r)`` with
    ``r = ||clip(x, -lam r, lam r)||``.

    Methods:

    * ``"exact"`` (default): sort ``u = x / lam`` descending; with the ``k`` largest entries
      active, ``r^2 = S_k + L_k r^2`` where ``S_k = sum_{i>k} x_(i)^2`` and
      ``L_k = sum_{i<=k} lam_(i)^2`` (scalar ``lam``: ``k lam^2``), so
      ``r = sqrt(S_k / (1 - L_k))``; ``k`` is the length of the sorted prefix on which
      ``S_j < (1 - L_j) u_(j)^2``. ``O(n log n)``, exact to rounding, differentiable almost
      everywhere (the active set is held fixed, as in sparsemax).
    * ``"fixed_point"``: ``r_{j+1} = ||min(x, lam r_j)||`` from ``r_0 = ||x||``, ``iters``
      steps. The iterates decrease monotonically to ``r``; the rate is ``L_k`` (the sum of
      ``lam^2`` over the active set), so convergence is slow when ``L_k`` is near 1.
    * ``"unrolled"``: ``iters`` proximal-gradient steps
      ``z <- relu(z - eta_j ((z - x)/||z - x|| + lam))`` from ``z = 0`` with
      ``eta_j = step ||x|| / sqrt(j + 1)`` — the architecture style of unrolled sparse
      coders; an approximation whose accuracy grows like ``1/sqrt(iters)``.

    Valid ``lam`` and uniqueness: ``lam`` must be finite and in ``(0, 1)``; it may be a
    scalar or an array broadcastable to ``x`` (per-channel weights). Let ``n`` be the pool
    size. If ``sum lam^2 < 1`` over the pool (scalar: ``lam < 1/sqrt(n)``) the minimiser is
    unique for every ``x`` and ``r`` is the only root of ``r = ||min(x, lam r)||``; but then
    a pool with no non-positive entry is returned unchanged (``r = 0``) and ``two_sided``
    is the identity on inputs without zeros. For ``1/sqrt(n) <= lam < 1`` — where the
    square-root lasso's usual ``lam ~ sqrt(2 log n / n)`` lies — the minimiser is still
    unique except on a measure-zero set of inputs (an active set with ``sum lam^2 = 1`` and
    all other entries exactly 0), where every method returns the solution with the largest
    residual; ``r = 0`` is then a spurious root that the methods never pick. An entry with
    ``lam >= 1`` would always be zero (and at ``lam = 1`` the solution is not unique), so
    concrete ``lam`` outside ``(0, 1)`` raises. ``lam`` traced under ``jit`` (or ``grad``)
    cannot be checked at trace time: a pool whose ``lam`` is outside ``(0, 1)`` or NaN then
    gives NaN (never a silent all-zero code), so eager and jit agree on every valid input
    and an invalid ``lam`` is loud either way.

    Extreme inputs: each pool is rescaled by a power of two near its ``max|x|`` before any
    square is formed, so no norm overflows or underflows and the homogeneity
    ``nelu(c x) = c nelu(x)`` holds up to the dtype's largest value (exactly for powers of
    two ``c``). float16/bfloat16 inputs are computed in float32 and cast back. Documented
    exceptions: a pool containing NaN or ``+-inf`` gives NaN for that whole pool;
    subnormal inputs count as 0 where the backend flushes them (XLA on CPU does). An empty
    ``x`` (any axis of size 0, batch or pool) returns an empty array of the same shape.

    Multi-device: works under ``jit`` with sharded inputs, inside ``jax.shard_map`` and
    under explicit sharding (``AxisType.Explicit``: each shard computes its own pools, the
    pool axes gathered first if they were split).
    Gradients are finite everywhere, including ``x = 0`` (where NeLU is not
    differentiable; the gradient of the residual norm is taken as 0) and pools where every
    entry is thresholded (``z = 0``).

    Args:
      x: floating array of any shape.
      lam: threshold weight(s) in (0, 1), scalar or broadcastable to ``x``.
      axis: the axes forming one pool (one code), e.g. ``-1`` for dense codes or
        ``(-3, -2, -1)`` for a convolutional ``(H, W, C)`` code.
      two_sided: soft-threshold (no sign constraint) instead of the one-sided ReLU form.
      method: ``"exact"``, ``"fixed_point"`` or ``"unrolled"``.
      iters: number of iterations for ``"fixed_point"`` / ``"unrolled"`` (static, >= 1).
      step: relative step size of ``"unrolled"``.

    Returns:
      Array with the shape and dtype of ``x``.

    Raises:
      ValueError: concrete ``lam`` not finite, ``<= 0`` or ``>= 1``, not broadcastable to
        ``x``; unknown ``method``; ``iters < 1``; ``step`` not a finite number > 0;
        ``axis`` out of range; non-floating ``x``.
      TypeError: ``lam`` or ``axis`` of a wrong type (also a ``ValueError`` subclass for
        ``axis``, normalised like ``jax.numpy`` axes).

    References:
      N. Goldenstein, J. Sulam, Y. Romano, *Pivotal Auto-Encoder via Self-Normalizing ReLU*,
      arXiv:2406.16052, 2024. A. Belloni, V. Chernozhukov, L. Wang, *Square-root lasso:
      pivotal recovery of sparse signals via conic programming*, Biometrika 98(4), 2011.

    Example:
      >>> import jax.numpy as jnp, actfx
      >>> x = jnp.array([3.0, -1.0, 0.5, -2.0])
      >>> z = actfx.nelu(x, 0.4)   # t = 0.4 * ||min(x, t)|| = 0.4 * ||(1, -1, .5, -2)|| = 1
      >>> z
      Array([2., 0., 0., 0.], dtype=float32)
      >>> float(0.4 * jnp.linalg.norm(x - z))   # the threshold t
      1.0
      >>> actfx.nelu(10.0 * x, 0.4)             # positively homogeneous
      Array([20.,  0.,  0.,  0.], dtype=float32)
    """
    check_floating("x", x)
    x = jnp.asarray(x)
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if isinstance(iters, bool) or not isinstance(iters, (int, np.integer)) or iters < 1:
        raise ValueError(f"iters must be a positive int (static), got {iters!r}")
    if isinstance(step, bool) or not (
        isinstance(step, (int, float, np.integer, np.floating)) and math.isfinite(step) and step > 0
    ):
        raise ValueError(f"step must be a finite float > 0, got {step!r}")
    axes = normalize_axes("axis", axis, x.ndim)
    lam = _as_lam(lam)
    _check_lam(lam, x.shape)
    if x.size == 0:  # empty batch or empty pool: nothing to compute, same shape back
        return x
    # float16/bfloat16 are computed in float32 and cast back.
    ct = jnp.promote_types(x.dtype, jnp.float32)
    lam_c = jnp.asarray(lam, ct)
    args = (axes, bool(two_sided), method, int(iters), float(step))
    if is_explicitly_sharded(x):
        # Pools are independent: under explicit sharding each shard runs on its own, the
        # pool axes gathered (the sort has no sharding JAX could infer); lam goes with x.
        out = per_shard(
            lambda v, lv: _nelu(v, lv, *args),
            x.astype(ct),
            axes,
            jnp.broadcast_to(lam_c, x.shape),
            arg_specs=lambda local: (P(*local),),
        )
    else:
        out = _nelu(x.astype(ct), lam_c, *args)
    return out.astype(x.dtype)


def _as_lam(lam):
    """``lam`` as an array, rejecting non-numeric values by name."""
    if isinstance(lam, (str, bytes)) or lam is None:
        raise TypeError(f"lam must be a real number or a floating array, got {lam!r}")
    if is_concrete(lam):
        dt = np.asarray(lam).dtype
        if not (
            jnp.issubdtype(dt, jnp.integer) or jnp.issubdtype(dt, jnp.floating) or dt == np.bool_
        ):
            raise TypeError(f"lam must be a real number or a floating array, got {lam!r}")
    return lam


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5, 6))
def _nelu(
    x: Array,
    lam: Array,
    axes: tuple[int, ...],
    two_sided: bool,
    method: str,
    iters: int,
    step: float,
) -> Array:
    lam = jnp.broadcast_to(lam, x.shape)
    sign = jnp.sign(x) if two_sided else None
    a = jnp.abs(x) if two_sided else x
    rows, tshape, perm = _to_rows(a, axes)
    lrows, _, _ = _to_rows(lam, axes)
    # NeLU is positively homogeneous, z(x) = 2^e z(x / 2^e): scale each pool by the power
    # of two 2^e ~ max|x| so that no square overflows or underflows (float32 would
    # overflow from |x| ~ 1e19, float16 from ~256). Exact (powers of two). Derivatives:
    # w.r.t. x the scale cancels (degree-1 homogeneity), so the tangent is taken at the
    # scaled point unscaled (never multiplied by a huge 2^e and back); w.r.t. lam it is
    # 2^e times the scaled one.

    def core(v, lv):
        if method == "unrolled":
            return _code_unrolled(v, lv, iters, step)
        if method == "exact":
            r = _residual_exact(v, lv)
        else:
            r = _residual_fixed_point(v, lv, iters)
        return jax.nn.relu(v - lv * r)

    @jax.custom_jvp
    def scaled(v, lv):
        e, _ = _pool_exponent(v)
        return _pow2(core(_pow2(v, -e), lv), e)

    @scaled.defjvp
    def scaled_jvp(primals, tangents):
        v, lv = primals
        dv, dlv = tangents
        e, _ = _pool_exponent(v)
        vs = _pow2(v, -e)
        zs, dz_x = jax.jvp(lambda w: core(w, lv), (vs,), (dv,))
        dz_l = jax.jvp(lambda m: core(vs, m), (lv,), (dlv,))[1]
        return _pow2(zs, e), dz_x + _pow2(dz_l, e)

    _, finite = _pool_exponent(rows)
    # lam is checked eagerly; traced lam outside (0, 1) (or NaN) makes its pool NaN.
    lam_ok = jnp.all((lrows > 0) & (lrows < 1), axis=-1, keepdims=True)
    z = jnp.where(finite & lam_ok, scaled(rows, lrows), jnp.nan)
    z = jnp.transpose(z.reshape(tshape), tuple(np.argsort(perm).tolist()))
    return z if sign is None else sign * z
