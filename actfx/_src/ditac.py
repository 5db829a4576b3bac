"""DiTAC: a trainable activation built from a CPAB diffeomorphism (Chelly et al., ECCV'24)."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, ArrayLike

from actfx._src._checks import check_finite, check_floating
from actfx._src._sharding import per_shard, reduce_to_vma
from actfx.cpab import Tessellation, transform

METHODS = ("exact", "table")
VARIANTS = ("gelu_cpab", "gelu_cpab_relu", "gelu_cpab_gelu")


def ditac_interval(
    variant: str = "gelu_cpab", a: float = -0.5, b: float = 2.0
) -> tuple[float, float]:
    """The interval ``[a, b]`` on which DiTAC's CPAB transform acts, validated.

    ``"gelu_cpab_relu"`` replaces ``a`` by 0 and ``"gelu_cpab_gelu"`` replaces ``b`` by 0.
    For modules that validate their arguments at construction time.

    Args:
      variant: one of :data:`VARIANTS`.
      a, b: Python/NumPy real numbers, finite.

    Returns:
      ``(a, b)`` as Python floats with ``a < b``.

    Raises:
      ValueError: unknown ``variant``; ``a``/``b`` not a finite real number; ``a >= b``.

    Example:
      >>> from actfx import ditac_interval
      >>> ditac_interval("gelu_cpab_relu", -0.5, 2.0)
      (0.0, 2.0)
    """
    if not isinstance(variant, str) or variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    for name, v in (("a", a), ("b", b)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise ValueError(f"{name} must be a Python/NumPy real number, got {v!r}")
        check_finite(name, v)
    a, b = float(a), float(b)
    if variant == "gelu_cpab_relu":
        a = 0.0
    elif variant == "gelu_cpab_gelu":
        b = 0.0
    if not a < b:
        raise ValueError(f"the interval must satisfy a < b, got a={a}, b={b} (variant={variant!r})")
    return a, b


def _check_tess_theta(theta, tess) -> Tessellation:
    if tess is None:
        if theta.ndim == 0 or theta.shape[-1] < 1:
            raise ValueError(f"theta must have shape (d,) or (C, d) with d >= 1, got {theta.shape}")
        tess = Tessellation(theta.shape[-1] + 1)
    if not isinstance(tess, Tessellation):
        raise ValueError(
            f"tess must be an actfx.cpab.Tessellation or None, got {type(tess).__name__}"
        )
    if not tess.zero_boundary:
        raise ValueError(
            "tess must have zero_boundary=True (otherwise T does not fix the ends of [a, b] "
            "and DiTAC is discontinuous at a and b)"
        )
    if theta.ndim not in (1, 2) or theta.shape[-1] != tess.theta_dim:
        raise ValueError(
            f"theta must have shape (d,) or (C, d) with d = tess.theta_dim = {tess.theta_dim} "
            f"(nc={tess.nc}), got {theta.shape}"
        )
    return tess


def _residual_exact(u: Array, theta: Array, tess: Tessellation) -> Array:
    """``T(u) - u`` for flat ``u`` (..., M): theta (d,) on u (M,), or (C, d) on u (C, M)."""
    if theta.ndim == 1:
        return transform(u, theta, tess) - u
    return jax.vmap(lambda ui, ti: transform(ui, ti, tess) - ui)(u, theta)


def _residual_table(theta: Array, tess: Tessellation, size: int, dtype) -> Array:
    """``T(g) - g`` on ``size`` grid points of [0, 1], flattened: (K,) or (C * K,).

    The values pass through a sort keyed on the grid index (already in order, so nothing
    moves -- not even a NaN, which a sort by value would move to the end and so shift the
    whole table): it is there as a fusion barrier; without it XLA (CPU) fuses the tail of
    the transform into the per-point gathers and recomputes it at every point (~3x slower;
    ``lax.optimization_barrier`` is removed before fusion on CPU)."""
    grid = jnp.linspace(0.0, 1.0, size, dtype=dtype)
    if theta.ndim == 1:
        t = transform(grid, theta, tess)
    else:
        t = jax.vmap(lambda ti: transform(grid, ti, tess))(theta)
    key = jax.lax.broadcasted_iota(jnp.int32, t.shape, t.ndim - 1)
    t = jax.lax.sort((key, t), dimension=t.ndim - 1, num_keys=1)[1]
    return (t - grid).reshape(-1)


def _table_index(x, table, a, b, size):
    """Row ``i`` (left grid point, flat over per-channel tables), weight ``w`` in [0, 1]
    and the inside-[a, b] mask, in the table's dtype. No gathers."""
    xc = x.astype(table.dtype)
    pos = jnp.clip((xc - a) / (b - a), 0.0, 1.0) * (size - 1)
    i = jnp.clip(jnp.floor(pos), 0, size - 2).astype(jnp.int32)
    w = pos - i.astype(table.dtype)
    if table.shape[0] > size:  # per-channel tables, channels on the last axis of x
        i = i + size * jnp.arange(table.shape[0] // size, dtype=jnp.int32)
    return xc, i, w, (xc >= a) & (xc <= b)


def _gelu_plus(x, delta):
    """``gelu(x) + delta Phi(x)`` in x's dtype (exactly gelu(x) where delta == 0)."""
    delta = delta.astype(x.dtype)
    phi = 0.5 * jax.lax.erfc(-x * np.sqrt(0.5).astype(x.dtype))
    return jax.nn.gelu(x, approximate=False) + delta * phi


def _ditac_table_fwd(x, table, a, b, size):
    # y = gelu(x) + delta Phi(x), delta = (b - a)((1 - w) R_i + w R_{i+1}) inside [a, b].
    # One gather per point: each row j holds (R_j, R_{j+1}) packed in one complex number
    # (the pair of the last row of a channel is never read: i <= size - 2 in a channel).
    xc, i, w, inside = _table_index(x, table, a, b, size)
    ct = table.dtype
    pt = jnp.promote_types(ct, jnp.float32)
    tp = table.astype(pt)
    pairs = jax.lax.complex(tp, jnp.concatenate([tp[1:], tp[:1]]))
    v = pairs.at[i].get(mode="promise_in_bounds")
    v0, v1 = jnp.real(v).astype(ct), jnp.imag(v).astype(ct)
    delta = jnp.where(inside, (b - a) * (v0 + w * (v1 - v0)), 0.0)
    slope = jnp.where(inside, (size - 1) * (v1 - v0), 0.0)  # d delta / dx
    # The backward pass's per-point factors, formed here (XLA drops them from a call
    # that is not differentiated) so that it needs no erfc/exp and no index arithmetic:
    # dy/dx = Phi (1 + d delta/dx) + pdf(x) (x + delta);
    # dy/dR_i = (b - a) Phi (1 - w) and dy/dR_{i+1} = (b - a) Phi w.
    phi = 0.5 * jax.lax.erfc(-xc * np.sqrt(0.5).astype(ct))
    pdf = jnp.exp(-0.5 * xc * xc) * (1.0 / np.sqrt(2.0 * np.pi)).astype(ct)
    dydx = phi * (1.0 + slope) + pdf * (xc + delta)
    dydr = jnp.where(inside, phi * (b - a), 0.0)
    return _gelu_plus(x, delta), (table, i, w, dydx, dydr)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _ditac_table(x, table, a, b, size):
    return _ditac_table_fwd(x, table, a, b, size)[0]


def _ditac_table_bwd(a, b, size, res, g):
    # The table's cotangent is scatter-added in ONE scatter: c = g dy/dR and c w packed
    # as complex(c, c w) at row i, then dR_j = Re_j - Im_j + Im_{j-1} (two real scatters
    # cost ~1.3x more of a CNN train step on CPU, where XLA's scatter is a serial loop;
    # benchmarks/ditac_cnn.py). No gather and no special function here.
    table, i, w, dydx, dydr = res
    ct = table.dtype
    gc = g.astype(ct)
    dx = (gc * dydx).astype(g.dtype)
    c = gc * dydr
    pt = jnp.promote_types(ct, jnp.float32)
    z = jax.lax.complex(c.astype(pt), (c * w).astype(pt))
    dz = jnp.zeros(table.shape, z.dtype).at[i].add(z, mode="promise_in_bounds")
    re, im = jnp.real(dz), jnp.imag(dz)
    dtable = (re - im + jnp.concatenate([jnp.zeros((1,), pt), im[:-1]])).astype(ct)
    # Under shard_map a table shared by the shards (invariant) gets the sum over them.
    return dx, reduce_to_vma(dtable, table)


_ditac_table.defvjp(_ditac_table_fwd, _ditac_table_bwd)


@partial(jax.jit, static_argnames=("tess", "a", "b", "method", "table_size"))
def _ditac(x, theta, tess, a, b, method, table_size):
    ct = jnp.result_type(x.dtype, theta.dtype)
    th = theta.astype(ct)
    if method == "table":
        return _ditac_table(x, _residual_table(th, tess, table_size, ct), a, b, table_size)
    xc = x.astype(ct)
    inside = (xc >= a) & (xc <= b)
    # u = (x - a)/(b - a) on [a, b] *including* the end points (so the derivative at x = a
    # and x = b is the one-sided derivative from inside, as in the table method and the
    # reference; a clip would give the mean of the two one-sided ones there), 0 or 1
    # outside (NaN x -> 1, a fixed point; the output is gelu(NaN) = NaN).
    u = jnp.where(inside, (xc - a) / (b - a), jnp.where(xc < a, 0.0, 1.0).astype(ct))
    if theta.ndim == 2:  # per-channel: channels (last axis of x) first, flattened
        u = jnp.moveaxis(u, -1, 0).reshape(theta.shape[0], -1)
        r = _residual_exact(u, th, tess)
        r = jnp.moveaxis(r.reshape((x.shape[-1],) + x.shape[:-1]), 0, -1)
    else:
        r = _residual_exact(u.reshape(-1), th, tess).reshape(x.shape)
    # T~(x) = a + (b - a) T(u) = x + delta with delta = (b - a) (T(u) - u) inside [a, b], 0
    # outside, and DiTAC = gelu(x) + delta Phi(x): exactly gelu(x) wherever delta = 0
    # (outside [a, b], and at theta = 0 where T(u) = u exactly).
    return _gelu_plus(x, jnp.where(inside, (b - a) * r, 0.0))


def ditac(
    x: ArrayLike,
    theta: ArrayLike,
    tess: Tessellation | None = None,
    *,
    a: float = -0.5,
    b: float = 2.0,
    method: str = "exact",
    table_size: int = 2048,
    variant: str = "gelu_cpab",
) -> Array:
    r"""DiTAC activation: a CPAB diffeomorphism of [a, b] times the normal CDF.

    .. math::
        \tilde T(x) = \begin{cases} a + (b - a)\, T_\theta\!\left(\frac{x - a}{b - a}\right)
          & a \le x \le b \\ x & \text{otherwise} \end{cases}, \qquad
        \mathrm{DiTAC}(x) = \tilde T(x)\, \Phi(x)

    where :math:`T_\theta` is the CPAB transform of [0, 1] (:func:`actfx.cpab.transform`,
    zero-boundary tessellation, so T fixes 0 and 1 and DiTAC is continuous) and
    :math:`\Phi` the standard normal CDF. Outside [a, b] and at ``theta = 0`` the result
    is *exactly* GELU (``jax.nn.gelu(x, approximate=False)``, same dtype): the code returns
    ``jax.nn.gelu(x, approximate=False) + delta * Phi(x)`` with
    :math:`\delta = \tilde T(x) - x = (b - a)(T(u) - u)` (equal to the formula above in
    exact arithmetic), and :math:`\delta` is exactly 0 there. (Compared with a *separately
    compiled* ``jax.nn.gelu`` call, XLA may round ``erfc`` differently by an ulp depending
    on shapes and fusion; within one program the two are bitwise equal with XLA's default
    CPU code generation. That is XLA's choice, not a guarantee: with its legacy CPU fusion
    emitters at -O0, ``--xla_cpu_use_fusion_emitters=false``, the per-channel table path
    differs from the same program's GELU by an ulp at a few points.)

    ``method="exact"`` integrates the velocity field in closed form at every point.
    ``method="table"`` evaluates :math:`T(g) - g` once per call on ``table_size`` equally
    spaced points of [0, 1] and interpolates linearly; values *and* gradients (w.r.t.
    ``x`` and ``theta``) are those of this piecewise-linear function (exact autodiff of the
    interpolant, as a ``custom_vjp``: reverse mode only -- use ``method="exact"`` for
    ``jax.jvp``/``jacfwd``; the reference rounds to the nearest grid point instead). The
    interpolation error is at most ``(b - a) max|T''| / (8 (table_size - 1)^2)``.

    Which method is fast where (CPU, measured with ``benchmarks/ditac.py`` and
    ``benchmarks/ditac_cnn.py``): with one theta per layer the table costs one transform
    of ``table_size`` points per call plus one gather per point (one scatter in the
    backward pass), and is the fast choice. With a per-channel theta the table is rebuilt
    for every channel on every call (``C * table_size`` transforms, forward and backward):
    keep it small. In the Flax MNIST-tutorial CNN (352 channels, batch 32) an Adam train
    step took 2.7-3.0x ReLU's with 64 points (the modules' per-channel default), 18x with
    2048 points and 12x with ``method="exact"`` (GELU: 1.05-1.2x; wall time on 2 idle CPU
    cores; in CPU time 3.6x, 23x and 18x).

    Multi-device: works under ``jit`` with sharded inputs, inside ``jax.shard_map`` (the
    table's gradient is summed over the shards that share it) and under explicit sharding
    (``AxisType.Explicit``; each shard of ``x`` is computed on its own, a per-channel
    theta split like ``x``'s channels).

    Variants (the reference code's names): ``"gelu_cpab"`` (above, default),
    ``"gelu_cpab_relu"`` (interval [0, b]: ``a`` is ignored) and ``"gelu_cpab_gelu"``
    (interval [a, 0]: ``b`` is ignored). Leaky-DiTAC and the other names in the reference
    options have no implementation there and no unambiguous definition: not offered.

    Args:
      x: input, any shape, floating. With a per-channel ``theta`` the channels are the
        last axis of ``x``.
      theta: CPA parameters, ``(d,)`` (one transform for the layer) or ``(C, d)`` (one per
        channel, ``C = x.shape[-1]``); ``d = tess.theta_dim``. Concrete NaN/inf raises.
      tess: a zero-boundary :class:`actfx.cpab.Tessellation` (static: hashable). ``None``
        means ``Tessellation(d + 1)`` (zero boundary, basis ``"qr"``, as in DiTAC).
      a, b: the interval, Python floats with ``a < b`` (static).
      method: ``"exact"`` or ``"table"`` (static).
      table_size: number of grid points of the table, >= 2 (static).
      variant: see above (static).

    Extreme and bad input: the CPAB transform is overflow-safe (see
    :func:`actfx.cpab.transform`), so a large ``theta`` (e.g. after a big optimiser step)
    gives finite values and finite gradients w.r.t. ``x`` and ``theta`` everywhere,
    including outside [a, b] (where the theta-gradient is exactly 0). Documented
    exceptions: NaN ``x`` gives NaN; ``x = +inf`` gives ``+inf`` and ``x = -inf`` gives NaN,
    exactly as ``jax.nn.gelu`` (``-inf * Phi(-inf)``); a traced ``theta`` is not checked
    for NaN (a NaN theta gives NaN). An empty ``x`` gives an empty result.

    Returns:
      Array of ``x``'s shape and dtype. The transform is computed in
      ``result_type(x, theta)`` (e.g. float32 for bfloat16 ``x`` with a float32 ``theta``)
      and ``delta`` is cast to ``x.dtype`` before multiplying by :math:`\Phi(x)`.

    Raises:
      ValueError: concrete ``theta`` NaN/inf or of the wrong shape for ``tess`` or for
        ``x``'s channels; unknown ``method``/``variant``; ``a``/``b`` not finite real
        numbers or ``a >= b``, or ``a``, ``b`` or ``b - a`` beyond the compute dtype's
        range (e.g. ``a=-3e38, b=3e38`` in float32: the width overflows); ``table_size``
        not an int >= 2; ``tess`` not a zero-boundary Tessellation.
      TypeError: ``x``/``theta`` not floating (an ``ArgumentTypeError``, also a
        ``ValueError``).

    References:
      I. Chelly, S. Finder, S. Ifergane, O. Freifeld, *Trainable Highly-expressive
      Activation Functions*, ECCV 2024, arXiv:2407.07564.

    Example:
      >>> import jax, jax.numpy as jnp, actfx
      >>> x = jnp.array([-3.0, -0.2, 0.5, 1.5, 4.0])
      >>> theta = jnp.array([1.0, -2.0, 0.5, 0.0, 1.0, 0.3, -0.7, 0.2, 0.4])  # nc = 10
      >>> y = actfx.ditac(x, theta)
      >>> g = jax.nn.gelu(x, approximate=False)
      >>> out = jnp.array([0, 4])  # the points outside [a, b]
      >>> bool(jnp.allclose(y[out], g[out], rtol=1e-6))
      True
      >>> bool(jnp.allclose(actfx.ditac(x, jnp.zeros(9)), g, rtol=1e-6))  # theta = 0
      True
      >>> bool(jnp.allclose(actfx.ditac(x, theta, method="table"), y, atol=1e-5))
      True
    """
    x = jnp.asarray(x)
    theta = jnp.asarray(theta)
    check_floating("x", x)
    check_floating("theta", theta)
    check_finite("theta", theta)
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if (
        isinstance(table_size, bool)
        or not isinstance(table_size, (int, np.integer))
        or table_size < 2
    ):
        raise ValueError(f"table_size must be an int >= 2, got {table_size!r}")
    a, b = ditac_interval(variant, a, b)
    tess = _check_tess_theta(theta, tess)
    if theta.ndim == 2 and (x.ndim == 0 or x.shape[-1] != theta.shape[0]):
        raise ValueError(
            f"a per-channel theta of shape {theta.shape} needs x with {theta.shape[0]} channels "
            f"on its last axis, got x of shape {x.shape}"
        )
    ct = jnp.result_type(x.dtype, theta.dtype)
    fmax = float(jnp.finfo(ct).max)
    if not max(abs(a), abs(b), b - a) <= fmax:
        raise ValueError(
            f"a, b and the width b - a must be finite in the compute dtype {jnp.dtype(ct).name} "
            f"(|.| <= {fmax:.4g}), got a={a}, b={b} (b - a = {b - a:.4g})"
        )
    if x.size == 0:
        return x
    # Elementwise in x: under explicit sharding each shard runs on its own (the gathers
    # have no sharding JAX could infer); a per-channel theta is split like x's channels.
    return per_shard(
        lambda v, t: _ditac(v, t, tess, a, b, method, int(table_size)),
        x,
        (),
        theta,
        arg_specs=lambda local: (P(local[-1], None) if theta.ndim == 2 else P(),),
    )


def ditac_regularizer(theta: ArrayLike, precision: ArrayLike) -> Array:
    r"""DiTAC's smoothness regulariser, the prior's negative log-density up to constants:

    .. math::
        R(\theta) = \theta^\top P \theta, \qquad \nabla R = (P + P^\top)\theta = 2 P \theta
        \ (P\ \text{symmetric}).

    Multiply by the weight (``lambda_reg = 0.1`` in the reference) and add it to the loss.
    ``P`` is the prior precision over theta (e.g. ``actfx.cpab.precision_matrix``). For a
    per-channel ``theta`` of shape ``(C, d)`` the result is the sum over channels.

    The gradient here is the true one, by autodiff. The reference implementation instead
    adds ``lambda_reg * 2 * precision_mat.mul(theta)`` inside its backward pass: an
    *elementwise* product of the (d, d) matrix with the (1, d) theta, which PyTorch then
    sums back to theta's shape, i.e. ``2 * theta_j * sum_i P_ij`` (the column sums of P
    times theta), not ``2 (P theta)_j``. The two agree only for diagonal P.

    Args:
      theta: ``(d,)`` or ``(C, d)``.
      precision: ``(d, d)``.

    Returns:
      A scalar of dtype ``result_type(theta, precision)``.

    References:
      Chelly et al., ECCV 2024, arXiv:2407.07564 (Sec. on the CPA prior).

    Example:
      >>> import jax, jax.numpy as jnp, actfx
      >>> P = jnp.array([[2.0, 1.0], [1.0, 3.0]])
      >>> theta = jnp.array([1.0, -1.0])
      >>> actfx.ditac_regularizer(theta, P)
      Array(3., dtype=float32)
      >>> jax.grad(actfx.ditac_regularizer)(theta, P)  # 2 P theta
      Array([ 2., -4.], dtype=float32)
    """
    theta = jnp.asarray(theta)
    precision = jnp.asarray(precision)
    check_floating("theta", theta)
    check_floating("precision", precision)
    check_finite("precision", precision)
    if theta.ndim not in (1, 2):
        raise ValueError(f"theta must have shape (d,) or (C, d), got {theta.shape}")
    d = theta.shape[-1]
    if precision.shape != (d, d):
        raise ValueError(
            f"precision must have shape (d, d) = {(d, d)} to match theta, got {precision.shape}"
        )
    return jnp.sum(theta * (theta @ precision.T))
