"""LayerAct: NumPy reference, gradients, the paper's backward, dtypes, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from layeract_reference import np_layeract_vjp  # the float64 closed-form oracle

import actfx


def np_layeract(x, kind="silu", alpha=1e-5, axis=None, ddof=1):
    """Independent float64 NumPy reference."""
    x = np.asarray(x, np.float64)
    axes = tuple(range(1, x.ndim)) if axis is None else axis
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True, ddof=ddof)
    n = (x - mu) / np.sqrt(var + alpha)
    s = 1 / (1 + np.exp(-n)) if kind == "silu" else np.clip(n / 6 + 0.5, 0, 1)
    return x * s


AXES = [None, (1, 2), -1, (1, 2, 3), (2, 3), 2]
SLOW = pytest.mark.slow
KINDS = ("silu", "hardsilu")


@pytest.mark.parametrize(
    "kind,axis",
    # default: every axis once, the two kinds alternating; the other pairs under -m slow
    [
        pytest.param(kind, axis, marks=[] if i % 2 == j else [SLOW])
        for i, axis in enumerate(AXES)
        for j, kind in enumerate(KINDS)
    ],
)
def test_matches_numpy_reference_float64(x64, kind, axis):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 6, 4)) * 2 + 0.3
    got = actfx.layeract(jnp.asarray(x), kind=kind, axis=axis)
    assert got.dtype == jnp.float64
    np.testing.assert_allclose(got, np_layeract(x, kind, axis=axis), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("ddof", [0, 1, 2])
@pytest.mark.parametrize("alpha", [0.0, 1e-5, 0.1])
def test_ddof_and_alpha(x64, ddof, alpha):
    x = np.random.default_rng(1).normal(size=(4, 7))
    got = actfx.layeract_silu(jnp.asarray(x), alpha=alpha, ddof=ddof)
    np.testing.assert_allclose(got, np_layeract(x, alpha=alpha, ddof=ddof), rtol=1e-12)


def test_named_variants_are_kinds():
    x = jax.random.normal(jax.random.key(0), (2, 3, 3, 5))
    np.testing.assert_array_equal(actfx.layeract_silu(x), actfx.layeract(x, kind="silu"))
    np.testing.assert_array_equal(actfx.layeract_hardsilu(x), actfx.layeract(x, kind="hardsilu"))


def test_per_sample_independence():
    # Statistics are per sample: changing sample 1 leaves sample 0's output unchanged.
    x = jax.random.normal(jax.random.key(1), (2, 4, 4, 3))
    y = x.at[1].multiply(10.0).at[1].add(3.0)
    np.testing.assert_array_equal(actfx.layeract_silu(x)[0], actfx.layeract_silu(y)[0])


def test_hardsilu_saturates_like_hardsilu_of_n():
    # Where n >= 3 the gate is 1 (identity); where n <= -3 it is 0.
    x = jnp.concatenate([jnp.zeros((1, 99)), jnp.full((1, 1), 100.0)], axis=1)
    out = actfx.layeract_hardsilu(x)
    assert out[0, -1] == 100.0
    np.testing.assert_array_equal(out[0, :-1], 0.0)


@pytest.mark.parametrize(
    "kind,axis",
    # second order (silu) and first order (hardsilu) over the whole sample (the second
    # shares the first's compiles); over the last axis under -m slow (the same gradient code
    # with other reduction axes; values on every axis: test_matches_numpy_reference_float64)
    [
        ("silu", None),
        ("hardsilu", None),
        pytest.param("silu", -1, marks=SLOW),
        pytest.param("hardsilu", -1, marks=SLOW),
    ],
)
def test_gradients_check_grads(x64, kind, axis):
    x = jax.random.normal(jax.random.key(2), (2, 3, 5), jnp.float64)
    # jitted: the same derivative rules, about half the compile time of eager dispatch
    f = jax.jit(lambda v: actfx.layeract(v, kind=kind, axis=axis, alpha=1e-3))
    check_grads(f, (x,), order=2 if kind == "silu" else 1, modes=("fwd", "rev"), eps=1e-4)


def test_gradient_matches_numpy_finite_differences(x64):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 6))
    w = rng.normal(size=(2, 6))
    loss = lambda v: jnp.sum(w * actfx.layeract_silu(v))
    g = np.asarray(jax.grad(loss)(jnp.asarray(x)))
    fd = np.zeros_like(x)
    h = 1e-6
    for idx in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        fd[idx] = (np.sum(w * np_layeract(x + e)) - np.sum(w * np_layeract(x - e))) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kind", ["silu", "hardsilu"])
def test_paper_backward_reproduces_reference_formula(x64, kind):
    # grad="paper" must reproduce the reference code's hand-written backward exactly.
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 10))
    g = rng.normal(size=(2, 10))
    _, vjp = jax.vjp(lambda v: actfx.layeract(v, kind=kind, grad="paper"), jnp.asarray(x))
    (dx,) = vjp(jnp.asarray(g))
    mu = x.mean(1, keepdims=True)
    std = np.sqrt(x.var(1, ddof=1, keepdims=True) + 1e-5)
    n = (x - mu) / std
    if kind == "silu":
        s = 1 / (1 + np.exp(-n))
        ds = s * (1 - s)
    else:
        s = np.clip(n / 6 + 0.5, 0, 1)
        ds = np.where(np.abs(n) < 3, 1 / 6, 0.0)
    dn = g * x * ds / std
    ref = g * s + dn - dn.mean(1, keepdims=True) - (dn * n).mean(1, keepdims=True) * n
    np.testing.assert_allclose(dx, ref, rtol=1e-12, atol=1e-14)
    # Same forward values as autodiff mode.
    np.testing.assert_allclose(
        actfx.layeract(jnp.asarray(x), kind=kind, grad="paper"),
        actfx.layeract(jnp.asarray(x), kind=kind),
    )


def test_paper_backward_agrees_with_true_gradient_on_large_layers(x64):
    # The paper's backward is exact only for ddof=0, alpha->0; its error is O(1/N).
    errs = []
    for n in (64, 1024, 16384):
        x = jax.random.normal(jax.random.key(5), (2, n), jnp.float64)
        g = jax.random.normal(jax.random.key(6), (2, n), jnp.float64)
        true = jax.vjp(lambda v: actfx.layeract_silu(v, alpha=0.0), x)[1](g)[0]
        paper = jax.vjp(lambda v: actfx.layeract_silu(v, alpha=0.0, grad="paper"), x)[1](g)[0]
        errs.append(float(jnp.max(jnp.abs(true - paper)) / jnp.max(jnp.abs(true))))
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 5e-3
    # With ddof=0 and alpha=0 the two agree to round-off.
    x = jax.random.normal(jax.random.key(7), (2, 50), jnp.float64)
    true = jax.grad(lambda v: jnp.sum(jnp.sin(actfx.layeract_silu(v, alpha=0.0, ddof=0))))(x)
    paper = jax.grad(
        lambda v: jnp.sum(jnp.sin(actfx.layeract_silu(v, alpha=0.0, ddof=0, grad="paper")))
    )(x)
    np.testing.assert_allclose(true, paper, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_dtype_preserved_and_close_to_float32(dtype):
    x = jax.random.normal(jax.random.key(8), (2, 8, 8, 4))
    out = actfx.layeract_silu(x.astype(dtype))
    assert out.dtype == dtype
    ref = actfx.layeract_silu(x.astype(dtype).astype(jnp.float32))
    np.testing.assert_allclose(out.astype(jnp.float32), ref, rtol=2e-2, atol=2e-2)


def test_jit_and_vmap_parity():
    x = jax.random.normal(jax.random.key(9), (3, 2, 6, 6, 4))
    f = lambda v: actfx.layeract_hardsilu(v)
    eager = jnp.stack([f(v) for v in x])
    np.testing.assert_allclose(jax.vmap(f)(x), eager, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jax.jit(f)(x[0]), eager[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kind": "relu"}, "kind"),
        ({"alpha": -1.0}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"ddof": -1}, "ddof"),
        ({"axis": 4}, "axis"),
        ({"axis": (1, 1)}, "axis"),
        ({"grad": "approx"}, "grad"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        actfx.layeract(jnp.ones((2, 3, 3, 2)), **kwargs)


def test_too_small_layer_raises_instead_of_nan():
    with pytest.raises(ValueError, match="ddof"):
        actfx.layeract(jnp.ones((4, 1)))  # one entry per layer, unbiased variance
    with pytest.raises(ValueError, match="batch axis"):
        actfx.layeract(jnp.ones((5,)))
    with pytest.raises(ValueError, match="floating"):
        actfx.layeract(jnp.ones((2, 3), jnp.int32))


# ---- issue 12: alpha = 0 on constant layers, overflow, HardSiLU kink, argument types -----


@pytest.mark.parametrize("kind", ["silu", "hardsilu"])
@pytest.mark.parametrize("grad", ["autodiff", "paper"])
def test_alpha_zero_constant_layer_is_finite(kind, grad):
    """A dead ReLU layer (all zeros) with alpha = 0 was NaN (0/0). Defined: n = 0, so the
    output is x * s(0) = x/2, with finite gradients."""
    for x in (jnp.zeros((2, 4)), jnp.full((2, 4), 3.0)):
        y = actfx.layeract(x, kind=kind, alpha=0.0, grad=grad)
        np.testing.assert_array_equal(y, x / 2)
        g = jax.grad(lambda v: actfx.layeract(v, kind=kind, alpha=0.0, grad=grad).sum())(x)
        assert bool(jnp.all(jnp.isfinite(g)))
    # a non-constant layer with alpha = 0 is unaffected (scale-invariant n)
    x = jnp.array([[-1.0, 0.0, 1.0, 2.0]])
    np.testing.assert_allclose(
        actfx.layeract(x * 1e-20, alpha=0.0) * 1e20, actfx.layeract(x, alpha=0.0), rtol=1e-6
    )


DTYPES = ("float16", "bfloat16", "float32", "float64")


def _np_layeract(x, kind, alpha, ddof=1):
    x = np.asarray(x, np.float64)
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).sum(axis=-1, keepdims=True) / (x.shape[-1] - ddof)
    n = (x - mu) / np.sqrt(var + alpha)
    s = 1 / (1 + np.exp(-n)) if kind == "silu" else np.clip(n / 6 + 0.5, 0, 1)
    return x * s


@pytest.mark.parametrize(
    "kind,dtype",
    # default: every dtype once, the kinds alternating (the other test pairs them the
    # other way round); the rest under -m slow
    [
        pytest.param(kind, dtype, marks=[] if (i + 0) % 2 == j else [SLOW])
        for i, dtype in enumerate(DTYPES)
        for j, kind in enumerate(KINDS)
    ],
)
def test_overflow_safe_up_to_the_dtype_max(x64, dtype, kind):
    """float32 used to return x/2 above ~1.8e19 (the variance overflowed)."""
    fi = jnp.finfo(dtype)
    base = np.array([[-1.0, 0.25, 1.0, 0.5], [0.1, -0.7, 0.3, 0.9]])
    for scale in (float(fi.max) / 2, 2.0 ** (int(np.log2(float(fi.max))) // 2 + 3), 1.0):
        x = jnp.asarray(base * scale, dtype)
        y = actfx.layeract(x, kind=kind, alpha=0.0)
        assert y.dtype == x.dtype and bool(jnp.all(jnp.isfinite(y)))
        # alpha = 0: LayerAct is positively homogeneous, so the float64 reference is
        # evaluated on x / scale (it would overflow itself on x).
        ref = _np_layeract(np.asarray(x, np.float64) / scale, kind, 0.0)
        tol = 4 * float(fi.eps) if dtype != "float64" else 1e-12
        np.testing.assert_allclose(np.asarray(y, np.float64) / scale, ref, rtol=tol, atol=tol)
        g = jax.grad(lambda v: actfx.layeract(v, kind=kind, alpha=0.0).astype(jnp.float32).sum())(x)
        assert bool(jnp.all(jnp.isfinite(g.astype(jnp.float32))))


@pytest.mark.parametrize(
    "kind,dtype",
    # default: every dtype once, the kinds alternating (the other test pairs them the
    # other way round); the rest under -m slow
    [
        pytest.param(kind, dtype, marks=[] if (i + 1) % 2 == j else [SLOW])
        for i, dtype in enumerate(DTYPES)
        for j, kind in enumerate(KINDS)
    ],
)
def test_gradient_finite_and_exact_at_the_dtype_max(x64, dtype, kind):
    """Regression (robustness property, bfloat16): a layer ``[0, max, max, max]`` gave a
    gradient of -inf: the cotangent of ``n`` (``g x s'(n)``, of the size of ``max``) was
    summed over the layer before the ``2^-e`` rescaling. alpha = 0: LayerAct is
    homogeneous of degree 1, so its gradient at ``x`` equals the gradient at ``x / max``."""
    big = float(jnp.finfo(dtype).max)
    pattern = np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0], [-1.0, 0.5, 1.0, 1.0]])
    x = jnp.asarray(pattern * big, dtype)
    acc = jnp.float64 if dtype == "float64" else jnp.float32
    f = lambda v: actfx.layeract(v, kind=kind, alpha=0.0).astype(acc).sum()
    g = np.asarray(jax.grad(f)(x).astype(acc), np.float64)
    ref = np.asarray(
        jax.grad(lambda v: actfx.layeract(v, kind=kind, alpha=0.0).sum())(
            jnp.asarray(np.asarray(x, np.float64) / big, jnp.float64)
        )
    )
    assert np.all(np.isfinite(g)), g
    tol = 8 * float(jnp.finfo(dtype).eps) if dtype != "float64" else 1e-12
    np.testing.assert_allclose(g, ref, rtol=tol, atol=tol)


def test_hardsilu_slope_convention_at_the_kinks(x64):
    """Reference slope of the HardSiLU gate: 1/6 on (-3, 3] -- n = +3 included, -3 not."""
    from actfx._src.layeract_math import gate as _scale
    from actfx._src.layeract_math import gate_grad as _scale_grad

    n = jnp.array([-3.0, -2.9, 0.0, 2.9, 3.0, 3.1])
    np.testing.assert_array_equal(_scale_grad(n, "hardsilu"), [0, 1 / 6, 1 / 6, 1 / 6, 1 / 6, 0])
    auto = jax.vmap(jax.grad(lambda v: _scale(v, "hardsilu")))(n)
    np.testing.assert_array_equal(auto, _scale_grad(n, "hardsilu"))
    np.testing.assert_allclose(
        _scale(n, "hardsilu"), np.clip(np.asarray(n) / 6 + 0.5, 0, 1), rtol=1e-14
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"axis": 1.0}, "axis"),
        ({"axis": "1"}, "axis"),
        ({"axis": (1, 2.0)}, "axis"),
        ({"alpha": "0.1"}, "alpha"),
        ({"alpha": None}, "alpha"),
        ({"alpha": True}, "alpha"),
        ({"ddof": 1.0}, "ddof"),
        ({"kind": ["silu"]}, "kind"),
    ],
)
def test_wrong_types_raise_type_errors_naming_the_argument(kwargs, match):
    with (
        pytest.raises(TypeError, match=match)
        if "kind" not in kwargs
        else pytest.raises(ValueError, match=match)
    ):
        actfx.layeract(jnp.ones((2, 3)), **kwargs)


# ---- issue 22: statistics shifted by a layer element, alpha scaled with the layer --------


def _value_and_grad(x, g, **kw):
    y, pull = jax.vjp(lambda v: actfx.layeract(v, implementation="xla", **kw), x)
    return np.asarray(y, np.float64), np.asarray(pull(g)[0], np.float64)


F32 = float(jnp.finfo(jnp.float32).eps)


@pytest.mark.parametrize("alpha", [0.0, 1e-5, 0.1])
def test_constant_layer_is_exactly_half_x(alpha):
    """A constant layer has n = 0, so LayerAct is x/2 exactly, at every magnitude and with
    a non-trailing layer axis. Was: float32's mean of equal values is off by an ulp, so n was
    +-0.8..0.94 (layeract_silu(full(1e30)) = 0.31 x, layeract(full(0.1), alpha=0) = 0.0307)."""
    vals = np.array([0.1, -3.0, 1e30, -1e36, 3e38, 1e-30, 0.0], np.float32)
    x = jnp.asarray(np.repeat(vals[:, None], 7, axis=1))
    for kind in ("silu", "hardsilu"):
        np.testing.assert_array_equal(actfx.layeract(x, kind=kind, alpha=alpha), x / 2)
        # a non-trailing layer axis: (7 layers of 3) laid out along axis 1
        xt = jnp.broadcast_to(x[:, None, :], (7, 3, 7))
        y = actfx.layeract(xt, kind=kind, alpha=alpha, axis=1)
        np.testing.assert_array_equal(y, xt / 2)


@pytest.mark.parametrize("grad", ["autodiff", "paper"])
def test_constant_layer_gradient_matches_closed_form(grad):
    """n = 0: dx = g/2 + (x / sqrt(alpha)) s'(0) (g - mean g), finite wherever that is
    (up to |x| ~ 1e36 for alpha = 1e-5, where 2^e / sqrt(alpha) itself overflows)."""
    g = jax.random.normal(jax.random.key(11), (4, 9))
    x = jnp.asarray(np.repeat(np.array([[0.1], [1e30], [-1e36], [7.0]], np.float32), 9, 1))
    for kind in ("silu", "hardsilu"):
        _, dx = _value_and_grad(x, g, kind=kind, alpha=1e-5, grad=grad)
        _, ref = np_layeract_vjp(x, g, kind, 1e-5)
        err = np.abs(dx - ref) / np.abs(ref).max(-1, keepdims=True)  # per layer
        assert err.max() <= 8 * F32, (kind, err.max(-1) / F32)


def test_tiny_relative_spread_at_large_magnitude():
    """[1e30, 1e30 + ulp, 1e30]: the spread is one ulp; shifted by the first entry it is
    exact. Was [2.69e29, 5.00e29, 2.69e29] (the float32 mean), not [3.60e29, 7.60e29, ...]."""
    a = np.float32(1e30)
    x = jnp.asarray(np.array([[a, np.nextafter(a, np.float32(np.inf)), a]], np.float32))
    g = jax.random.normal(jax.random.key(12), x.shape)
    y, dx = _value_and_grad(x, g)
    ref_y, ref_dx = np_layeract_vjp(x, g)
    np.testing.assert_allclose(y, ref_y, rtol=4 * F32)
    np.testing.assert_allclose(y[0, :2] / 1e29, [3.5954, 7.6037], rtol=1e-4)
    np.testing.assert_allclose(dx, ref_dx, rtol=16 * F32, atol=16 * F32 * np.abs(ref_dx).max())


@pytest.mark.parametrize(
    "scale,offset,alpha",
    [(1.0, 1e6, 1e-5), (1e-3, 1e4, 1e-5), (1e20, 0.0, 1e39), (1e-20, 0.0, 1e-40), (1.0, 0.0, 0.1)],
)
def test_float32_matches_float64_at_large_mean_and_extreme_alpha(scale, offset, alpha):
    """|mean| / std up to 1e6 (was: n shifted by ulp(mean) / std, 1e5+ eps), and alpha
    outside float32's range (was rounded to inf / 0 before the scaling: 35-51 % off)."""
    base = np.random.default_rng(13).normal(size=(3, 40))
    x = jnp.asarray((base * scale + offset).astype(np.float32))
    g = jax.random.normal(jax.random.key(14), x.shape)
    for kind in ("silu", "hardsilu"):
        y, dx = _value_and_grad(x, g, kind=kind, alpha=alpha)
        ref_y, ref_dx = np_layeract_vjp(x, g, kind, alpha)
        np.testing.assert_allclose(y, ref_y, rtol=8 * F32, atol=8 * F32 * np.abs(ref_y).max())
        tol = 16 * F32 * np.abs(ref_dx).max()
        np.testing.assert_allclose(dx, ref_dx, rtol=16 * F32, atol=tol)


def test_empty_batch_under_vmap_returns_empty():
    for impl in (None, "xla"):
        f = lambda v, impl=impl: actfx.layeract(v, implementation=impl)
        assert jax.vmap(f)(jnp.zeros((0, 2, 5))).shape == (0, 2, 5)
        g = jax.grad(lambda v, f=f: jnp.sum(jax.vmap(f)(v)))(jnp.zeros((0, 2, 5)))
        assert g.shape == (0, 2, 5)
