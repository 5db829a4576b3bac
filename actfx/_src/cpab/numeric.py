"""Numerical integration of CPA velocity fields (RK4): an independent oracle for tests.

``transform_numeric`` integrates ``d phi / d s = v_theta(phi)`` with the classical
fourth-order Runge-Kutta method and a fixed number of steps. It knows nothing of cells,
knots or closed forms beyond evaluating ``v``, so agreement with
:func:`actfx.cpab.transform` is a real check. RK4 loses order where the path crosses a
knot (``v`` is only continuous there), so use many steps (error ~ steps^-2 per crossing).

References:
  Freifeld et al., "Transformations Based on Continuous Piecewise-Affine Velocity Fields",
  TPAMI 2017 (Sec. on numerical integration).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from actfx._src.cpab.integrate import _batched, _cell_index, _check_time, _out_dtype, _prepare
from actfx._src.cpab.tessellation import Tessellation


def transform_numeric(
    x: ArrayLike,
    theta: ArrayLike,
    tess: Tessellation,
    *,
    time: ArrayLike = 1.0,
    steps: int = 10_000,
) -> Array:
    r"""CPAB transform by RK4 with ``steps`` equal steps of size ``time / steps``.

    ``y_{k+1} = y_k + h (k_1 + 2 k_2 + 2 k_3 + k_4) / 6`` with ``k_i`` the velocity
    ``v_theta`` at the usual RK4 stages.

    Args:
      x: points, any shape, floating.
      theta: ``(d,)`` or ``(n, d)``.
      tess: the :class:`Tessellation` (static).
      time: integration time.
      steps: number of RK4 steps (static, >= 1).

    Returns:
      Same shape rules as :func:`actfx.cpab.transform`.

    Example:
      >>> import jax.numpy as jnp
      >>> from actfx.cpab import Tessellation, transform, transform_numeric
      >>> tess, theta = Tessellation(5), jnp.array([1.0, -0.5, 0.3, 2.0])
      >>> x = jnp.linspace(0, 1, 9)
      >>> err = jnp.abs(transform_numeric(x, theta, tess, steps=2000) - transform(x, theta, tess))
      >>> bool(err.max() < 1e-4)
      True
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    out = _out_dtype(x, theta)
    x, theta, B = _prepare(x, theta, tess)
    h = _check_time(time, x.dtype) / steps  # finite scalar (as transform), else ValueError
    y = _rk4(x, theta, B, h, tess.nc, steps, tess.zero_boundary)
    return jnp.where(jnp.isfinite(x), y, jnp.nan).astype(out)  # non-finite x -> NaN (as transform)


@partial(jax.jit, static_argnums=(4, 5, 6))
def _rk4(x, theta, B, h, nc: int, steps: int, zero_boundary: bool = False):
    def solve(xf, A):
        a, b = A[0::2], A[1::2]
        if zero_boundary:  # v(0) = v(1) = 0 exactly, as in the closed form
            b = b.at[0].set(0.0).at[nc - 1].set(-a[nc - 1])

        def v(y):
            c = _cell_index(y, nc)
            return a[c] * y + b[c]

        def step(y, _):
            k1 = v(y)
            k2 = v(y + 0.5 * h * k1)
            k3 = v(y + 0.5 * h * k2)
            k4 = v(y + h * k3)
            return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4), None

        return jax.lax.scan(step, xf, None, length=steps)[0]

    return _batched(solve, x, theta, B)
