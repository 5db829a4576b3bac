"""Closed-form integration of 1-D CPA velocity fields (the CPAB transform) and its derivatives.

The transform ``T_theta(x) = phi(x, t)`` solves ``d phi / d s = v(phi)``, ``phi(x, 0) = x``
for the CPA field ``v = v_theta`` (see :class:`actfx.cpab.Tessellation`). Inside one cell,
``v(x) = a x + b`` and

    psi(x, t) = e^{t a} x + (e^{t a} - 1) b / a = x + t v(x) E(t a),   E(u) = expm1(u) / u,

and the time to reach a knot ``x_k`` from ``x`` (when ``v`` keeps its sign on the way) is

    t_hit = log(v(x_k) / v(x)) / a = (x_k - x) / v(x) * Lg(a (x_k - x) / v(x)),
    Lg(z) = log1p(z) / z.

Algorithm ("knot table", O(1) transcendental functions per point instead of one step per
cell crossed): a point that leaves its cell does so through a knot, and from then on it
follows that knot's path. Per theta we tabulate, for every knot and direction, the
cumulative time ``D[dir, k, n]`` to cross ``n`` further cells (``+inf`` where the field
stops the flow). Per point: one hit time to its first knot; a branch-free binary search in
its row of ``D`` for the number of whole cells crossed within the remaining time; one
``psi`` in the final cell.

Derivatives are analytic (``jax.custom_jvp``, so forward and reverse mode and higher
orders all work): with the point's path from ``x`` to ``T``,

    dT/dx = v(T) / v(x)            (= e^{t a} when the point stays in its cell),
    dT/dt = v(T),
    dT/dp = v(T) * int_path (dv/dp)(y) / v(y)^2 dy    for a field parameter p,

evaluated segment by segment in closed form (the final segment via d psi / dp). Per-theta
tangent tables make reverse mode a handful of small scatters.

References:
  Freifeld, Hauberg, Batmanghelich, Fisher III, "Transformations Based on Continuous
  Piecewise-Affine Velocity Fields", TPAMI 2017 (closed-form integration).
  Martinez, Freifeld et al., "Closed-form diffeomorphic transformations for time series
  alignment", ICML 2022 (difw; analytic gradient).
"""

from __future__ import annotations

from functools import partial
from typing import TypedDict

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from actfx._src._checks import check_finite, check_floating
from actfx._src._sharding import per_shard
from actfx._src.cpab.tessellation import Tessellation

# Below this |argument| the ratio functions use their Taylor series (exact to round-off
# and smooth, so that autodiff of the derivative rule is also accurate).
_SERIES_THRESHOLD = 0.05


class _Limits:
    """Overflow thresholds of a compute dtype (float32 or float64), as Python floats.

    ``u_direct``: above it ``e^u`` is handled in log space (``e^u <= sqrt(max)`` below it);
    ``u_clamp``: ``|a t|`` is clamped here (far beyond where every result has saturated);
    ``cap``: derivative coefficients saturate at ``+-cap = sqrt(max)``; ``cap_factor``:
    the per-point / per-cell factors of products saturate at ``max^(1/3)`` so that their
    products stay finite. Saturation replaces a value that would overflow (a derivative
    above ~1e19 in float32, ~1e154 in float64) -- the true value there is not representable
    in a useful way anyway -- and keeps ``inf * 0 = nan`` out of reverse mode."""

    def __init__(self, dtype):
        fi = np.finfo(dtype)
        self.max = float(fi.max)
        self.log_max = float(np.log(fi.max))
        self.u_direct = 0.5 * self.log_max
        # log of the smallest subnormal is about -1.15 log_max; 4 log_max saturates any
        # displacement tt |v0| E(u) with tt |v0| >= that subnormal.
        self.u_clamp = 4.0 * self.log_max
        self.cap = float(np.sqrt(fi.max))
        self.log_cap = float(np.log(self.cap))
        self.cap_factor = float(np.cbrt(fi.max))


class _SolveAux(TypedDict):
    """What :func:`_solve` hands to the derivative rule (per-cell crossing data, the
    per-point intermediate arrays, and the dtype's overflow limits)."""

    cells: dict[str, Array]
    c: Array
    vx: Array
    vxs: Array
    h: Array
    vk0s: Array
    acs: Array
    crossed: Array
    base: Array
    m: Array
    cell: Array
    y0: Array
    tt: Array
    v0: Array
    u: Array
    af: Array
    bf: Array
    big: Array
    u_d: Array
    u_b: Array
    tt_b: Array
    T: Array
    lim: _Limits


def _capped(v, lim: float):
    """Saturate ``v`` to ``[-lim, lim]`` (``+-inf`` become ``+-lim``; NaN stays NaN)."""
    return jnp.clip(v, -lim, lim)


def _safe_log_ratio(v1, v0):
    """``log(v1 / v0)`` for nonzero same-sign ``v0, v1``, without overflow or underflow of
    the ratio: the direct form where ``v1 / v0`` is a normal number, else
    ``log|v1| - log|v0|``."""
    tiny = np.finfo(v0.dtype).tiny
    q = v1 / v0
    ok = jnp.isfinite(q) & (q >= tiny)
    q_s = jnp.where(ok, q, 1.0)
    a1 = jnp.abs(v1)
    a0 = jnp.abs(v0)
    a1 = jnp.where(a1 > 0, a1, 1.0)
    a0 = jnp.where(a0 > 0, a0, 1.0)
    return jnp.where(ok, jnp.log(q_s), jnp.log(a1) - jnp.log(a0))


def _log_expm1_ratio_big(u):
    """``log(E(u)) = u + log1p(-e^{-u}) - log(u)`` for ``u`` > 1 (no overflow)."""
    return u + jnp.log1p(-jnp.exp(-u)) - jnp.log(u)


def _series(u: Array, coeffs) -> Array:
    out = jnp.zeros_like(u) + coeffs[-1]
    for c in coeffs[-2::-1]:
        out = out * u + c
    return out


def _split(u: Array, fill: float):
    small = jnp.abs(u) < _SERIES_THRESHOLD
    return small, jnp.where(small, u, 0.0), jnp.where(small, fill, u)


_DE_COEFFS = tuple((n + 1) / float(np.prod(np.arange(1, n + 3))) for n in range(10))
_G_COEFFS = tuple((-1.0) ** n * (n + 1) / (n + 2) for n in range(14))


def _expm1_ratio_grad(u: Array) -> Array:
    """``E'(u) = (u e^u - expm1(u)) / u^2`` with ``E'(0) = 1/2``."""
    small, us, ub = _split(u, 1.0)
    return jnp.where(small, _series(us, _DE_COEFFS), (jnp.expm1(ub) * (ub - 1) + ub) / (ub * ub))


def _log1p_ratio_neg_grad(z: Array) -> Array:
    """``g(z) = -Lg'(z) = (log1p(z) - z / (1 + z)) / z^2`` with ``g(0) = 1/2``."""
    small, zs, zb = _split(z, 1.0)
    return jnp.where(small, _series(zs, _G_COEFFS), (jnp.log1p(zb) - zb / (1 + zb)) / (zb * zb))


@jax.custom_jvp
def _expm1_ratio(u: Array) -> Array:
    """``E(u) = expm1(u) / u`` with ``E(0) = 1`` (accurate for all u: no cancellation)."""
    nz = u != 0
    us = jnp.where(nz, u, 1.0)
    return jnp.where(nz, jnp.expm1(us) / us, 1.0)


@_expm1_ratio.defjvp
def _expm1_ratio_jvp(primals, tangents):
    (u,), (du,) = primals, tangents
    return _expm1_ratio(u), _expm1_ratio_grad(u) * du


@jax.custom_jvp
def _log1p_ratio(z: Array) -> Array:
    """``Lg(z) = log1p(z) / z`` with ``Lg(0) = 1`` (z > -1; accurate for all z)."""
    nz = z != 0
    zs = jnp.where(nz, z, 1.0)
    return jnp.where(nz, jnp.log1p(zs) / zs, 1.0)


@_log1p_ratio.defjvp
def _log1p_ratio_jvp(primals, tangents):
    (z,), (dz,) = primals, tangents
    return _log1p_ratio(z), -_log1p_ratio_neg_grad(z) * dz


def _travel_split(h, v0, v1, a):
    """Common safe operands of :func:`_travel_time` / :func:`_travel_moment`."""
    z = a * h / v0
    big = ~(jnp.abs(z) < 0.5)  # also where z overflowed or is nan
    # log(v1 / v0) on safe operands: (2, 1) where unused, so every branch stays finite.
    logq = _safe_log_ratio(jnp.where(big, v1, 2.0), jnp.where(big, v0, 1.0))
    return z, big, logq, jnp.where(big, a, 1.0), jnp.where(big, 0.0, z)


def _travel_time(h, v0, v1, a):
    """Time for the affine flow ``v = a y + b`` to travel ``h`` from velocity ``v0`` to
    ``v1`` (same sign): ``log(v1/v0)/a``, as ``h/v0 Lg(a h/v0)`` when ``a h / v0`` is small
    (accurate as ``a -> 0``) and from the ratio ``v1/v0`` otherwise (accurate as
    ``v1/v0 -> 0`` or ``-> inf``, where ``1 + a h / v0`` would round; the log of the
    ratio is taken as a difference of logs where the ratio itself would overflow)."""
    z, big, logq, a_s, z_s = _travel_split(h, v0, v1, a)
    return jnp.where(big, logq / a_s, h / v0 * _log1p_ratio(z_s))


def _travel_moment(h, v0, v1, a):
    """``(h/v0)^2 g(a h/v0) = (log(v1/v0) - 1 + v0/v1) / a^2``, the part of
    ``int y / v^2 dy`` over the segment beyond ``y0 * h / (v0 v1)``."""
    z, big, logq, a_s, z_s = _travel_split(h, v0, v1, a)
    inv_q = jnp.where(big, v0, 1.0) / jnp.where(big, v1, 2.0)
    return jnp.where(
        big,
        (logq - 1.0 + inv_q) / (a_s * a_s),
        (h / v0) ** 2 * _log1p_ratio_neg_grad(z_s),
    )


def _table_width(nc: int) -> int:
    return 1 << int(np.ceil(np.log2(nc + 1)))


def _walk_indices(nc: int):
    """Static gather indices for the knot tables: for knot j and n = 1..W-1 cells, the
    index of the n-th cell crossed moving right (j + n - 1) or left (j - n), and validity."""
    W = _table_width(nc)
    j = np.arange(nc + 1)[:, None]
    n = np.arange(1, W)[None, :]
    right = j + n - 1
    left = j - n
    return (
        np.clip(right, 0, nc - 1),
        right <= nc - 1,
        np.clip(left, 0, nc - 1),
        left >= 0,
    )


def _cumulative_table(step_r: Array, step_l: Array, nc: int, fill: float) -> Array:
    """Flattened ``(2, nc + 1, W)`` table of cumulative sums of per-cell quantities along
    the walk from each knot, rightwards (dir 0) and leftwards (dir 1); ``fill`` outside."""
    ir, vr, il, vl = _walk_indices(nc)
    sr = jnp.where(vr, step_r[ir], fill)
    sl = jnp.where(vl, step_l[il], fill)
    steps = jnp.stack([sr, sl])
    zero = jnp.zeros(steps.shape[:-1] + (1,), steps.dtype)
    return jnp.concatenate([zero, jnp.cumsum(steps, axis=-1)], axis=-1).reshape(-1)


def _cell_crossings(a: Array, b: Array, nc: int, zero_boundary: bool) -> dict[str, Array]:
    """Per-cell crossing data: whether a point can cross cell m rightwards / leftwards,
    the start velocity, ``z = a h / v0`` and the crossing time (``inf`` where impossible)."""
    dtype = a.dtype
    knots = jnp.arange(nc + 1, dtype=dtype) / nc
    s = 1.0 / nc
    vl = a * knots[:-1] + b
    vr = a * knots[1:] + b
    ok_r = (vl > 0) & (vr > 0)
    ok_l = (vl < 0) & (vr < 0)
    if zero_boundary:  # boundary knots are fixed points: never reached in finite time
        ok_r = ok_r.at[nc - 1].set(False)
        ok_l = ok_l.at[0].set(False)
    v0r = jnp.where(ok_r, vl, 1.0)
    v0l = jnp.where(ok_l, vr, -1.0)
    # End velocities, replaced by safe same-sign values where the crossing is impossible
    # (keeps every intermediate finite, which reverse-mode autodiff needs).
    v1r = jnp.where(ok_r, vr, 1.0)
    v1l = jnp.where(ok_l, vl, -1.0)
    ar = jnp.where(ok_r, a, 0.0)
    al = jnp.where(ok_l, a, 0.0)
    tau_r = jnp.where(ok_r, _travel_time(s, v0r, v1r, ar), jnp.inf)
    tau_l = jnp.where(ok_l, _travel_time(-s, v0l, v1l, al), jnp.inf)
    return dict(
        knots=knots,
        ok_r=ok_r,
        ok_l=ok_l,
        v0r=v0r,
        v0l=v0l,
        v1r=v1r,
        v1l=v1l,
        ar=ar,
        al=al,
        tau_r=tau_r,
        tau_l=tau_l,
    )


def _cell_index(x: Array, nc: int) -> Array:
    """Cell of each point, clamped to the end cells outside [0, 1] (in floating point
    first, so that huge or infinite ``x`` cannot wrap the int conversion; NaN -> 0)."""
    cf = jnp.clip(jnp.floor(x * nc), 0, nc - 1)
    return jnp.where(jnp.isnan(cf), 0, cf).astype(jnp.int32)


def _solve(x: Array, A: Array, t: Array, nc: int, zero_boundary: bool) -> tuple[Array, _SolveAux]:
    """The closed-form transform of flat ``x`` under cell parameters ``A`` for time t >= 0,
    plus what the derivative rule needs."""
    dtype = x.dtype
    a, b = A[0::2], A[1::2]
    if zero_boundary:
        # v(0) = v(1) = 0 exactly (B satisfies it only to round-off, which a strongly
        # repelling boundary would amplify): b_0 = 0, b_{nc-1} = -a_{nc-1}.
        b = b.at[0].set(0.0).at[nc - 1].set(-a[nc - 1])
    cells = _cell_crossings(a, b, nc, zero_boundary)
    D = _cumulative_table(cells["tau_r"], cells["tau_l"], nc, jnp.inf)
    W = _table_width(nc)

    lim = _Limits(dtype)
    c = _cell_index(x, nc)
    ac, bc = a[c], b[c]
    vx = ac * x + bc
    right = vx > 0
    k0 = c + right.astype(jnp.int32)
    xk0 = k0.astype(dtype) / nc
    h = xk0 - x
    vk0 = ac * xk0 + bc
    # Same nonzero sign (a product could underflow to 0 for tiny velocities).
    same_sign = ((vx > 0) & (vk0 > 0)) | ((vx < 0) & (vk0 < 0))
    reach = same_sign & jnp.where(right, c < nc - 1, c > 0)
    vxs = jnp.where(reach, vx, 1.0)
    vk0s = jnp.where(reach, vk0, vxs)
    acs = jnp.where(reach, ac, 0.0)
    t_hit = jnp.where(reach, _travel_time(h, vxs, vk0s, acs), jnp.inf)
    crossed = t_hit < t
    r = jnp.where(crossed, t - t_hit, 0.0)

    # Binary search for m = number of whole cells crossed after the first knot.
    base = (jnp.where(right, 0, nc + 1) + k0) * W
    m = jnp.zeros_like(k0)
    dm = jnp.zeros_like(x)
    step = W // 2
    while step >= 1:
        cand = m + step
        g = D[base + cand]
        ok = g <= r
        m = jnp.where(ok, cand, m)
        dm = jnp.where(ok, g, dm)
        step //= 2
    m = jnp.where(crossed, m, 0)
    kstar = k0 + jnp.where(right, m, -m)
    final_cell = jnp.where(right, jnp.minimum(kstar, nc - 1), jnp.maximum(kstar - 1, 0))
    cell = jnp.where(crossed, final_cell, c)
    y0 = jnp.where(crossed, kstar.astype(dtype) / nc, x)
    tt = jnp.where(crossed, r - dm, t)
    af, bf = a[cell], b[cell]
    v0 = af * y0 + bf
    u = jnp.clip(af * tt, -lim.u_clamp, lim.u_clamp)
    # Two algebraically equal forms of psi; each avoids cancellation where the other has it:
    # expanding (u >= 0): y0 + tt v0 E(u) (exact at fixed points, v0 = 0);
    # contracting (u < 0): e^u y0 + tt b E(u) (no |y0|-sized cancellation far from x*),
    # written e^u y0 + (b / a) expm1(u) for very negative u (tt b E(u) -> b / |a| even
    # where a t overflowed).
    # Strongly expanding (u > u_direct, where e^u may overflow): the displacement
    # tt v0 E(u) in log space, saturated at the cell's far end (the point cannot pass the
    # next knot within tt: otherwise it would be in a later cell) and at +-max in the
    # unbounded end cells.
    big = u > lim.u_direct
    very_neg = u < -lim.u_direct
    u_d = jnp.where(big, 0.0, u)
    Eu = _expm1_ratio(u_d)
    af_s = jnp.where(very_neg, af, -1.0)
    T_contract = jnp.where(
        very_neg,
        jnp.exp(u_d) * y0 + (bf / af_s) * jnp.expm1(u_d),
        jnp.exp(u_d) * y0 + tt * bf * Eu,
    )
    T_direct = jnp.where(u_d >= 0, y0 + tt * v0 * Eu, T_contract)
    u_b = jnp.where(big, u, lim.u_direct + 1.0)
    tt_b = jnp.where(big, tt, 1.0)
    av0 = jnp.abs(v0)
    av0_s = jnp.where(big & (av0 > 0), av0, 1.0)
    log_d = jnp.log(tt_b) + jnp.log(av0_s) + _log_expm1_ratio_big(u_b)
    sat = log_d > lim.log_max - 1.0
    disp = jnp.sign(v0) * jnp.where(sat, lim.max, jnp.exp(jnp.where(sat, 0.0, log_d)))
    lo = jnp.where(cell == 0, -lim.max, cell.astype(dtype) / nc)
    hi = jnp.where(cell == nc - 1, lim.max, (cell + 1).astype(dtype) / nc)
    T_big = jnp.clip(y0 + disp, lo, hi)
    T = jnp.clip(jnp.where(big, T_big, T_direct), -lim.max, lim.max)
    aux = _SolveAux(
        cells=cells,
        c=c,
        vx=vx,
        vxs=vxs,
        h=h,
        vk0s=vk0s,
        acs=acs,
        crossed=crossed,
        base=base,
        m=m,
        cell=cell,
        y0=y0,
        tt=tt,
        v0=v0,
        u=u,
        af=af,
        bf=bf,
        big=big,
        u_d=u_d,
        u_b=u_b,
        tt_b=tt_b,
        T=T,
        lim=lim,
    )
    return T, aux


@partial(jax.custom_jvp, nondiff_argnums=(3, 4))
def _integrate(x: Array, A: Array, t: Array, nc: int, zero_boundary: bool) -> Array:
    return _solve(x, A, t, nc, zero_boundary)[0]


@_integrate.defjvp
def _integrate_jvp(nc, zero_boundary, primals, tangents):
    x, A, t = primals
    xdot, Adot, tdot = tangents
    T, aux = _solve(x, A, t, nc, zero_boundary)
    cells = aux["cells"]
    crossed = aux["crossed"]
    lim = aux["lim"]
    s = 1.0 / nc
    big, u, u_d, u_b, tt_b = aux["big"], aux["u"], aux["u_d"], aux["u_b"], aux["tt_b"]
    tt, y0, v0 = aux["tt"], aux["y0"], aux["v0"]

    # v(T) without cancellation; where e^u would overflow, from T itself (T is then far
    # from the cell's fixed point: no cancellation either). Every coefficient below is
    # saturated at +-lim.cap (see _Limits) instead of overflowing.
    vT = jnp.where(big, aux["af"] * aux["T"] + aux["bf"], v0 * jnp.exp(u_d))
    vT = _capped(vT, lim.cap)
    dT_dx = jnp.where(crossed, vT / aux["vxs"], jnp.exp(jnp.minimum(u, lim.log_cap)))
    dT_dx = _capped(dT_dx, lim.cap)

    # Final segment: psi(y0, tt) in `cell`, direct partials w.r.t. (a, b) of that cell:
    # fb = tt E(u), fa = y0 fb + tt^2 v0 E'(u) = fb (y0 + tt v0 E'(u)/E(u)); for big u,
    # E'/E = 1 - 1/u up to e^-u, and fb in log space.
    fb_d = tt * _expm1_ratio(u_d)
    fa_d = y0 * fb_d + tt * tt * v0 * _expm1_ratio_grad(u_d)
    fb_b = jnp.exp(jnp.minimum(jnp.log(tt_b) + _log_expm1_ratio_big(u_b), lim.log_cap))
    fa_b = fb_b * (y0 + tt * v0 * (1.0 - 1.0 / u_b))
    fb = _capped(jnp.where(big, fb_b, fb_d), lim.cap)
    fa = _capped(jnp.where(big, fa_b, fa_d), lim.cap)

    # Start segment (x -> first knot), only when the point left its cell:
    # ws * i0s = v(T) h / (v(x) v(k0)) = dT/dx * h / v(k0), ws * i1s = x ws i0s + ws M.
    vxs, h, vk0s = aux["vxs"], aux["h"], aux["vk0s"]
    ws = jnp.where(crossed, _capped(vT, lim.cap_factor), 0.0)
    c0 = _capped(jnp.where(crossed, dT_dx, 0.0) * _capped(h / vk0s, lim.cap_factor), lim.cap)
    moment = _capped(_travel_moment(h, vxs, vk0s, aux["acs"]), lim.cap_factor)
    c1 = _capped(x * c0 + ws * moment, lim.cap)

    # Whole cells: per-cell integrals of 1/v^2 and y/v^2 over the cell, in walk direction.
    knots = cells["knots"]
    v0r, v1r, v0l, v1l = cells["v0r"], cells["v1r"], cells["v0l"], cells["v1l"]
    ok_r, ok_l = cells["ok_r"], cells["ok_l"]
    cf = lim.cap_factor
    q0r = jnp.where(ok_r, _capped(s / v0r / v1r, cf), 0.0)
    q1r = jnp.where(
        ok_r, _capped(knots[:-1] * q0r + _travel_moment(s, v0r, v1r, cells["ar"]), cf), 0.0
    )
    q0l = jnp.where(ok_l, _capped(-s / v0l / v1l, cf), 0.0)
    q1l = jnp.where(
        ok_l, _capped(knots[1:] * q0l + _travel_moment(-s, v0l, v1l, cells["al"]), cf), 0.0
    )

    adot, bdot = Adot[0::2], Adot[1::2]
    if zero_boundary:
        bdot = bdot.at[0].set(0.0).at[nc - 1].set(-adot[nc - 1])
    G = _cumulative_table(q1r * adot + q0r * bdot, q1l * adot + q0l * bdot, nc, 0.0)
    c, cell = aux["c"], aux["cell"]
    dT_dA = (
        fa * adot[cell]
        + fb * bdot[cell]
        + c1 * adot[c]
        + c0 * bdot[c]
        + ws * G[aux["base"] + aux["m"]]
    )
    Tdot = dT_dx * xdot + vT * tdot + dT_dA
    return T, Tdot


def _prepare(x, theta, tess: Tessellation, name_x: str = "x"):
    if not isinstance(tess, Tessellation):
        raise ValueError(f"tess must be an actfx.cpab.Tessellation, got {type(tess).__name__}")
    x = jnp.asarray(x)
    theta = jnp.asarray(theta)
    check_floating(name_x, x)
    check_floating("theta", theta)
    check_finite("theta", theta)
    if theta.ndim not in (1, 2) or theta.shape[-1] != tess.theta_dim:
        raise ValueError(
            f"theta must have shape (d,) or (n, d) with d = tess.theta_dim = {tess.theta_dim}, "
            f"got {theta.shape}"
        )
    # float16/bfloat16 are computed in float32 (e^{a t} overflows float16 at a t ~ 11);
    # callers cast the result back to result_type(x, theta).
    dtype = jnp.promote_types(jnp.result_type(x, theta), jnp.float32)
    return x.astype(dtype), theta.astype(dtype), jnp.asarray(tess.B, dtype)


def _out_dtype(x, theta):
    return jnp.result_type(jnp.asarray(x), jnp.asarray(theta))


def _batched(fn, x, theta, B):
    """Apply ``fn(x_flat, A)`` for theta (d,) or (n, d); output (..., *x.shape)."""
    xf = x.reshape(-1)
    if theta.ndim == 1:
        return fn(xf, B @ theta).reshape(x.shape)
    out = jax.vmap(lambda th: fn(xf, B @ th))(theta)
    return out.reshape((theta.shape[0],) + x.shape)


def _check_time(time, dtype) -> Array:
    check_finite("time", time)
    t = jnp.asarray(time, dtype)
    if t.ndim != 0:
        raise ValueError(f"time must be a scalar, got shape {t.shape}")
    return t


@partial(jax.jit, static_argnums=(4, 5))
def _transform(x, theta, B, t, nc: int, zero_boundary: bool):
    # The basis is a traced argument: one compilation serves every basis of a given nc.
    sign = jnp.where(t < 0, -1.0, 1.0).astype(x.dtype)
    # Non-finite x: NaN out (documented), computed on a harmless stand-in so that the
    # derivative coefficients of the other points stay finite.
    ok = jnp.isfinite(x)
    xs = jnp.where(ok, x, 0.5)
    T = _batched(lambda xf, A: _integrate(xf, sign * A, sign * t, nc, zero_boundary), xs, theta, B)
    return jnp.where(ok, T, jnp.nan)


@partial(jax.jit, static_argnums=(3,))
def _velocity(x, theta, B, nc: int):
    def field(xf, A):
        c = _cell_index(xf, nc)
        return A[0::2][c] * xf + A[1::2][c]

    return _batched(field, x, theta, B)


def transform(
    x: ArrayLike, theta: ArrayLike, tess: Tessellation, *, time: ArrayLike = 1.0
) -> Array:
    r"""The CPAB transform ``T_theta(x)``: integrate the CPA velocity field for ``time``.

    ``T(x) = phi(x, time)`` with ``d phi / d s = v_theta(phi)``, ``phi(x, 0) = x``, where
    ``v_theta`` is the CPA field with parameters ``A = B theta``; computed in closed form
    (module docstring). With ``tess.zero_boundary`` T maps [0, 1] onto itself, T(0) = 0,
    T(1) = 1; otherwise the end cells extend to the real line and points may leave [0, 1].
    Negative ``time`` gives the inverse flow. Works under ``jit`` (``tess`` is hashable, pass
    it as a static argument or close over it), ``vmap``, and forward/reverse-mode autodiff of
    any order w.r.t. ``x``, ``theta`` and ``time``.

    Extreme fields (overflow-safe in every float dtype): where ``a t`` would overflow
    ``exp`` (float32: theta ~100x a prior draw; float64: ~1000x; or a long ``time``), the
    in-cell displacement is computed in log space and saturates: a point that cannot leave
    its cell within ``time`` stays finite inside it, a point that would reach the cell
    boundary does so, and in the unbounded end cells (outside [0, 1], or
    ``zero_boundary=False``) ``T`` saturates at ``+-finfo(dtype).max``. Derivatives
    (``grad_x``, ``jax.grad`` w.r.t. x, theta, time) stay finite: per-point derivative
    coefficients saturate at ``+-sqrt(finfo.max)`` (~1.8e19 float32, ~1.3e154 float64)
    where the true value would exceed it (e.g. ``dT/dx = e^{a t}`` at a repelling fixed
    point). float16/bfloat16 are computed in float32 and cast back (so a result beyond
    the 16-bit range is ``+-inf`` there). Documented exceptions: non-finite ``x`` gives NaN
    at that point (other points unaffected); subnormal ``x`` counts as 0 where the backend
    flushes subnormals (XLA on CPU). Traced theta/time are not checked for NaN.
    Multi-device: pointwise in ``x``; under explicit sharding (``AxisType.Explicit``) each
    shard of ``x`` is transformed on its own (one theta; theta replicated).

    Args:
      x: points, any shape, floating; meant to lie in [0, 1] (cells are clamped outside).
      theta: ``(d,)`` or a batch ``(n, d)``, ``d = tess.theta_dim``.
      tess: the :class:`Tessellation`.
      time: integration time (scalar).

    Returns:
      ``x.shape`` for one theta, ``(n, *x.shape)`` for a batch; dtype ``result_type(x, theta)``.

    Raises:
      ValueError: ``tess`` not a Tessellation; ``theta`` of the wrong shape; concrete
        ``theta``/``time`` NaN or infinite; ``time`` not a scalar.
      TypeError: ``x``/``theta`` not floating (an ``ArgumentTypeError``, also a
        ``ValueError``).

    References:
      Freifeld et al., TPAMI 2017; Martinez et al. (difw), ICML 2022.

    Example:
      >>> import jax.numpy as jnp
      >>> from actfx.cpab import Tessellation, transform
      >>> tess = Tessellation(5)
      >>> y = transform(jnp.linspace(0, 1, 5), jnp.array([1.0, -0.5, 0.3, 2.0]), tess)
      >>> y.shape, bool(jnp.all(jnp.diff(y) > 0))
      ((5,), True)
      >>> transform(jnp.array([0.3, 0.7]), jnp.zeros(4), tess)  # theta = 0: identity
      Array([0.3, 0.7], dtype=float32)
    """
    out = _out_dtype(x, theta)
    x, theta, B = _prepare(x, theta, tess)
    t = _check_time(time, x.dtype)
    if theta.ndim == 1:
        # Pointwise: under explicit sharding each shard of x runs on its own (the cell
        # gathers have no sharding JAX could infer).
        return per_shard(
            lambda v, th, bb, tt: _transform(v, th, bb, tt, tess.nc, tess.zero_boundary),
            x,
            (),
            theta,
            B,
            t,
        ).astype(out)
    return _transform(x, theta, B, t, tess.nc, tess.zero_boundary).astype(out)


def inverse(x: ArrayLike, theta: ArrayLike, tess: Tessellation, *, time: ArrayLike = 1.0) -> Array:
    r"""The inverse transform ``T_theta^{-1}(x) = T_{-theta}(x)`` (integrate ``-v``).

    Args and returns as :func:`transform`.

    Example:
      >>> import jax.numpy as jnp
      >>> from actfx.cpab import Tessellation, inverse, transform
      >>> tess, theta = Tessellation(5), jnp.array([1.0, -0.5, 0.3, 2.0])
      >>> x = jnp.array([0.1, 0.5, 0.9])
      >>> bool(jnp.allclose(inverse(transform(x, theta, tess), theta, tess), x, atol=1e-5))
      True
    """
    return transform(x, -jnp.asarray(theta), tess, time=time)


def velocity(x: ArrayLike, theta: ArrayLike, tess: Tessellation) -> Array:
    r"""The CPA velocity field ``v_theta(x) = a_c x + b_c`` (c = cell of x, clamped to the
    end cells outside [0, 1]); ``(a_0, b_0, a_1, ...) = B theta``.

    Args:
      x: points, any shape. theta: ``(d,)`` or ``(n, d)``. tess: the tessellation.

    Returns:
      Same shape rules as :func:`transform`.

    Example:
      >>> import jax.numpy as jnp
      >>> from actfx.cpab import Tessellation, velocity
      >>> tess = Tessellation(5)
      >>> v = velocity(jnp.array([0.0, 0.5, 1.0]), jnp.array([1.0, -0.5, 0.3, 2.0]), tess)
      >>> bool(jnp.allclose(v[jnp.array([0, 2])], 0.0, atol=1e-6))
      True
    """
    out = _out_dtype(x, theta)
    x, theta, B = _prepare(x, theta, tess)
    return _velocity(x, theta, B, tess.nc).astype(out)


def grad_x(x: ArrayLike, theta: ArrayLike, tess: Tessellation, *, time: ArrayLike = 1.0) -> Array:
    r"""Elementwise spatial derivative ``dT/dx`` (T acts pointwise, so this is the diagonal
    of the Jacobian): ``v(T(x)) / v(x)``, or ``e^{t a_c}`` where x never leaves its cell.

    Args and returns as :func:`transform`.

    Example:
      >>> import jax.numpy as jnp
      >>> from actfx.cpab import Tessellation, grad_x
      >>> g = grad_x(jnp.linspace(0, 1, 7), jnp.array([1.0, -0.5, 0.3, 2.0]), Tessellation(5))
      >>> bool(jnp.all(g > 0))
      True
    """
    out = _out_dtype(x, theta)
    x, theta, B = _prepare(x, theta, tess)
    t = _check_time(time, x.dtype)
    return _grad_x(x, theta, B, t, tess.nc, tess.zero_boundary).astype(out)


@partial(jax.jit, static_argnums=(4, 5))
def _grad_x(x, theta, B, t, nc, zero_boundary):
    return jax.jvp(
        lambda xx: _transform(xx, theta, B, t, nc, zero_boundary), (x,), (jnp.ones_like(x),)
    )[1]
