"""LayerAct's pure-JAX formulas, shared by the XLA path and the kernel's primitives.

:mod:`actfx._src.layeract` (the public function) and :mod:`actfx._src.layeract_native`
(the primitives, whose non-kernel lowerings and higher derivatives are these formulas) both
import this module; neither imports the other's internals.

Numerics: each layer is scaled by an exact power of two ``2^-e`` near ``1 / max|x|`` (no
overflow or underflow in the mean and squares) and shifted by one of its own entries (its
first), as the C++ kernel does: the mean and variance are those of ``d = x - x_ref``, so a
constant layer has ``d = 0``, mean 0 and variance 0 *exactly* (float32's mean of equal
values is off by an ulp, which gave ``n = +-0.8`` instead of 0), and a layer whose spread is
tiny against its magnitude keeps its spread's digits. ``alpha`` is applied in the scaled
space as ``alpha 2^-2e``, split into a float mantissa and an integer exponent in Python
(``alpha`` is static), so an ``alpha`` outside the float32 range (``1e39``, ``1e-40``) is
not rounded to inf or 0 before the scaling. The scale and the shift are constants for
autodiff: ``n`` is invariant under both, so the derivatives are exact.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from jaxtyping import Array

from actfx._src.nelu import _pow2


def gate(n: Array, kind: str) -> Array:
    """The gate ``s(n)``: sigmoid for LA-SiLU, ``clip(n/6 + 1/2, 0, 1)`` for LA-HardSiLU."""
    if kind == "silu":
        return jax.nn.sigmoid(n)
    # = clip(n/6 + 1/2, 0, 1), written so that autodiff's slope is 1/6 on (-3, 3] and 0
    # elsewhere, the reference's convention (a clip would give 1/12 at the kinks).
    s = jnp.where(n > 3, 1.0, jnp.where(n > -3, n / 6 + 0.5, 0.0))
    return jnp.where(jnp.isnan(n), n, s).astype(n.dtype)  # NaN stays NaN


def gate_grad(n: Array, kind: str) -> Array:
    """Derivative ``s'(n)`` of :func:`gate`."""
    if kind == "silu":
        s = jax.nn.sigmoid(n)
        return s * (1 - s)
    # The reference's slope: 1/6 on (-3, 3] (n = +3 exactly included, -3 excluded).
    return jnp.where((n > -3) & (n <= 3), 1.0 / 6, 0.0).astype(n.dtype)


def _split(v: float) -> tuple[float, int]:
    """``v = f 2^k`` with ``f`` in ``[0.5, 1)``: a mantissa any float dtype holds to its
    precision and an exponent for :func:`_pow2`."""
    return math.frexp(v)


def _layer_frame(x: Array, axes: tuple[int, ...], alpha: float):
    """``(e, finite, ref)`` per layer: the scale exponent, whether the layer is finite, and
    the shift (the layer's first entry scaled by ``2^-e``); constants for autodiff.

    ``e`` is that of ``max|x| = f 2^e``, ``f`` in ``[0.5, 1)`` (0 for a zero or non-finite
    layer), except for a constant layer with ``alpha > 0``: its ``1/std'`` is
    ``2^e / sqrt(alpha)``, which overflows where ``x / sqrt(alpha)`` does not (e.g. ``x``
    near 1e36, ``alpha = 1e-5``), so ``e`` is moved to balance ``x 2^-e`` against
    ``2^e / sqrt(alpha)`` (both near ``sqrt(|x| / sqrt(alpha))``; nothing is squared in a
    constant layer). One fused pass (max and min) finds both."""
    x = jax.lax.stop_gradient(x)
    hi = jnp.max(x, axis=axes, keepdims=True)
    lo = jnp.min(x, axis=axes, keepdims=True)
    m = jnp.maximum(hi, -lo)
    finite = jnp.isfinite(m)
    _, e = jnp.frexp(jnp.where(finite & (m > 0), m, 1.0))
    if alpha > 0:
        kr = _split(1.0 / math.sqrt(alpha))[1]
        fi = jnp.finfo(x.dtype)
        half = jnp.clip((e + kr) // 2, int(fi.minexp), int(fi.maxexp) - 1)
        e = jnp.where(hi == lo, e - half, e)
    first = tuple(slice(0, 1) if a in axes else slice(None) for a in range(x.ndim))
    return e, finite, _pow2(x[first], -e)


def _normalize_scaled(xs, ref, e, finite, axes, alpha, ddof):
    """``(n, x / std)`` from the scaled layer ``xs = x 2^-e`` and its shift ``ref``."""
    count = 1
    for a in axes:
        count *= xs.shape[a]
    d = xs - ref  # |d| < 2; exact for a constant layer (d = 0)
    xc = d - jnp.mean(d, axis=axes, keepdims=True)
    var = jnp.sum(xc * xc, axis=axes, keepdims=True) / (count - ddof)
    # A non-constant layer has var >= ~ulp(1)^2 / count here (its spread is at least one
    # ulp of its largest entry, which is in [0.5, 1)), far above any alpha 2^-2e that
    # underflows; a constant one has var = 0 exactly and std = sqrt(alpha) (alpha > 0) or
    # the documented 0/0 limit n = 0 (alpha = 0).
    pos = var > 0  # = not constant
    safe_var = jnp.where(pos, var, 1.0)
    if alpha > 0:
        fa, ka = _split(alpha)
        inv_std = jax.lax.rsqrt(
            jnp.where(pos, safe_var + _pow2(jnp.asarray(fa, xs.dtype), ka - 2 * e), 1.0)
        )
        # constant layer: 1/std' = 2^e / sqrt(alpha) (e balanced, see _layer_frame); capped
        # at the dtype's max only where x / sqrt(alpha) itself overflows (n = 0 anyway)
        fr, kr = _split(1.0 / math.sqrt(alpha))
        const_inv = jnp.minimum(_pow2(jnp.asarray(fr, xs.dtype), kr + e), jnp.finfo(xs.dtype).max)
        inv_std = jnp.where(pos, inv_std, const_inv)
    else:
        inv_std = jnp.where(pos, jax.lax.rsqrt(safe_var), 0.0)
    # a layer with a NaN/inf entry: NaN throughout (documented), not a partial result
    inv_std = jnp.where(finite, inv_std, jnp.nan)
    return xc * inv_std, xs * inv_std


@partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3))
def normalize(x: Array, axes: tuple[int, ...], alpha: float, ddof: int):
    """``(n, x / std)`` with ``n = (x - mean) / std``, ``std = sqrt(var_ddof + alpha)``.

    Overflow-safe and shifted: each layer is scaled by a power of two ``2^-e`` near
    ``1 / max|x|`` (exact, as two normal factors) and shifted by its first entry (see the
    module docstring), so the mean and the squares cannot overflow or underflow and a
    constant layer has ``n = 0`` exactly; ``n = xc' / sqrt(var' + alpha 2^-2e)`` is the
    same number. Scale and shift are constants for autodiff (``n`` computed at any fixed
    scale and shift is the same function of ``x``). Derivatives: the tangent is
    ``2^-e L(t)`` with ``L`` the derivative of the scaled computation, written so that
    reverse mode multiplies the cotangent by ``2^-e`` *before* summing it over the layer
    (the cotangent of ``n`` is ``g x s'(n)``, of the size of ``max|x|``; summed first it
    overflows near the dtype's max). A constant layer with ``alpha = 0`` (0/0) gets
    ``n = 0`` and finite gradients: the limit along ``alpha -> 0``."""
    e, finite, ref = _layer_frame(x, axes, alpha)
    return _normalize_scaled(_pow2(x, -e), ref, e, finite, axes, alpha, ddof)


@normalize.defjvp
def _normalize_jvp(axes, alpha, ddof, primals, tangents):
    (x,), (t,) = primals, tangents
    e, finite, ref = _layer_frame(x, axes, alpha)
    outs, touts = jax.jvp(
        lambda v: _normalize_scaled(v, ref, e, finite, axes, alpha, ddof), (_pow2(x, -e),), (t,)
    )
    return outs, tuple(_pow2(u, -e) for u in touts)


def forward(x, kind, axes, alpha, ddof) -> tuple[Array, tuple[Array, Array]]:
    """``(x s(n), (n, x / std))``: LayerAct and the residuals of the paper's backward."""
    n, x_std = normalize(x, axes, alpha, ddof)
    return x * gate(n, kind), (n, x_std)


def paper_backward(kind, axes, res, g) -> Array:
    """The backward of the paper's reference code (a LayerNorm-style formula):
    ``dn = g x s'(n) / std;  dx = g s + dn - mean(dn) - mean(dn n) n``."""
    n, x_std = res  # x_std = x / std, formed from the scaled layer (no overflow)
    dn = g * (x_std * gate_grad(n, kind))  # x/std s'(n) first: no overflow before g
    return (
        g * gate(n, kind)
        + dn
        - jnp.mean(dn, axis=axes, keepdims=True)
        - jnp.mean(dn * n, axis=axes, keepdims=True) * n
    )


@partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4))
def layeract_paper(x, kind, axes, alpha, ddof) -> Array:
    """LayerAct whose VJP is :func:`paper_backward` (``grad="paper"``)."""
    return forward(x, kind, axes, alpha, ddof)[0]


def _paper_fwd(x, kind, axes, alpha, ddof):
    return forward(x, kind, axes, alpha, ddof)


def _paper_bwd(kind, axes, alpha, ddof, res, g):
    return (paper_backward(kind, axes, res, g),)


layeract_paper.defvjp(_paper_fwd, _paper_bwd)


# ---- the same on (rows, m) arrays, one layer per row (the kernel primitives' formulas) ----


def rows_forward(x, *, kind, alpha, ddof):
    """LayerAct of each row."""
    return forward(x, kind, (1,), alpha, ddof)[0]


def rows_jvp(x, t, *, kind, alpha, ddof):
    """The tangent of :func:`rows_forward` at ``x`` along ``t``."""
    return jax.jvp(partial(rows_forward, kind=kind, alpha=alpha, ddof=ddof), (x,), (t,))[1]


def rows_vjp(x, g, *, kind, alpha, ddof, paper):
    """The cotangent of ``x`` (exact, or the paper's with ``paper=True``)."""
    if paper:
        return paper_backward(kind, (1,), normalize(x, (1,), alpha, ddof), g)
    _, pullback = jax.vjp(partial(rows_forward, kind=kind, alpha=alpha, ddof=ddof), x)
    return pullback(g)[0]
