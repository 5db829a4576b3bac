"""Tests for actfx.nelu: KKT, brute-force reference, homogeneity, methods, grads, errors."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import actfx
from actfx import nelu


def objective(x, z, lam, two_sided=False):
    """Square-root-lasso objective ||x - z|| + sum lam |z| (float64 NumPy)."""
    x, z = np.asarray(x, np.float64), np.asarray(z, np.float64)
    lam = np.broadcast_to(np.asarray(lam, np.float64), x.shape)
    return np.linalg.norm(x - z, axis=-1) + np.sum(lam * np.abs(z), axis=-1)


def brute_force(x, lam, two_sided=False):
    """Minimiser of ||x - z|| + sum lam |z| (z >= 0 unless two_sided) by enumerating supports.

    For every support A the optimality conditions give z_A = |x_A| - lam_A r with
    r^2 = sum_{i not in A} x_i^2 + r^2 sum_A lam_i^2; each feasible candidate is scored by the
    objective and the best one returned. Independent of the sort-based solver.
    """
    x = np.asarray(x, np.float64)
    lam = np.broadcast_to(np.asarray(lam, np.float64), x.shape)
    a = np.abs(x) if two_sided else x
    best, best_obj = None, np.inf
    for size in range(len(x) + 1):
        for sub in itertools.combinations(range(len(x)), size):
            m = np.zeros(len(x), bool)
            m[list(sub)] = True
            ell = np.sum(lam[m] ** 2)
            if ell >= 1:
                continue
            r = np.sqrt(np.sum(x[~m] ** 2) / (1 - ell))
            za = np.where(m, a - lam * r, 0.0)
            if np.any(za < 0):
                continue
            z = np.sign(x) * za if two_sided else za
            obj = objective(x, z, lam)
            if obj < best_obj - 1e-14:
                best, best_obj = z, obj
    return best


def kkt_gap(x, z, lam, two_sided=False):
    x = jnp.asarray(x)
    r = jnp.linalg.norm(x - z, axis=-1, keepdims=True)
    if two_sided:
        expect = jnp.sign(x) * jax.nn.relu(jnp.abs(x) - lam * r)
    else:
        expect = jax.nn.relu(x - lam * r)
    return float(jnp.max(jnp.abs(z - expect)))


@pytest.mark.parametrize("two_sided", [False, True])
@pytest.mark.parametrize("lam", [0.05, 0.15, 0.3, 0.6])
def test_kkt_residual_float32(lam, two_sided):
    x = jax.random.normal(jax.random.key(0), (64, 50))
    z = nelu(x, lam, two_sided=two_sided)
    assert z.dtype == jnp.float32
    assert kkt_gap(x, z, lam, two_sided) < 1e-6


@pytest.mark.parametrize("two_sided", [False, True])
@pytest.mark.parametrize("method", ["exact", pytest.param("fixed_point", marks=pytest.mark.slow)])
def test_kkt_residual_float64(method, two_sided):
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(1), (64, 50), dtype=jnp.float64)
        for lam in (0.05, 0.2, 0.5):
            z = nelu(x, lam, two_sided=two_sided, method=method, iters=3000)
            assert z.dtype == jnp.float64
            assert kkt_gap(x, z, lam, two_sided) < 1e-12, (lam, method)


@pytest.mark.parametrize("two_sided", [False, True])
def test_matches_brute_force_reference(two_sided):
    rng = np.random.default_rng(2)
    with jax.enable_x64(True):
        for n in range(1, 8):
            x = rng.normal(size=(8, n)) * rng.choice([1.0, 10.0], size=(8, 1))
            x[::4] = np.abs(x[::4])  # rows with no negative entry: the r = 0 branch
            lam = rng.uniform(0.05, 0.95, size=(8, n))  # per-entry weights ...
            lam[::2] = lam[::2, :1]  # ... and a scalar lam on every other row
            z = np.asarray(nelu(jnp.asarray(x), jnp.asarray(lam), two_sided=two_sided))
            for i in range(len(x)):
                ref = brute_force(x[i], lam[i], two_sided)
                np.testing.assert_allclose(z[i], ref, rtol=1e-9, atol=1e-9 * np.abs(x[i]).max())


def test_beats_random_feasible_perturbations():
    """z is a minimiser: no nearby feasible point has a lower objective."""
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        x = rng.normal(size=(20, 30))
        lam = 0.25
        z = np.asarray(nelu(jnp.asarray(x), lam))
        base = objective(x, z, lam)
        for _ in range(50):
            zp = np.maximum(z + 1e-3 * rng.normal(size=z.shape), 0)
            assert np.all(objective(x, zp, lam) >= base - 1e-12)


@pytest.mark.parametrize("method", ["exact", "fixed_point", "unrolled"])
@pytest.mark.parametrize("two_sided", [False, True])
def test_positive_homogeneity(method, two_sided):
    x = jax.random.normal(jax.random.key(4), (16, 40))
    z = nelu(x, 0.3, two_sided=two_sided, method=method, iters=50)
    for c in (1e-3, 0.5, 7.0, 1e3):
        zc = nelu(c * x, 0.3, two_sided=two_sided, method=method, iters=50)
        np.testing.assert_allclose(zc, c * z, rtol=2e-5, atol=2e-6 * c)


@pytest.mark.parametrize("two_sided", [False, True])
def test_exact_and_fixed_point_agree(two_sided):
    x = jax.random.normal(jax.random.key(5), (32, 100))
    # The fixed point contracts at rate sum_{active} lam^2 (<= 0.5 here; at lam=0.1 the
    # two-sided active set reaches 0.99 and 1000 steps are not enough, as documented).
    for lam in (0.03, 0.07, 0.25):
        ze = nelu(x, lam, two_sided=two_sided)
        zf = nelu(x, lam, two_sided=two_sided, method="fixed_point", iters=1000)
        np.testing.assert_allclose(zf, ze, atol=1e-5)


def test_unrolled_approaches_the_optimum():
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(6), (16, 30), dtype=jnp.float64)
        lam = 0.3
        best = objective(x, nelu(x, lam), lam)
        gaps = [
            np.max(objective(x, nelu(x, lam, method="unrolled", iters=i, step=0.3), lam) - best)
            for i in (10, 100, 2000)
        ]
        assert gaps[0] > gaps[1] > gaps[2] >= -1e-12
        assert gaps[2] < 1e-2 * np.mean(best)


def test_two_sided_is_odd_and_soft_thresholds():
    x = jax.random.normal(jax.random.key(7), (8, 40))
    z = nelu(x, 0.3, two_sided=True)
    np.testing.assert_allclose(nelu(-x, 0.3, two_sided=True), -z, atol=1e-7)
    assert jnp.all(jnp.abs(z) <= jnp.abs(x)) and jnp.all(z * x >= 0)
    assert jnp.any((z != 0) & (x < 0))  # negative entries survive, unlike the ReLU form
    assert jnp.all(nelu(x, 0.3) >= 0)


def test_identity_regime_documented():
    """sum lam^2 < 1 and no non-positive entry: r = 0 and z = x (see docstring)."""
    x = jnp.array([[0.5, 2.0, 1.0, 3.0]])
    np.testing.assert_allclose(nelu(x, 0.4), x)  # 0.4 < 1/sqrt(4)
    assert jnp.all(nelu(x, 0.6) < x)  # 0.6 > 1/sqrt(4): shrinks


def test_axis_and_per_channel_lam():
    x = jax.random.normal(jax.random.key(8), (3, 5, 4, 6))
    lam = jnp.linspace(0.05, 0.2, 6)
    z = nelu(x, lam, axis=(1, 2, 3))
    flat = nelu(x.reshape(3, -1), jnp.broadcast_to(lam, (5, 4, 6)).reshape(-1))
    np.testing.assert_allclose(z.reshape(3, -1), flat, atol=1e-6)
    zt = nelu(jnp.moveaxis(x, 1, -1), 0.2, axis=-1)
    np.testing.assert_allclose(jnp.moveaxis(nelu(x, 0.2, axis=1), 1, -1), zt, atol=1e-6)
    assert kkt_gap(x.reshape(3, -1), flat, jnp.broadcast_to(lam, (5, 4, 6)).reshape(-1)) < 1e-6


def test_jit_vmap_dtype_parity():
    x = jax.random.normal(jax.random.key(9), (10, 33))
    z = nelu(x, 0.2)
    f = jax.jit(lambda x, lam: nelu(x, lam))
    np.testing.assert_allclose(f(x, 0.2), z, atol=1e-6)
    np.testing.assert_allclose(jax.vmap(lambda r: nelu(r, 0.2))(x), z, atol=1e-6)
    np.testing.assert_allclose(jax.vmap(f, in_axes=(0, None))(x, 0.2), z, atol=1e-6)
    zb = nelu(x.astype(jnp.bfloat16), 0.2)
    assert zb.dtype == jnp.bfloat16
    np.testing.assert_allclose(zb.astype(jnp.float32), z, atol=0.1)


@pytest.mark.parametrize("method", ["exact", pytest.param("fixed_point", marks=pytest.mark.slow)])
@pytest.mark.parametrize("two_sided", [False, True])
def test_check_grads(method, two_sided):
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(10), (4, 12), dtype=jnp.float64)
        lam = jnp.float64(0.22)
        kw = dict(two_sided=two_sided, method=method, iters=400)
        check_grads(lambda x: nelu(x, lam, **kw), (x,), order=1, modes=("fwd", "rev"), eps=1e-6)
        check_grads(lambda l: nelu(x, l, **kw), (lam,), order=1, modes=("rev",), eps=1e-6)
        lam_c = jnp.linspace(0.1, 0.3, 12)
        check_grads(lambda l: nelu(x, l, **kw), (lam_c,), order=1, modes=("rev",), eps=1e-6)


@pytest.mark.parametrize("method", ["exact", "fixed_point", "unrolled"])
def test_finite_gradients_at_edge_cases(method):
    def loss(x, lam):
        return jnp.sum(nelu(x, lam, method=method, iters=20) ** 2 + nelu(x, lam, method=method))

    zero = jnp.zeros((1, 5))
    all_thresholded = jnp.array([[1.0, -1.0, 0.5, 0.2, -3.0]])  # lam = 0.9 zeros the pool
    assert jnp.all(nelu(all_thresholded, 0.9, method=method, iters=20) == 0)
    # (same shapes and dtypes throughout: one compilation)
    for x, lam in ((zero, 0.3), (all_thresholded, 0.9), (jnp.ones((1, 5)), 0.3)):
        gx, gl = jax.grad(loss, argnums=(0, 1))(x, lam)
        assert jnp.all(jnp.isfinite(gx)) and jnp.isfinite(gl)
    assert jnp.all(nelu(zero, 0.3, method=method) == 0)


def test_errors():
    x = jnp.ones((2, 3))
    for bad in (0.0, -0.1, 1.0, 1.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="lam"):
            nelu(x, bad)
    with pytest.raises(ValueError, match="lam"):
        nelu(x, jnp.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="lam"):
        nelu(x, jnp.full((4, 2, 3), 0.1))
    with pytest.raises(ValueError, match="method"):
        nelu(x, 0.1, method="newton")
    with pytest.raises(ValueError, match="iters"):
        nelu(x, 0.1, method="fixed_point", iters=0)
    with pytest.raises(ValueError, match="axis"):
        nelu(x, 0.1, axis=2)
    with pytest.raises(ValueError, match="floating"):
        nelu(jnp.ones((2, 3), jnp.int32), 0.1)
    assert actfx.nelu is nelu


# ---- issue 12: overflow, empty input, jit/eager consistency -------------------------------


def test_float16_no_overflow_issue_example():
    """Was all zeros (300^2 overflows float16); the float64 value is ~[146.6, 0, 46.6, 0]."""
    x = jnp.array([300.0, -300.0, 200.0, 100.0], jnp.float16)
    z = actfx.nelu(x, 0.4)
    assert z.dtype == jnp.float16
    ref = np.asarray(actfx.nelu(np.asarray(x, np.float32), 0.4), np.float64)
    np.testing.assert_allclose(np.asarray(z, np.float64), ref, rtol=2e-3)
    np.testing.assert_allclose(np.asarray(z, np.float64)[[0, 2]], [146.6, 46.6], atol=0.2)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("method", ["exact", "fixed_point", "unrolled"])
def test_homogeneity_up_to_the_dtype_max(x64, dtype, method):
    """nelu(2^k x) = 2^k nelu(x) exactly for powers of two, from the smallest normal
    scale to the largest finite one (float32 used to break from |x| ~ 1e19)."""
    fi = jnp.finfo(dtype)
    x = jnp.array([3.0, -1.0, 0.5, -2.0], dtype)
    z1 = np.asarray(actfx.nelu(x, 0.4, method=method, iters=30), np.float64)
    assert np.max(z1) > 0
    lo, hi = int(np.log2(float(fi.tiny))) + 4, int(np.log2(float(fi.max))) - 2
    for k in (lo, -5, 5, hi):
        c = 2.0**k
        zk = np.asarray(
            actfx.nelu(x * jnp.asarray(c, dtype), 0.4, method=method, iters=30), np.float64
        )
        assert np.all(np.isfinite(zk))
        np.testing.assert_array_equal(zk / c, z1)


def test_empty_axes_return_empty():
    for shape in [(0, 4), (3, 0), (0,)]:
        z = actfx.nelu(jnp.zeros(shape), 0.4)
        assert z.shape == shape
    z = jax.jit(lambda x: actfx.nelu(x, 0.4))(jnp.zeros((0, 4)))
    assert z.shape == (0, 4)


def test_jit_and_eager_agree_and_traced_bad_lam_is_nan_not_zeros():
    x = jnp.array([[3.0, -1.0, 0.5, -2.0], [1.0, 2.0, -3.0, 0.1]])
    f = jax.jit(actfx.nelu)
    np.testing.assert_array_equal(f(x, 0.4), actfx.nelu(x, 0.4))
    for bad in (1.0, 1.5, 0.0, -0.2, float("nan")):
        with pytest.raises(ValueError, match="lam"):
            actfx.nelu(x, bad)
        assert bool(jnp.all(jnp.isnan(f(x, bad))))  # loud under jit, never silent zeros
    lam = jnp.array([0.4, 0.4, 0.4, 1.2])  # per-entry: the pool with a bad entry is NaN
    assert bool(jnp.all(jnp.isnan(f(x, lam))))


def test_extreme_inputs_finite_with_finite_gradients():
    for scale in (1e-30, 1e30, 3e38):
        x = jnp.array([3.0, -1.0, 0.5, -2.0]) * jnp.float32(scale / 3)
        z = actfx.nelu(x, 0.4)
        g = jax.grad(lambda v: actfx.nelu(v, 0.4).sum())(x)
        assert bool(jnp.all(jnp.isfinite(z))) and bool(jnp.all(jnp.isfinite(g)))
        # degree-1 homogeneity: the gradient is that of the unscaled input
        x0 = jnp.array([3.0, -1.0, 0.5, -2.0])
        np.testing.assert_allclose(g, jax.grad(lambda v: actfx.nelu(v, 0.4).sum())(x0), rtol=1e-5)


def test_nan_or_inf_in_a_pool_gives_nan_for_that_pool_only():
    x = jnp.array([[3.0, -1.0, jnp.nan, -2.0], [3.0, jnp.inf, 0.5, -2.0], [3.0, -1.0, 0.5, -2.0]])
    z = actfx.nelu(x, 0.4)
    assert bool(jnp.all(jnp.isnan(z[:2])))
    np.testing.assert_allclose(z[2], [2.0, 0.0, 0.0, 0.0], rtol=1e-6)


def test_wrong_types_name_the_argument():
    x = jnp.ones((2, 4))
    with pytest.raises(TypeError, match="lam"):
        actfx.nelu(x, "0.4")
    with pytest.raises(TypeError, match="axis"):
        actfx.nelu(x, 0.4, axis=1.0)
    with pytest.raises(ValueError, match="method"):
        actfx.nelu(x, 0.4, method=["exact"])
    with pytest.raises(ValueError, match="step"):
        actfx.nelu(x, 0.4, method="unrolled", step=True)
    with pytest.raises(TypeError, match="x"):
        actfx.nelu(jnp.ones(4, jnp.complex64), 0.4)
