"""Robustness of the functional core (issue 12): hypothesis-driven calls of every public
function of actfx.layeract / nelu / mmelu / ditac / cpab with bad and extreme input.

Every call must either raise a ValueError/TypeError whose message names the offending
argument, or return values that are finite and agree with a float64 NumPy reference, with
finite gradients. The documented exceptions (see each function's docstring) are checked
as such: a NaN/inf input gives NaN in its pool/layer/point (elementwise functions: the
reference's own non-finite value), subnormal inputs may be flushed to zero (XLA on CPU),
and a traced NeLU lam outside (0, 1) gives NaN.

Shapes are fixed and small so that each (function, dtype, transformation) compiles once;
the default profile draws 12 (DiTAC/CPAB: 6) examples per property, derandomized
(tests/conftest.py); ``-m slow`` runs a deeper, randomized one.
``CASES`` counts the calls made and how each ended (printed by ``test_zz_report``).
"""

from __future__ import annotations

import collections
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ode_reference import rk4_cpab  # the float64 RK4 oracle (shared with test_ditac)

import actfx
from actfx import cpab

CASES: collections.Counter = collections.Counter()

# Default properties: few examples (each new (function, dtype, transformation) compiles);
# derandomized by the default hypothesis profile "ci" (tests/conftest.py), randomized under
# HYPOTHESIS_PROFILE=random (use --hypothesis-seed). The DEEP variants below explore more.
FAST = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
# DiTAC / CPAB compile a larger program per (dtype, transformation): fewer examples.
FAST_HEAVY = settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
# -m slow: deep and always randomized (new examples on every run).
DEEP = settings(
    max_examples=300, deadline=None, derandomize=False, suppress_health_check=list(HealthCheck)
)

FLOATS = ["float16", "bfloat16", "float32", "float64"]
BAD_DTYPES = ["int32", "complex64", "bool"]
TOL = {"float16": 4e-3, "bfloat16": 3e-2, "float32": 2e-5, "float64": 1e-9}


def _special(dtype: str):
    """Element values: ordinary, zero, +-1e+-30 (clipped to the dtype), subnormal, +-max,
    +-inf, NaN."""
    fi = jnp.finfo(dtype)
    big, tiny = float(fi.max), float(fi.tiny)
    vals = [0.0, 1.0, -2.5, 0.3, 1e30, -1e30, 1e-30, -1e-30, tiny / 4, big, -big / 2]
    vals = [v if abs(v) <= big else math.copysign(big, v) for v in vals]
    return vals


@st.composite
def arrays(draw, shape, dtype, allow_nonfinite=True):
    """A float64 NumPy array of ``shape`` mixing ordinary and special values, exactly
    representable in ``dtype``."""
    n = int(np.prod(shape))
    pool = _special(dtype)
    if allow_nonfinite:
        pool = pool + [math.inf, -math.inf, math.nan]
    kind = draw(st.sampled_from(["normal", "special", "scaled"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    if kind == "normal":
        x = rng.standard_normal(n) * 2
    elif kind == "scaled":  # one extreme scale for the whole array (homogeneity paths)
        scale = draw(
            st.sampled_from([1e-30, 1e-10, 1e10, 1e19, 1e30, float(jnp.finfo(dtype).max) / 8])
        )
        scale = min(scale, float(jnp.finfo(dtype).max) / 8)
        x = rng.standard_normal(n) * scale
    else:
        x = np.array([draw(st.sampled_from(pool)) for _ in range(n)])
    return np.asarray(
        jnp.asarray(x.reshape(shape), dtype).astype(
            jnp.float32 if dtype != "float64" else jnp.float64
        ),
        np.float64,
    )


def _as(x64arr, dtype):
    return jnp.asarray(x64arr, dtype)


def _x64(dtype):
    return jax.enable_x64(dtype == "float64")


def _record(fn, outcome):
    CASES[(fn, outcome)] += 1


def _expect_raises(fn_name, call, names):
    """The call must raise ValueError/TypeError naming one of ``names``."""
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    assert any(n in str(info.value) for n in names), (fn_name, str(info.value))
    _record(fn_name, "raised (named)")


def _compare(fn_name, got, ref, dtype, scale, min_tol=0.0):
    got = np.asarray(
        jnp.asarray(got, jnp.float32 if dtype != "float64" else jnp.float64), np.float64
    )
    big = float(jnp.finfo(dtype).max)
    # finite results beyond the dtype saturate (documented); inf from inf input stays inf
    ref = np.where(np.isfinite(ref), np.clip(ref, -big, big), ref)
    fin = np.isfinite(ref)
    assert np.all(np.isfinite(got[fin])), (fn_name, got, ref)
    assert np.all(np.isnan(got[~fin]) | (got[~fin] == ref[~fin])), (fn_name, got, ref)
    tol = max(TOL[dtype], min_tol)
    # error bound: tol relative to the scale of the pool / element, and a few smallest
    # normals absolutely (subnormals flush to zero)
    bound = tol * np.broadcast_to(scale, ref.shape) + 16 * float(jnp.finfo(dtype).tiny)
    err = np.abs(got - ref)
    assert np.all(err[fin] <= bound[fin]), (fn_name, dtype, got, ref, np.max((err - bound)[fin]))
    _record(fn_name, "finite, matches reference" if fin.all() else "documented non-finite")


def _finite_grad(fn_name, f, *args):
    g = jax.grad(lambda *a: jnp.sum(f(*a).astype(jnp.float32)), argnums=tuple(range(len(args))))(
        *args
    )
    for gi in g:
        assert bool(jnp.all(jnp.isfinite(gi.astype(jnp.float32)))), (fn_name, gi)
    _record(fn_name, "finite gradient")


def _ftz(x, dtype):
    """Subnormals of ``dtype`` as 0 (XLA on CPU flushes them)."""
    return np.where(np.abs(x) < float(jnp.finfo(dtype).tiny), 0.0, x)


# ---- LayerAct ----------------------------------------------------------------------------


def np_layeract(x, kind, alpha, ddof=1):
    x = np.asarray(x, np.float64)
    m = np.max(np.abs(x), axis=-1, keepdims=True)
    m = np.where((m > 0) & np.isfinite(m), m, 1.0)
    xs = x / m  # scale-free evaluation (the float64 reference would overflow otherwise)
    mu = xs.mean(axis=-1, keepdims=True)
    var = ((xs - mu) ** 2).sum(axis=-1, keepdims=True) / (x.shape[-1] - ddof)
    d = var + alpha / m**2
    with np.errstate(all="ignore"):
        n = np.where(d > 0, (xs - mu) / np.sqrt(np.where(d > 0, d, 1)), 0.0)
        s = 1 / (1 + np.exp(-n)) if kind == "silu" else np.clip(n / 6 + 0.5, 0, 1)
        out = x * s
    bad = ~np.all(np.isfinite(x), axis=-1, keepdims=True)
    return np.where(bad, np.nan, out)


LA_FNS = {
    "layeract_silu": (lambda x, **k: actfx.layeract_silu(x, **k), "silu"),
    "layeract_hardsilu": (lambda x, **k: actfx.layeract_hardsilu(x, **k), "hardsilu"),
    "layeract": (lambda x, **k: actfx.layeract(x, kind="silu", **k), "silu"),
}


def _prop_layeract(data):
    name = data.draw(st.sampled_from(sorted(LA_FNS)))
    fn, kind = LA_FNS[name]
    dtype = data.draw(st.sampled_from(FLOATS + BAD_DTYPES))
    if dtype in BAD_DTYPES:
        return _expect_raises(name, lambda: fn(jnp.ones((2, 4), dtype)), ["x"])
    bad_arg = data.draw(st.sampled_from([None, None, None, "axis", "alpha", "ddof", "size1"]))
    if bad_arg == "axis":
        v = data.draw(st.sampled_from([1.0, "1", (1, 1), 5, [0.5]]))
        return _expect_raises(name, lambda: fn(jnp.ones((2, 4)), axis=v), ["axis"])
    if bad_arg == "alpha":
        v = data.draw(st.sampled_from([-1.0, math.nan, math.inf, "0.1", None, True]))
        return _expect_raises(name, lambda: fn(jnp.ones((2, 4)), alpha=v), ["alpha"])
    if bad_arg == "ddof":
        v = data.draw(st.sampled_from([-1, 1.0, 4, 10]))
        return _expect_raises(name, lambda: fn(jnp.ones((2, 4)), ddof=v), ["ddof"])
    if bad_arg == "size1":
        return _expect_raises(name, lambda: fn(jnp.ones((3, 1))), ["ddof"])
    alpha = data.draw(st.sampled_from([0.0, 1e-5, 0.1]))
    with _x64(dtype):
        x = data.draw(arrays((2, 4), dtype))
        xj = _as(x, dtype)
        how = data.draw(st.sampled_from(["eager", "jit", "vmap"]))
        if how == "eager":
            y = fn(xj, alpha=alpha)
        elif how == "jit":
            y = jax.jit(functools.partial(fn, alpha=alpha))(xj)
        else:  # per-sample layers: vmap over the batch of (1, 4) layers
            y = jax.vmap(lambda r: fn(r[None], alpha=alpha)[0])(xj)
        assert y.shape == xj.shape and y.dtype == xj.dtype
        scale = np.max(np.abs(np.where(np.isfinite(x), x, 0)), axis=-1, keepdims=True)
        _compare(name, y, np_layeract(_ftz(x, dtype), kind, alpha), dtype, scale)
        if np.all(np.isfinite(x)):
            _finite_grad(name, lambda v: fn(v, alpha=alpha), xj)


@given(st.data())
@FAST
def test_layeract_robust(data):
    _prop_layeract(data)


@pytest.mark.slow
@given(st.data())
@DEEP
def test_layeract_robust_deep(data):
    _prop_layeract(data)


def test_layeract_empty_batch_and_traced_alpha():
    assert actfx.layeract(jnp.zeros((0, 4))).shape == (0, 4)
    _record("layeract", "empty batch -> empty")
    with pytest.raises(TypeError, match="alpha"):
        jax.jit(lambda a: actfx.layeract(jnp.ones((2, 4)), alpha=a))(0.1)  # static only
    _record("layeract", "raised (named)")


# ---- NeLU --------------------------------------------------------------------------------


def np_nelu(x, lam, two_sided=False, iters=400):
    """Fixed point r <- ||min(x, lam r)|| from ||x|| (monotone, converges to the largest
    root = the solution), float64, on x / max|x| per pool."""
    x = np.asarray(x, np.float64)
    bad = ~np.all(np.isfinite(x), axis=-1, keepdims=True)
    x = np.where(bad, 0.0, x)
    m = np.max(np.abs(x), axis=-1, keepdims=True)
    m = np.where(m > 0, m, 1.0)
    a = np.abs(x) / m if two_sided else x / m
    r = np.linalg.norm(a, axis=-1, keepdims=True)
    for _ in range(iters):
        r = np.linalg.norm(
            np.clip(a, -lam * r, lam * r) if two_sided else np.minimum(a, lam * r),
            axis=-1,
            keepdims=True,
        )
    z = np.maximum(a - lam * r, 0) * m
    z = np.sign(x) * z if two_sided else z
    return np.where(bad, np.nan, z)


def _prop_nelu(data):
    dtype = data.draw(st.sampled_from(FLOATS + BAD_DTYPES))
    if dtype in BAD_DTYPES:
        return _expect_raises("nelu", lambda: actfx.nelu(jnp.ones((2, 4), dtype), 0.4), ["x"])
    bad_arg = data.draw(st.sampled_from([None, None, None, "lam", "axis", "method", "iters"]))
    x1 = jnp.ones((2, 4))
    if bad_arg == "lam":
        v = data.draw(
            st.sampled_from([0.0, -0.1, 1.0, 2.0, math.nan, math.inf, "0.4", jnp.ones(3) * 0.4])
        )
        return _expect_raises("nelu", lambda: actfx.nelu(x1, v), ["lam"])
    if bad_arg == "axis":
        v = data.draw(st.sampled_from([2, 1.0, (0, 0), "x"]))
        return _expect_raises("nelu", lambda: actfx.nelu(x1, 0.4, axis=v), ["axis"])
    if bad_arg == "method":
        return _expect_raises("nelu", lambda: actfx.nelu(x1, 0.4, method="prox"), ["method"])
    if bad_arg == "iters":
        v = data.draw(st.sampled_from([0, 1.5, True]))
        return _expect_raises(
            "nelu", lambda: actfx.nelu(x1, 0.4, method="fixed_point", iters=v), ["iters"]
        )
    lam = data.draw(st.sampled_from([0.1, 0.4, 0.7]))
    two_sided = data.draw(st.booleans())
    with _x64(dtype):
        x = data.draw(arrays((2, 4), dtype))
        xj = _as(x, dtype)
        how = data.draw(st.sampled_from(["eager", "jit_traced_lam", "vmap"]))
        if how == "eager":
            y = actfx.nelu(xj, lam, two_sided=two_sided)
        elif how == "jit_traced_lam":
            y = jax.jit(lambda v, l: actfx.nelu(v, l, two_sided=two_sided))(xj, lam)
        else:
            y = jax.vmap(lambda r: actfx.nelu(r, lam, two_sided=two_sided))(xj)
        assert y.shape == xj.shape and y.dtype == xj.dtype
        scale = np.max(np.abs(np.where(np.isfinite(x), x, 0)), axis=-1, keepdims=True)
        _compare("nelu", y, np_nelu(_ftz(x, dtype), lam, two_sided), dtype, scale)
        if np.all(np.isfinite(x)):
            _finite_grad(
                "nelu",
                lambda v, l: actfx.nelu(v, l, two_sided=two_sided),
                xj,
                jnp.asarray(lam, xj.dtype),
            )


@given(st.data())
@FAST
def test_nelu_robust(data):
    _prop_nelu(data)


@pytest.mark.slow
@given(st.data())
@DEEP
def test_nelu_robust_deep(data):
    _prop_nelu(data)


def test_nelu_traced_bad_lam_is_nan_and_empty_is_empty():
    x = jnp.array([[3.0, -1.0, 0.5, -2.0], [1.0, 2.0, -3.0, 0.1]])
    for lam in (0.0, 1.0, 3.0, -1.0, math.nan):
        assert bool(jnp.all(jnp.isnan(jax.jit(actfx.nelu)(x, lam))))
        _record("nelu", "traced bad lam -> NaN (documented)")
    for shape in ((0, 4), (2, 0)):
        assert actfx.nelu(jnp.zeros(shape), 0.4).shape == shape
        _record("nelu", "empty -> empty")


# ---- MMeLU -------------------------------------------------------------------------------


def np_mmelu(x, c, lam, gamma):
    with np.errstate(all="ignore"):
        return (1 - c) * np.maximum(x, 0) + c * np.maximum(lam - np.abs(x - gamma), 0)


def _prop_mmelu(data):
    dtype = data.draw(st.sampled_from(FLOATS + BAD_DTYPES))
    if dtype in BAD_DTYPES:
        return _expect_raises(
            "mmelu", lambda: actfx.mmelu(jnp.ones(4, dtype), 0.5, 1.0, 0.0), ["x"]
        )
    bad = data.draw(st.sampled_from([None, None, None, "c", "lam", "gamma"]))
    if bad is not None:
        vals = {
            "c": [1.5, -0.1, math.nan, "a"],
            "lam": [-1.0, math.inf, None],
            "gamma": [math.nan, -math.inf, "0"],
        }
        params = {"c": 0.5, "lam": 1.0, "gamma": 0.0}
        params[bad] = data.draw(st.sampled_from(vals[bad]))
        return _expect_raises("mmelu", lambda: actfx.mmelu(jnp.ones(4), **params), [bad])
    c = data.draw(st.sampled_from([0.0, 0.3, 1.0]))
    lam = data.draw(st.sampled_from([0.0, 0.5, 2.0]))
    with _x64(dtype):
        x = data.draw(arrays((2, 4), dtype))
        gamma = float(data.draw(st.sampled_from([0.0, -1.0] + [v for v in _special(dtype)[:8]])))
        xj = _as(x, dtype)
        how = data.draw(st.sampled_from(["eager", "jit_traced", "vmap"]))
        if how == "eager":
            y = actfx.mmelu(xj, c, lam, gamma)
        elif how == "jit_traced":
            y = jax.jit(actfx.mmelu)(
                xj, jnp.asarray(c, dtype), jnp.asarray(lam, dtype), jnp.asarray(gamma, dtype)
            )
        else:
            y = jax.vmap(actfx.mmelu, in_axes=(0, None, None, None))(xj, c, lam, gamma)
        assert y.shape == xj.shape
        ref = np_mmelu(_ftz(x, dtype), c, lam, float(jnp.asarray(gamma, dtype).astype(jnp.float32)))
        _compare("mmelu", y, ref, dtype, np.maximum(np.abs(np.where(np.isfinite(x), x, 0)), 1.0))
        if np.all(np.isfinite(x)):
            _finite_grad("mmelu", lambda v: actfx.mmelu(v, c, lam, gamma), xj)


@given(st.data())
@FAST
def test_mmelu_robust(data):
    _prop_mmelu(data)


@pytest.mark.slow
@given(st.data())
@DEEP
def test_mmelu_robust_deep(data):
    _prop_mmelu(data)


# ---- CPAB --------------------------------------------------------------------------------

TESS = cpab.Tessellation(5)
TESS_FREE = cpab.Tessellation(5, zero_boundary=False)
_THETA0 = {True: np.array([0.8, -0.4, 0.3, 0.9]), False: np.array([0.5, -0.3, 0.2, 0.4, -0.6, 0.3])}


CPAB_FNS = ["transform", "inverse", "grad_x", "velocity", "transform_numeric"]


def _prop_cpab(data):
    name = data.draw(st.sampled_from(CPAB_FNS))
    fn = getattr(cpab, name)
    kw = {"steps": 400} if name == "transform_numeric" else {}
    zb = data.draw(st.booleans())
    tess = TESS if zb else TESS_FREE
    dtype = data.draw(st.sampled_from(FLOATS + BAD_DTYPES))
    th0 = _THETA0[zb]
    if dtype in BAD_DTYPES:
        return _expect_raises(
            name, lambda: fn(jnp.ones(6, dtype), jnp.asarray(th0, jnp.float32), tess, **kw), ["x"]
        )
    bad = data.draw(st.sampled_from([None, None, None, "theta", "tess", "time"]))
    if bad == "theta":
        v = data.draw(st.sampled_from([np.r_[th0[:-1], np.nan], th0[:-1], np.ones((2, 2, 4))]))
        return _expect_raises(
            name, lambda: fn(jnp.ones(6) / 2, jnp.asarray(v, jnp.float32), tess, **kw), ["theta"]
        )
    if bad == "tess":
        return _expect_raises(
            name, lambda: fn(jnp.ones(6) / 2, jnp.asarray(th0, jnp.float32), 5, **kw), ["tess"]
        )
    if bad == "time" and name != "velocity":
        v = data.draw(st.sampled_from([math.nan, math.inf, np.ones(2)]))
        return _expect_raises(
            name,
            lambda: fn(jnp.ones(6) / 2, jnp.asarray(th0, jnp.float32), tess, time=v, **kw),
            ["time"],
        )
    scale = data.draw(st.sampled_from([0.0, 1.0, 30.0, 100.0, 1e4]))
    with _x64(dtype):
        inside = data.draw(st.booleans())
        if inside:
            x = np.asarray(
                _as(data.draw(st.lists(st.floats(0, 1), min_size=6, max_size=6)), dtype).astype(
                    jnp.float32 if dtype != "float64" else jnp.float64
                ),
                np.float64,
            )
        else:
            x = data.draw(arrays((6,), dtype))
        th = np.asarray(
            _as(scale * th0, dtype).astype(jnp.float32 if dtype != "float64" else jnp.float64),
            np.float64,
        )
        xj, tj = _as(x, dtype), _as(th, dtype)
        jit = dtype == "float32" and data.draw(st.booleans())  # (one dtype: compile cost)
        f = (
            jax.jit(lambda a, b: fn(a, b, tess, **kw))
            if jit
            else (lambda a, b: fn(a, b, tess, **kw))
        )
        y = f(xj, tj)
        assert y.shape == xj.shape and y.dtype == xj.dtype
        yy = np.asarray(y.astype(jnp.float32 if dtype != "float64" else jnp.float64), np.float64)
        xfin = np.isfinite(x)
        if name in ("transform", "inverse", "transform_numeric"):
            assert np.all(np.isnan(yy[~xfin]))  # documented: non-finite x -> NaN
            assert np.all(np.isfinite(yy[xfin])) or dtype in ("float16", "bfloat16"), (name, x, yy)
            if zb:  # [0, 1] is invariant; order preserved
                ins = xfin & (x >= 0) & (x <= 1)
                assert np.all((yy[ins] >= 0) & (yy[ins] <= 1)), (name, x, yy)
                o = np.argsort(x[ins])
                assert np.all(np.diff(yy[ins][o]) >= 0), (name, x, yy)
            if scale <= 1.0 and name != "transform_numeric" and np.all(np.abs(x[xfin]) <= 4):
                ref = rk4_cpab(x, -th if name == "inverse" else th, tess)
                _compare(
                    name,
                    np.where(xfin, yy, np.nan),
                    np.where(xfin, ref, np.nan),
                    dtype,
                    1.0,
                    min_tol=2e-5,
                )  # the RK4 oracle's own error
            else:
                _record(name, "finite, bounds/order hold (no oracle at this scale)")
        elif name == "grad_x":
            assert np.all(np.isfinite(yy[xfin])) and np.all(yy[xfin] >= 0), (name, x, yy)
            _record(name, "finite, >= 0")
        else:  # velocity: exact formula
            A = tess.B @ th
            c = np.clip(
                np.floor(np.clip(np.nan_to_num(x), -2, 2) * tess.nc), 0, tess.nc - 1
            ).astype(int)
            with np.errstate(all="ignore"):
                ref = A[0::2][c] * x + A[1::2][c]
            ref = np.where(xfin, ref, np.nan)
            _compare(
                name,
                np.where(xfin, yy, np.nan),
                ref,
                dtype,
                np.maximum(np.abs(np.where(xfin, x, 0)), 1) * max(scale, 1),
            )
        if name != "velocity" and np.all(xfin) and name != "transform_numeric":
            _finite_grad(name, lambda a, b: fn(a, b, tess), xj, tj)


@given(st.data())
@FAST_HEAVY
def test_cpab_robust(data):
    _prop_cpab(data)


@pytest.mark.slow
@given(st.data())
@DEEP
def test_cpab_robust_deep(data):
    _prop_cpab(data)


def test_cpab_prior_and_tessellation_arguments():
    for bad, names in [
        (lambda: cpab.Tessellation(1), ["nc"]),
        (lambda: cpab.Tessellation(2.5), ["nc"]),
        (lambda: cpab.Tessellation(5, basis="lu"), ["basis"]),
        (lambda: cpab.Tessellation(5, basis=np.ones((3, 3))), ["basis"]),
        (lambda: cpab.prior_covariance(TESS, length_scale=-1.0), ["length_scale"]),
        (lambda: cpab.prior_covariance(TESS, length_scale=math.nan), ["length_scale"]),
        (lambda: cpab.prior_covariance(TESS, output_variance="1"), ["output_variance"]),
        (lambda: cpab.prior_covariance(TESS, kernel="rbf"), ["kernel"]),
        (lambda: cpab.precision_matrix(TESS, eps=math.nan), ["eps"]),
        (lambda: cpab.affine_covariance(5, length_scale=1.0, output_variance=1.0), ["tess"]),
        (lambda: cpab.sample_theta(jax.random.key(0), TESS, 0), ["n"]),
        (lambda: cpab.sample_theta(jax.random.key(0), TESS, 2.0), ["n"]),
    ]:
        _expect_raises("cpab prior/tessellation", bad, names)
    for kernel in cpab.KERNELS:
        for ls in (1e-3, 0.1, 5.0, 1e3):
            S = cpab.prior_covariance(TESS, length_scale=ls, output_variance=2.0, kernel=kernel)
            P = cpab.precision_matrix(TESS, length_scale=ls, output_variance=2.0, kernel=kernel)
            th = cpab.sample_theta(jax.random.key(1), TESS, 3, length_scale=ls, kernel=kernel)
            assert (
                np.all(np.isfinite(S))
                and np.all(np.isfinite(P))
                and bool(jnp.all(jnp.isfinite(th)))
            )
            _record("cpab prior", "finite")
    L = cpab.constraint_matrix(5)
    assert np.allclose(L @ TESS.B, 0)
    _record("cpab constraint_matrix", "finite, matches reference")


# ---- DiTAC -------------------------------------------------------------------------------

DITAC_TESS = cpab.Tessellation(10)
_DTHETA = np.asarray(
    cpab.sample_theta(jax.random.key(0), DITAC_TESS, length_scale=0.1, dtype=jnp.float32),
    np.float64,
)


def _gelu64(x):
    from scipy.special import erfc

    with np.errstate(all="ignore"):
        return x * 0.5 * erfc(-x / np.sqrt(2))


def np_ditac(x, theta, a=-0.5, b=2.0):
    x = np.asarray(x, np.float64)
    inside = (x >= a) & (x <= b)
    u = np.clip(np.where(np.isfinite(x), (x - a) / (b - a), 0.5), 0, 1)
    T = np.where(inside, a + (b - a) * rk4_cpab(u, theta, DITAC_TESS), x)
    from scipy.special import erfc

    with np.errstate(all="ignore"):
        out = np.where(inside, T * 0.5 * erfc(-x / np.sqrt(2)), _gelu64(x))
    return np.where(np.isnan(x), np.nan, out)


def _prop_ditac(data):
    dtype = data.draw(st.sampled_from(FLOATS + BAD_DTYPES))
    th0 = jnp.asarray(_DTHETA, jnp.float32)
    if dtype in BAD_DTYPES:
        return _expect_raises("ditac", lambda: actfx.ditac(jnp.ones(4, dtype), th0), ["x"])
    bad = data.draw(
        st.sampled_from([None, None, None, "theta", "method", "a", "table_size", "variant"])
    )
    x1 = jnp.ones((2, 4))
    if bad == "theta":
        # A theta of another length d is valid with tess=None (it means nc = d + 1); with
        # the tessellation given, a wrong length must raise.
        v, tess = data.draw(
            st.sampled_from(
                [
                    (th0.at[0].set(jnp.nan), None),
                    (jnp.ones((2, 2, 9)), None),
                    (jnp.ones((3, 9)), None),
                    (th0[:-1], DITAC_TESS),
                    (jnp.ones((4, 10)), DITAC_TESS),
                ]
            )
        )
        return _expect_raises("ditac", lambda: actfx.ditac(x1, v, tess=tess), ["theta"])
    if bad == "method":
        return _expect_raises("ditac", lambda: actfx.ditac(x1, th0, method="fast"), ["method"])
    if bad == "a":
        v = data.draw(st.sampled_from([math.nan, "0", 3.0]))
        return _expect_raises("ditac", lambda: actfx.ditac(x1, th0, a=v), ["a"])
    if bad == "table_size":
        v = data.draw(st.sampled_from([1, 2.5, True]))
        return _expect_raises(
            "ditac", lambda: actfx.ditac(x1, th0, method="table", table_size=v), ["table_size"]
        )
    if bad == "variant":
        return _expect_raises("ditac", lambda: actfx.ditac(x1, th0, variant="leaky"), ["variant"])
    method = data.draw(st.sampled_from(["exact", "table"]))
    scale = data.draw(st.sampled_from([0.0, 1.0, 100.0]))
    with _x64(dtype):
        x = data.draw(arrays((2, 4), dtype))
        th = scale * _DTHETA
        xj, tj = _as(x, dtype), jnp.asarray(th, jnp.float32 if dtype != "float64" else jnp.float64)
        jit = dtype == "float32" and data.draw(st.booleans())  # (one dtype: compile cost)
        f = (
            jax.jit(lambda a, b: actfx.ditac(a, b, method=method))
            if jit
            else (lambda a, b: actfx.ditac(a, b, method=method))
        )
        y = f(xj, tj)
        assert y.shape == xj.shape and y.dtype == xj.dtype
        yy = np.asarray(y.astype(jnp.float32 if dtype != "float64" else jnp.float64), np.float64)
        if scale <= 1.0 and method == "exact":
            ref = np_ditac(_ftz(x, dtype), np.asarray(tj, np.float64))
            _compare(
                "ditac",
                yy,
                ref,
                dtype,
                np.maximum(np.abs(np.where(np.isfinite(x), x, 0)), 1.0),
                min_tol=2e-5,
            )  # the RK4 oracle's own error
        else:  # no pointwise oracle for the table at a steep field / for 100x: GELU outside
            out = np.isfinite(x) & ((x < -0.5) | (x > 2.0))
            np.testing.assert_allclose(yy[out], _gelu64(x[out]), rtol=TOL[dtype], atol=TOL[dtype])
            ins = np.isfinite(x) & ~out
            assert np.all(np.isfinite(yy[ins]))
            _record("ditac", "finite, GELU outside [a, b]")
        if np.all(np.isfinite(x)):
            _finite_grad("ditac", lambda a, b: actfx.ditac(a, b, method=method), xj, tj)


@given(st.data())
@FAST_HEAVY
def test_ditac_robust(data):
    _prop_ditac(data)


@pytest.mark.slow
@given(st.data())
@DEEP
def test_ditac_robust_deep(data):
    _prop_ditac(data)


def test_ditac_regularizer_robust():
    P = cpab.precision_matrix(DITAC_TESS, length_scale=5.0, output_variance=2.0, kernel="ditac")
    for scale in (0.0, 1.0, 1e10):
        th = jnp.asarray(scale * _DTHETA, jnp.float32)
        r = actfx.ditac_regularizer(th, P)
        ref = float(np.asarray(th, np.float64) @ P @ np.asarray(th, np.float64))
        np.testing.assert_allclose(float(r), ref, rtol=1e-4, atol=1e-6)
        assert bool(
            jnp.all(
                jnp.isfinite(jax.grad(actfx.ditac_regularizer)(th, jnp.asarray(P, jnp.float32)))
            )
        )
        _record("ditac_regularizer", "finite, matches reference")
    for bad, name in [
        ((jnp.ones(9, jnp.int32), P), "theta"),
        ((jnp.ones(8), P), "precision"),
        ((jnp.ones(9), P * np.nan), "precision"),
        ((jnp.ones((2, 2, 9)), P), "theta"),
    ]:
        _expect_raises("ditac_regularizer", lambda: actfx.ditac_regularizer(*bad), [name])


def test_ditac_empty_and_per_channel_zero():
    assert actfx.ditac(jnp.zeros((0,)), jnp.asarray(_DTHETA, jnp.float32)).shape == (0,)
    assert actfx.ditac(
        jnp.zeros((0,)), jnp.asarray(_DTHETA, jnp.float32), method="table"
    ).shape == (0,)
    _record("ditac", "empty -> empty")


def test_zz_report(capsys):
    """Prints the case counts of this module's run (the report's table)."""
    with capsys.disabled():
        total = sum(CASES.values())
        print(f"\nrobustness_core: {total} checks")
        for (fn, outcome), n in sorted(CASES.items()):
            print(f"  {fn:28s} {outcome:40s} {n}")
