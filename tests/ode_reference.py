"""Independent float64 references for the CPA velocity field, shared by the CPAB/DiTAC tests.

``cpa_field`` reads the per-cell coefficients ``v(x) = a_c x + b_c`` off ``B @ theta``;
``rk4_cpab`` integrates ``dx/dt = v(x)`` over ``t in [0, 1]`` with the classical 4th-order
Runge-Kutta scheme. Neither uses cell-crossing times or closed forms, so they check the
library's closed-form integration from outside. NumPy only (no JAX).
"""

import numpy as np


def cpa_field(theta, tess) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)`` of the CPA field of ``theta`` on ``tess``, float64, one entry per cell.

    With ``tess.zero_boundary`` the boundary velocities ``v(0) = b_0`` and
    ``v(1) = a_{nc-1} + b_{nc-1}`` are imposed exactly 0 (``B @ theta`` leaves them at
    rounding level, which would let points cross the boundary in a long integration).
    """
    A = tess.B @ np.asarray(theta, np.float64)
    a, b, nc = A[0::2].copy(), A[1::2].copy(), tess.nc
    if tess.zero_boundary:
        b[0], b[nc - 1] = 0.0, -a[nc - 1]
    return a, b


def rk4_cpab(x, theta, tess, steps: int = 1000) -> np.ndarray:
    """``T(x)``: RK4 with ``steps`` equal steps on ``dx/dt = v(x)``, ``t`` from 0 to 1.

    Points outside ``[0, 1]`` move with the field of the nearest boundary cell (the
    linear extension). NaN/inf entries stay non-finite (their cell index is taken from a
    clipped copy, so indexing never fails). The error falls as ``steps**-4`` where ``v``
    is smooth along the path; a step that crosses a knot (where ``v`` has a kink) is less
    accurate, so the tests pass many steps.

    Example:
      >>> from actfx.cpab import Tessellation
      >>> tess = Tessellation(4)
      >>> float(rk4_cpab(0.3, np.zeros(tess.theta_dim), tess))  # v = 0: identity
      0.3
    """
    a, b = cpa_field(theta, tess)
    nc = tess.nc

    def v(y):
        c = np.clip(np.floor(np.clip(np.nan_to_num(y), -10, 10) * nc), 0, nc - 1).astype(int)
        return a[c] * y + b[c]

    y, h = np.array(x, np.float64), 1.0 / steps
    with np.errstate(all="ignore"):
        for _ in range(steps):
            k1 = v(y)
            k2 = v(y + 0.5 * h * k1)
            k3 = v(y + 0.5 * h * k2)
            k4 = v(y + h * k3)
            y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return y
