"""Top-K: exact-k semantics against NumPy, ties, gradients, dtypes, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import actfx
import actfx._src.topk as T


def ref_num_kept(k, dims):
    """The reference code's count: ``int(max(1, k * h * w))``, evaluated left to right."""
    v = k
    for d in dims:
        v = v * d
    return int(max(1, v))


def np_topk(x, k, axis=(-3, -2), by="abs"):
    """Independent NumPy reference: stable sort, earlier position wins ties."""
    x = np.asarray(x)
    axes = tuple(sorted(a % x.ndim for a in ((axis,) if isinstance(axis, int) else axis)))
    rest = tuple(a for a in range(x.ndim) if a not in axes)
    xt = np.transpose(x, rest + axes)
    flat = xt.reshape(xt.shape[: len(rest)] + (-1,))
    m = ref_num_kept(k, [x.shape[a] for a in axes])
    score = np.abs(flat) if by == "abs" else flat
    order = np.argsort(-score, axis=-1, kind="stable")[..., :m]
    mask = np.zeros(flat.shape, bool)
    np.put_along_axis(mask, order, True, axis=-1)
    out = np.where(mask, flat, 0).reshape(xt.shape)
    return np.transpose(out, np.argsort(rest + axes))


SLOW = pytest.mark.slow
# Each (shape, dtype, m = num_kept(k), by, axes) is one Top-K compile (seconds each): the
# default runs one case per branch, shares the shape (2, 8, 8, 3) and k in {0.05, 0.2, 0.5}
# across tests; the remaining combinations run under -m slow.
SHAPE = (2, 8, 8, 3)


@pytest.mark.parametrize(
    "by,k",
    [
        ("abs", 0.01),
        ("value", 0.5),
        *(
            pytest.param(by, k, marks=SLOW)
            for by, k in [("abs", 0.5), ("value", 0.01)]
            + [(by, k) for by in ("abs", "value") for k in (0.1, 0.25, 0.9)]
        ),
    ],
)
def test_matches_numpy_reference(by, k):
    x = np.random.default_rng(0).normal(size=(3, 7, 9, 4)).astype(np.float32)
    np.testing.assert_array_equal(actfx.topk(x, k, by=by), np_topk(x, k, by=by))


@pytest.mark.parametrize(
    "axis",
    # an int, two non-adjacent axes with the batch axis, three axes; (1,) is the int's
    # branch, (1, 2) the default pool (every other test)
    [-1, (0, 3), (1, 2, 3), pytest.param((1,), marks=SLOW), pytest.param((1, 2), marks=SLOW)],
)
def test_other_pool_axes(axis):
    x = np.random.default_rng(1).normal(size=(2, 5, 6, 3)).astype(np.float32)
    np.testing.assert_array_equal(actfx.topk(x, 0.3, axis=axis), np_topk(x, 0.3, axis=axis))


def test_keeps_exactly_m_largest_per_pool():
    x = jax.random.normal(jax.random.key(0), (4, 16, 16, 8))
    k = 0.1
    out = np.asarray(actfx.topk(x, k))
    m = ref_num_kept(k, (16, 16))
    kept = (out != 0).sum(axis=(1, 2))
    np.testing.assert_array_equal(kept, m)
    # Every kept |value| >= every dropped |value| in its pool.
    ax = np.abs(np.asarray(x))
    keep = out != 0
    min_kept = np.where(keep, ax, np.inf).min(axis=(1, 2))
    max_dropped = np.where(keep, -np.inf, ax).max(axis=(1, 2))
    assert np.all(min_kept >= max_dropped)


@pytest.mark.parametrize(
    "by,k",
    # m = 12 inside the block of 5s (both orders), m = 32 across it into the zeros, m = 3
    [("abs", 0.2), ("value", 0.2), ("abs", 0.5)]
    + [
        pytest.param(by, k, marks=SLOW)
        for by, k in [("value", 0.5), ("abs", 0.05), ("value", 0.05)]
    ],
)
def test_ties_broken_by_position_exactly_m(by, k):
    # Many equal values crossing the threshold: a >= threshold mask would keep too many.
    x = np.zeros(SHAPE, np.float32)
    x[0, :, :, 0] = 1.0  # a pool of all-equal entries
    x[0, :2, :, 1] = 5.0  # 16 entries at 5, rest 0
    x[1, :, :, 2] = np.round(np.random.default_rng(2).normal(size=(8, 8)))  # integers
    got = np.asarray(actfx.topk(x, k, by=by))
    np.testing.assert_array_equal(got, np_topk(x, k, by=by))
    # exactly m kept per pool (counted on the mask via a sentinel: all inputs nonzero)
    got_mask = np.asarray(actfx.topk(x + 100.0, k, by=by)) != 0
    np.testing.assert_array_equal(got_mask.sum(axis=(1, 2)), ref_num_kept(k, (8, 8)))


def test_relu_zeros_pool():
    # After a ReLU, pools often have fewer positive entries than m: ties at 0.
    x = np.asarray(jax.nn.relu(jax.random.normal(jax.random.key(3), SHAPE) - 1.5))
    for k in (0.2, 0.5):
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


@pytest.mark.parametrize(
    "dtype", [jnp.float32, jnp.bfloat16, pytest.param(jnp.float16, marks=SLOW)]
)  # float16 keys: test_half_precision_ties_by_position
def test_dtype_preserved(dtype):
    x = jax.random.normal(jax.random.key(6), SHAPE).astype(dtype)
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
    f = lambda v: actfx.topk(v, 0.15)
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


def _property_against_numpy(shape, k, by, seed, quantise):
    x = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    if quantise:  # lots of ties
        x = np.round(x * 2) / 2
    np.testing.assert_array_equal(actfx.topk(x, k, by=by), np_topk(x, k, by=by))


@settings(max_examples=8, deadline=None)
@given(
    st.sampled_from([0.05, 0.2, 0.5]),
    st.sampled_from(["abs", "value"]),
    st.integers(0, 2**16),
    st.booleans(),
)
def test_property_against_numpy(k, by, seed, quantise):
    """The values are explored at the shared shape and fractions (compiled once); the slow
    variant draws shapes and fractions too (each example a new compile)."""
    _property_against_numpy(SHAPE, k, by, seed, quantise)


@pytest.mark.slow
@settings(max_examples=40, deadline=None)  # each example compiles a new shape
@given(
    st.integers(1, 3),
    st.integers(1, 9),
    st.integers(1, 9),
    st.floats(0.01, 1.0),
    st.sampled_from(["abs", "value"]),
    st.integers(0, 2**16),
    st.booleans(),
)
def test_property_against_numpy_shapes(n, h, w, k, by, seed, quantise):
    _property_against_numpy((n, h, w, 2), k, by, seed, quantise)


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


# --- the count: the reference's int(max(1, k*h*w)), left to right -----------------------


def test_num_kept_matches_reference_expression_on_grid():
    # 100 fractions x 18 pool shapes = 1,800 (k, H, W) pairs, plus square pools 1..64.
    shapes = [(h, w) for h in (3, 5, 7, 10, 14, 28) for w in (7, 10, 32)]
    shapes += [(s, s) for s in range(1, 65)]
    diffs = 0
    for i in range(1, 101):
        k = i / 100
        for h, w in shapes:
            expect = int(max(1, k * h * w))
            assert T.num_kept(k, (h, w)) == expect, (k, h, w)
            diffs += expect != max(1, int(k * (h * w)))
    assert diffs > 0  # the grid does contain pairs where the evaluation order matters
    assert T.num_kept(0.29, (10, 10)) == 29
    x = np.random.default_rng(0).normal(size=(1, 10, 10, 2)).astype(np.float32) + 10.0
    assert (np.asarray(actfx.topk(x, 0.29)) != 0).sum(axis=(1, 2)).tolist() == [[29, 29]]


# --- the search: exactness on hard inputs -----------------------------------------------


def _hard_inputs():
    rng = np.random.default_rng(11)
    n = rng.normal(size=(2, 16, 16, 6)).astype(np.float32)
    out = {
        "normal": n,
        "relu": np.maximum(n, 0),
        "relu_sparse": np.maximum(n - 1.5, 0),  # most pools have fewer than m positives
        "zeros": np.zeros_like(n),
        "integers": np.round(n * 2),  # many equal values crossing the threshold
        "two_values": np.where(n > 0, 1.0, -1.0).astype(np.float32),
        "cauchy": rng.standard_cauchy(size=n.shape).astype(np.float32),
        "tiny": (n * 1e-40).astype(np.float32),  # subnormals
        "huge": (n * 1e37).astype(np.float32),
        "per_channel_scale": n * np.logspace(-20, 20, 6, dtype=np.float32),
        "constant_per_pool": np.broadcast_to(rng.normal(size=(2, 1, 1, 6)), n.shape).astype(
            np.float32
        ),
    }
    out["inf"] = n.copy()
    out["inf"][0, :3, :3, 0] = np.inf
    out["inf"][1, 4, :, 1] = -np.inf
    return out


@pytest.mark.parametrize(
    "by,k",
    [("abs", 1 / 256), ("abs", 0.5), ("value", 0.1)]
    + [
        pytest.param(by, k, marks=SLOW)
        for by, k in [("abs", 0.1), ("value", 1 / 256), ("value", 0.5)]
    ],
)
def test_hard_inputs_match_stable_argsort(by, k):
    # Pools are independent: all the hard cases side by side along C, one compile per k.
    cases = _hard_inputs()
    x = np.concatenate([cases[n] for n in sorted(cases)], axis=-1)
    got, want = np.asarray(actfx.topk(x, k, by=by)), np_topk(x, k, by=by)
    bad = sorted({sorted(cases)[c // 6] for c in np.nonzero((got != want).any(axis=(0, 1, 2)))[0]})
    assert not bad, f"k={k}: {bad}"


def test_nan_is_ranked_above_inf():
    # Documented: NaN ranks above +inf (as in jax.lax.top_k), so NaN entries are kept first.
    x = np.arange(1.0, 17.0, dtype=np.float32).reshape(1, 4, 4, 1)
    x[0, 0, 1, 0] = np.nan
    x[0, 2, 2, 0] = np.inf
    out = np.asarray(actfx.topk(x, 3 / 16))[0, :, :, 0]
    kept = np.argwhere(out != 0).tolist()
    assert kept == [[0, 1], [2, 2], [3, 3]]
    assert np.isnan(out[0, 1]) and out[2, 2] == np.inf and out[3, 3] == 16.0
    # NaN is only kept, never spread: the other pools are unaffected.
    y = np.concatenate([x, np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)], axis=-1)
    np.testing.assert_array_equal(
        np.asarray(actfx.topk(y, 3 / 16))[..., 1], np_topk(y, 3 / 16)[..., 1]
    )


@pytest.mark.parametrize(
    "dtype,k",
    [(jnp.bfloat16, 0.1), (jnp.float16, 0.5)]
    + [pytest.param(d, k, marks=SLOW) for d, k in [(jnp.bfloat16, 0.5), (jnp.float16, 0.1)]],
)
def test_half_precision_ties_by_position(dtype, k):
    # Half precision has many exact ties in 1,024-entry pools; keys carry the position.
    x = jax.random.normal(jax.random.key(12), (2, 32, 32, 3)).astype(dtype)
    xf = np.asarray(x.astype(jnp.float32))
    got = np.asarray(actfx.topk(x, k).astype(jnp.float32))
    np.testing.assert_array_equal(got, np_topk(xf, k))


@pytest.mark.parametrize("k", [0.05, pytest.param(0.3, marks=SLOW)])
def test_search_paths_agree_with_radix_and_fallbacks(monkeypatch, k):
    # The fast path, the continuation on gathered pools and the radix fallback all give
    # the stable-argsort answer (module constants are read when tracing: fresh jits).
    x = np.asarray(jax.random.normal(jax.random.key(13), (3, 16, 16, 5)))
    x = np.concatenate([x, np.round(x), np.maximum(x - 1, 0)], axis=-1).astype(np.float32)
    xs = jnp.asarray(x)
    m = T.num_kept(k, (16, 16))
    want = np_topk(x, k)
    for passes, frac in [(24, 1 / 16), (1, 1.0), (0, 1 / 16), (2, 1 / 16)]:
        monkeypatch.setattr(T, "_MAX_SEARCH_PASSES", passes)
        monkeypatch.setattr(T, "_FIXUP_FRACTION", frac)
        got = jax.jit(T._search_mask, static_argnums=(1, 2, 3))(xs, m, (1, 2), "abs")
        np.testing.assert_array_equal(np.where(got, x, 0), want, err_msg=f"{passes} {frac} {k}")
        np.testing.assert_array_equal(np.asarray(got).sum(axis=(1, 2)), m)  # exactly m, zeros too
    np.testing.assert_array_equal(np.where(T._radix_mask(xs, m, (1, 2), "abs"), x, 0), want)


def test_grad_is_the_saved_mask_under_jit_and_vmap():
    x = jax.random.normal(jax.random.key(14), (3, 2, 8, 8, 4))
    g = jax.jit(jax.vmap(jax.grad(lambda v: jnp.sum(actfx.topk(v, 0.2) * 3.0))))(x)
    kept = np.stack([np_topk(np.asarray(v), 0.2) != 0 for v in x])
    np.testing.assert_array_equal(np.asarray(g), 3.0 * kept)


@pytest.mark.parametrize("bad", ["0.5", b"0.5", True, None, [0.5], np.array([0.5]), 1 + 0j])
def test_k_of_the_wrong_type_names_the_argument(bad):
    with pytest.raises(ValueError, match=r"^k must be"):
        actfx.topk(jnp.ones((1, 4, 4, 1)), bad)


def test_check_fraction_is_the_shared_checker():
    assert T.check_fraction("k", 1) == 1.0 and T.check_fraction("k", np.float32(0.5)) == 0.5
    assert T.check_fraction("topk", None, allow_none=True) is None
    with pytest.raises(ValueError, match=r"^topk must be None or"):
        T.check_fraction("topk", "0.1", allow_none=True)
    with pytest.raises(ValueError, match=r"^topk must be a fraction in \(0, 1\]"):
        T.check_fraction("topk", 1.5, allow_none=True)
    with pytest.raises(ValueError, match=r"^k must be"):
        T.check_fraction("k", None)


# --- the packed multi-pivot count, gathered ties, big pools ------------------------------


@pytest.mark.parametrize("L", [1, 2, 7, 64, 1000, 1024])
def test_packed_sum_decodes_nested_counts_including_full_and_empty(L):
    # Three nested sets per pool (pivots ascending), with counts L and 0 among them: the
    # carry of a full field must decode back exactly.
    rng = np.random.default_rng(L)
    u = rng.integers(0, 50, size=(L, 9)).astype(np.uint32)
    u[:, 0] = 7  # every entry equal: counts L, L, 0 at pivots 0, 7, 8
    ps = [
        np.array([[0, 0, 10, 3, 50, 0, 1, 20, 0]], np.uint32),
        np.array([[7, 0, 20, 30, 50, 1, 2, 25, 49]], np.uint32),
        np.array([[8, 0, 30, 40, 50, 60, 3, 26, 49]], np.uint32),
    ]
    ges = [jnp.asarray(u) >= jnp.asarray(p) for p in ps]
    got = T._packed_sum(ges, lambda a: jnp.sum(a, axis=0, keepdims=True, dtype=a.dtype))
    assert T._n_probes(L) == 3
    for g, p in zip(got, ps):
        np.testing.assert_array_equal(np.asarray(g), (u >= p).sum(axis=0, keepdims=True))


def test_tie_position_gathered_matches_the_full_tie_position():
    # A pool's m-th key tied across the boundary: the position of the last tied entry kept,
    # on gathered pools (padding copies pool 0) == the same select over the whole tensor.
    x = np.round(np.random.default_rng(5).normal(size=(3, 6, 5, 4)) * 1.5).astype(np.float32)
    u, _ = T._keys(jnp.asarray(x), (1, 2), "abs")
    t = jnp.asarray(np.sort(np.abs(x).reshape(3, 30, 4), axis=1)[:, -7][:, None, None, :])
    t = jax.lax.bitcast_convert_type(t, jnp.uint32)
    need = jnp.sum(u == t, axis=(1, 2), keepdims=True, dtype=jnp.int32) // 2 + 1
    tie = jnp.asarray(np.random.default_rng(6).random((3, 1, 1, 4)) < 0.5).at[0, 0, 0, 0].set(False)
    full = np.where(tie, jax.jit(T._tie_position, static_argnums=3)(u, t, need, (1, 2)), 0)
    gathered = jax.jit(T._tie_position_gathered, static_argnums=(1, 5, 6))
    for cap in (int(tie.sum()), 12):
        got = gathered(jnp.asarray(x), "abs", t, need, tie, (1, 2), cap)
        np.testing.assert_array_equal(np.where(tie, got, 0), full)


def test_pools_too_big_for_packed_counts_use_one_pivot():
    # 40 x 40 = 1,600 entries: three counts do not fit one int32 sum, one pivot per pass.
    assert T._n_probes(40 * 40) == 1 and T._n_probes(1024) == 3
    x = np.random.default_rng(8).normal(size=(1, 40, 40, 2)).astype(np.float32)
    x[..., 1] = np.round(x[..., 1])
    np.testing.assert_array_equal(actfx.topk(x, 0.1), np_topk(x, 0.1))


def test_subnormal_scores_keep_their_order():
    # The |x| keys clear the sign bit on the integers: XLA:CPU float ops may flush
    # subnormals to zero in a fusion, which would tie them all at 0.
    # (the shape and k of test_ties_broken_by_position_exactly_m: its compiled selects)
    x = (np.random.default_rng(9).normal(size=(2, 8, 8, 3)) * 1e-40).astype(np.float32)
    assert np.all(np.abs(x[x != 0]) < np.finfo(np.float32).tiny)
    for by in ("abs", "value"):
        np.testing.assert_array_equal(actfx.topk(x, 0.2, by=by), np_topk(x, 0.2, by=by))
