"""NNX activation modules: agreement with the functional core, Flax conventions
(num_features / channel_axis / dtype / param_dtype / rngs), constraints that hold after
huge optimiser steps, zero sizes, pickling and deep copies."""

import copy
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import actfx
from actfx import nn as ann

X4 = jax.random.normal(jax.random.key(2), (8, 4))


def test_layeract_module_matches_functional():
    x = jax.random.normal(jax.random.key(0), (2, 5, 5, 3))
    for kind in ("silu", "hardsilu"):
        np.testing.assert_array_equal(ann.LayerAct(kind)(x), actfx.layeract(x, kind=kind))
    np.testing.assert_array_equal(
        ann.LayerAct(axis=[-1], alpha=0.1)(x), actfx.layeract(x, axis=-1, alpha=0.1)
    )


def test_topk_module_matches_functional_and_can_be_disabled():
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, 3))
    mod = ann.TopK(0.2)
    np.testing.assert_array_equal(mod(x), actfx.topk(x, 0.2))
    mod.enabled = False
    np.testing.assert_array_equal(mod(x), x)


def _sgd_steps(module, loss, lr, steps=3):
    opt = nnx.Optimizer(module, optax.sgd(lr), wrt=nnx.Param)

    @nnx.jit
    def step(m, o):
        g = nnx.grad(loss)(m)
        o.update(m, g)

    for _ in range(steps):
        step(module, opt)


@pytest.mark.parametrize("num_features", [None, 4])
def test_mmelu_module_matches_functional_and_trains(num_features):
    act = ann.MMeLU(num_features, c_init=0.3, lam_init=0.7, gamma_init=0.1, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(act.c, 0.3, rtol=1e-6)
    np.testing.assert_allclose(act.lam, 0.7, rtol=1e-6)
    np.testing.assert_allclose(act.gamma, 0.1, rtol=1e-6)
    assert act.c.shape == act.lam.shape == act.gamma.shape == (() if num_features is None else (4,))
    np.testing.assert_allclose(act(X4), actfx.mmelu(X4, 0.3, 0.7, 0.1), rtol=1e-6, atol=1e-7)
    params = {p[-1] for p, _ in nnx.to_flat_state(nnx.state(act, nnx.Param))}
    assert params == {"c_raw", "lam_raw", "gamma_raw"}
    target = jnp.sin(3 * X4)
    before = np.asarray(act.gamma)
    _sgd_steps(act, lambda m: jnp.mean((m(X4) - target) ** 2), 0.5)
    assert not np.allclose(act.gamma, before)


@pytest.mark.parametrize(
    "lr",
    [pytest.param(1e4, marks=pytest.mark.slow), pytest.param(1e8, marks=pytest.mark.slow), 1e30],
)
def test_constraints_hold_strictly_after_huge_sgd_steps(lr):
    """c stays in (0, 1), lam in (0, inf) / (0, lam_max) -- never on a bound -- however large
    the step (issue 12: c = 1.0 and lam = 0.0 after large steps; NeLU lam unbounded)."""
    mm = ann.MMeLU(4, rngs=nnx.Rngs(0))
    # push c towards 1 (target = the bump) and lam towards 0 (target = 0 everywhere) by turns
    _sgd_steps(mm, lambda m: -jnp.mean(m(X4)), lr)
    c, lam = np.asarray(mm.c), np.asarray(mm.lam)
    assert np.all((c > 0) & (c < 1)) and np.all(lam > 0), (c, lam)
    mm2 = ann.MMeLU(4, rngs=nnx.Rngs(0))
    _sgd_steps(mm2, lambda m: jnp.mean(m(X4) ** 2), lr)
    c, lam = np.asarray(mm2.c), np.asarray(mm2.lam)
    assert np.all((c > 0) & (c < 1)) and np.all(lam > 0), (c, lam)
    for sign in (1.0, -1.0):  # raw values at the float32 extremes
        mm2.c_raw[...] = jnp.full((4,), sign * 3e38)
        mm2.lam_raw[...] = jnp.full((4,), -3e38)
        assert np.all((np.asarray(mm2.c) > 0) & (np.asarray(mm2.c) < 1))
        assert np.all(np.asarray(mm2.lam) > 0)
        assert np.all(np.isfinite(mm2(X4)))
    x = jax.random.normal(jax.random.key(7), (4, 36))
    for sign in (1.0, -1.0):
        ne = ann.NeLU(rngs=nnx.Rngs(0))
        _sgd_steps(ne, lambda m: sign * jnp.mean(m(x) ** 2), lr)
        lam = float(ne.lam)
        assert 0.0 < lam < ne.lam_max, lam
        y = ne(x)
        assert np.all(np.isfinite(y))
        np.testing.assert_array_equal(nnx.jit(lambda m, v: m(v))(ne, x), y)


def test_constrained_values_are_read_only():
    mm = ann.MMeLU(rngs=nnx.Rngs(0))
    for name in ("c", "lam", "gamma"):
        with pytest.raises(AttributeError):
            setattr(mm, name, 0.5)
    with pytest.raises(AttributeError):
        ann.NeLU().lam = 1.0


def test_nelu_defaults_on_a_small_pool():
    """NeLU() on 4 features: lam = 2 = sqrt(4) gives the core's bound w = 1 -- the module
    clips the weight below 1 instead of raising, and jit agrees with eager."""
    x = jnp.array([[300.0, -300.0, 200.0, 100.0], [3.0, -1.0, 0.5, -2.0]])
    act = ann.NeLU()
    y = act(x)
    np.testing.assert_array_equal(nnx.jit(lambda m, v: m(v))(act, x), y)
    assert y.shape == x.shape and np.all(np.isfinite(y)) and np.all(np.asarray(y) >= 0)
    # the clipped weight is the strongest valid shrinkage: never weaker than a smaller lam
    weaker = ann.NeLU(lam_init=1.0)(x)
    assert np.all(np.asarray(y) <= np.asarray(weaker) + 1e-6)
    # with a pool where lam / sqrt(n) < 1 nothing is clipped: exact agreement with the core
    x36 = jax.random.normal(jax.random.key(3), (2, 36))
    np.testing.assert_allclose(act(x36), actfx.nelu(x36, 2.0 / 6.0), atol=1e-6)


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"lam_init": 0.0}, "lam_init"),
        ({"lam_init": 9.0}, "lam_init"),
        ({"lam_max": -1.0}, "lam_max"),
        ({"rms_scaled": False, "lam_max": 2.0}, "lam_max"),
        ({"rms_scaled": False, "lam_init": 1.0}, "lam_init"),
        ({"method": "newton"}, "method"),
        ({"iters": 0}, "iters"),
        ({"num_features": 0}, "num_features"),
        ({"dtype": jnp.int32}, "dtype"),
        ({"param_dtype": None}, "param_dtype"),
    ],
)
def test_nelu_argument_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        ann.NeLU(**kw)


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"c_init": 1.0}, "c_init"),
        ({"c_init": 0.0}, "c_init"),
        ({"c_init": "0.5"}, "c_init"),
        ({"lam_init": -1.0}, "lam_init"),
        ({"gamma_init": float("nan")}, "gamma_init"),
        ({"num_features": 0}, "num_features"),
        ({"num_features": 2.0}, "num_features"),
        ({"channel_axis": 1.0}, "channel_axis"),
        ({"dtype": "int8"}, "dtype"),
    ],
)
def test_mmelu_argument_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        ann.MMeLU(**kw)


def test_module_args_validated_at_construction():
    with pytest.raises(ValueError, match="k must be"):
        ann.TopK(2.0)
    with pytest.raises(ValueError, match="kind"):
        ann.LayerAct("gelu")
    with pytest.raises(ValueError, match="alpha"):
        ann.LayerAct(alpha=-0.1)
    with pytest.raises(ValueError, match="axis"):
        ann.LayerAct(axis=1.0)
    with pytest.raises(ValueError, match="enabled"):
        ann.TopK(0.5, enabled="yes")
    with pytest.raises(TypeError):  # clean renames: the old names are gone
        ann.MMeLU(channels=3)
    with pytest.raises(TypeError):
        ann.DiTAC(mode="exact", rngs=nnx.Rngs(0))


def _per_channel_modules(c, channel_axis=-1):
    kw = dict(channel_axis=channel_axis, rngs=nnx.Rngs(0))
    return {
        "MMeLU": ann.MMeLU(c, c_init=0.4, **kw),
        "NeLU": ann.NeLU(c, lam_init=1.2, axis=(-3, -2, -1), **kw),
        "DiTAC": ann.DiTAC(c, method="exact", **kw),
        "BiasedReLU": ann.BiasedReLU(c, bias_init=0.2, **kw),
    }


def _randomise(mods):
    """Give every channel its own parameter values (so a channel mix-up would show)."""
    for i, m in enumerate(mods.values()):
        for _path, v in nnx.to_flat_state(nnx.state(m, nnx.Param)):
            v[...] = v[...] + 0.3 * jax.random.normal(jax.random.key(i), v.shape)


def test_channel_axis_matches_channels_last():
    x_last = jax.random.normal(jax.random.key(4), (2, 3, 4, 5))  # NHWC, 5 channels
    x_first = jnp.moveaxis(x_last, -1, 1)  # NCHW
    last, first = _per_channel_modules(5), _per_channel_modules(5, channel_axis=1)
    _randomise(last)
    _randomise(first)
    for name in last:
        if name == "NeLU":  # the pool covers all of (C, H, W) in both layouts
            first[name].axis = (1, 2, 3)
        y_last = last[name](x_last)
        y_first = first[name](x_first)
        np.testing.assert_allclose(
            jnp.moveaxis(y_first, 1, -1), y_last, rtol=1e-6, atol=1e-6, err_msg=name
        )
        with pytest.raises(ValueError, match="num_features"):
            last[name](x_first)


@pytest.mark.parametrize(
    "name",
    [
        "MMeLU",
        "BiasedReLU",
        pytest.param("NeLU", marks=pytest.mark.slow),
        pytest.param("DiTAC", marks=pytest.mark.slow),
    ],
)
def test_dtype_is_computation_and_param_dtype_is_storage(name):
    x = jax.random.normal(jax.random.key(5), (4, 3, 3, 4))
    extra = {"axis": (-3, -2, -1)} if name == "NeLU" else {}
    for cls in (getattr(ann, name),):
        m = cls(4, param_dtype=jnp.bfloat16, rngs=nnx.Rngs(0), **extra)
        assert all(v.dtype == jnp.bfloat16 for v in jax.tree.leaves(nnx.state(m, nnx.Param))), name
        assert m(x).dtype == jnp.float32, name  # None: input's dtype
        assert m(x.astype(jnp.bfloat16)).dtype == jnp.bfloat16, name
        m32 = cls(4, dtype=jnp.bfloat16, rngs=nnx.Rngs(0), **extra)
        assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(nnx.state(m32, nnx.Param)))
        assert m32(x).dtype == jnp.bfloat16, name  # dtype: computation
        ref = cls(4, rngs=nnx.Rngs(0), **extra)(x.astype(jnp.bfloat16).astype(jnp.float32))
        np.testing.assert_allclose(m32(x).astype(jnp.float32), ref, atol=0.1, err_msg=name)
    if name == "MMeLU":  # the parameter-free modules too
        for m in (ann.LayerAct(dtype=jnp.bfloat16), ann.TopK(0.5, dtype=jnp.bfloat16)):
            assert m(x).dtype == jnp.bfloat16


def test_rngs_keyword_accepted_everywhere_and_required_for_ditac():
    r = nnx.Rngs(0)
    for m in (
        ann.LayerAct(rngs=r),
        ann.TopK(0.5, rngs=r),
        ann.MMeLU(rngs=r),
        ann.NeLU(rngs=r),
        ann.BiasedReLU(None, rngs=r),
        ann.DiTAC(rngs=r),
    ):
        assert m(jnp.ones((1, 2, 2, 1))).shape == (1, 2, 2, 1)
    with pytest.raises(TypeError, match="rngs"):
        ann.DiTAC()
    with pytest.raises(TypeError, match="rngs"):
        ann.DiTAC(rngs=None)


def test_zero_sizes():
    """Empty inputs give empty outputs; zero feature counts are argument errors (no
    ZeroDivisionError; issue 12)."""
    for c, m in _per_channel_modules(3).items():
        x = jnp.zeros((0, 2, 2, 3))
        assert m(x).shape == (0, 2, 2, 3), c
    assert ann.DiTAC(rngs=nnx.Rngs(0))(jnp.zeros((2, 0))).shape == (2, 0)
    assert ann.MMeLU()(jnp.zeros((0,))).shape == (0,)
    for cls in (ann.MMeLU, ann.NeLU, ann.BiasedReLU):
        with pytest.raises(ValueError, match="num_features"):
            cls(0)
    with pytest.raises(ValueError, match="num_features"):
        ann.DiTAC(0, rngs=nnx.Rngs(0))


def test_model_holding_ditac_pickles_and_deep_copies():
    model = nnx.Sequential(
        nnx.Linear(3, 4, rngs=nnx.Rngs(0)),
        ann.DiTAC(4, rngs=nnx.Rngs(1)),
        ann.MMeLU(4),
        ann.NeLU(4),
    )
    x = jax.random.normal(jax.random.key(6), (5, 3))
    y = model(x)
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model), nnx.clone(model)):
        np.testing.assert_array_equal(clone(x), y)
        assert clone.layers[1].tess == model.layers[1].tess
        clone.layers[1].theta[...] = clone.layers[1].theta[...] + 1.0  # an independent copy
        assert not np.allclose(clone.layers[1].theta[...], model.layers[1].theta[...])
    np.testing.assert_array_equal(model(x), y)


def test_ditac_module_matches_functional_and_regularizer():
    act = ann.DiTAC(3, method="exact", rngs=nnx.Rngs(2))
    x = jax.random.normal(jax.random.key(8), (6, 3))
    # the core's default algorithm is the exact one
    np.testing.assert_array_equal(act(x), actfx.ditac(x, act.theta[...], act.tess))
    th = np.asarray(act.theta[...], np.float64)
    P = np.asarray(act.precision[...], np.float64)
    np.testing.assert_allclose(
        act.regularizer(), 0.1 * np.einsum("cd,de,ce->", th, P, th), rtol=1e-5
    )
    np.testing.assert_allclose(ann.regularization(act), act.regularizer())
    np.testing.assert_allclose(ann.ditac_penalty(act), act.regularizer())
    with pytest.raises(ValueError, match="method"):
        ann.DiTAC(method="fast", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="a < b"):
        ann.DiTAC(a=2.0, b=1.0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="variant"):
        ann.DiTAC(variant="leaky", rngs=nnx.Rngs(0))


def test_modules_inside_an_nnx_model_under_jit_and_grad():
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.conv = nnx.Conv(1, 4, (3, 3), rngs=rngs)
            self.la = ann.LayerAct()
            self.tk = ann.TopK(0.5)
            self.mm = ann.MMeLU(4, rngs=rngs)
            self.out = nnx.Linear(4, 2, rngs=rngs)

        def __call__(self, x):
            h = self.mm(self.tk(self.la(self.conv(x))))
            return self.out(h.mean(axis=(1, 2)))

    net = Net(nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(3), (2, 6, 6, 1))
    grads = nnx.jit(nnx.grad(lambda m: jnp.sum(m(x) ** 2)))(net)
    leaves = jax.tree.leaves(nnx.state(grads, nnx.Param))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in leaves)
    assert any(np.any(np.asarray(g) != 0) for g in leaves)
