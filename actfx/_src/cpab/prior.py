"""Gaussian smoothness prior on CPA parameters, pushed to theta.

A Gaussian over the ``2 nc`` affine parameters ``A`` with covariance ``K_A`` that decays with
the distance between cells gives ``theta ~ N(0, Sigma_theta)``, ``Sigma_theta = B^T K_A B``
(exact for orthonormal B; for other bases it is the covariance of ``B^T A``, as difw
does). Kernels:

- ``"se"``: ``K[2i, 2j] = K[2i+1, 2j+1] = s^2 exp(-D_ij^2 / (2 l^2))`` with ``D`` the
  distance between cell centres; no a-b correlation.
- ``"difw"``: difw's ``covariance_cpa``: ``s^2 exp(-D_ij / (2 l^2))`` (distance, not squared)
  on the a and b blocks, a-b cross terms ``s^2 exp(-100 max(D) / (2 l^2))``.
- ``"ditac"``: DiTAC's ``get_precision_mat``: centres ``linspace(-1, 1, 2 nc)`` over the
  ``2 nc`` parameters, ``K = exp(-|d| / l)``, then ``K = K * K * (s * 2 nc)^2``.

References:
  Freifeld et al., TPAMI 2017 (smoothness prior on CPA fields).
  difw ``Cpab.covariance_cpa``; DiTAC ``utils/misc.py: get_precision_mat``.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from actfx._src.cpab.tessellation import Tessellation

Kernel = Literal["se", "difw", "ditac"]
KERNELS = ("se", "difw", "ditac")


def _check(tess, length_scale, output_variance, kernel):
    if not isinstance(tess, Tessellation):
        raise ValueError(f"tess must be an actfx.cpab.Tessellation, got {type(tess).__name__}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    for name, val in (("length_scale", length_scale), ("output_variance", output_variance)):
        if not (
            isinstance(val, (int, float, np.floating, np.integer))
            and not isinstance(val, (bool, np.bool_))
            and np.isfinite(val)
            and val > 0
        ):
            raise ValueError(f"{name} must be a finite float > 0, got {val!r}")


def affine_covariance(
    tess: Tessellation, *, length_scale: float, output_variance: float, kernel: Kernel = "se"
) -> np.ndarray:
    """Covariance ``K_A`` (2 nc, 2 nc) of the affine parameters (a_0, b_0, a_1, ...).

    Example:
      >>> affine_covariance(Tessellation(2), length_scale=0.5, output_variance=1.0).shape
      (4, 4)
    """
    _check(tess, length_scale, output_variance, kernel)
    nc, l, s = tess.nc, np.float64(length_scale), np.float64(output_variance)
    # Distances are divided by l one factor at a time (never l**2, which overflows for
    # l > ~1e154 and underflows to 0 for l < ~1e-162): every extreme l gives the kernel's
    # limit (all ones for a huge l, the identity for a tiny one) instead of an
    # OverflowError or 0/0 = NaN.
    with np.errstate(over="ignore", under="ignore"):
        if kernel == "ditac":
            c = np.linspace(-1.0, 1.0, 2 * nc)
            K = np.exp(-np.abs(c[:, None] - c[None, :]) / l)
            K = K * K * (s * 2 * nc) ** 2
        else:
            c = tess.cell_centers
            D = np.abs(c[:, None] - c[None, :])
            K = np.zeros((2 * nc, 2 * nc))
            if kernel == "se":
                blk = s**2 * np.exp(-0.5 * (D / l) ** 2)
            else:  # difw
                blk = s**2 * np.exp(-0.5 * (D / l) / l)
                K[:] = s**2 * np.exp(-0.5 * (100 * D.max() / l) / l)
            K[0::2, 0::2] = blk
            K[1::2, 1::2] = blk
    if not np.all(np.isfinite(K)):
        raise ValueError(
            f"output_variance={output_variance!r} is too large: the kernel's variance "
            "overflows float64"
        )
    return K


def prior_covariance(
    tess: Tessellation,
    *,
    length_scale: float = 0.1,
    output_variance: float = 1.0,
    kernel: Kernel = "se",
) -> np.ndarray:
    r"""Prior covariance of theta, ``Sigma_theta = B^T K_A B`` (d, d), float64.

    Args:
      tess: the tessellation (its basis B is used).
      length_scale: ``l`` (> 0). difw default 0.1; DiTAC uses 5.
      output_variance: ``s`` (> 0). difw default 1; DiTAC uses 2.
      kernel: ``"se"``, ``"difw"`` or ``"ditac"`` (see module docstring).

    Returns:
      Symmetric positive semi-definite ``(d, d)`` NumPy array.

    Example:
      >>> S = prior_covariance(Tessellation(10), length_scale=0.1, output_variance=1.0,
      ...                      kernel="difw")
      >>> S.shape, bool(np.allclose(S, S.T))
      ((9, 9), True)
    """
    K = affine_covariance(
        tess, length_scale=length_scale, output_variance=output_variance, kernel=kernel
    )
    S = tess.B.T @ K @ tess.B
    return 0.5 * (S + S.T)


def precision_matrix(
    tess: Tessellation,
    *,
    length_scale: float = 0.1,
    output_variance: float = 1.0,
    kernel: Kernel = "se",
    eps: float = float(np.finfo(np.float32).eps),
) -> np.ndarray:
    r"""Prior precision ``P = (Sigma_theta + eps I)^{-1}`` (d, d), float64.

    ``eps`` defaults to float32 machine epsilon, as DiTAC adds before inverting. The
    regulariser ``theta^T P theta`` (e.g. DiTAC's) uses it.

    Example:
      >>> tess = Tessellation(10)
      >>> P = precision_matrix(tess, length_scale=5.0, output_variance=2.0, kernel="ditac")
      >>> S = prior_covariance(tess, length_scale=5.0, output_variance=2.0, kernel="ditac")
      >>> bool(np.allclose(P @ (S + np.finfo(np.float32).eps * np.eye(9)), np.eye(9), atol=1e-6))
      True
    """
    if not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite float >= 0, got {eps!r}")
    S = prior_covariance(
        tess, length_scale=length_scale, output_variance=output_variance, kernel=kernel
    )
    P = np.linalg.inv(S + eps * np.eye(S.shape[0]))
    return 0.5 * (P + P.T)


def sample_theta(
    key: Array,
    tess: Tessellation,
    n: int | None = None,
    *,
    length_scale: float = 0.1,
    output_variance: float = 1.0,
    kernel: Kernel = "se",
    dtype=None,
) -> Array:
    r"""Draw theta from the prior ``N(0, Sigma_theta)``.

    Args:
      key: a ``jax.random`` key.
      tess: the tessellation.
      n: number of samples; ``None`` gives one ``(d,)`` sample, otherwise ``(n, d)``.
      length_scale, output_variance, kernel: as :func:`prior_covariance`.
      dtype: output dtype (default: JAX's default float).

    Example:
      >>> import jax
      >>> sample_theta(jax.random.key(0), Tessellation(10), 3).shape
      (3, 9)
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise ValueError(f"n must be None or an int >= 1, got {n!r}")
    S = prior_covariance(
        tess, length_scale=length_scale, output_variance=output_variance, kernel=kernel
    )
    # Symmetric square root via eigh: valid for semi-definite S (no Cholesky failure).
    w, V = np.linalg.eigh(S)
    root = V * np.sqrt(np.clip(w, 0.0, None))
    dtype = dtype or jnp.zeros(()).dtype
    shape = (tess.theta_dim,) if n is None else (int(n), tess.theta_dim)
    z = jax.random.normal(key, shape, dtype)
    return z @ jnp.asarray(root.T, dtype)
