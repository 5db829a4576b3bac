"""Top-K: exact-k semantics against NumPy, ties, gradients, dtypes, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import actfx


def np_topk(x, k, axis=(-3, -2), by="abs"):
    """Independent NumPy reference: stable sort, earlier position wins ties."""
    x = np.asarray(x)
    axes = tuple(sorted(a % x.ndim for a in ((axis,) if isinstance(axis, int) else axis)))
    rest = tuple(a for a in range(x.ndim) if a not in axes)
    xt = np.transpose(x, rest + axes)
    flat = xt.reshape(xt.shape[: len(rest)] + (-1,))
    pool = flat.shape[-1]
    m = max(1, int(k * pool))
    score = np.abs(flat) if by == "abs" else flat
    order = np.argsort(-score, axis=-1, kind="stable")[..., :m]
    mask = np.zeros(flat.shape, bool)
    np.put_along_axis(mask, order, True, axis=-1)
    out = np.where(mask, flat, 0).reshape(xt.shape)
    return np.transpose(out, np.argsort(rest + axes))


@pytest.mark.parametrize("by", ["abs", "value"])
@pytest.mark.parametrize("k", [0.01, 0.1, 0.25, 0.5, 0.9])
def test_matches_numpy_reference(by, k):
    x = np.random.default_rng(0).normal(size=(3, 7, 9, 4)).astype(np.float32)
    np.testing.assert_array_equal(actfx.topk(x, k, by=by), np_topk(x, k, by=by))


@pytest.mark.parametrize("axis", [-1, (1,), (1, 2), (0, 3), (1, 2, 3)])
def test_other_pool_axes(axis):
    x = np.random.default_rng(1).normal(size=(2, 5, 6, 3)).astype(np.float32)
    np.testing.assert_array_equal(actfx.topk(x, 0.3, axis=axis), np_topk(x, 0.3, axis=axis))


def test_keeps_exactly_m_largest_per_pool():
    x = jax.random.normal(jax.random.key(0), (4, 16, 16, 8))
    k = 0.1
    out = np.asarray(actfx.topk(x, k))
    m = max(1, int(k * 256))
    kept = (out != 0).sum(axis=(1, 2))
    np.testing.assert_array_equal(kept, m)
    # Every kept |value| >= every dropped |value| in its pool.
    ax = np.abs(np.asarray(x))
    keep = out != 0
    min_kept = np.where(keep, ax, np.inf).min(axis=(1, 2))
    max_dropped = np.where(keep, -np.inf, ax).max(axis=(1, 2))
    assert np.all(min_kept >= max_dropped)


@pytest.mark.parametrize("by", ["abs", "value"])
def test_ties_broken_by_position_exactly_m(by):
    # Many equal values crossing the threshold: a >= threshold mask would keep too many.
    x = np.zeros((2, 8, 8, 3), np.float32)
    x[0, :, :, 0] = 1.0  # a pool of all-equal entries
    x[0, :2, :, 1] = 5.0  # 16 entries at 5, rest 0
    x[1, :, :, 2] = np.round(np.random.default_rng(2).normal(size=(8, 8)))  # integers
    for k in (0.05, 0.2, 0.5):
        got = np.asarray(actfx.topk(x, k, by=by))
        np.testing.assert_array_equal(got, np_topk(x, k, by=by))
        # exactly m kept per pool (counted on the mask via a sentinel: all inputs nonzero)
        got_mask = np.asarray(actfx.topk(x + 100.0, k, by=by)) != 0
        np.testing.assert_array_equal(got_mask.sum(axis=(1, 2)), max(1, int(k * 64)))


def test_relu_zeros_pool():
    # After a ReLU, pools often have fewer positive entries than m: ties at 0.
    x = np.asarray(jax.nn.relu(jax.random.normal(jax.random.key(3), (2, 6, 6, 5)) - 1.5))
    for k in (0.3, 0.6):
        np.testing.assert_array_equal(actfx.topk(x, k), np_topk(x, k))


def test_k_one_is_identity_and_m_at_least_one():
    x = jax.random.normal(jax.random.key(4), (2, 4, 4, 3))
    np.testing.assert_array_equal(actfx.topk(x, 1.0), x)
    out = actfx.topk(x, 1e-6)  # m = max(1, int(k * 16)) = 1
    np.testing.assert_array_equal((np.asarray(out) != 0).sum(axis=(1, 2)), 1)


def test_gradient_is_zero_on_dropped_entries_and_one_on_kept():
    x = jax.random.normal(jax.random.key(5), (2, 8, 8, 3))
    g = jax.grad(lambda v: jnp.sum(actfx.topk(v, 0.25)))(x)
    kept = np.asarray(actfx.topk(x, 0.25)) != 0
    np.testing.assert_array_equal(np.asarray(g), kept.astype(np.float32))
    # Mask is constant: grad of sum(topk(x)**2) is 2x on kept entries only.
    g2 = jax.grad(lambda v: jnp.sum(actfx.topk(v, 0.25) ** 2))(x)
    np.testing.assert_allclose(g2, np.where(kept, 2 * np.asarray(x), 0.0), rtol=1e-6)
    # Forward mode agrees.
    t = jnp.ones_like(x)
    _, jvp = jax.jvp(lambda v: actfx.topk(v, 0.25), (x,), (t,))
    np.testing.assert_array_equal(np.asarray(jvp), kept.astype(np.float32))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_dtype_preserved(dtype):
    x = jax.random.normal(jax.random.key(6), (2, 6, 6, 3)).astype(dtype)
    out = actfx.topk(x, 0.2)
    assert out.dtype == dtype
    np.testing.assert_array_equal(
        np.asarray(out.astype(jnp.float32)), np_topk(np.asarray(x.astype(jnp.float32)), 0.2)
    )


def test_float64(x64):
    x = np.random.default_rng(7).normal(size=(2, 5, 5, 2))
    out = actfx.topk(jnp.asarray(x), 0.2)
    assert out.dtype == jnp.float64
    np.testing.assert_array_equal(out, np_topk(x, 0.2))


def test_jit_and_vmap_parity():
    x = jax.random.normal(jax.random.key(8), (3, 2, 6, 6, 4))
    f = lambda v: actfx.topk(v, 0.15)  # noqa: E731
    eager = np.stack([np_topk(np.asarray(v), 0.15) for v in x])
    np.testing.assert_array_equal(jax.vmap(f)(x), eager)
    np.testing.assert_array_equal(jax.jit(f)(x[0]), eager[0])


def test_approx_method_keeps_about_m_large_entries():
    x = jax.random.normal(jax.random.key(9), (2, 16, 16, 4))
    out = np.asarray(actfx.topk(x, 0.1, method="approx"))
    m = int(0.1 * 256)
    kept = (out != 0).sum(axis=(1, 2))
    assert np.all(kept <= m) and np.all(kept >= 0.8 * m)
    # On CPU approx_max_k is exact.
    np.testing.assert_array_equal(out, np_topk(np.asarray(x), 0.1))


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 9),
    st.integers(1, 9),
    st.floats(0.01, 1.0),
    st.sampled_from(["abs", "value"]),
    st.integers(0, 2**16),
    st.booleans(),
)
def test_property_against_numpy(n, h, w, k, by, seed, quantise):
    x = np.random.default_rng(seed).normal(size=(n, h, w, 2)).astype(np.float32)
    if quantise:  # lots of ties
        x = np.round(x * 2) / 2
    np.testing.assert_array_equal(actfx.topk(x, k, by=by), np_topk(x, k, by=by))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"k": 0.0}, "k must be"),
        ({"k": 1.5}, "k must be"),
        ({"k": -0.1}, "k must be"),
        ({"k": float("nan")}, "k must be"),
        ({"k": 0.1, "by": "max"}, "by"),
        ({"k": 0.1, "method": "sort"}, "method"),
        ({"k": 0.1, "axis": (1, 7)}, "axis"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        actfx.topk(jnp.ones((2, 3, 3, 2)), **kwargs)


def test_traced_k_raises():
    with pytest.raises(ValueError, match="k must be"):
        jax.jit(lambda x, k: actfx.topk(x, k))(jnp.ones((1, 2, 2, 1)), 0.5)


def test_scalar_and_int_input_raise():
    with pytest.raises(ValueError, match="x must"):
        actfx.topk(jnp.float32(1.0), 0.5, axis=-1)
    with pytest.raises(ValueError, match="floating"):
        actfx.topk(jnp.ones((2, 3, 3, 2), jnp.int32), 0.5)
