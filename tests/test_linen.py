"""Linen twins of the NNX activation modules: identical outputs and gradients (w.r.t. the
input and the parameters) for identical parameters, and the same argument errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import actfx.nn as ann
from actfx.nn import linen as aln

X = jax.random.normal(jax.random.key(0), (2, 3, 3, 4)) * 1.5
W = jax.random.normal(jax.random.key(1), X.shape)  # a random cotangent

SLOW = pytest.mark.slow
CASES = [  # one configuration per module by default; the others under `make test-all`
    ("LayerAct", dict(kind="hardsilu", grad="paper")),
    pytest.param("LayerAct", dict(kind="silu", axis=(-1,)), marks=SLOW),
    pytest.param("TopK", dict(k=0.3), marks=SLOW),  # eager radix select under grad: ~13 s CPU
    ("TopK", dict(k=0.5, by="value", enabled=False)),
    ("MMeLU", dict(num_features=4, c_init=0.3, lam_init=0.7, gamma_init=0.1)),
    pytest.param("MMeLU", dict(c_init=0.6, dtype=jnp.bfloat16), marks=SLOW),
    pytest.param("MMeLU", dict(num_features=3, channel_axis=1), marks=SLOW),
    ("NeLU", dict(num_features=4, lam_init=1.3, axis=(-3, -2, -1))),
    pytest.param(
        "NeLU",
        dict(lam_init=0.7, rms_scaled=False, two_sided=True, method="fixed_point"),
        marks=SLOW,
    ),
    ("DiTAC", dict(num_features=4, method="table")),
    pytest.param("DiTAC", dict(method="exact", nc=6, a=-1.0, b=1.5), marks=SLOW),
    ("BiasedReLU", dict(num_features=4, bias_init=0.2)),
    pytest.param(
        "BiasedReLU", dict(num_features=None, two_sided=True, param_dtype=jnp.bfloat16), marks=SLOW
    ),
]


def make_nnx(name, kw):
    kw = dict(kw)
    if name == "TopK":
        return ann.TopK(kw.pop("k"), rngs=nnx.Rngs(0), **kw)
    if name == "LayerAct":
        return ann.LayerAct(kw.pop("kind"), rngs=nnx.Rngs(0), **kw)
    if name == "BiasedReLU":
        return ann.BiasedReLU(kw.pop("num_features"), rngs=nnx.Rngs(0), **kw)
    return getattr(ann, name)(rngs=nnx.Rngs(0), **kw)


def _case_id(i, c):
    return f"{(c.values if hasattr(c, 'values') else c)[0]}-{i}"


@pytest.mark.parametrize("name,kw", CASES, ids=[_case_id(i, c) for i, c in enumerate(CASES)])
def test_linen_matches_nnx_outputs_and_gradients(name, kw):
    x = jnp.moveaxis(X, -1, 1)[:, :3] if kw.get("channel_axis") == 1 else X
    w = jnp.resize(W, x.shape)
    mod = make_nnx(name, kw)
    # move every parameter away from its initial value (each entry differently)
    for i, (_, v) in enumerate(nnx.to_flat_state(nnx.state(mod, nnx.Param))):
        noise = 0.3 * jax.random.normal(jax.random.key(10 + i), v.shape)
        v[...] = (v[...].astype(jnp.float32) + noise).astype(v[...].dtype)
    params = nnx.to_pure_dict(nnx.state(mod, nnx.Param))
    lin = getattr(aln, name)(**kw)
    init = lin.init(jax.random.key(0), x).get("params", {})
    assert jax.tree.map(lambda a: (a.shape, a.dtype), init) == jax.tree.map(
        lambda a: (a.shape, a.dtype), params
    )
    if params:
        variables = {"params": params}
    else:
        variables = {}

    y_nnx = mod(x)
    y_lin = lin.apply(variables, x)
    assert y_nnx.dtype == y_lin.dtype and y_nnx.shape == x.shape
    np.testing.assert_array_equal(y_lin, y_nnx)

    def loss_nnx(m, v):
        return jnp.sum(w * m(v).astype(jnp.float32))

    def loss_lin(p, v):
        return jnp.sum(w * lin.apply({"params": p} if p else {}, v).astype(jnp.float32))

    g_mod, gx_nnx = nnx.grad(loss_nnx, argnums=(0, 1))(mod, x)
    gp_lin, gx_lin = jax.grad(loss_lin, argnums=(0, 1))(params, x)
    np.testing.assert_array_equal(gx_lin, gx_nnx)
    gp_nnx = nnx.to_pure_dict(nnx.state(g_mod, nnx.Param)) if params else {}
    assert set(gp_nnx) == set(gp_lin)
    for k in gp_lin:
        np.testing.assert_array_equal(gp_lin[k], gp_nnx[k], err_msg=k)
    if params and name != "TopK":
        assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(gp_lin))


def test_linen_ditac_regularizer_matches_nnx():
    mod = ann.DiTAC(4, rngs=nnx.Rngs(3))
    lin = aln.DiTAC(num_features=4)
    v = {"params": nnx.to_pure_dict(nnx.state(mod, nnx.Param))}
    np.testing.assert_allclose(
        lin.apply(v, method=aln.DiTAC.regularizer), mod.regularizer(), rtol=1e-6
    )


def test_linen_constrained_values_match_nnx_properties():
    mod = ann.MMeLU(3, c_init=0.2, lam_init=0.4, gamma_init=-0.3)
    c, lam, gamma = aln.mmelu_values(nnx.to_pure_dict(nnx.state(mod, nnx.Param)))
    np.testing.assert_array_equal(c, mod.c)
    np.testing.assert_array_equal(lam, mod.lam)
    np.testing.assert_array_equal(gamma, mod.gamma)
    ne = ann.NeLU(3, lam_init=1.1)
    np.testing.assert_array_equal(aln.nelu_lam(ne.lam_raw[...], ne.lam_max), ne.lam)


BAD = [  # (module, arguments, the argument the message must name)
    ("MMeLU", dict(c_init=1.0), "c_init"),
    ("MMeLU", dict(c_init=0.0), "c_init"),
    ("MMeLU", dict(lam_init=0.0), "lam_init"),
    ("MMeLU", dict(num_features=0), "num_features"),
    ("MMeLU", dict(gamma_init=float("inf")), "gamma_init"),
    ("MMeLU", dict(param_dtype=jnp.int32), "param_dtype"),
    ("NeLU", dict(lam_init=-1.0), "lam_init"),
    ("NeLU", dict(method="bisect"), "method"),
    ("NeLU", dict(iters=0), "iters"),
    ("NeLU", dict(rms_scaled=False, lam_init=1.5), "lam_init"),
    ("DiTAC", dict(method="fast"), "method"),
    ("DiTAC", dict(a=1.0, b=0.0), "a < b"),
    ("DiTAC", dict(nc=1), "nc"),
    ("DiTAC", dict(num_features=0), "num_features"),
    ("DiTAC", dict(reg_weight=-0.1), "reg_weight"),
    ("DiTAC", dict(variant="leaky"), "variant"),
    ("TopK", dict(k=0.0), "k"),
    ("TopK", dict(k=0.5, by="sign"), "by"),
    ("LayerAct", dict(kind="gelu"), "kind"),
    ("LayerAct", dict(kind="silu", alpha=-1.0), "alpha"),
    ("BiasedReLU", dict(num_features=0), "num_features"),
    ("BiasedReLU", dict(num_features=2, bias_init=float("nan")), "bias_init"),
]


@pytest.mark.parametrize("name,kw,arg", BAD, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(BAD)])
def test_linen_and_nnx_raise_the_same_argument_errors(name, kw, arg):
    """Linen MMeLU(c_init=1.0) used to raise a bare ZeroDivisionError (issue 11)."""
    with pytest.raises(ValueError) as e_nnx:
        make_nnx(name, kw)
    with pytest.raises(ValueError) as e_lin:
        getattr(aln, name)(**kw)
    assert arg in str(e_lin.value) and arg in str(e_nnx.value)
    if name != "BiasedReLU":  # BiasedReLU's NNX twin lives in pivotal_ae (its own wording)
        assert str(e_lin.value) == str(e_nnx.value)


def test_linen_all_and_shape_errors():
    assert set(aln.__all__) >= {"BiasedReLU", "DiTAC", "LayerAct", "MMeLU", "NeLU", "TopK"}
    m = aln.MMeLU(num_features=3)
    with pytest.raises(ValueError, match="num_features"):
        m.init(jax.random.key(0), jnp.ones((2, 4)))
