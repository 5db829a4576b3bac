"""MMeLU: formula, broadcasting, gradients, dtypes, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import actfx


def np_mmelu(x, c, lam, gamma):
    x = np.asarray(x, np.float64)
    return (1 - c) * np.maximum(x, 0) + c * np.maximum(lam - np.abs(x - gamma), 0)


@pytest.mark.parametrize("c, lam, gamma", [(0.0, 1.0, 0.0), (1.0, 0.5, 1.0), (0.3, 2.0, -0.5)])
def test_formula(x64, c, lam, gamma):
    x = np.linspace(-4, 4, 101)
    np.testing.assert_allclose(
        actfx.mmelu(jnp.asarray(x), c, lam, gamma), np_mmelu(x, c, lam, gamma)
    )


def test_c_zero_is_relu_and_per_channel_broadcast():
    x = jax.random.normal(jax.random.key(0), (5, 3))
    np.testing.assert_array_equal(actfx.mmelu(x, 0.0, 1.0, 0.0), jax.nn.relu(x))
    c = jnp.array([0.1, 0.5, 0.9])
    lam = jnp.array([0.5, 1.0, 2.0])
    gamma = jnp.array([-1.0, 0.0, 1.0])
    np.testing.assert_allclose(
        actfx.mmelu(x, c, lam, gamma),
        np_mmelu(np.asarray(x), np.asarray(c), np.asarray(lam), np.asarray(gamma)),
        rtol=1e-6,
        atol=1e-7,
    )


def test_gradients(x64):
    # Away from the kinks (x = 0, gamma, gamma +- lam) the function is smooth.
    x = jnp.array([-2.3, -0.6, 0.4, 1.7, 3.1])
    check_grads(lambda *a: actfx.mmelu(*a), (x, 0.4, 1.3, 0.2), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_dtype_jit_vmap(dtype):
    x = jax.random.normal(jax.random.key(1), (4, 6)).astype(dtype)
    out = jax.jit(actfx.mmelu)(x, 0.5, 1.0, 0.0)
    assert out.dtype == dtype
    v = jax.vmap(actfx.mmelu, in_axes=(0, 0, None, None))(
        x, jnp.linspace(0, 1, 4, dtype=dtype), 1.0, 0.0
    )
    assert v.shape == x.shape and v.dtype == dtype


@pytest.mark.parametrize("name", ["c", "lam", "gamma"])
def test_nan_parameter_raises(name):
    params = {"c": 0.5, "lam": 1.0, "gamma": 0.0}
    params[name] = float("nan")
    with pytest.raises(ValueError, match=name):
        actfx.mmelu(jnp.ones(3), **params)


# ---- issue 12: argument checks and extreme inputs -----------------------------------------


@pytest.mark.parametrize(
    "name, value, match",
    [
        ("c", 1.5, "c must be <= 1"),
        ("c", -0.1, "c must be >= 0"),
        ("c", jnp.array([0.2, 2.0]), "c must be <= 1"),
        ("lam", -1.0, "lam must be >= 0"),
        ("lam", float("inf"), "lam must be finite"),
        ("gamma", float("-inf"), "gamma must be finite"),
        ("gamma", "0", "gamma"),
        ("c", 0.5j, "c"),
    ],
)
def test_bad_parameters_raise_naming_them(name, value, match):
    params = {"c": 0.5, "lam": 1.0, "gamma": 0.0}
    params[name] = value
    with pytest.raises(ValueError, match=match):
        actfx.mmelu(jnp.ones(2), **params)


def test_boundary_parameters_are_valid():
    x = jnp.array([-1.0, 0.0, 0.5, 2.0])
    np.testing.assert_array_equal(actfx.mmelu(x, 0.0, 1.0, 0.0), jax.nn.relu(x))
    np.testing.assert_array_equal(actfx.mmelu(x, 1.0, 0.0, 0.0), jnp.zeros(4))  # c = 1, lam = 0
    np.testing.assert_array_equal(actfx.mmelu(x, 0.5, 0.0, 0.0), 0.5 * jax.nn.relu(x))


def test_extreme_inputs_finite():
    big = float(jnp.finfo(jnp.float32).max)
    x = jnp.array([-big, -1e30, -1e-30, 0.0, 1e-30, 1e30, big], jnp.float32)
    for gamma in (-big, 0.0, big):
        y = actfx.mmelu(x, 0.3, 2.0, gamma)
        g = jax.grad(lambda v: actfx.mmelu(v, 0.3, 2.0, gamma).sum())(x)
        assert bool(jnp.all(jnp.isfinite(y))) and bool(jnp.all(jnp.isfinite(g)))
        np.testing.assert_allclose(y, np_mmelu(np.asarray(x), 0.3, 2.0, gamma), rtol=1e-6)
    with pytest.raises(ValueError, match="broadcast"):
        actfx.mmelu(jnp.ones((2, 3)), jnp.ones(2) * 0.5, 1.0, 0.0)
