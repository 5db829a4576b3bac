"""CPAB closed-form transform: exact reference values, RK4 oracle, properties, gradients."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from actfx.cpab import (
    Tessellation,
    grad_x,
    inverse,
    sample_theta,
    transform,
    transform_numeric,
    velocity,
)

REF = np.load(Path(__file__).parent / "data" / "cpab_reference.npz")
CONFIGS = range(int(REF["configs"]))


def _ref_tess(i):
    return Tessellation(
        int(REF[f"c{i}_nc"]), zero_boundary=bool(REF[f"c{i}_zero_boundary"]), basis=REF[f"c{i}_B"]
    )


def _random_theta(seed, tess, scale, n=None):
    rng = np.random.default_rng(seed)
    shape = (tess.theta_dim,) if n is None else (n, tess.theta_dim)
    return scale * rng.standard_normal(shape)


@pytest.mark.parametrize("i", CONFIGS)
def test_matches_exact_reference(i, x64):
    """float64 closed form vs 40-digit values (difw's own B), incl. free-boundary configs."""
    T = transform(REF["x"], REF[f"c{i}_theta"], _ref_tess(i))
    assert T.dtype == jnp.float64 and T.shape == REF[f"c{i}_T"].shape
    np.testing.assert_array_less(np.abs(np.asarray(T) - REF[f"c{i}_T"]), 1e-12)


def _check_reference_gradients(i):
    tess, x = _ref_tess(i), jnp.asarray(REF["x"])
    thetas = jnp.asarray(REF[f"c{i}_theta"])
    f = lambda p: transform(x, p, tess)
    jr = jax.jit(jax.vmap(jax.jacrev(f)))(thetas)
    jf = jax.jit(jax.vmap(jax.jacfwd(f)))(thetas)
    ref = REF[f"c{i}_dT_dtheta"]
    scale = max(1.0, np.abs(ref).max())
    np.testing.assert_allclose(jr, ref, atol=2e-8 * scale, rtol=0)
    np.testing.assert_allclose(jf, jr, atol=1e-12 * scale, rtol=0)
    gx = grad_x(x, thetas, tess)
    ref_dx = REF[f"c{i}_dT_dx"]
    np.testing.assert_allclose(gx, ref_dx, rtol=1e-7, atol=1e-7 * np.abs(ref_dx).max())


@pytest.mark.parametrize("i", [3])
def test_gradients_match_reference(i, x64):
    """dT/dtheta (reverse and forward mode) and dT/dx vs difw's analytic derivatives."""
    _check_reference_gradients(i)


@pytest.mark.slow
@pytest.mark.parametrize("i", [0, 1, 2, 4, 5, 6, 7])
def test_gradients_match_reference_all(i, x64):
    _check_reference_gradients(i)


@pytest.mark.parametrize("i", [0, 3, 6])
def test_closed_form_matches_rk4(i, x64):
    tess = _ref_tess(i)
    x, th = REF["x"][::4], REF[f"c{i}_theta"]
    num = transform_numeric(x, th, tess, steps=40_000)
    np.testing.assert_allclose(transform(x, th, tess), num, atol=1e-8, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("i", CONFIGS)
def test_closed_form_matches_rk4_all(i, x64):
    tess = _ref_tess(i)
    x, th = REF["x"], REF[f"c{i}_theta"]
    num = transform_numeric(x, th, tess, steps=60_000)
    np.testing.assert_allclose(transform(x, th, tess), num, atol=1e-8, rtol=0)


@pytest.mark.parametrize(
    "nc, zero_boundary, basis, scale, seed",
    [(10, True, "sparse", 20.0, 3), (5, False, "qr", 5.0, 7)],
)
def test_properties_fixed(nc, zero_boundary, basis, scale, seed):
    """Default (cheap) instances of test_properties: a strong zero-boundary field and a
    free-boundary one; each new (nc, basis) compiles transform, grad_x and inverse afresh."""
    _check_properties(nc, zero_boundary, basis, scale, seed)


@pytest.mark.slow
@settings(max_examples=6, deadline=None)
@given(
    nc=st.sampled_from([2, 5, 10, 50]),
    zero_boundary=st.booleans(),
    basis=st.sampled_from(["qr", "svd", "sparse", "rref"]),
    scale=st.sampled_from([0.1, 1.0, 5.0, 20.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_properties(nc, zero_boundary, basis, scale, seed):
    _check_properties(nc, zero_boundary, basis, scale, seed)


def _check_properties(nc, zero_boundary, basis, scale, seed):
    """Prior samples at several scales (large ones cross many cells): monotone, dT/dx > 0,
    endpoints fixed (zero boundary), inverse composes to identity, identity at theta = 0."""
    with jax.enable_x64(True):
        tess = Tessellation(nc, zero_boundary=zero_boundary, basis=basis)
        theta = np.asarray(
            sample_theta(jax.random.key(seed), tess, length_scale=0.2, output_variance=scale)
        )
        x = np.linspace(0.0, 1.0, 201)
        T = np.asarray(transform(x, theta, tess))
        assert np.all(np.isfinite(T))
        # Strictly increasing in exact arithmetic; in floats a strongly contracting field
        # can merge neighbours (to an ulp), so: non-decreasing to round-off, and dT/dx > 0.
        assert np.all(np.diff(T) >= -1e-15 * np.maximum(1.0, np.abs(T[1:])))
        gx = np.asarray(grad_x(x, theta, tess))
        assert np.all(gx > 0)
        if zero_boundary:
            assert abs(T[0]) < 1e-12 and abs(T[-1] - 1) < 1e-12
            assert np.all((T >= -1e-12) & (T <= 1 + 1e-12))
        back = np.asarray(inverse(T, theta, tess))
        # The inverse is well conditioned where T does not squeeze x; there x is recovered.
        ok = gx > 1e-2
        np.testing.assert_allclose(back[ok], x[ok], atol=1e-10, rtol=0)
        np.testing.assert_array_equal(np.asarray(transform(x, 0 * theta, tess)), x)


def test_inverse_composes_to_identity(x64):
    for i in CONFIGS:
        tess = _ref_tess(i)
        x = REF["x"]
        for th in REF[f"c{i}_theta"]:
            T = transform(x, th, tess)
            np.testing.assert_allclose(inverse(T, th, tess), x, atol=1e-10, rtol=0)
            np.testing.assert_allclose(transform(inverse(x, th, tess), th, tess), x, atol=1e-10)


def test_many_cells_crossed(x64):
    """A strong field sweeps points across most cells; still matches RK4."""
    tess = Tessellation(50, zero_boundary=True, basis="sparse")
    # sparse basis: column j is the hat at knot j scaled so its largest |a| is 1, i.e.
    # knot velocity theta_j / nc; this gives v = 3 at every interior knot.
    theta = np.full(tess.theta_dim, 3.0 * tess.nc)
    x = jnp.linspace(0.0, 1.0, 41)
    T = transform(x, theta, tess)
    assert float(T[1]) > 0.9  # x = 0.025 crosses > 35 cells
    np.testing.assert_allclose(T, transform_numeric(x, theta, tess, steps=40_000), atol=1e-8)


@pytest.mark.parametrize("zero_boundary", [True, False])
def test_check_grads_order1(zero_boundary, x64):
    """First order w.r.t. theta and x jointly, forward and reverse mode, incl. strong fields."""
    tess = Tessellation(6, zero_boundary=zero_boundary)
    x = jnp.array([0.03, 0.21, 0.48, 0.55, 0.77, 0.96])
    theta = jnp.asarray(np.stack([_random_theta(0, tess, 0.5), _random_theta(1, tess, 3.0)]))
    f = jax.jit(lambda th, xx: transform(xx, th, tess, time=0.7))
    check_grads(f, (theta, x), 1, modes=("fwd", "rev"))


@pytest.mark.parametrize(
    "zero_boundary,mode",
    [(True, "rev"), pytest.param(False, "fwd", marks=pytest.mark.slow)],
)
def test_check_grads_order2(zero_boundary, mode, x64):
    """Second order (rev-of-rev / fwd-of-fwd). T is only piecewise C^2 in theta (its
    second derivative jumps when T(x) crosses a knot), so a moderate theta keeps the
    finite differences away from the kinks."""
    tess = Tessellation(6, zero_boundary=zero_boundary)
    x = jnp.array([0.03, 0.21, 0.48, 0.55, 0.77, 0.96])
    theta = jnp.asarray(_random_theta(0, tess, 0.5))
    f = jax.jit(lambda th, xx: transform(xx, th, tess, time=0.7))
    check_grads(f, (theta, x), 2, modes=(mode,), eps=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("zero_boundary", [True, False])
def test_check_grads_order2_all_modes(zero_boundary, x64):
    tess = Tessellation(6, zero_boundary=zero_boundary)
    x = jnp.array([0.03, 0.21, 0.48, 0.55, 0.77, 0.96])
    for seed, scale in [(0, 0.5), (1, 2.0)]:
        theta = jnp.asarray(_random_theta(seed, tess, scale))
        f = jax.jit(lambda th, xx: transform(xx, th, tess, time=0.7))
        check_grads(f, (theta, x), 2, modes=("fwd", "rev"), eps=1e-6)


def test_hessian_matches_differences_of_gradient(x64):
    """Hessian w.r.t. theta vs central differences of the analytic gradient, for a strong
    field (points cross cells; away from the measure-zero kinks) and at theta = 0
    (a = 0 everywhere: the series branches of E'(u) and g(z))."""
    tess = Tessellation(6, zero_boundary=True)
    x = jnp.array([0.03, 0.21, 0.48, 0.55, 0.77, 0.96])
    loss = lambda th: jnp.sum(jnp.sin(3 * transform(x, th, tess)))
    H = jax.jit(jax.hessian(loss))
    g = jax.jit(jax.grad(loss))
    eps = 1e-6
    E = eps * np.eye(tess.theta_dim)
    for theta in (jnp.asarray(_random_theta(1, tess, 3.0)), jnp.zeros(tess.theta_dim)):
        Hn = np.stack([(g(theta + e) - g(theta - e)) / (2 * eps) for e in E])
        h = H(theta)
        assert np.all(np.isfinite(h))
        np.testing.assert_allclose(h, Hn, atol=1e-7 * max(1.0, np.abs(Hn).max()))
        fd = np.stack([(loss(theta + e) - loss(theta - e)) / (2 * eps) for e in E])
        np.testing.assert_allclose(g(theta), fd, atol=1e-7)


def test_grad_x_positive(x64):
    """dT/dx > 0 everywhere (strict monotonicity), even for strongly contracting fields."""
    for zb in (True, False):
        tess = Tessellation(10, zero_boundary=zb)
        thetas = _random_theta(4, tess, 8.0, n=4)
        g = np.asarray(grad_x(np.linspace(0, 1, 101), thetas, tess))
        assert np.all(g > 0) and np.all(np.isfinite(g))


def test_grad_time(x64):
    tess = Tessellation(8, zero_boundary=False)
    theta, x = jnp.asarray(_random_theta(3, tess, 2.0)), jnp.linspace(0, 1, 9)
    dt = jax.jacfwd(lambda t: transform(x, theta, tess, time=t))(0.8)
    np.testing.assert_allclose(
        dt, velocity(transform(x, theta, tess, time=0.8), theta, tess), rtol=1e-10, atol=1e-12
    )


def test_float32_near_zero_a():
    """Affine coefficient a ~ 0: the expm1 form keeps float32 accurate
    (the naive (e^a - 1) b / a loses ~5% of the displacement at a = 1e-6)."""
    tess = Tessellation(4, zero_boundary=False, basis="svd")
    A = np.zeros(8)
    A[0::2], A[1::2] = 1e-6, 0.3  # v(x) = 1e-6 x + 0.3 everywhere (valid CPA field)
    theta = tess.B.T @ A
    x = np.linspace(0.0, 1.0, 11)
    exact = x * np.exp(1e-6) + 0.3 * np.expm1(1e-6) / 1e-6
    T32 = transform(x.astype(np.float32), theta.astype(np.float32), tess)
    assert T32.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(T32), exact, atol=5e-7, rtol=0)
    # also the gradient w.r.t. theta stays finite and accurate in float32
    g32 = jax.grad(lambda th: transform(x.astype(np.float32), th, tess).sum())(
        theta.astype(np.float32)
    )
    with jax.enable_x64(True):
        g64 = jax.grad(lambda th: transform(x, th, tess).sum())(theta)
    np.testing.assert_allclose(np.asarray(g32), np.asarray(g64), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_dtype_shapes_jit_vmap(dtype):
    with jax.enable_x64(dtype == jnp.float64):
        tess = Tessellation(7)
        thetas = jnp.asarray(_random_theta(0, tess, 1.5, n=3), dtype)
        x = jnp.linspace(0, 1, 24, dtype=dtype).reshape(2, 3, 4)
        out = transform(x, thetas, tess)
        assert out.shape == (3, 2, 3, 4) and out.dtype == dtype
        tol = 2e-6 if dtype == jnp.float32 else 1e-13
        vm = jax.jit(jax.vmap(lambda th: transform(x, th, tess)))(thetas)
        np.testing.assert_allclose(vm, out, rtol=0, atol=tol)
        one = transform(x[1], thetas[2], tess)
        assert one.shape == (3, 4)
        np.testing.assert_allclose(one, out[2, 1], rtol=0, atol=tol)
        with jax.enable_x64(True):
            ref = transform(np.asarray(x, np.float64), np.asarray(thetas, np.float64), tess)
        np.testing.assert_allclose(np.asarray(out), np.asarray(ref), atol=tol, rtol=0)


def test_velocity_is_cpa(x64):
    tess = Tessellation(6, basis="sparse")
    theta = _random_theta(1, tess, 1.0)
    v = velocity(jnp.asarray(tess.knots), theta, tess)
    # sparse basis is local: the velocity at interior knot j is theta_j / nc
    np.testing.assert_allclose(v[1:-1], theta / tess.nc, atol=1e-12)
    assert abs(float(v[0])) < 1e-14 and abs(float(v[-1])) < 1e-14
    # continuity: left and right limits agree at interior knots
    eps = 1e-9
    k = jnp.asarray(tess.knots[1:-1])
    np.testing.assert_allclose(
        velocity(k - eps, theta, tess), velocity(k + eps, theta, tess), atol=1e-7
    )
    # batched theta
    assert velocity(jnp.zeros((2, 3)), np.stack([theta, theta]), tess).shape == (2, 2, 3)


def test_negative_time_is_inverse(x64):
    tess = Tessellation(5)
    theta, x = _random_theta(2, tess, 2.0), jnp.linspace(0, 1, 17)
    np.testing.assert_allclose(
        transform(x, theta, tess, time=-0.6), transform(x, -theta, tess, time=0.6), atol=1e-15
    )


def test_errors():
    tess = Tessellation(5)
    with pytest.raises(ValueError, match="theta must have shape"):
        transform(jnp.zeros(3), jnp.zeros(5), tess)
    with pytest.raises(ValueError, match="theta must have shape"):
        transform(jnp.zeros(3), jnp.zeros((2, 2, 4)), tess)
    with pytest.raises(ValueError, match="x must have a floating dtype"):
        transform(jnp.zeros(3, jnp.int32), jnp.zeros(4), tess)
    with pytest.raises(ValueError, match="tess must be"):
        transform(jnp.zeros(3), jnp.zeros(4), 5)
    with pytest.raises(ValueError, match="theta must be finite"):
        transform(jnp.zeros(3), jnp.array([0.0, np.nan, 0.0, 0.0]), tess)
    with pytest.raises(ValueError, match="steps must be"):
        transform_numeric(jnp.zeros(3), jnp.zeros(4), tess, steps=0)


# ---- issue 12: a t overflowing exp --------------------------------------------------------


def _scipy_T(x, theta, tess, time=1.0):
    """Independent float64 reference: SciPy LSODA (stiff-capable) on v(y) = a_c y + b_c,
    rtol 1e-12, with the zero-boundary velocities imposed exactly."""
    from scipy.integrate import solve_ivp

    A = tess.B @ np.asarray(theta, np.float64)
    a, b, nc = A[0::2].copy(), A[1::2].copy(), tess.nc
    if tess.zero_boundary:
        b[0], b[nc - 1] = 0.0, -a[nc - 1]

    def v(_, y):
        c = np.clip(np.floor(y * nc), 0, nc - 1).astype(int)
        return a[c] * y + b[c]

    return np.array(
        [
            solve_ivp(v, (0.0, time), [xi], method="LSODA", rtol=1e-12, atol=1e-14).y[0, -1]
            for xi in np.asarray(x, np.float64)
        ]
    )


def test_issue_example_overflow_no_nan():
    """transform([0, .5], 100 [1, -.5, .3, 2], Tessellation(5)) was [nan, 0.5455] with
    all-NaN gradients."""
    tess, x = Tessellation(5), jnp.array([0.0, 0.5])
    theta = 100 * jnp.array([1.0, -0.5, 0.3, 2.0])
    T = transform(x, theta, tess)
    ref = _scipy_T(np.asarray(x), np.asarray(theta, np.float64), tess)
    np.testing.assert_allclose(T, ref, atol=1e-6)
    assert float(T[0]) == 0.0
    J = jax.jacobian(lambda p: transform(x, p, tess))(theta)
    assert bool(jnp.all(jnp.isfinite(J)))
    np.testing.assert_array_equal(J[0], 0.0)  # the fixed boundary point does not move
    gx = grad_x(x, theta, tess)  # e^{a_0} at x = 0 overflows: saturates, finite
    assert bool(jnp.all(jnp.isfinite(gx)))


@pytest.mark.parametrize(
    "dtype, scale, time, zero_boundary",
    [
        ("float32", 100.0, 1.0, True),
        ("float32", 100.0, 1.0, False),
        ("float32", 1.0, 1e6, True),
        ("float64", 1000.0, 1.0, True),
        ("float64", 1000.0, 1.0, False),
        ("float64", 1.0, 1e6, False),
        ("float64", 30.0, 1.0, False),
    ],
)
def test_extreme_fields_match_scipy_and_stay_finite(x64, dtype, scale, time, zero_boundary):
    """theta = 100x (float32) / 1000x (float64) a prior draw, or time = 1e6: finite values
    agreeing with an LSODA reference (inputs rounded to the dtype first), finite
    gradients w.r.t. x, theta and time."""
    tess = Tessellation(5, zero_boundary=zero_boundary)
    th0 = np.asarray(sample_theta(jax.random.key(3), tess, length_scale=0.1, dtype=jnp.float64))
    x = jnp.asarray(np.linspace(0.0, 1.0, 11), dtype)
    theta = jnp.asarray(scale * th0, dtype)
    T = transform(x, theta, tess, time=time)
    assert T.dtype == jnp.dtype(dtype) and bool(jnp.all(jnp.isfinite(T)))
    big = float(jnp.finfo(dtype).max)
    ref = np.clip(_scipy_T(np.asarray(x), np.asarray(theta, np.float64), tess, time), -big, big)
    tol = 2e-6 if dtype == "float32" else 1e-9
    np.testing.assert_allclose(np.asarray(T, np.float64), ref, rtol=tol, atol=tol)
    if zero_boundary:
        assert bool(jnp.all((T >= 0) & (T <= 1))) and bool(jnp.all(jnp.diff(T) >= 0))
    gx, gth, gt = jax.grad(lambda a, b, c: transform(a, b, tess, time=c).sum(), argnums=(0, 1, 2))(
        x, theta, jnp.asarray(time, dtype)
    )
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in (gx, gth, gt))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_16_bit_inputs_computed_in_float32(dtype):
    tess = Tessellation(5)
    x = jnp.linspace(0, 1, 9).astype(dtype)
    theta = (100 * jnp.array([1.0, -0.5, 0.3, 2.0])).astype(dtype)
    T = transform(x, theta, tess)
    assert T.dtype == jnp.dtype(dtype) and bool(jnp.all(jnp.isfinite(T)))
    ref = transform(x.astype(jnp.float32), theta.astype(jnp.float32), tess).astype(dtype)
    np.testing.assert_array_equal(T, ref)
    g = jax.grad(lambda p: transform(x, p, tess).astype(jnp.float32).sum())(theta)
    assert bool(jnp.all(jnp.isfinite(g.astype(jnp.float32))))
