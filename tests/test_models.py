"""Tests for actfx.nn.models: ResNet family, SmallCNN, MLP with pluggable activations."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import actfx
from actfx._src.nn.models.resnet import _pad_shortcut
from actfx.nn.models import MLP, ResNet, SmallCNN, resnet20, resnet32, resnet44, resnet56

# Initialising a ResNet compiles one random-number kernel per parameter shape (~1 s of CPU
# each), so the tests build real models of one configuration only (ResNet-8, 1 input
# channel: the shapes are compiled once per process) and use ``nnx.eval_shape`` (no
# compute) where only structure, shapes and dtypes matter.
X8 = jax.random.normal(jax.random.key(0), (4, 8, 8, 1))


def n_params(model):
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def resnet8(**kw):
    return ResNet(8, in_channels=1, rngs=nnx.Rngs(kw.pop("seed", 0)), **kw)


def forward(model, x):
    return nnx.jit(lambda m, v: m(v))(model, x)


def resnet_param_count(n, c_in=3, classes=10, widths=(16, 32, 64)):
    """Independent count for the option-A CIFAR ResNet (convs without bias, BN scale+bias)."""
    total = 9 * c_in * widths[0] + 2 * widths[0]
    prev = widths[0]
    for w in widths:
        for _ in range(n):
            total += 9 * prev * w + 2 * w + 9 * w * w + 2 * w
            prev = w
    return total + widths[-1] * classes + classes


@pytest.mark.parametrize("make,n", [(resnet20, 3), (resnet32, 5), (resnet44, 7), (resnet56, 9)])
def test_resnet_parameter_counts(make, n):
    m = nnx.eval_shape(lambda: make(num_classes=10, rngs=nnx.Rngs(0)))
    assert n_params(m) == resnet_param_count(n)
    # He et al. (2016) Table 6: 0.27M, 0.46M, 0.66M, 0.85M
    assert round(n_params(m) / 1e6, 2) == {3: 0.27, 5: 0.46, 7: 0.66, 9: 0.85}[n]


def test_factory_called_once_per_site_and_params_not_shared():
    calls = []

    def factory():
        calls.append(1)
        return actfx.nn.MMeLU()

    nnx.eval_shape(lambda: ResNet(20, act=factory, rngs=nnx.Rngs(0)))
    assert len(calls) == 1 + 2 * 9
    calls.clear()
    m = resnet8(act=factory)
    assert len(calls) == 1 + 2 * 3
    mmelus = [v for _, v in nnx.iter_graph(m) if isinstance(v, actfx.nn.MMeLU)]
    assert len({id(v) for v in mmelus}) == 7
    # each site is trained separately: gradients w.r.t. different sites differ
    grads = nnx.jit(nnx.grad(lambda mod: jnp.sum(mod(X8) ** 2)))(m)
    g_gamma = [g for p, g in nnx.to_flat_state(grads) if p[-1] == "gamma_raw"]
    assert len(g_gamma) == 7
    assert len({float(g[...]) for g in g_gamma}) > 1


def test_act_argument_forms():
    """Every form of ``act``: plain function, zero-argument factory, module class,
    ``lambda n, rngs``, ``lambda num_features``, partial -- and clear errors otherwise."""
    seen = []

    def record(n, rngs):
        seen.append(n)
        assert isinstance(rngs, nnx.Rngs)
        return jax.nn.relu

    nnx.eval_shape(lambda: resnet20(act=record, rngs=nnx.Rngs(0)))
    # stem 16, then 2 sites per block: 3 blocks each of 16, 32, 64 channels
    assert seen == [16] + [16] * 6 + [32] * 6 + [64] * 6
    seen.clear()
    nnx.eval_shape(lambda: SmallCNN(act=record, widths=(8, 16, 24), rngs=nnx.Rngs(0)))
    assert seen == [8, 16, 24]
    seen.clear()
    nnx.eval_shape(lambda: MLP(4, 2, hidden=(5, 7), act=record, rngs=nnx.Rngs(0)))
    assert seen == [5, 7]
    m = nnx.eval_shape(lambda: ResNet(20, act=jax.nn.relu, rngs=nnx.Rngs(0)))
    assert m.stem_act is jax.nn.relu and m.stages[2][2].act2 is jax.nn.relu
    m = nnx.eval_shape(lambda: MLP(4, 2, hidden=(3,), act=jnp.tanh, rngs=nnx.Rngs(0)))
    assert m.acts[0] is jnp.tanh
    m = nnx.eval_shape(lambda: MLP(4, 2, hidden=(3,), act=lambda: nnx.relu, rngs=nnx.Rngs(0)))
    assert m.acts[0] is nnx.relu
    m = nnx.eval_shape(lambda: MLP(4, 2, hidden=(3,), act=actfx.nn.LayerAct, rngs=nnx.Rngs(0)))
    assert isinstance(m.acts[0], actfx.nn.LayerAct)
    m = nnx.eval_shape(
        lambda: MLP(
            4,
            2,
            hidden=(3,),
            act=lambda num_features: actfx.nn.MMeLU(num_features, c_init=0.2),
            rngs=nnx.Rngs(0),
        )
    )
    assert m.acts[0].c_raw.shape == (3,)
    m = nnx.eval_shape(
        lambda: MLP(
            4, 2, hidden=(3,), act=functools.partial(actfx.nn.NeLU, lam_init=1.0), rngs=nnx.Rngs(0)
        )
    )
    assert m.acts[0].lam_raw.shape == (3,)
    with pytest.raises(TypeError, match="module instance"):
        nnx.eval_shape(lambda: MLP(4, 2, act=actfx.nn.MMeLU(4), rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="TopK"):
        nnx.eval_shape(lambda: MLP(4, 2, act=actfx.nn.TopK, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="at most two"):
        nnx.eval_shape(lambda: MLP(4, 2, act=lambda a, b, c: None, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="callable activation"):
        nnx.eval_shape(lambda: SmallCNN(act=lambda: 3, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="act must be"):
        nnx.eval_shape(lambda: SmallCNN(act="relu", rngs=nnx.Rngs(0)))


@pytest.mark.parametrize(
    "act,attr,width",
    [
        (actfx.nn.DiTAC, "theta", lambda c: (c, 9)),
        (actfx.nn.MMeLU, "c_raw", lambda c: (c,)),
        (lambda n, rngs: actfx.nn.MMeLU(n, c_init=0.1, rngs=rngs), "c_raw", lambda c: (c,)),
    ],
)
def test_resnet20_per_channel_activations(act, attr, width):
    m = nnx.eval_shape(lambda: resnet20(act=act, rngs=nnx.Rngs(0)))
    sites = [m.stem_act] + [a for stage in m.stages for blk in stage for a in (blk.act1, blk.act2)]
    shapes = [getattr(a, attr).shape for a in sites]
    assert shapes == [width(16)] + [width(16)] * 6 + [width(32)] * 6 + [width(64)] * 6
    y = nnx.eval_shape(lambda mod, v: mod(v), m, jnp.ones((2, 16, 16, 3)))
    assert y.shape == (2, 10)


@pytest.mark.slow  # ~10 s CPU (DiTAC table-method compile); tests/test_train_ditac.py covers fit
def test_per_channel_ditac_model_trains_with_its_regularizer():
    """An MLP with per-channel DiTAC: finite, non-zero theta gradients, and the prior
    penalty (actfx.nn.regularization) is part of what is differentiated."""
    m = MLP(64, 10, hidden=(6, 5), act=actfx.nn.DiTAC, rngs=nnx.Rngs(0))
    assert [a.theta.shape for a in m.acts] == [(6, 9), (5, 9)]
    y = jax.random.randint(jax.random.key(1), (4,), 0, 10)

    def ce(mod):
        logits = mod(X8)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

    @nnx.jit
    def grads(mod):
        return (nnx.grad(lambda q: ce(q) + actfx.nn.regularization(q))(mod), nnx.grad(ce)(mod))

    g, g0 = grads(m)
    for i, a in enumerate(m.acts):
        t = np.asarray(g["acts"][i]["theta"][...])
        assert np.all(np.isfinite(t)) and np.any(t != 0)
        # the difference is exactly the regulariser's gradient 2 w P theta
        reg = 2 * a.reg_weight * np.asarray(a.theta[...]) @ np.asarray(a.precision[...])
        t0 = np.asarray(g0["acts"][i]["theta"][...])
        np.testing.assert_allclose(t - t0, reg, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("depth", [19, 2, 21, "20"])
def test_resnet_bad_depth(depth):
    with pytest.raises(ValueError, match="depth"):
        nnx.eval_shape(lambda: ResNet(depth, rngs=nnx.Rngs(0)))


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"topk": 0.0}, "topk"),
        ({"topk": 1.5}, "topk"),
        ({"topk": 0.1, "topk_stages": (3,)}, "topk_stages"),
        ({"shortcut": "C"}, "shortcut"),
        ({"widths": (16, 32)}, "widths"),
        ({"num_classes": 0}, "num_classes"),
    ],
)
def test_resnet_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        nnx.eval_shape(lambda: ResNet(20, rngs=nnx.Rngs(0), **kw))


def test_pad_shortcut_matches_numpy():
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 4)).astype(np.float32)
    got = np.asarray(_pad_shortcut(jnp.asarray(x), 2, 8))
    ref = np.zeros((2, 3, 3, 8), np.float32)
    ref[..., 2:6] = x[:, ::2, ::2, :]
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("shortcut", ["A", pytest.param("B", marks=pytest.mark.slow)])
def test_resnet_forward_shapes_and_modes(shortcut):
    m = resnet8(shortcut=shortcut)
    y_train = forward(m, X8)
    assert y_train.shape == (4, 10) and bool(jnp.all(jnp.isfinite(y_train)))
    m.eval()
    y_eval = forward(m, X8)
    # running stats start at (0, 1): eval differs from batch statistics
    assert not np.allclose(y_train, y_eval)
    # eval mode is per-example: the output of one example does not depend on the others
    np.testing.assert_allclose(forward(m, X8[:1]), y_eval[:1], rtol=1e-4, atol=1e-5)


def test_topk_inserted_after_chosen_stages(monkeypatch):
    seen = []
    real = actfx.topk

    def spy(x, k, **kw):
        seen.append((x.shape, k))
        return real(x, k, **kw)

    monkeypatch.setattr(actfx, "topk", spy)
    m = nnx.eval_shape(lambda: ResNet(20, topk=0.25, topk_stages=(0, 2), rngs=nnx.Rngs(0)))
    nnx.eval_shape(lambda mod, v: mod(v), m, jnp.ones((2, 16, 16, 3)))
    assert seen == [((2, 16, 16, 16), 0.25), ((2, 4, 4, 64), 0.25)]


@pytest.mark.slow
def test_topk_one_is_identity_and_small_k_changes_output():
    base, same, sparse = resnet8(), resnet8(topk=1.0), resnet8(topk=0.1, topk_stages=(0,))
    np.testing.assert_allclose(forward(base, X8), forward(same, X8), rtol=1e-6)
    assert not np.allclose(forward(base, X8), forward(sparse, X8))


@pytest.mark.slow
def test_resnet_with_layeract_has_finite_grads():
    m = resnet8(act=lambda: actfx.nn.LayerAct("silu"))
    grads = nnx.jit(nnx.grad(lambda mod: jnp.mean(mod(X8) ** 2)))(m)
    leaves = jax.tree.leaves(grads)
    assert leaves and all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)


def test_resnet_bfloat16_compute():
    m = nnx.eval_shape(lambda: ResNet(20, dtype=jnp.bfloat16, rngs=nnx.Rngs(0)))
    y = nnx.eval_shape(lambda mod, v: mod(v), m, jnp.ones((2, 8, 8, 3)))
    assert y.dtype == jnp.bfloat16
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.state(m, nnx.Param)))


def test_small_cnn_and_mlp():
    x = X8
    # conv shapes shared with resnet8 (compiled once): (3,3,1,16), (3,3,16,32)
    cnn = SmallCNN(act=lambda: jax.nn.silu, num_classes=10, widths=(16, 32), rngs=nnx.Rngs(0))
    assert forward(cnn, x).shape == (4, 10)
    assert n_params(cnn) == 9 * 16 + 2 * 16 + 9 * 16 * 32 + 2 * 32 + 32 * 10 + 10
    mlp = nnx.eval_shape(
        lambda: MLP(64, 10, hidden=(32, 16), act=lambda: actfx.nn.LayerAct(), rngs=nnx.Rngs(0))
    )
    assert nnx.eval_shape(lambda mod, v: mod(v), mlp, x).shape == (4, 10)
    assert n_params(mlp) == 64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10
    # MLP with identity activation is an affine map: check against NumPy
    lin = MLP(64, 10, hidden=(16,), act=lambda: lambda v: v, rngs=nnx.Rngs(2))
    w1, b1 = np.asarray(lin.layers[0].kernel[...]), np.asarray(lin.layers[0].bias[...])
    w2, b2 = np.asarray(lin.head.kernel[...]), np.asarray(lin.head.bias[...])
    xf = np.asarray(x).reshape(4, -1)
    np.testing.assert_allclose(lin(x), (xf @ w1 + b1) @ w2 + b2, rtol=1e-5, atol=1e-6)


def test_small_cnn_topk_and_errors():
    m = SmallCNN(
        act=lambda: jax.nn.relu, widths=(16, 32), topk=0.5, topk_blocks=(1,), rngs=nnx.Rngs(0)
    )
    assert m.topk_blocks == (1,)
    dense = SmallCNN(act=lambda: jax.nn.relu, widths=(16, 32), rngs=nnx.Rngs(0))
    assert not np.allclose(forward(m, X8), forward(dense, X8))
    with pytest.raises(ValueError, match="topk_blocks"):
        nnx.eval_shape(
            lambda: SmallCNN(widths=(4, 8), topk=0.5, topk_blocks=(2,), rngs=nnx.Rngs(0))
        )
    with pytest.raises(ValueError, match="widths"):
        nnx.eval_shape(lambda: SmallCNN(widths=(), rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="in_channels"):
        nnx.eval_shape(lambda: SmallCNN(in_channels=0, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="hidden"):
        nnx.eval_shape(lambda: MLP(4, 2, hidden=(0,), rngs=nnx.Rngs(0)))
    # zero sizes are argument errors, not ZeroDivisionError (issue 12)
    with pytest.raises(ValueError, match="in_features"):
        MLP(0, 3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="in_channels"):
        nnx.eval_shape(lambda: ResNet(20, in_channels=0, rngs=nnx.Rngs(0)))


@pytest.mark.parametrize(
    "build",
    [lambda t: SmallCNN(topk=t, rngs=nnx.Rngs(0)), lambda t: ResNet(8, topk=t, rngs=nnx.Rngs(0))],
)
@pytest.mark.parametrize(
    ("topk", "message"),
    [
        (1.5, "topk must be a fraction in \\(0, 1\\], got 1.5"),
        (0.0, "topk must be a fraction in \\(0, 1\\], got 0.0"),
        ("0.5", "topk must be None or a Python float in \\(0, 1\\] \\(static\\), got '0.5'"),
        (True, "topk must be None or a Python float"),
    ],
)
def test_models_reject_bad_topk_by_name(build, topk, message):
    with pytest.raises(ValueError, match=message):
        build(topk)


def test_models_accept_numpy_scalar_topk_like_topk_k():
    for m in (
        SmallCNN(topk=np.float32(0.25), rngs=nnx.Rngs(0)),
        ResNet(8, topk=np.float64(0.25), rngs=nnx.Rngs(0)),
    ):
        assert m.topk == 0.25 and type(m.topk) is float
