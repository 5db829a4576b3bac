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
    np.testing.assert_allclose(actfx.mmelu(jnp.asarray(x), c, lam, gamma), np_mmelu(x, c, lam, gamma))


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
    v = jax.vmap(actfx.mmelu, in_axes=(0, 0, None, None))(x, jnp.linspace(0, 1, 4, dtype=dtype), 1.0, 0.0)
    assert v.shape == x.shape and v.dtype == dtype


@pytest.mark.parametrize("name", ["c", "lam", "gamma"])
def test_nan_parameter_raises(name):
    params = {"c": 0.5, "lam": 1.0, "gamma": 0.0}
    params[name] = float("nan")
    with pytest.raises(ValueError, match=name):
        actfx.mmelu(jnp.ones(3), **params)
