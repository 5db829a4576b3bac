"""Tessellation: constraints, bases (vs difw's), hashing, errors."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from actfx.cpab import BASES, Tessellation, constraint_matrix, transform

REF = np.load(Path(__file__).parent / "data" / "cpab_reference.npz")


@pytest.mark.parametrize("nc", [2, 3, 5, 10, 50])
@pytest.mark.parametrize("zero_boundary", [True, False])
@pytest.mark.parametrize("basis", BASES)
def test_basis_spans_null_space(nc, zero_boundary, basis):
    tess = Tessellation(nc, zero_boundary=zero_boundary, basis=basis)
    d = nc - 1 if zero_boundary else nc + 1
    assert tess.B.shape == (2 * nc, d) and tess.theta_dim == d
    assert np.abs(tess.L @ tess.B).max() < 1e-12
    assert np.linalg.matrix_rank(tess.B) == d
    # dimension count: null space of L has exactly d dimensions
    assert np.linalg.matrix_rank(tess.L) == 2 * nc - d
    if basis in ("qr", "svd"):
        np.testing.assert_allclose(tess.B.T @ tess.B, np.eye(d), atol=1e-12)


def test_constraints_are_continuity_and_boundary():
    L = constraint_matrix(4, zero_boundary=True)
    A = np.array([1.0, 0.0, -1.0, 0.5, 1.0, -0.5, -1.0, 1.0])  # zigzag 0,.25,0,.25,0
    np.testing.assert_allclose(L @ A, 0.0, atol=1e-15)
    A[3] += 0.1  # break continuity at x = 0.25 and 0.5
    assert np.abs(L @ A).max() > 0.09


@pytest.mark.parametrize("i", range(int(REF["configs"])))
def test_named_bases_equal_difw(i):
    """Our named bases reproduce difw's B (so thetas are interchangeable)."""
    tess = Tessellation(
        int(REF[f"c{i}_nc"]),
        zero_boundary=bool(REF[f"c{i}_zero_boundary"]),
        basis=str(REF[f"c{i}_basis"]),
    )
    np.testing.assert_allclose(tess.B, REF[f"c{i}_B"], atol=1e-12)


def test_local_bases_are_sparse():
    for basis in ("sparse", "rref"):
        tess = Tessellation(20, basis=basis)
        # each column touches a few cells only (sparse: 2 cells; rref ramps: prefix cells)
        assert np.count_nonzero(np.abs(Tessellation(20, basis="sparse").B) > 0, axis=0).max() <= 4
        assert tess.B.shape == (40, 19)


def test_hash_eq_and_static_jit():
    a, b = Tessellation(6), Tessellation(6, basis="qr")
    assert a == b and hash(a) == hash(b)
    assert a != Tessellation(6, basis="svd") and a != Tessellation(6, zero_boundary=False)
    e1, e2 = Tessellation(6, basis=a.B), Tessellation(6, basis=a.B.copy())
    assert e1 == e2 and hash(e1) == hash(e2) and e1 != a and e1.basis == "explicit"
    assert {a: 1}[b] == 1
    f = jax.jit(transform, static_argnums=2)
    x = jnp.linspace(0, 1, 5)
    np.testing.assert_allclose(f(x, jnp.ones(5), a), transform(x, jnp.ones(5), b))
    with pytest.raises(AttributeError):
        a.nc = 3
    with pytest.raises(ValueError):  # B is read-only
        a.B[0, 0] = 1.0
    assert "Tessellation(nc=6" in repr(a)


def test_errors():
    with pytest.raises(ValueError, match="basis must be one of"):
        Tessellation(5, basis="chebyshev")
    with pytest.raises(ValueError, match="nc must be >= 2"):
        Tessellation(1)
    with pytest.raises(ValueError, match="nc must be an int"):
        Tessellation(2.5)
    with pytest.raises(ValueError, match=r"shape \(2\*nc, d\)"):
        Tessellation(5, basis=np.zeros((10, 3)))
    with pytest.raises(ValueError, match="L @ B == 0"):
        Tessellation(5, basis=np.ones((10, 4)))
    B = Tessellation(5).B.copy()
    B[:, 1] = B[:, 0]
    with pytest.raises(ValueError, match="full column rank"):
        Tessellation(5, basis=B)
    with pytest.raises(ValueError, match="finite"):
        Tessellation(5, basis=np.full((10, 4), np.nan))


@pytest.mark.parametrize("basis", ["qr", "svd", "sparse", "rref", "explicit"])
def test_pickle_and_copy(basis):
    """Tessellation could not be pickled or copied (slots + immutable __setattr__)."""
    import copy
    import pickle

    b = Tessellation(5).B if basis == "explicit" else basis
    t = Tessellation(5, zero_boundary=basis != "sparse", basis=b)
    for u in (pickle.loads(pickle.dumps(t)), copy.copy(t), copy.deepcopy(t)):
        assert u == t and hash(u) == hash(t) and u.basis == t.basis
        np.testing.assert_array_equal(u.B, t.B)
    assert copy.deepcopy({"t": t})["t"] is t  # immutable: copies are the object itself
