"""Top-K spatial activation sparsity (Li, Wen, Li, Lee, NeurIPS 2023)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, Literal, overload

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer
from jaxtyping import Array, ArrayLike

from actfx._src._checks import check_floating, normalize_axes
from actfx._src._sharding import full_like, match_vma, per_shard

_BY = ("abs", "value")
_METHODS = ("exact", "approx")
_UINT = {2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint64}
# Bits resolved per counting pass of the radix select (the fallback path): 2**_RADIX_BITS - 1
# comparisons per element per pass, ceil(nbits / _RADIX_BITS) passes.
_RADIX_BITS = 2
# Counting passes of the threshold search before the fallback takes over.
_MAX_SEARCH_PASSES = 24
# The search over the whole tensor stops when at most this fraction of the pools is left.
_FIXUP_FRACTION = 1 / 16
# Passes of the search on the gathered remaining pools (each costs ~1/16 of a full pass).
_MAX_FINISH_PASSES = 64


@overload
def check_fraction(name: str, value: Any, *, allow_none: Literal[False] = False) -> float: ...
@overload
def check_fraction(name: str, value: Any, *, allow_none: bool) -> float | None: ...
def check_fraction(name: str, value: Any, *, allow_none: bool = False) -> float | None:
    """Validate a static fraction in (0, 1] (Top-K's ``k``) and return it as a Python float.

    This is the one checker for Top-K fractions: :func:`topk`'s ``k``, ``actfx.nn.TopK``
    and the models' ``topk=`` option all use it, so they accept and reject the same values.

    Args:
      name: the argument's name, used in the error message.
      value: a Python ``int``/``float`` (or a concrete 0-d NumPy/JAX number) in (0, 1].
      allow_none: also accept ``None`` (returned unchanged).

    Returns:
      ``float(value)``, or ``None`` when ``value is None`` and ``allow_none``.

    Raises:
      ValueError: naming ``name``, for ``None`` (unless allowed), a bool, a string, a traced
        or non-scalar value, NaN, or a value outside (0, 1].

    Example:
      >>> from actfx._src.topk import check_fraction
      >>> check_fraction("k", 0.25)
      0.25
      >>> check_fraction("k", "0.5")
      Traceback (most recent call last):
      ...
      ValueError: k must be a Python float in (0, 1] (static), got '0.5'
    """
    if value is None and allow_none:
        return None
    what = (
        "None or a Python float in (0, 1] (static)"
        if allow_none
        else "a Python float in (0, 1] (static)"
    )
    if isinstance(value, (bool, np.bool_, str, bytes, Tracer)) or not isinstance(
        value, (numbers.Real, np.ndarray, jax.Array)
    ):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    arr = np.asarray(value)
    if arr.ndim != 0 or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    v = float(value)
    if math.isnan(v) or not 0.0 < v <= 1.0:
        raise ValueError(f"{name} must be a fraction in (0, 1], got {value!r}")
    return v


def num_kept(k: float, pool: int | Sequence[int]) -> int:
    """Entries kept per pool: the reference's ``int(max(1, k * h * w))``, left to right.

    ``pool`` is the pool's size or its shape (e.g. ``(H, W)``). With a shape the product is
    evaluated as the reference code does, ``k * H * W == (k * H) * W`` in floating point,
    which differs from ``k * (H * W)`` by one for some sizes (``k=0.29`` at 10x10 keeps
    29, not 28).

    Example:
      >>> from actfx._src.topk import num_kept
      >>> num_kept(0.29, (10, 10)), num_kept(0.1, 1024), num_kept(1e-6, (4, 4))
      (29, 102, 1)
    """
    k = check_fraction("k", k)
    dims = (pool,) if isinstance(pool, (int, np.integer)) else tuple(pool)
    v = k
    for d in dims:
        v = v * int(d)
    return int(max(1, v))


def validate_topk_args(*, k: float, by: str, method: str) -> None:
    """Raise ``ValueError`` for a bad static argument of :func:`topk`."""
    check_fraction("k", k)
    if not isinstance(by, str) or by not in _BY:
        raise ValueError(f"by must be one of {_BY}, got {by!r}")
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")


def _sortable_bits(x: Array, by: str) -> Array:
    """Unsigned integers whose order is the order of ``|x|`` (by="abs") or ``x``.

    NaN maps above +inf (like ``jax.lax.top_k``); ``-0.0`` sorts just below ``+0.0``.
    """
    utype = _UINT[x.dtype.itemsize]
    b = jax.lax.bitcast_convert_type(x, utype)
    if by == "abs":
        # The bit pattern of a non-negative float is monotone in its value. Clearing the
        # sign bit on the integers (not a float abs) keeps subnormals: XLA:CPU may flush
        # them to zero in float ops inside some fusions.
        return b & utype((1 << (8 * x.dtype.itemsize - 1)) - 1)
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
    prefix = jnp.zeros([1 if a in axes else s for a, s in enumerate(u.shape)], u.dtype)
    prefix = match_vma(prefix, u)  # the loop carry varies like u under shard_map
    passes = -(-nbits // _RADIX_BITS)  # a rolled loop keeps the compiled program small
    m = jnp.asarray(m)

    def one_pass(i, prefix):
        shift = (jnp.asarray((passes - 1 - i) * _RADIX_BITS)).astype(u.dtype)
        digits = jnp.arange(1, 2**_RADIX_BITS, dtype=u.dtype) << shift
        thresholds = prefix[..., None] | digits  # (..., D)
        counts = jnp.sum(u[..., None] >= thresholds, axis=axes, keepdims=True, dtype=jnp.int32)
        d = jnp.sum(counts >= m[..., None], axis=-1, dtype=u.dtype)
        return prefix | (d << shift)

    return jax.lax.fori_loop(0, passes, one_pass, prefix)


def _position_keys(shape: tuple[int, ...], axes: tuple[int, ...], dtype) -> Array:
    """``pool - position`` of each entry in its (row-major flattened) pool: first = largest."""
    pos = jnp.zeros((), jnp.int32)
    for a in axes:
        pos = pos * shape[a] + jax.lax.broadcasted_iota(jnp.int32, shape, a)
    pool = math.prod(shape[a] for a in axes)
    return (pool - pos).astype(dtype)


def _radix_thresholds(u: Array, m: int, axes: tuple[int, ...], nbits: int):
    """Exact per-pool thresholds ``(t, t_pos)`` by a full radix select on the keys ``u``.

    The fallback of :func:`_thresholds`: ``t`` is the ``m``-th largest key of each pool and
    ``t_pos`` the position key of the last tied entry kept (see :func:`_mask_from`).
    """
    t = _kth_largest(u, m, axes, nbits)
    n_above = jnp.sum(u > t, axis=axes, keepdims=True, dtype=jnp.int32)
    n_at = jnp.sum(u == t, axis=axes, keepdims=True, dtype=jnp.int32)
    t_pos = jax.lax.cond(
        jnp.all(n_above + n_at == m),
        lambda: full_like(t, 0, jnp.uint32),
        lambda: _tie_position(u, t, m - n_above, axes),
    )
    return t, t_pos


def _tie_position(u: Array, t: Array, need: Array, axes: tuple[int, ...]) -> Array:
    """Per pool, the position key of the ``need``-th entry equal to ``t`` (earliest first)."""
    pool = math.prod(u.shape[a] for a in axes)
    pos_key = jnp.where(u == t, _position_keys(u.shape, axes, jnp.uint32), jnp.uint32(0))
    return _kth_largest(pos_key, jnp.maximum(need, 1), axes, max(1, pool.bit_length()))


def _mask_from(u: Array, t: Array, t_pos: Array, axes: tuple[int, ...]) -> Array:
    """``u > t``, plus the entries equal to ``t`` whose position key is ``>= t_pos``.

    Position keys (``pool - position``, see :func:`_position_keys`) are ``>= 1``, so
    ``t_pos = 0`` keeps every entry equal to ``t`` (the mask is ``u >= t``).
    """
    pos_key = _position_keys(u.shape, axes, jnp.uint32)
    return (u > t) | (u == t) & (pos_key >= t_pos)


def _keys(x: Array, axes: tuple[int, ...], by: str) -> tuple[Array, bool]:
    """Sortable unsigned keys; for 16-bit floats the position is appended (no ties)."""
    u = _sortable_bits(x, by)
    pool = math.prod(x.shape[a] for a in axes)
    pbits = max(1, (pool - 1).bit_length())
    if x.dtype.itemsize == 2 and 16 + pbits <= 32:
        # (key << pbits) | (pool - 1 - position): distinct within a pool, same order, and
        # equal keys are ordered by position (earlier first), so no tie ever needs breaking.
        pos = _position_keys(x.shape, axes, jnp.uint32) - jnp.uint32(1)
        return (u.astype(jnp.uint32) << jnp.uint32(pbits)) | pos, True
    return u, False


def _model_values(x: Array, axes: tuple[int, ...], by: str, ctype, n_pos: Array):
    """Per-pool location and scale of a Gaussian model of the scores (cheap fused sums).

    ``by="abs"``: a half-normal of the ``n_pos`` nonzero ``|x|`` (zeros, e.g. after a ReLU,
    do not shrink the scale). Non-finite entries make the model non-finite; the caller
    then falls back to a plain bisection of the keys for that pool.
    """
    s = (jnp.abs(x) if by == "abs" else x).astype(ctype)
    if by == "abs":
        msq = jnp.sum(s * s, axis=axes, keepdims=True) / jnp.maximum(n_pos, 1).astype(ctype)
        return jnp.zeros_like(msq), jnp.sqrt(msq)
    mean = jnp.mean(s, axis=axes, keepdims=True)
    msq = jnp.mean(s * s, axis=axes, keepdims=True)
    return mean, jnp.sqrt(jnp.maximum(msq - mean * mean, 0))


def _search(x: Array, m: int, axes: tuple[int, ...], by: str):
    """Exact top-``m`` selection: a threshold search on the keys that stops at a count of ``m``.

    Any threshold ``t`` with ``#{key >= t} == m`` separates exactly the top ``m`` (no tie
    crosses it), so the search does not need the ``m``-th value itself. The first pivots
    come from a Gaussian model of each pool (location/scale from two fused sums, corrected
    multiplicatively by the observed counts); once a pool is bracketed, Illinois regula falsi
    on the counts. Each pass is one fused compare-and-count over the tensor, with the keys
    recomputed from ``x``; for pools of at most 1,024 entries it counts three pivots at once
    (the pivot and one on each side, packed into one int32 sum, :func:`_packed_sum`), so a
    pass shrinks the bracket about four-fold. It stops when at most ``cap`` pools are left;
    :func:`_thresholds` finishes those on the gathered pools. Past ``_MAX_SEARCH_PASSES``
    with more pools left, the full radix select takes over (always exact).

    Returns ``(distinct, cap, state)``; ``state`` holds per pool the bracket ``lo`` (count
    ``c_lo = #{key >= lo}``) and ``hi`` (``c_hi = #{key > hi}``).
    """
    u, distinct = _keys(x, axes, by)
    utype = u.dtype
    L = math.prod(x.shape[a] for a in axes)
    rest = tuple(a for a in range(x.ndim) if a not in axes)
    rest_shape = tuple(x.shape[a] for a in rest)
    R = math.prod(rest_shape)
    pshape = tuple(1 if a in axes else s for a, s in enumerate(x.shape))
    ctype = jnp.float64 if x.dtype == jnp.float64 else jnp.float32
    cap = min(R, max(8, int(R * _FIXUP_FRACTION)))
    target = m - 0.5

    # Entries above the zero score (+0.0): zeros tie (e.g. after a ReLU).
    zkey = _sortable_bits(jnp.zeros((), x.dtype), by)
    if distinct:
        pbits = max(1, (L - 1).bit_length())
        zkey = (zkey.astype(jnp.uint32) << jnp.uint32(pbits)) | jnp.uint32((1 << pbits) - 1)
    n_gt0 = jnp.sum(u > zkey, axis=axes, keepdims=True, dtype=jnp.int32)
    loc, scale = _model_values(x, axes, by, ctype, n_gt0)
    if by == "abs":
        n_eff, half = n_gt0.astype(ctype), 2.0
    else:
        n_eff, half = jnp.asarray(L, ctype), 1.0
    finite = jnp.isfinite(loc) & jnp.isfinite(scale)

    def model_key(r):
        z = jax.scipy.special.ndtri(
            jnp.clip(1.0 - r / (half * jnp.maximum(n_eff, 1.0)), 1e-6, 1 - 1e-6)
        )
        v = (loc + scale * z).astype(x.dtype)
        kk = _sortable_bits(v, by)
        if distinct:
            kk = (kk.astype(jnp.uint32) << jnp.uint32(pbits)) | jnp.uint32((1 << pbits) // 2)
        return kk

    lo = jnp.zeros(pshape, utype)
    c_lo = jnp.full(pshape, L, jnp.int32)
    hi = jnp.full(pshape, jnp.iinfo(utype).max, utype)  # inclusive: #{u > hi} = c_hi
    c_hi = jnp.zeros(pshape, jnp.int32)
    if not distinct:
        # Start the bracket at the smallest positive key; a pool whose m-th score is a
        # tied zero is settled here (its tie is broken by position at the end).
        n_ge0 = (
            n_gt0 + jnp.sum(u == zkey, axis=axes, keepdims=True, dtype=jnp.int32)
            if by == "value"
            else L
        )
        above = n_gt0 >= m
        below = n_ge0 < m
        lo = jnp.where(above, zkey + 1, jnp.where(below, lo, zkey)).astype(utype)
        c_lo = jnp.where(above, n_gt0, jnp.where(below, c_lo, n_ge0))
        hi = jnp.where(above, hi, jnp.where(below, zkey - 1, zkey)).astype(utype)
        c_hi = jnp.where(above, c_hi, jnp.where(below, n_ge0, n_gt0))
    ftype = ctype
    model = (model_key, finite)  # pools with no finite model bisect the keys instead
    init = (
        jnp.zeros((), jnp.int32),
        lo,
        c_lo,
        hi,
        c_hi,
        c_lo.astype(ftype) - target,
        c_hi.astype(ftype) - target,
        jnp.zeros(pshape, jnp.int32),
        jnp.full(pshape, target, ftype),
        jnp.zeros(pshape, bool),
        jnp.zeros(pshape, bool),
    )
    # The loop carry varies like x under shard_map (constants are invariant).
    init: Any = init[:1] + tuple(match_vma(v, n_gt0) for v in init[1:])
    state = jax.lax.while_loop(
        lambda s: (s[0] < _MAX_SEARCH_PASSES) & (jnp.sum(_live(s, m), dtype=jnp.int32) > cap),
        lambda s: _search_step(s, lambda ps: _count_ge(x, u, distinct, ps, axes, by), model, m, L),
        init,
    )
    return distinct, cap, state


def _n_probes(L: int) -> int:
    """Pivots counted per pass: 3 when their counts pack into one int32 sum, else 1."""
    w = max(1, (L - 1).bit_length())
    return 3 if 3 * w <= 31 else 1


def _packed_sum(ges, total):
    """Counts of several boolean arrays with one integer sum (``total`` reduces an array).

    The counts ``c_1 >= c_2 >= ...`` (nested sets, each at most ``L <= 2**w``) are added as
    ``c_1 + c_2 2**w + c_3 2**(2w)`` in uint32. A field reads 0 with a carry exactly when
    its count is ``2**w``, which the ordering makes unambiguous: a count of 0 implies that
    every later count and so the rest of the sum are 0.
    """
    if len(ges) == 1:
        return (total(ges[0].astype(jnp.int32)),)
    w = (32 - 1) // len(ges)
    acc = ges[0].astype(jnp.uint32)
    for j, ge in enumerate(ges[1:], 1):
        acc = acc | (ge.astype(jnp.uint32) << jnp.uint32(j * w))
    s = total(acc)
    full, mask = jnp.uint32(1 << w), jnp.uint32((1 << w) - 1)
    out = []
    for _ in ges[:-1]:
        f = s & mask
        c = jnp.where((f == 0) & (s != 0), full, f)
        out.append(c.astype(jnp.int32))
        s = (s - c) >> jnp.uint32(w)
    out.append(s.astype(jnp.int32))
    return tuple(out)


def _count_ge(x, u, distinct, ps: tuple[Array, ...], axes: tuple[int, ...], by: str):
    """``#{key >= p}`` per pool for each pivot ``p`` of ``ps`` (ascending), in one pass.

    32/64-bit floats: the keys are recomputed from ``x`` inside the pass (the barrier ties
    ``x`` to the loop-varying pivots, so XLA does not hoist them out of the loop, which
    would write them to memory once and read them back in every pass). The keys of 16-bit
    floats carry the position (wider than ``x``, and dearer to recompute): those ``u`` are
    computed once and read.
    """
    if not distinct:
        x, ps = jax.lax.optimization_barrier((x, ps))
        u = _keys(x, axes, by)[0]
    return _packed_sum(
        [u >= p for p in ps], lambda a: jnp.sum(a, axis=axes, keepdims=True, dtype=a.dtype)
    )


def _live(state, m):
    """Pools still searching: no count of ``m`` seen and the bracket not collapsed."""
    _, lo, c_lo, hi = state[:4]
    return (c_lo != m) & (lo < hi)


def _search_step(state, count, model, m, L):
    """One counting pass of the threshold search (see :func:`_search`)."""
    it, lo, c_lo, hi, c_hi, g_lo, g_hi, last, r, lo_seen, hi_seen = state
    utype, ftype = lo.dtype, g_lo.dtype
    one = jnp.ones((), utype)
    target = m - 0.5
    seen = lo_seen & hi_seen
    # The pivot p lies in (lo, hi]: Illinois regula falsi once both sides were measured,
    # before that the count-corrected model (or a bisection of the keys without a model).
    span = hi - lo
    f = jnp.clip(g_lo / (g_lo - g_hi), 0.0, 1.0)
    f = jnp.where(seen, f, 0.5)
    off = jnp.floor(f * span.astype(ftype)).astype(utype)
    first, last_key = lo + one, jnp.maximum(hi, lo + one)
    p = lo + one + jnp.minimum(off, jnp.maximum(span, one) - one)
    if _n_probes(L) == 1:
        probes = (p,)
    else:
        # Two more pivots around p, a quarter of the way to each end of the bracket (half
        # while bisecting); in the model's phase at ranks r * beta and r / beta.
        sh = jnp.where(seen, jnp.asarray(2, utype), jnp.asarray(1, utype))
        q1, q2 = p - ((p - first) >> sh), p + ((hi - p) >> sh)
    if model is not None:
        model_key, finite = model
        use = finite & ~seen
        p = jnp.where(use, jnp.clip(model_key(r), first, last_key), p)
        if _n_probes(L) > 1:
            beta = 1.0 + 1.5 / math.sqrt(target + 1.0)
            q1 = jnp.where(use, jnp.minimum(jnp.clip(model_key(r * beta), first, last_key), p), q1)
            q2 = jnp.where(use, jnp.maximum(jnp.clip(model_key(r / beta), first, last_key), p), q2)
    if _n_probes(L) > 1:
        q1, q2 = jnp.clip(q1, first, p), jnp.clip(q2, p, last_key)
        probes = (q1, p, q2)
    cs = count(probes)
    c = cs[len(probes) // 2]
    live = (c_lo != m) & (lo < hi)
    lo_new, c_lo_new, hi_new, c_hi_new = lo, c_lo, hi, c_hi
    for q, cq in zip(probes, cs):  # ascending keys: the last with a count >= m is the new lo
        up = live & (cq >= m)
        lo_new, c_lo_new = jnp.where(up, q, lo_new), jnp.where(up, cq, c_lo_new)
    for q, cq in zip(probes[::-1], cs[::-1]):  # the first with a count < m bounds hi
        dn = live & (cq < m)
        hi_new, c_hi_new = jnp.where(dn, q - one, hi_new), jnp.where(dn, cq, c_hi_new)
    go_lo, go_hi = lo_new != lo, hi_new != hi
    go_lo = go_lo | live & (c_lo_new != c_lo)
    go_hi = go_hi | live & (c_hi_new != c_hi)
    # Illinois: when only the same side moves twice, halve the weight of the side that stays.
    only_lo, only_hi = go_lo & ~go_hi, go_hi & ~go_lo
    g_hi = jnp.where(
        go_hi, c_hi_new.astype(ftype) - target, jnp.where(only_lo & (last == 1), g_hi * 0.5, g_hi)
    )
    g_lo = jnp.where(
        go_lo, c_lo_new.astype(ftype) - target, jnp.where(only_hi & (last == -1), g_lo * 0.5, g_lo)
    )
    last = jnp.where(only_lo, 1, jnp.where(only_hi, -1, jnp.where(go_lo & go_hi, 0, last)))
    # The model's ranks, rescaled by what the counts showed (steps clipped to 8x).
    r = jnp.clip(r * target / jnp.maximum(c.astype(ftype), 0.5), r / 8, r * 8)
    r = jnp.clip(r, 0.25, L - 0.25)
    return (
        it + 1,
        lo_new,
        c_lo_new,
        hi_new,
        c_hi_new,
        g_lo,
        g_hi,
        last,
        r,
        lo_seen | go_lo,
        hi_seen | go_hi,
    )


def _key_bits(x: Array, axes: tuple[int, ...], by: str, distinct: bool) -> int:
    """Significant bits of the keys of :func:`_keys` (for the radix select)."""
    nbits = 8 * x.dtype.itemsize - (1 if by == "abs" else 0)
    if distinct:
        nbits += max(1, (math.prod(x.shape[a] for a in axes) - 1).bit_length())
    return nbits


def _thresholds(x: Array, m: int, axes: tuple[int, ...], by: str):
    """Per-pool ``(t, t_pos)``: with the keys ``u`` of :func:`_keys`, the top ``m`` are
    ``_mask_from(u, t, t_pos, axes)`` (exactly ``m`` per pool, ties broken by position).

    :func:`_search` over the whole tensor, then the continuation on the gathered live pools
    (:func:`_finish_left`); pools whose ``m``-th key is tied across the boundary get their
    ``t_pos`` from a radix select on position keys, on the gathered tied pools when there
    are at most ``cap`` of them. A full radix select is the fallback when the search does
    not settle (always exact; slower).
    """
    distinct, cap, state = _search(x, m, axes, by)
    nbits = _key_bits(x, axes, by, distinct)
    n_left = jnp.sum(_live(state, m), dtype=jnp.int32)

    def keys():  # recomputed where needed: ``u`` is not an operand of the branches
        return _keys(x, axes, by)[0]

    def radix():
        return _radix_thresholds(keys(), m, axes, nbits)

    def finish():
        state2 = jax.lax.cond(
            n_left > 0, lambda: _finish_left(x, by, state, m, axes, cap), lambda: state
        )
        _, lo, c_lo, _, c_hi = state2[:5]

        def settled():
            if distinct:
                return lo, full_like(lo, 0, jnp.uint32)
            # A collapsed bracket with #{u >= lo} != m: the m-th key is lo, tied across.
            tie = c_lo != m
            n_tie = jnp.sum(tie, dtype=jnp.int32)
            t_pos = jax.lax.cond(
                n_tie == 0,
                lambda: full_like(lo, 0, jnp.uint32),
                lambda: jax.lax.cond(
                    n_tie <= cap,
                    lambda: _tie_position_gathered(x, by, lo, m - c_hi, tie, axes, cap),
                    lambda: _tie_position(keys(), lo, m - c_hi, axes),
                ),
            )
            return lo, jnp.where(tie, t_pos, jnp.uint32(0))

        ok = ~jnp.any(_live(state2, m))
        return jax.lax.cond(ok, settled, radix)

    return jax.lax.cond(n_left > cap, radix, finish)


def _search_mask(x: Array, m: int, axes: tuple[int, ...], by: str) -> Array:
    """Exact top-``m`` mask (bool, the shape of ``x``) from :func:`_thresholds`."""
    t, t_pos = _thresholds(x, m, axes, by)
    return _mask_from(_keys(x, axes, by)[0], t, t_pos, axes)


def _radix_mask(x: Array, m: int, axes: tuple[int, ...], by: str) -> Array:
    """Exact top-``m`` mask by the full radix select alone (the fallback; a test reference)."""
    u, distinct = _keys(x, axes, by)
    t, t_pos = _radix_thresholds(u, m, axes, _key_bits(x, axes, by, distinct))
    return _mask_from(u, t, t_pos, axes)


# Compiled once per (shape, dtype, m, axes, by): eager calls do not re-trace the loops.
_search_mask_jit = jax.jit(_search_mask, static_argnums=(1, 2, 3))


def _gather_pools(u: Array, idx: Array, axes: tuple[int, ...]) -> Array:
    """The pools ``idx`` (flat indices over the non-pool axes) of ``u`` as columns ``(L, n)``.

    Each column is one pool flattened in row-major order (position ``i`` in row ``i``).
    """
    rest = tuple(a for a in range(u.ndim) if a not in axes)
    rest_shape = tuple(u.shape[a] for a in rest)
    n = idx.shape[0]
    L = u.size // math.prod(rest_shape)
    if not rest:
        return jnp.broadcast_to(u.reshape(L, 1), (L, n))
    ridx = jnp.unravel_index(idx, rest_shape)
    indexer: list[Any] = [slice(None)] * u.ndim
    for a, i in zip(rest, ridx):
        indexer[a] = i
    rows = u[tuple(indexer)]
    adjacent = rest == tuple(range(rest[0], rest[0] + len(rest)))
    rows = jnp.moveaxis(rows, rest[0] if adjacent else 0, 0).reshape(n, L)
    return rows.T  # the counts reduce over the major axis, vectorised over pools


def _tie_position_gathered(x, by, t, need, tie, axes, cap):
    """:func:`_tie_position` for the (at most ``cap``) pools flagged ``tie``, gathered.

    The pools of ``x`` are gathered, then keyed (a column's positions are its pool's).
    ``nonzero`` pads with pool 0, whose copies compute the same value as pool 0 itself.
    """
    pshape = t.shape
    R = math.prod(pshape)
    (idx,) = jnp.nonzero(tie.reshape(R), size=cap, fill_value=0)
    cols = _keys(_gather_pools(x, idx, axes), (0,), by)[0]
    t_pos = _tie_position(cols, t.reshape(R)[idx][None, :], need.reshape(R)[idx][None, :], (0,))
    return jnp.zeros(R, jnp.uint32).at[idx].set(t_pos[0]).reshape(pshape)


def _finish_left(x, by, state, m, axes, cap):
    """Continue the search on the (at most ``cap``) live pools only, gathered as columns."""
    it, *per_pool = state
    pshape = per_pool[0].shape
    R = math.prod(pshape)
    L = x.size // R
    (idx,) = jnp.nonzero(_live(state, m).reshape(R), size=cap, fill_value=0)
    cols = _keys(_gather_pools(x, idx, axes), (0,), by)[0]  # keyed after the gather
    sub = (jnp.zeros((), jnp.int32),) + tuple(v.reshape(R)[idx][None, :] for v in per_pool)
    sub = jax.lax.while_loop(
        lambda s: (s[0] < _MAX_FINISH_PASSES) & jnp.any(_live(s, m)),
        lambda s: _search_step(
            s,
            lambda ps: _packed_sum(
                [cols >= p for p in ps], lambda a: jnp.sum(a, axis=0, keepdims=True, dtype=a.dtype)
            ),
            None,
            m,
            L,
        ),
        sub,
    )
    out = tuple(
        v.reshape(R).at[idx].set(w[0, :]).reshape(pshape) for v, w in zip(per_pool, sub[1:])
    )
    return (it,) + out


def _approx_mask(x: Array, m: int, axes: tuple[int, ...], by: str) -> Array:
    rest = tuple(a for a in range(x.ndim) if a not in axes)
    perm = rest + axes
    xt = jnp.transpose(x, perm)
    flat = xt.reshape(xt.shape[: len(rest)] + (-1,))
    score = jnp.abs(flat) if by == "abs" else flat
    _, idx = jax.lax.approx_max_k(score, m)
    mask = jnp.zeros(flat.shape, bool)
    mask = jnp.put_along_axis(mask, idx, True, axis=-1, inplace=False)
    return jnp.transpose(mask.reshape(xt.shape), tuple(np.argsort(perm).tolist()))


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
    NHWC feature map, so one pool per sample and channel). With pool axes of sizes
    ``n_1, n_2, ...`` (the product evaluated left to right, as the reference code does),

    .. math::
        m = \max(1, \lfloor k \, n_1 n_2 \cdots \rfloor), \qquad
        \mathrm{topk}(x)_i = x_i \,
        [\, i \in \text{the } m \text{ largest } s(x) \text{ of its pool}]

    with the score ``s(x) = |x|`` (``by="abs"``) or ``s(x) = x`` (``by="value"``).

    ``method="exact"`` keeps exactly ``m`` entries per pool, ties at the threshold broken by
    position (earlier entries in row-major order win), like ``jax.lax.top_k`` and a stable
    argsort. It never sorts: scores are mapped to unsigned integer keys with the same order
    (the float's bit pattern; for 16-bit floats the position is appended, so keys are
    distinct), and a per-pool search looks for a threshold ``t`` with exactly ``m`` keys
    ``>= t`` (any such ``t`` separates the top ``m``). Its first pivots come from a Gaussian
    model of the pool (two fused sums) corrected by the observed counts, then Illinois
    regula falsi on the counts; each pass is one fused compare-and-count that tests three
    pivots per pool at once (pools of up to 1,024 entries). The last few pools are finished
    on a gathered copy; a tie across the threshold (e.g. zeros after a ReLU) is broken by
    position with a radix select on position keys (on the gathered tied pools when there
    are few), and a full radix select on the keys is the fallback for inputs the search
    does not settle (always exact; slower).
    NaN ranks above ``+inf`` (as in ``jax.lax.top_k``): NaN entries are kept first;
    ``-0.0`` ranks just below ``+0.0`` with ``by="value"``.
    ``method="approx"`` uses ``jax.lax.approx_max_k`` (fast on TPU; recall < 1 allowed).

    The mask is a constant for autodiff: gradients flow to the kept entries only.

    Multi-device: works under ``jit`` with sharded inputs, inside ``jax.shard_map`` (the
    search's loop state varies like ``x``) and under explicit sharding
    (``AxisType.Explicit``: the selection runs on each shard of ``x``, the pool axes
    gathered first if they were split).

    Args:
      x: floating array, e.g. ``(N, H, W, C)``.
      k: fraction of each pool to keep, a Python float in (0, 1]; ``k=1`` is the identity.
        The count is the reference code's ``int(max(1, k * H * W))`` evaluated left to right
        over the pool's axes (see :func:`num_kept`).
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
    if x.size == 0:
        return x
    m = num_kept(k, tuple(x.shape[a] for a in axes))
    if m >= pool:
        return x
    xs = jax.lax.stop_gradient(x)
    # Pools are independent: under explicit sharding the selection runs per shard (its
    # data-dependent gathers and loops have no sharding JAX could infer).
    if method == "exact":
        mask = per_shard(lambda v: _search_mask_jit(v, m, axes, by), xs, axes)
    else:
        mask = per_shard(lambda v: _approx_mask(v, m, axes, by), xs, axes)
    return jnp.where(mask, x, jnp.zeros((), x.dtype))
