"""Regular 1-D tessellation of [0, 1] and bases of continuous piecewise-affine (CPA) fields.

A CPA velocity field on ``nc`` equal cells is ``v(x) = a_c x + b_c`` in cell ``c``. Its
``2 nc`` parameters are stacked as ``A = (a_0, b_0, a_1, b_1, ...)``. Continuity at the
interior knots (and, optionally, ``v(0) = v(1) = 0``) is the linear constraint ``L A = 0``;
a basis ``B`` of the null space of ``L`` parametrises valid fields as ``A = B theta``.

References:
  Freifeld, Hauberg, Batmanghelich, Fisher III, "Transformations Based on Continuous
  Piecewise-Affine Velocity Fields", TPAMI 2017.
  Martinez, Freifeld et al., difw (``difw.core.tessellation``): the same constraint
  layout, and the "svd" / "qr" / "sparse" / "rref" bases.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import scipy.linalg

BASES = ("qr", "svd", "sparse", "rref")


def constraint_matrix(nc: int, zero_boundary: bool = True) -> np.ndarray:
    """The constraint matrix ``L`` with ``L A = 0`` for valid CPA fields.

    Rows: continuity at the ``nc - 1`` interior knots ``x_k = k / nc``
    (``a_{k-1} x_k + b_{k-1} - a_k x_k - b_k = 0``), then, with ``zero_boundary``,
    ``-v(0) = 0`` and ``-v(1) = 0`` (difw's row order and signs, so that the "svd" and "qr"
    bases coincide with difw's).

    Args:
      nc: number of cells.
      zero_boundary: add the two boundary rows.

    Returns:
      float64 array of shape ``(nc - 1 + 2 * zero_boundary, 2 * nc)``.

    Example:
      >>> constraint_matrix(2, zero_boundary=False)
      array([[ 0.5,  1. , -0.5, -1. ]])
    """
    knots = np.linspace(0.0, 1.0, nc + 1)
    L = np.zeros((nc - 1, 2 * nc))
    for i, xk in enumerate(knots[1:-1]):
        L[i, 2 * i : 2 * i + 4] = [xk, 1.0, -xk, -1.0]
    if zero_boundary:
        zb = np.zeros((2, 2 * nc))
        zb[0, :2] = [-0.0, -1.0]
        zb[1, -2:] = [-1.0, -1.0]
        L = np.vstack([L, zb])
    return L


def _knot_values_to_params(V: np.ndarray, nc: int) -> np.ndarray:
    """Map knot velocities ``V`` (nc+1, k) to cell parameters ``A`` (2 nc, k) by linear
    interpolation: in cell c, ``a = (V_{c+1} - V_c) nc``, ``b = V_c - a x_c``."""
    knots = np.linspace(0.0, 1.0, nc + 1)
    a = (V[1:] - V[:-1]) * nc
    b = V[:-1] - a * knots[:-1, None]
    A = np.empty((2 * nc, V.shape[1]))
    A[0::2], A[1::2] = a, b
    return A


def _max_abs_normalize(B: np.ndarray) -> np.ndarray:
    return B / np.max(np.abs(B), axis=0, keepdims=True)


def basis_svd(L: np.ndarray) -> np.ndarray:
    """Orthonormal null-space basis of ``L`` from its SVD (``scipy.linalg.null_space``)."""
    return scipy.linalg.null_space(L)


def basis_qr(L: np.ndarray) -> np.ndarray:
    """Orthonormal null-space basis of ``L`` from the pivoted QR of ``L^T``: the trailing
    columns of Q beyond the rank. This is the basis DiTAC uses (via difw)."""
    # scipy's stubs return a union over all (mode, pivoting) overloads; with mode="full"
    # and pivoting=True the result is (Q, R, P).
    Q, R, _ = cast(
        "tuple[np.ndarray, np.ndarray, np.ndarray]",
        scipy.linalg.qr(L.T, mode="full", pivoting=True),
    )
    tol = np.max(np.abs(L)) * np.finfo(np.float64).eps * max(L.shape)
    rank = int(np.sum(np.abs(np.diag(R)) > tol))
    return Q[:, rank:]


def basis_sparse(nc: int, zero_boundary: bool = True) -> np.ndarray:
    """Local "hat" basis: column j is the CPA field with velocity 1 at knot j and 0 at every
    other knot (columns scaled to max-abs 1, as difw does). With ``zero_boundary`` the two
    boundary knots are dropped, leaving ``nc - 1`` columns; otherwise ``nc + 1``."""
    V = np.eye(nc + 1)
    if zero_boundary:
        V = V[:, 1:-1]
    return _max_abs_normalize(_knot_values_to_params(V, nc))


def basis_rref(nc: int, zero_boundary: bool = True) -> np.ndarray:
    """Analytic "ramp" basis (difw's "rref"), columns scaled to max-abs 1.

    Zero boundary: field k (k = 1..nc-1) has knot velocities ``x_j / nc`` for ``j <= k``
    and 0 after (a ramp up to knot k, then back to zero at knot k+1).
    Free boundary: field 0 is ``1/nc - x`` on cell 0 only; fields 1..nc-2 are the ramps
    above; field nc-1 is ``v(x) = x / nc`` everywhere; field nc is ``x - x_{nc-1}`` on the
    last cell only.
    """
    knots = np.linspace(0.0, 1.0, nc + 1)
    s = 1.0 / nc
    cols = []
    if not zero_boundary:
        v = np.zeros(nc + 1)
        v[0] = s
        cols.append(v)
    last = nc - 1 if zero_boundary else nc - 2
    for k in range(1, last + 1):
        v = np.where(np.arange(nc + 1) <= k, s * knots, 0.0)
        cols.append(v)
    if zero_boundary:
        return _max_abs_normalize(_knot_values_to_params(np.stack(cols, 1), nc))
    B = _max_abs_normalize(_knot_values_to_params(np.stack(cols, 1), nc))
    ident = np.zeros((2 * nc, 1))
    ident[0::2] = s  # v(x) = x / nc
    v = np.zeros((nc + 1, 1))
    v[-1] = s
    tail = _max_abs_normalize(_knot_values_to_params(v, nc))
    return np.hstack([B, ident, tail])


class Tessellation:
    """A regular tessellation of [0, 1] into ``nc`` cells with a CPA basis.

    Hashable and immutable, so it can be a static argument of ``jax.jit``; picklable and
    copyable (``copy.copy``/``deepcopy`` return the object itself).

    Args:
      nc: number of cells, >= 2.
      zero_boundary: constrain ``v(0) = v(1) = 0`` (then T maps [0, 1] onto itself);
        otherwise the end cells extend to the whole real line.
      basis: ``"qr"`` (default, orthonormal, DiTAC's choice), ``"svd"`` (orthonormal),
        ``"sparse"`` (local hat functions), ``"rref"`` (local ramps), or an explicit array of
        shape ``(2 * nc, d)`` whose columns span the null space of ``L`` (for example the
        ``B`` of another library, to compare thetas).

    Attributes:
      B: float64 ``(2 nc, d)`` basis, ``A = B theta``.
      L: float64 constraint matrix, ``L @ B = 0``.
      theta_dim: ``d`` = ``nc - 1`` (zero boundary) or ``nc + 1``.

    Example:
      >>> tess = Tessellation(10)
      >>> tess.theta_dim, tess.B.shape
      (9, (20, 9))
      >>> hash(tess) == hash(Tessellation(10, basis="qr"))
      True
    """

    __slots__ = ("_B", "_L", "_basis_name", "_key", "_nc", "_zero_boundary")

    def __init__(self, nc: int, *, zero_boundary: bool = True, basis="qr"):
        if isinstance(nc, bool) or not isinstance(nc, (int, np.integer)):
            raise ValueError(f"nc must be an int, got {nc!r}")
        nc = int(nc)
        if nc < 2:
            raise ValueError(f"nc must be >= 2, got {nc}")
        zero_boundary = bool(zero_boundary)
        L = constraint_matrix(nc, zero_boundary)
        d = nc - 1 if zero_boundary else nc + 1
        if isinstance(basis, str):
            if basis == "qr":
                B = basis_qr(L)
            elif basis == "svd":
                B = basis_svd(L)
            elif basis == "sparse":
                B = basis_sparse(nc, zero_boundary)
            elif basis == "rref":
                B = basis_rref(nc, zero_boundary)
            else:
                raise ValueError(
                    f"basis must be one of {BASES} or a (2*nc, d) array, got {basis!r}"
                )
            name, key = basis, basis
        else:
            B = np.array(basis, dtype=np.float64)
            if B.shape != (2 * nc, d):
                raise ValueError(
                    f"basis array must have shape (2*nc, d) = {(2 * nc, d)} for nc={nc}, "
                    f"zero_boundary={zero_boundary}, got {B.shape}"
                )
            if not np.all(np.isfinite(B)):
                raise ValueError("basis array must be finite")
            scale = max(np.max(np.abs(B)), 1.0)
            if np.max(np.abs(L @ B)) > 1e-8 * scale:
                raise ValueError(
                    "basis array columns must satisfy the CPA constraints (L @ B == 0); "
                    f"max |L @ B| = {np.max(np.abs(L @ B)):.3g}"
                )
            if np.linalg.matrix_rank(B) < d:
                raise ValueError(f"basis array must have full column rank {d}")
            name, key = "explicit", ("explicit", B.shape, B.tobytes())
        if B.shape != (2 * nc, d):  # pragma: no cover - internal consistency
            raise AssertionError(f"basis {name} has shape {B.shape}, expected {(2 * nc, d)}")
        B.setflags(write=False)
        L.setflags(write=False)
        object.__setattr__(self, "_nc", nc)
        object.__setattr__(self, "_zero_boundary", zero_boundary)
        object.__setattr__(self, "_basis_name", name)
        object.__setattr__(self, "_key", (nc, zero_boundary, key))
        object.__setattr__(self, "_B", B)
        object.__setattr__(self, "_L", L)

    def __setattr__(self, name, value):
        raise AttributeError("Tessellation is immutable")

    def __reduce__(self):
        # Rebuilt through the constructor (slots + the immutable __setattr__ defeat the
        # default protocol): pickle, copy.copy and copy.deepcopy all work.
        basis = self._basis_name if self._basis_name != "explicit" else np.array(self._B)
        return (_rebuild, (self._nc, self._zero_boundary, basis))

    def __copy__(self):
        return self  # immutable

    def __deepcopy__(self, memo):
        return self  # immutable

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other) -> bool:
        return isinstance(other, Tessellation) and self._key == other._key

    def __repr__(self) -> str:
        return (
            f"Tessellation(nc={self._nc}, zero_boundary={self._zero_boundary}, "
            f"basis={self._basis_name!r})"
        )

    @property
    def nc(self) -> int:
        """Number of cells."""
        return self._nc

    @property
    def zero_boundary(self) -> bool:
        """Whether ``v(0) = v(1) = 0`` is imposed."""
        return self._zero_boundary

    @property
    def basis(self) -> str:
        """Basis name (``"explicit"`` for a user-supplied array)."""
        return self._basis_name

    @property
    def B(self) -> np.ndarray:
        """Basis ``(2 nc, d)``, read-only float64."""
        return self._B

    @property
    def L(self) -> np.ndarray:
        """Constraint matrix, read-only float64."""
        return self._L

    @property
    def theta_dim(self) -> int:
        """Dimension ``d`` of theta."""
        return self._B.shape[1]

    @property
    def knots(self) -> np.ndarray:
        """Knot positions ``k / nc``, shape ``(nc + 1,)``."""
        return np.linspace(0.0, 1.0, self._nc + 1)

    @property
    def cell_centers(self) -> np.ndarray:
        """Cell centres ``(c + 1/2) / nc``, shape ``(nc,)``."""
        return (np.arange(self._nc) + 0.5) / self._nc


def _rebuild(nc: int, zero_boundary: bool, basis) -> Tessellation:
    """Unpickle a :class:`Tessellation` (see ``Tessellation.__reduce__``)."""
    return Tessellation(nc, zero_boundary=zero_boundary, basis=basis)
