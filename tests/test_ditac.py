"""DiTAC: GELU identity outside [a, b] and at theta = 0, agreement with an independent NumPy
RK4 reference, continuity, table-mode accuracy and its convergence rate, gradients,
per-channel thetas, jit/vmap/dtype parity, the regulariser, and error messages."""

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from ode_reference import rk4_cpab  # the float64 RK4 oracle (shared with test_robustness_core)

import actfx
from actfx.cpab import Tessellation

TESS = Tessellation(10)
THETA = np.array([1.3, -2.1, 0.7, 0.2, -1.5, 2.4, -0.6, 0.9, 1.1])  # a strongly bent T


def gelu_exact(x):
    return jax.nn.gelu(x, approximate=False)


def np_ditac(x, theta, tess, a, b):
    x = np.asarray(x, np.float64)
    inside = (x >= a) & (x <= b)
    u = np.clip((x - a) / (b - a), 0, 1)
    t = np.where(inside, a + (b - a) * rk4_cpab(u, theta, tess, steps=4000), x)
    phi = np.array([0.5 * math.erfc(-xi / math.sqrt(2)) for xi in x])
    return t * phi


@pytest.mark.parametrize("a, b", [(-0.5, 2.0), (-3.0, 3.0)])
def test_matches_numpy_rk4_reference(x64, a, b):
    x = np.linspace(a - 1, b + 1, 301)
    got = actfx.ditac(jnp.asarray(x), jnp.asarray(THETA), TESS, a=a, b=b)
    np.testing.assert_allclose(got, np_ditac(x, THETA, TESS, a, b), atol=1e-8, rtol=0)
    assert (
        np.max(np.abs(np.asarray(got) - np.asarray(gelu_exact(jnp.asarray(x))))) > 0.05
    )  # not GELU


# Bitwise equality of one program's two GELU evaluations is XLA's choice: it holds with the
# default CPU fusion emitters; the default test run uses the legacy ones (tests/conftest.py),
# which differ by an ulp at a few points. There the gap must be within 2 ulp of GELU.
BITWISE_SAME_PROGRAM = "xla_cpu_use_fusion_emitters=false" not in os.environ.get("XLA_FLAGS", "")


def assert_no_gap(gap, x):
    """``gap`` (DiTAC - GELU in one program) is 0: bitwise, or within 2 ulp of |GELU(x)|
    under the legacy emitters (see BITWISE_SAME_PROGRAM)."""
    gap = np.asarray(gap, np.float64)
    if BITWISE_SAME_PROGRAM:
        assert np.all(gap == 0), np.abs(gap).max()
    else:
        eps = float(jnp.finfo(jnp.asarray(x).dtype).eps)
        g = np.abs(np.asarray(gelu_exact(x), np.float64))
        np.testing.assert_array_less(np.abs(gap), 2 * eps * g + np.finfo(np.float64).tiny)


def same_program_gelu_gap(fn, x, theta):
    """``fn(x, theta) - gelu(x)`` computed in ONE compiled program: the GELU subexpressions
    are then identical (same XLA code), so the gap is exactly 0 wherever DiTAC's
    correction ``delta * Phi(x)`` is exactly 0. (A separately compiled ``jax.nn.gelu`` may
    round ``erfc`` differently by an ulp, depending on shapes and fusion.)"""
    return jax.jit(lambda x, t: fn(x, t) - gelu_exact(x))(x, theta)


@pytest.mark.parametrize("mode", ["exact", "table"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gelu_outside_interval_and_at_theta_zero_exactly(x64, mode, dtype):
    a, b = -0.5, 2.0
    x = jnp.asarray(np.linspace(-6, 6, 2001), dtype)
    edges = jnp.asarray([np.nextafter(a, -np.inf), np.nextafter(b, np.inf)], dtype)
    x = jnp.concatenate([x, edges])
    out = np.asarray((x < a) | (x > b))
    theta = jnp.asarray(THETA, dtype)
    f = lambda x, t: actfx.ditac(x, t, method=mode)
    y = f(x, theta)
    assert y.dtype == x.dtype
    gap = same_program_gelu_gap(f, x, theta)
    assert_no_gap(np.asarray(gap)[out], x[out])
    assert_no_gap(same_program_gelu_gap(f, x, jnp.zeros(9, dtype)), x)
    xc = x.reshape(-1, 1) * jnp.ones(3, dtype)  # per-channel thetas
    assert_no_gap(same_program_gelu_gap(f, xc, jnp.zeros((3, 9), dtype)), xc)
    # against a separately compiled jax.nn.gelu: equal up to the compiler's erfc rounding
    tol = 16 * float(jnp.finfo(x.dtype).eps)
    np.testing.assert_allclose(np.asarray(y)[out], np.asarray(gelu_exact(x))[out], rtol=tol, atol=0)
    np.testing.assert_allclose(f(x, jnp.zeros(9, dtype)), gelu_exact(x), rtol=tol, atol=0)
    # and not GELU inside
    assert jnp.max(jnp.abs(y - gelu_exact(x))) > 0.05


def test_bfloat16_dtype_and_gelu():
    x = jnp.linspace(-6, 6, 1001, dtype=jnp.bfloat16)
    for mode in ("exact", "table"):
        f = lambda x, t: actfx.ditac(x, t, method=mode)
        y = f(x, jnp.zeros(9))
        assert y.dtype == jnp.bfloat16
        assert_no_gap(same_program_gelu_gap(f, x, jnp.zeros(9)).astype(np.float32), x)
        g = gelu_exact(x).astype(np.float32)
        np.testing.assert_allclose(y.astype(np.float32), g, rtol=2.0**-7, atol=2.0**-8)  # ~1 ulp


@pytest.mark.parametrize("mode", ["exact", "table"])
def test_continuity_at_a_and_b(x64, mode):
    a, b = -0.5, 2.0
    theta = 3 * jnp.asarray(THETA)  # large deformation: steep T near the ends
    for edge in (a, b):
        eps = 1e-9
        y = actfx.ditac(jnp.array([edge - eps, edge, edge + eps]), theta, method=mode)
        assert abs(float(y[2] - y[0])) < 1e-6
        np.testing.assert_allclose(y[1], gelu_exact(jnp.float64(edge)), atol=1e-12)


def theta_of_field(knot_values, tess):
    """theta whose CPA field interpolates the given knot values (orthonormal qr basis)."""
    k = tess.knots
    a = np.diff(knot_values) * tess.nc
    A = np.stack([a, knot_values[:-1] - a * k[:-1]], 1).reshape(-1)
    theta = tess.B.T @ A
    assert np.allclose(tess.B @ theta, A, atol=1e-12)
    return theta


@pytest.mark.parametrize("field", ["smooth", "bent"])
def test_table_error_bound_and_rate(x64, field):
    """Linear interpolation error <= (b - a) h^2 / 8 max|T''| (Phi <= 1), h = 1/(K-1).

    T is C^1 with bounded T'' when v has no zero inside (0, 1) ("smooth": v > 0), and the
    error then falls as h^2. Where v nearly vanishes at a knot ("bent", THETA) T'' is huge
    on a tiny interval, so the h^2 regime only starts at large K; the bound still holds."""
    k = TESS.knots
    theta = theta_of_field(3 * k * (1 - k) * (1 + k), TESS) if field == "smooth" else THETA
    theta = jnp.asarray(theta)
    x = jnp.linspace(-0.5, 2.0, 40001)
    exact = actfx.ditac(x, theta)
    sizes = [65, 129, 257, 513, 1025, 2049, 4097]
    errs = np.array(
        [
            float(jnp.max(jnp.abs(actfx.ditac(x, theta, method="table", table_size=k) - exact)))
            for k in sizes
        ]
    )
    u = np.linspace(0, 1, 200001)
    T = np.asarray(actfx.cpab.transform(jnp.asarray(u), theta, TESS))
    d2 = np.max(np.abs(np.diff(T, 2))) / (u[1] - u[0]) ** 2
    bound = 2.5 * d2 / (8 * (np.array(sizes) - 1.0) ** 2)
    assert np.all(errs <= 1.01 * bound), (errs, bound)
    if field == "smooth":
        rates = np.log2(errs[:-1] / errs[1:])
        assert np.all(rates > 1.75) and np.all(rates < 2.3), (errs, rates)


def test_table_default_size_error_float32():
    x = jnp.linspace(-1, 3, 4001)
    y_exact = actfx.ditac(x, jnp.asarray(THETA, jnp.float32))
    y_table = actfx.ditac(x, jnp.asarray(THETA, jnp.float32), method="table")
    assert float(jnp.max(jnp.abs(y_table - y_exact))) < 2e-4


X_GRAD = jnp.array([-0.41, 0.03, 0.37, 0.88, 1.52, 1.93, 2.5, -1.0])


def test_exact_gradients_check_grads(x64):
    check_grads(
        lambda x, t: actfx.ditac(x, t), (X_GRAD, jnp.asarray(THETA)), order=1, modes=("fwd", "rev")
    )


@pytest.mark.slow
def test_exact_second_derivatives(x64):
    """Hessian of sum(ditac) w.r.t. (x, theta): forward-over-reverse and reverse-over-reverse
    agree, and match central differences of the gradient, one coordinate at a time.

    (``check_grads(order=2)`` with a random joint direction is unreliable here: the second
    derivative jumps where T(x) reaches a knot, and a joint finite-difference step of all
    points can straddle such a jump.)"""
    theta = jnp.asarray(THETA)
    f = lambda z: actfx.ditac(z[:8], z[8:]).sum()
    z = jnp.concatenate([X_GRAD, theta])
    h_fr = jax.jacfwd(jax.grad(f))(z)
    h_rr = jax.jacrev(jax.grad(f))(z)
    np.testing.assert_allclose(h_fr, h_rr, atol=1e-12)
    eps = 1e-6
    g = jax.jit(jax.grad(f))
    eye = jnp.eye(z.size)
    h_fd = jnp.stack([(g(z + eps * e) - g(z - eps * e)) / (2 * eps) for e in eye], 1)
    np.testing.assert_allclose(h_rr, h_fd, atol=1e-6 * (1 + float(jnp.max(jnp.abs(h_rr)))))


def test_table_gradients_are_those_of_the_table_function(x64):
    k = 257
    # points strictly inside grid cells (u at cell midpoints) so the table function is
    # smooth in a neighbourhood: finite differences of the table function are meaningful
    a, b = -0.5, 2.0
    u = (np.array([3, 40, 101, 177, 230, 255]) + 0.37) / (k - 1)
    x = jnp.asarray(a + (b - a) * u)
    theta = jnp.asarray(THETA)
    f = lambda x, t: actfx.ditac(x, t, method="table", table_size=k)
    check_grads(f, (x, theta), order=1, modes=("rev",), eps=1e-7)  # custom_vjp: reverse mode
    # and with the default table size they approximate the exact gradients
    g_table = jax.grad(lambda t: actfx.ditac(x, t, method="table").sum())(theta)
    g_exact = jax.grad(lambda t: actfx.ditac(x, t).sum())(theta)
    np.testing.assert_allclose(g_table, g_exact, atol=2e-3 * float(jnp.max(jnp.abs(g_exact))))


@pytest.mark.parametrize("mode", ["exact", "table"])
def test_per_channel_matches_channelwise_loop(mode):
    theta = jax.random.normal(jax.random.key(0), (4, 9))
    x = 2 * jax.random.normal(jax.random.key(1), (3, 5, 4)) + 0.5
    y = actfx.ditac(x, theta, method=mode)
    ref = jnp.stack([actfx.ditac(x[..., c], theta[c], method=mode) for c in range(4)], axis=-1)
    np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-6)


def test_jit_vmap_parity():
    x = 2 * jax.random.normal(jax.random.key(2), (6, 7))
    thetas = jax.random.normal(jax.random.key(3), (3, 9))
    f = lambda x, t: actfx.ditac(x, t, method="table")
    np.testing.assert_allclose(jax.jit(f)(x, thetas[0]), f(x, thetas[0]), rtol=1e-6, atol=1e-7)
    batched = jax.vmap(f, in_axes=(None, 0))(x, thetas)
    loop = jnp.stack([f(x, t) for t in thetas])
    np.testing.assert_allclose(batched, loop, rtol=1e-6, atol=1e-7)
    bx = jax.vmap(lambda x: actfx.ditac(x, thetas[1]))(x)
    np.testing.assert_allclose(bx, actfx.ditac(x, thetas[1]), rtol=1e-6, atol=1e-7)


def test_variants_are_gelu_cpab_on_half_intervals():
    x = jnp.linspace(-3, 3, 301)
    theta = jnp.asarray(THETA, jnp.float32)
    np.testing.assert_array_equal(
        actfx.ditac(x, theta, variant="gelu_cpab_relu", a=-0.5, b=2.0),
        actfx.ditac(x, theta, a=0.0, b=2.0),
    )
    np.testing.assert_array_equal(
        actfx.ditac(x, theta, variant="gelu_cpab_gelu", a=-0.5, b=2.0),
        actfx.ditac(x, theta, a=-0.5, b=0.0),
    )


@pytest.mark.parametrize("edge", ["a", "b"])
def test_derivative_at_a_and_b_is_the_inside_one_sided_one(x64, edge):
    """At x = a and x = b both methods return the one-sided derivative from inside [a, b]
    (the reference's convention), not the mean of the two one-sided derivatives."""
    a, b = -0.5, 2.0
    theta = 3 * jnp.asarray(THETA)
    x0 = a if edge == "a" else b
    h = 1e-7 if edge == "a" else -1e-7  # step into the interval
    f = lambda x: actfx.ditac(x, theta)
    inside = float((f(jnp.float64(x0 + h)) - f(jnp.float64(x0))) / h)
    outside = float(jax.grad(gelu_exact)(jnp.float64(x0)))
    assert abs(inside - outside) > 0.1  # the two one-sided derivatives differ here
    g_exact = float(jax.grad(f)(jnp.float64(x0)))
    g_table = float(jax.grad(lambda x: actfx.ditac(x, theta, method="table"))(jnp.float64(x0)))
    np.testing.assert_allclose(g_exact, inside, rtol=1e-5)
    np.testing.assert_allclose(g_table, g_exact, rtol=2e-2)


def test_method_keyword_renamed_and_public_interval_helper():
    """``mode=`` was renamed ``method=`` in 0.2 (a clean rename, see CHANGELOG)."""
    x, th = jnp.linspace(-1, 3, 7), jnp.asarray(THETA, jnp.float32)
    with pytest.raises(TypeError, match="mode"):
        actfx.ditac(x, th, mode="table")
    from actfx import ditac_interval
    from actfx._src.ditac import METHODS

    assert METHODS == ("exact", "table")
    assert ditac_interval("gelu_cpab", -1, 1) == (-1.0, 1.0)
    assert ditac_interval("gelu_cpab_gelu", -1, 1) == (-1.0, 0.0)
    with pytest.raises(ValueError, match="variant"):
        ditac_interval("nope", -1, 1)


def _big_theta(scale, dtype):
    from actfx.cpab import sample_theta

    return scale * sample_theta(jax.random.key(0), TESS, length_scale=0.1, dtype=dtype)


@pytest.mark.parametrize("method", ["exact", "table"])
def test_extreme_theta_finite_values_and_gradients(method):
    """100x a prior draw (float32): a t overflows exp. Values and gradients (w.r.t. x and
    theta) stay finite, including outside [a, b]; outside [a, b] it is still GELU; the
    table is not shifted (its values at grid points equal the exact transform's)."""
    theta = _big_theta(100.0, jnp.float32)
    a, b = -0.5, 2.0
    x = jnp.linspace(-4.0, 5.0, 301, dtype=jnp.float32)
    f = lambda x, t: actfx.ditac(x, t, method=method)
    y = f(x, theta)
    assert bool(jnp.all(jnp.isfinite(y)))
    gx, gt = jax.grad(lambda x, t: f(x, t).sum(), argnums=(0, 1))(x, theta)
    assert bool(jnp.all(jnp.isfinite(gx))) and bool(jnp.all(jnp.isfinite(gt)))
    outside = np.asarray((x < a) | (x > b))
    np.testing.assert_allclose(
        np.asarray(y)[outside], np.asarray(gelu_exact(x))[outside], rtol=1e-6
    )
    # theta-gradient of points outside [a, b] alone: exactly 0 (and finite)
    g_out = jax.grad(lambda t: f(x[outside], t).sum())(theta)
    np.testing.assert_array_equal(g_out, np.zeros_like(g_out))
    # grid points of the table: the table's value is the transform's value there
    grid = a + (b - a) * jnp.arange(0, 2048, 97, dtype=jnp.float32) / 2047
    np.testing.assert_allclose(
        actfx.ditac(grid, theta, method="table"), actfx.ditac(grid, theta), atol=2e-4
    )


@pytest.mark.parametrize("method", ["exact", "table"])
def test_adam_large_step_small_net_stays_finite(method):
    """A 2 -> 16 -> DiTAC -> 1 net trained by Adam at learning rate 100: before the
    overflow fix the loss was NaN from step 3 on (theta grows to ~100x a prior draw and
    a t overflows exp; measured on the previous code: 0.40, 3.9e9, nan, nan, ...)."""
    import optax

    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    X = jax.random.uniform(k1, (64, 2), minval=-1, maxval=1)
    Y = jnp.sin(9 * X[:, :1]) * jnp.cos(7 * X[:, 1:])
    params = dict(
        w1=jax.random.normal(k2, (2, 16)),
        b1=jnp.zeros(16),
        theta=_big_theta(1.0, jnp.float32),
        w2=jax.random.normal(k3, (16, 1)) / 4,
    )

    def loss(p):
        h = actfx.ditac(X @ p["w1"] + p["b1"], p["theta"], method=method)
        return jnp.mean((h @ p["w2"] - Y) ** 2)

    opt = optax.adam(100.0)
    state = opt.init(params)
    step = jax.jit(
        lambda p, s: (lambda lv, g: (lv, g, *opt.update(g, s, p)))(*jax.value_and_grad(loss)(p))
    )
    max_theta = 0.0
    for _ in range(8):
        lv, g, upd, state = step(params, state)
        assert bool(jnp.isfinite(lv))
        assert all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree.leaves(g))
        params = optax.apply_updates(params, upd)
        max_theta = max(max_theta, float(jnp.max(jnp.abs(params["theta"]))))
    assert max_theta > 100.0  # the steps really were large


def test_errors():
    x, th = jnp.ones(4), jnp.zeros(9)
    with pytest.raises(ValueError, match="a < b"):
        actfx.ditac(x, th, a=1.0, b=1.0)
    with pytest.raises(ValueError, match="a < b"):
        actfx.ditac(x, th, variant="gelu_cpab_relu", b=-1.0)
    with pytest.raises(ValueError, match="theta must have shape"):
        actfx.ditac(x, jnp.zeros(8), TESS)
    with pytest.raises(ValueError, match="theta must be finite"):
        actfx.ditac(x, th.at[2].set(jnp.nan))
    with pytest.raises(ValueError, match="method"):
        actfx.ditac(x, th, method="fast")
    with pytest.raises(ValueError, match="table_size"):
        actfx.ditac(x, th, method="table", table_size=1)
    with pytest.raises(ValueError, match="variant"):
        actfx.ditac(x, th, variant="leaky_cpab")
    with pytest.raises(ValueError, match="zero_boundary"):
        actfx.ditac(x, jnp.zeros(11), Tessellation(10, zero_boundary=False))
    with pytest.raises(ValueError, match="channels"):
        actfx.ditac(jnp.ones((2, 3)), jnp.zeros((4, 9)))
    with pytest.raises(ValueError, match="x must have a floating dtype"):
        actfx.ditac(jnp.ones(3, jnp.int32), th)
    with pytest.raises(ValueError, match="tess"):
        actfx.ditac(x, th, 10)


def test_regularizer_value_and_true_gradient(x64):
    rng = np.random.default_rng(0)
    M = rng.normal(size=(9, 9))
    P = M @ M.T + 9 * np.eye(9)
    theta = rng.normal(size=9)
    np.testing.assert_allclose(actfx.ditac_regularizer(theta, P), theta @ P @ theta, rtol=1e-13)
    g = jax.grad(actfx.ditac_regularizer)(jnp.asarray(theta), jnp.asarray(P))
    np.testing.assert_allclose(g, 2 * P @ theta, rtol=1e-12)
    # the reference's elementwise rule (column sums of P times theta) is a different vector
    assert np.max(np.abs(2 * P.sum(0) * theta - 2 * P @ theta)) > 1.0
    thetas = rng.normal(size=(3, 9))
    np.testing.assert_allclose(
        actfx.ditac_regularizer(thetas, P), sum(t @ P @ t for t in thetas), rtol=1e-12
    )
    with pytest.raises(ValueError, match="precision must have shape"):
        actfx.ditac_regularizer(theta, P[:8, :8])


# ---- NNX module -------------------------------------------------------------------------


def test_module_init_from_prior_and_regularizer():
    from flax import nnx

    from actfx.cpab import precision_matrix, sample_theta
    from actfx.nn import DiTAC

    act = DiTAC(rngs=nnx.Rngs(3))
    # theta is the prior sample drawn with the params key of Rngs(3)
    expected = sample_theta(
        nnx.Rngs(3).params(), TESS, None, length_scale=5.0, output_variance=2.0, kernel="difw"
    )
    np.testing.assert_allclose(act.theta[...], expected, rtol=1e-6)
    assert not np.allclose(DiTAC(rngs=nnx.Rngs(4)).theta[...], act.theta[...])
    P = precision_matrix(TESS, length_scale=5.0, output_variance=2.0, kernel="ditac")
    th = np.asarray(act.theta[...], np.float64)
    np.testing.assert_allclose(act.regularizer(), 0.1 * th @ P @ th, rtol=1e-4)
    x = jnp.linspace(-3, 3, 50)
    np.testing.assert_array_equal(act(x), actfx.ditac(x, act.theta[...], method="table"))
    # precision is not a trainable Param
    assert len(jax.tree.leaves(nnx.state(act, nnx.Param))) == 1


def test_module_per_channel_training_step_uses_regularizer():
    import optax
    from flax import nnx

    from actfx._src.nn.ditac import ditac_penalty
    from actfx.nn import DiTAC

    model = nnx.Sequential(
        nnx.Linear(2, 4, rngs=nnx.Rngs(0)), DiTAC(4, method="exact", rngs=nnx.Rngs(1))
    )
    assert model.layers[1].theta.shape == (4, 9)
    x = jax.random.normal(jax.random.key(5), (8, 2))
    opt = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)

    def loss(m):
        return jnp.mean(m(x) ** 2) + ditac_penalty(m)

    np.testing.assert_allclose(ditac_penalty(model), model.layers[1].regularizer())
    theta0 = np.asarray(model.layers[1].theta[...])
    prec0 = np.asarray(model.layers[1].precision[...])
    g = nnx.grad(loss)(model)
    opt.update(model, g)
    assert not np.allclose(model.layers[1].theta[...], theta0)
    np.testing.assert_array_equal(model.layers[1].precision[...], prec0)
    with pytest.raises(ValueError, match="channels"):
        model.layers[1](jnp.ones((2, 3)))


def test_module_errors():
    from flax import nnx

    from actfx.nn import DiTAC

    for kwargs, match in [
        (dict(a=2.0, b=1.0), "a < b"),
        (dict(method="fast"), "method"),
        (dict(reg_weight=-1.0), "reg_weight"),
        (dict(nc=1), "nc"),
        (dict(init_kernel="rbf"), "kernel"),
    ]:
        with pytest.raises(ValueError, match=match):
            DiTAC(rngs=nnx.Rngs(0), **kwargs)
    with pytest.raises(ValueError, match="num_features|channels"):
        DiTAC(0, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("dtype", [jnp.float32, pytest.param(jnp.bfloat16, marks=pytest.mark.slow)])
def test_per_channel_table_gradients_equal_the_plain_interpolant(dtype):
    """The table path's custom backward (one gather of packed row pairs, one scatter of
    packed cotangents, per-point factors from the forward) against plain-jnp autodiff of
    the same interpolant through two gathers: per channel, with points at a and b (the
    last interval's right end, w = 1), inside and outside [a, b]. Not on interior grid
    nodes: there the slope is that of whichever interval a one-ulp rounding of the
    position picks (tested with midpoints in test_table_gradients_are_those_...)."""
    from actfx._src.ditac import _residual_table

    k, a, b = 8, -0.5, 2.0
    # theta in x's dtype: bfloat16 builds a bfloat16 table (packed through float32)
    theta = jnp.asarray(np.stack([THETA, -0.5 * THETA, 0.3 * THETA]), dtype)
    u = np.array([0.0, 0.15, 0.33, 0.5, 0.84, 0.97, 1.0])
    cols = [a + (b - a) * u, a + (b - a) * u[::-1], np.array([-2, a, 0.1, 1.9, b, 3, 0.7])]
    x = jnp.asarray(np.stack(cols, -1), dtype)  # (7, 3), channels last

    def reference(x, theta):
        ct = jnp.result_type(x.dtype, theta.dtype)
        r = _residual_table(theta.astype(ct), TESS, k, ct).reshape(3, k)
        xc = x.astype(ct)
        inside = (xc >= a) & (xc <= b)
        # no clip: its gradient at a tie is halved; at a and b the derivative is the one
        # from inside (see test_derivative_at_a_and_b_is_the_inside_one_sided_one)
        u = jnp.where(inside, (xc - a) / (b - a), jnp.where(xc < a, 0.0, 1.0).astype(ct))
        pos = u * (k - 1)
        i = jnp.clip(jnp.floor(jax.lax.stop_gradient(pos)), 0, k - 2).astype(jnp.int32)
        w = pos - i
        ch = jnp.arange(3)
        v0, v1 = r[ch, i], r[ch, i + 1]
        delta = jnp.where(inside, (b - a) * (v0 + w * (v1 - v0)), 0.0).astype(x.dtype)
        phi = 0.5 * jax.lax.erfc(-x * np.sqrt(0.5).astype(x.dtype))
        return gelu_exact(x) + delta * phi

    f = lambda x, t: actfx.ditac(x, t, TESS, a=a, b=b, method="table", table_size=k)
    ct, tol = np.float32, (2e-6 if dtype == jnp.float32 else 2e-2)
    y, want_y = f(x, theta), reference(x, theta)
    np.testing.assert_allclose(np.asarray(y, ct), np.asarray(want_y, ct), rtol=tol, atol=tol)
    g = jnp.asarray(np.cos(np.arange(21.0)).reshape(7, 3), dtype)
    got = jax.vjp(f, x, theta)[1](g)
    want = jax.vjp(reference, x, theta)[1](g)
    for gv, wv in zip(got, want):
        assert gv.dtype == wv.dtype
        np.testing.assert_allclose(np.asarray(gv, ct), np.asarray(wv, ct), rtol=tol, atol=tol)


def test_module_default_table_size_follows_the_layout():
    from flax import nnx

    from actfx.nn import DiTAC
    from actfx.nn.linen import DiTAC as LinenDiTAC

    assert DiTAC(rngs=nnx.Rngs(0)).table_size == 2048  # per layer: the reference's table
    assert DiTAC(4, rngs=nnx.Rngs(0)).table_size == 64  # per channel (benchmarks/ditac_cnn)
    assert DiTAC(4, table_size=512, rngs=nnx.Rngs(0)).table_size == 512
    act = DiTAC(3, rngs=nnx.Rngs(0))
    x = jnp.linspace(-1.0, 2.5, 12).reshape(4, 3)
    np.testing.assert_array_equal(
        act(x), actfx.ditac(x, act.theta[...], method="table", table_size=64)
    )
    m = LinenDiTAC(num_features=3)
    v = m.init(jax.random.key(0), x)
    np.testing.assert_array_equal(
        m.apply(v, x), actfx.ditac(x, v["params"]["theta"], method="table", table_size=64)
    )
    for bad in (0, 1, 2.5, True):
        with pytest.raises(ValueError, match="table_size"):
            DiTAC(3, table_size=bad, rngs=nnx.Rngs(0))


# ---- benchmark (the experiments are tested in test_experiment_ditac.py) ------------------


def test_benchmark_programs_compute_value_and_gradients(x64):
    """The programs benchmarks/ditac.py times compute f and its vjp: checked against
    central differences of <g, f> (an independent derivative)."""
    from benchmarks.ditac import fwd_bwd_theta
    from benchmarks.timing import fwd_bwd

    x = jnp.asarray(np.asarray(X_GRAD, np.float64)).reshape(2, 4)
    g = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4)))
    theta = jnp.asarray(THETA)
    f = lambda v, t: actfx.ditac(v, t, TESS, method="exact")
    y, dx, dth = fwd_bwd_theta(f, theta)(x, g)
    y1, dx1 = fwd_bwd(lambda v: f(v, theta))(x, g)
    np.testing.assert_allclose(y, f(x, theta), rtol=1e-14)  # other compiled program: ulps
    np.testing.assert_allclose(y1, y, rtol=1e-14)
    np.testing.assert_allclose(dx1, dx, rtol=1e-12)
    inner = lambda v, t: float(jnp.sum(g * f(v, t)))
    eps = 1e-6
    fd_x = np.array(
        [
            (inner(x + eps * e, theta) - inner(x - eps * e, theta)) / (2 * eps)
            for e in jnp.eye(8).reshape(8, 2, 4)
        ]
    ).reshape(2, 4)
    fd_t = np.array(
        [(inner(x, theta + eps * e) - inner(x, theta - eps * e)) / (2 * eps) for e in jnp.eye(9)]
    )
    np.testing.assert_allclose(dx, fd_x, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dth, fd_t, rtol=1e-6, atol=1e-8)


@pytest.mark.slow
def test_benchmark_ratios_are_the_timed_medians_over_gelu():
    from benchmarks import ditac as bench

    out = bench.main(["--shape", "2", "4", "4", "8", "--rounds", "1"])
    t, ratios = out["times_s"], out["ratios"]
    assert set(t) == {
        "GELU (erf)",
        "GELU (tanh)",
        "DiTAC table, dx",
        "DiTAC table, dx+dtheta",
        "DiTAC exact, dx",
        "DiTAC exact, dx+dtheta",
    }
    assert all(np.isfinite(v) and v > 0 for v in t.values())
    expected = {f"{k} / GELU (erf)": t[k] / t["GELU (erf)"] for k in t if k != "GELU (erf)"}
    assert ratios.keys() == expected.keys()
    for k, r in expected.items():
        assert ratios[k] == pytest.approx(r, rel=1e-12), k


def test_interval_beyond_the_compute_dtype_is_refused():
    """a=-3e38, b=3e38 gave NaN even at theta = 0 (b - a overflows float32): now a
    ValueError naming a and b; in float64 the same interval is representable and gives
    GELU at theta = 0."""
    x = jnp.array([-1.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="b - a must be finite"):
        actfx.ditac(x, jnp.zeros(9), a=-3e38, b=3e38)
    with pytest.raises(ValueError, match="b - a must be finite"):
        actfx.ditac(x, jnp.zeros(9), a=-1.0, b=1e39)
    with jax.enable_x64(True):
        x64 = jnp.asarray(x, jnp.float64)
        y = actfx.ditac(x64, jnp.zeros(9, jnp.float64), a=-3e38, b=3e38)
        np.testing.assert_array_equal(y, gelu_exact(x64))


@pytest.mark.parametrize("method", ["exact", "table"])
def test_empty_input_with_per_channel_theta(method):
    """x of shape (2, 0) with a (0, d) per-channel theta raised ZeroDivisionError."""
    for shape in ((2, 0), (0,)):
        y = actfx.ditac(jnp.zeros(shape), jnp.zeros((0, 9)), method=method)
        assert y.shape == shape and y.dtype == jnp.float32
    g = jax.grad(lambda t: actfx.ditac(jnp.zeros((2, 0)), t, method=method).sum())(
        jnp.zeros((0, 9))
    )
    assert g.shape == (0, 9)
