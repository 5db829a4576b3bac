"""Closed-form integration of 1-D CPA velocity fields (the CPAB transform) and its derivatives.

The transform ``T_theta(x) = phi(x, t)`` solves ``d phi / d s = v(phi)``, ``phi(x, 0) = x``
for the CPA field ``v = v_theta`` (see :mod:`actfx.cpab.tessellation`). Inside one cell,
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

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from actfx._checks import check_finite, check_floating
from actfx.cpab.tessellation import Tessellation

# Below this |argument| the ratio functions use their Taylor series (exact to round-off
# and smooth, so that autodiff of the derivative rule is also accurate).
_SERIES_THRESHOLD = 0.05


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
    big = jnp.abs(z) >= 0.5
    return z, big, jnp.where(big, v1 / v0, 2.0), jnp.where(big, a, 1.0), jnp.where(big, 0.0, z)


def _travel_time(h, v0, v1, a):
    """Time for the affine flow ``v = a y + b`` to travel ``h`` from velocity ``v0`` to
    ``v1`` (same sign): ``log(v1/v0)/a``, as ``h/v0 Lg(a h/v0)`` when ``a h / v0`` is small
    (accurate as ``a -> 0``) and from the ratio ``v1/v0`` otherwise (accurate as
    ``v1/v0 -> 0`` or ``-> inf``, where ``1 + a h / v0`` would round)."""
    z, big, q, a_s, z_s = _travel_split(h, v0, v1, a)
    return jnp.where(big, jnp.log(q) / a_s, h / v0 * _log1p_ratio(z_s))


def _travel_moment(h, v0, v1, a):
    """``(h/v0)^2 g(a h/v0) = (log(v1/v0) - 1 + v0/v1) / a^2``, the part of
    ``int y / v^2 dy`` over the segment beyond ``y0 * h / (v0 v1)``."""
    z, big, q, a_s, z_s = _travel_split(h, v0, v1, a)
    return jnp.where(
        big,
        (jnp.log(q) - 1.0 + 1.0 / q) / (a_s * a_s),
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


def _cell_crossings(a: Array, b: Array, nc: int, zero_boundary: bool):
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
        knots=knots, ok_r=ok_r, ok_l=ok_l, v0r=v0r, v0l=v0l, v1r=v1r, v1l=v1l, ar=ar, al=al,
        tau_r=tau_r, tau_l=tau_l,
    )


def _solve(x: Array, A: Array, t: Array, nc: int, zero_boundary: bool):
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

    c = jnp.clip(jnp.floor(x * nc).astype(jnp.int32), 0, nc - 1)
    ac, bc = a[c], b[c]
    vx = ac * x + bc
    right = vx > 0
    k0 = c + right.astype(jnp.int32)
    xk0 = k0.astype(dtype) / nc
    h = xk0 - x
    vk0 = ac * xk0 + bc
    reach = (vx * vk0 > 0) & jnp.where(right, c < nc - 1, c > 0)
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
    u = af * tt
    # Two algebraically equal forms of psi; each avoids cancellation where the other has it:
    # expanding (u >= 0): y0 + tt v0 E(u) (exact at fixed points, v0 = 0);
    # contracting (u < 0): e^u y0 + tt b E(u) (no |y0|-sized cancellation far from x*).
    Eu = _expm1_ratio(u)
    T = jnp.where(u >= 0, y0 + tt * v0 * Eu, jnp.exp(u) * y0 + tt * bf * Eu)
    aux = dict(
        cells=cells, c=c, vx=vx, vxs=vxs, h=h, vk0s=vk0s, acs=acs, crossed=crossed, base=base,
        m=m, cell=cell, y0=y0, tt=tt, v0=v0, u=u, af=af,
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
    s = 1.0 / nc

    vT = aux["v0"] * jnp.exp(aux["u"])  # v(T) without cancellation
    dT_dx = jnp.where(crossed, vT / aux["vxs"], jnp.exp(aux["u"]))

    # Final segment: psi(y0, tt) in `cell`, direct partials w.r.t. (a, b) of that cell.
    tt, y0 = aux["tt"], aux["y0"]
    fb = tt * _expm1_ratio(aux["u"])
    fa = y0 * fb + tt * tt * aux["v0"] * _expm1_ratio_grad(aux["u"])

    # Start segment (x -> first knot), only when the point left its cell.
    vxs, h, vk0s = aux["vxs"], aux["h"], aux["vk0s"]
    i0s = h / (vxs * vk0s)
    i1s = x * i0s + _travel_moment(h, vxs, vk0s, aux["acs"])
    ws = jnp.where(crossed, vT, 0.0)

    # Whole cells: per-cell integrals of 1/v^2 and y/v^2 over the cell, in walk direction.
    knots = cells["knots"]
    v0r, v1r, v0l, v1l = cells["v0r"], cells["v1r"], cells["v0l"], cells["v1l"]
    ok_r, ok_l = cells["ok_r"], cells["ok_l"]
    q0r = jnp.where(ok_r, s / (v0r * v1r), 0.0)
    q1r = jnp.where(ok_r, knots[:-1] * q0r + _travel_moment(s, v0r, v1r, cells["ar"]), 0.0)
    q0l = jnp.where(ok_l, -s / (v0l * v1l), 0.0)
    q1l = jnp.where(ok_l, knots[1:] * q0l + _travel_moment(-s, v0l, v1l, cells["al"]), 0.0)

    adot, bdot = Adot[0::2], Adot[1::2]
    if zero_boundary:
        bdot = bdot.at[0].set(0.0).at[nc - 1].set(-adot[nc - 1])
    G = _cumulative_table(q1r * adot + q0r * bdot, q1l * adot + q0l * bdot, nc, 0.0)
    c, cell = aux["c"], aux["cell"]
    dT_dA = (
        fa * adot[cell]
        + fb * bdot[cell]
        + ws * (i1s * adot[c] + i0s * bdot[c] + G[aux["base"] + aux["m"]])
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
    dtype = jnp.result_type(x, theta)
    return x.astype(dtype), theta.astype(dtype), jnp.asarray(tess.B, dtype)


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
    return _batched(lambda xf, A: _integrate(xf, sign * A, sign * t, nc, zero_boundary), x, theta, B)


@partial(jax.jit, static_argnums=(3,))
def _velocity(x, theta, B, nc: int):
    def field(xf, A):
        c = jnp.clip(jnp.floor(xf * nc).astype(jnp.int32), 0, nc - 1)
        return A[0::2][c] * xf + A[1::2][c]

    return _batched(field, x, theta, B)


def transform(x: ArrayLike, theta: ArrayLike, tess: Tessellation, *, time: ArrayLike = 1.0) -> Array:
    r"""The CPAB transform ``T_theta(x)``: integrate the CPA velocity field for ``time``.

    ``T(x) = phi(x, time)`` with ``d phi / d s = v_theta(phi)``, ``phi(x, 0) = x``, where
    ``v_theta`` is the CPA field with parameters ``A = B theta``; computed in closed form
    (module docstring). With ``tess.zero_boundary`` T maps [0, 1] onto itself, T(0) = 0,
    T(1) = 1; otherwise the end cells extend to the real line and points may leave [0, 1].
    Negative ``time`` gives the inverse flow. Works under ``jit`` (``tess`` is hashable, pass
    it as a static argument or close over it), ``vmap``, and forward/reverse-mode autodiff of
    any order w.r.t. ``x``, ``theta`` and ``time``.

    Args:
      x: points, any shape, floating; meant to lie in [0, 1] (cells are clamped outside).
      theta: ``(d,)`` or a batch ``(n, d)``, ``d = tess.theta_dim``.
      tess: the :class:`Tessellation`.
      time: integration time (scalar).

    Returns:
      ``x.shape`` for one theta, ``(n, *x.shape)`` for a batch; dtype ``result_type(x, theta)``.

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
    x, theta, B = _prepare(x, theta, tess)
    t = _check_time(time, x.dtype)
    return _transform(x, theta, B, t, tess.nc, tess.zero_boundary)


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
    x, theta, B = _prepare(x, theta, tess)
    return _velocity(x, theta, B, tess.nc)


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
    x, theta, B = _prepare(x, theta, tess)
    t = _check_time(time, x.dtype)
    return _grad_x(x, theta, B, t, tess.nc, tess.zero_boundary)


@partial(jax.jit, static_argnums=(4, 5))
def _grad_x(x, theta, B, t, nc, zero_boundary):
    return jax.jvp(lambda xx: _transform(xx, theta, B, t, nc, zero_boundary), (x,),
                   (jnp.ones_like(x),))[1]
