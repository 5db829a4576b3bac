"""NNX modules and Linen wrappers for LayerAct, Top-K and MMeLU."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import actfx
from actfx import nn as ann
from actfx.nn import linen as aln


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


@pytest.mark.parametrize("channels", [None, 4])
def test_mmelu_module_constraints_and_training(channels):
    act = ann.MMeLU(channels, c_init=0.3, lam_init=0.7, gamma_init=0.1, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(act.c, 0.3, rtol=1e-6)
    np.testing.assert_allclose(act.lam, 0.7, rtol=1e-6)
    x = jax.random.normal(jax.random.key(2), (8, 4))
    np.testing.assert_allclose(act(x), actfx.mmelu(x, 0.3, 0.7, 0.1), rtol=1e-6, atol=1e-7)
    # Large optimiser steps never leave the constraint set.
    opt = nnx.Optimizer(act, optax.sgd(50.0), wrt=nnx.Param)
    target = jnp.sin(3 * x)

    @nnx.jit
    def step(act, opt):
        loss, g = nnx.value_and_grad(lambda m: jnp.mean((m(x) - target) ** 2))(act)
        opt.update(act, g)
        return loss

    for _ in range(5):
        step(act, opt)
    assert np.all((np.asarray(act.c) >= 0) & (np.asarray(act.c) <= 1))
    assert np.all(np.asarray(act.lam) > 0)
    assert act.c.shape == (() if channels is None else (channels,))


def test_mmelu_module_bad_input():
    with pytest.raises(ValueError, match="c_init"):
        ann.MMeLU(c_init=1.5)
    with pytest.raises(ValueError, match="lam_init"):
        ann.MMeLU(lam_init=-1.0)
    with pytest.raises(ValueError, match="channels"):
        ann.MMeLU(0)
    with pytest.raises(ValueError, match="channels"):
        ann.MMeLU(3)(jnp.ones((2, 4)))


def test_module_args_validated_at_construction():
    with pytest.raises(ValueError, match="k must be"):
        ann.TopK(2.0)
    with pytest.raises(ValueError, match="kind"):
        ann.LayerAct("gelu")
    with pytest.raises(ValueError, match="alpha"):
        ann.LayerAct(alpha=-0.1)


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


def test_linen_wrappers():
    x = jax.random.normal(jax.random.key(4), (2, 4, 4, 3))
    np.testing.assert_array_equal(aln.LayerAct().apply({}, x), actfx.layeract_silu(x))
    np.testing.assert_array_equal(aln.TopK(0.25).apply({}, x), actfx.topk(x, 0.25))
    m = aln.MMeLU(channels=3, c_init=0.2, lam_init=0.5)
    v = m.init(jax.random.key(0), x)
    np.testing.assert_allclose(m.apply(v, x), actfx.mmelu(x, 0.2, 0.5, 0.0), rtol=1e-6, atol=1e-7)
    g = jax.grad(lambda p: jnp.sum(m.apply({"params": p}, x)))(v["params"])
    assert set(g) == {"c_raw", "lam_raw", "gamma"}
