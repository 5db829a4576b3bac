"""Issue 22: module constructors check their arguments against what ``param_dtype`` can
hold, refuse values the parameter transforms would clip, and check types; ``regularization``
and the pivotal auto-encoders name the offending argument. Construction only (no jit)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import actfx.nn.linen as L
from actfx.nn import (
    BiasedReLU,
    ConvPivotalAE,
    DiTAC,
    MMeLU,
    NeLU,
    PivotalAE,
    regularization,
)

F16, BF16 = jnp.float16, jnp.bfloat16

# ------------------------------------------------------------ init values vs param_dtype

OVERFLOW = [
    ("bias_init", "float32", lambda: BiasedReLU(None, bias_init=1e39)),
    ("bias_init", "float16", lambda: BiasedReLU(2, bias_init=7e4, param_dtype=F16)),
    ("bias_init", "float16", lambda: L.BiasedReLU(2, bias_init=7e4, param_dtype=F16)),
    ("lam_init", "float16", lambda: MMeLU(lam_init=1e5, param_dtype=F16)),
    ("lam_init", "float16", lambda: L.MMeLU(lam_init=1e5, param_dtype=F16)),
    ("lam_init", "float32", lambda: MMeLU(lam_init=1e39)),
    ("gamma_init", "bfloat16", lambda: MMeLU(gamma_init=1e39, param_dtype=BF16)),
    ("lam_max", "float32", lambda: NeLU(lam_max=1e39, lam_init=1.0)),
    ("lam_max", "float32", lambda: L.NeLU(lam_max=1e39, lam_init=1.0)),
    (
        "init_output_variance",
        "float16",
        lambda: DiTAC(param_dtype=F16, init_output_variance=1e6, rngs=nnx.Rngs(0)),
    ),
    ("init_output_variance", "float16", lambda: L.DiTAC(param_dtype=F16, init_output_variance=1e6)),
]


@pytest.mark.parametrize("arg,dtype,make", OVERFLOW, ids=[f"{a}-{d}" for a, d, _ in OVERFLOW])
def test_init_that_overflows_param_dtype_is_refused(arg, dtype, make):
    # before: the parameter was stored as +-inf (BiasedReLU then output all zeros)
    with pytest.raises(ValueError, match=rf"{arg}.*{dtype}"):
        make()


def test_inits_that_fit_are_stored_exactly():
    # the largest values that fit are kept, to the storage dtype's rounding
    assert float(BiasedReLU(None, bias_init=3e38).bias[...]) == np.float32(3e38)
    lam = float(MMeLU(lam_init=6e4, param_dtype=F16).lam)
    assert math.isclose(lam, 6e4, rel_tol=2**-10)
    theta = DiTAC(param_dtype=F16, init_output_variance=10.0, rngs=nnx.Rngs(0)).theta[...]
    assert theta.dtype == F16 and bool(jnp.all(jnp.isfinite(theta)))


# ------------------------------------------------------------ no silent clamps

CLAMPED = [
    ("lam_init", lambda: NeLU(lam_init=1e-50)),  # before: lam = 8e-6
    ("lam_init", lambda: NeLU(lam_max=1e4, lam_init=1e-3)),  # before: lam = 1e-2
    ("lam_init", lambda: L.NeLU(lam_max=1e4, lam_init=1e-3)),
    ("lam_init", lambda: NeLU(rms_scaled=False, lam_init=1 - 1e-9)),
    ("c_init", lambda: MMeLU(c_init=1e-50)),  # before: c = 1e-6
    ("c_init", lambda: MMeLU(c_init=1 - 1e-9)),
    ("c_init", lambda: L.MMeLU(c_init=1e-50)),
    ("lam_init", lambda: MMeLU(lam_init=1e-9)),  # before: lam = 1e-6
]


@pytest.mark.parametrize("arg,make", CLAMPED)
def test_init_outside_transform_range_is_refused(arg, make):
    with pytest.raises(ValueError, match=rf"{arg} must be"):
        make()


@pytest.mark.parametrize("lam_max,lam_init", [(1e4, 0.011), (8.0, 8.1e-6), (1.0, 0.999)])
def test_nelu_lam_equals_init_inside_range(lam_max, lam_init):
    kw = {"rms_scaled": lam_max > 1.0}
    lam = float(NeLU(lam_max=lam_max, lam_init=lam_init, **kw).lam)
    assert math.isclose(lam, lam_init, rel_tol=1e-4)


def test_mmelu_values_equal_init_inside_range():
    m = MMeLU(c_init=2e-6, lam_init=2e-6)
    assert math.isclose(float(m.c), 2e-6, rel_tol=1e-4)
    assert math.isclose(float(m.lam), 2e-6, rel_tol=1e-4)


# ------------------------------------------------------------ types

BAD_TYPES = [
    ("two_sided", {"two_sided": "no"}),  # before: ran two-sided
    ("two_sided", {"two_sided": 0}),
    ("dtype", {"dtype": jnp.int8}),  # before: accepted (NNX)
    ("param_dtype", {"param_dtype": None}),  # before: accepted (NNX), weak-typed bias
    ("param_dtype", {"param_dtype": jnp.int32}),
    ("channel_axis", {"channel_axis": 1.5}),
]


@pytest.mark.parametrize("front", ["nnx", "linen"])
@pytest.mark.parametrize("arg,kw", BAD_TYPES, ids=[a for a, _ in BAD_TYPES])
def test_biased_relu_checks_types(front, arg, kw):
    cls = BiasedReLU if front == "nnx" else L.BiasedReLU
    with pytest.raises(ValueError, match=arg):
        cls(3, **kw)


# ------------------------------------------------------------ Linen DiTAC at construction

DITAC_BAD = [
    ("init_length_scale", -1.0),
    ("init_output_variance", float("nan")),
    ("init_kernel", "gauss"),
    ("reg_length_scale", 0.0),
    ("reg_output_variance", float("inf")),
    ("reg_kernel", "nope"),
]


@pytest.mark.parametrize("arg,value", DITAC_BAD, ids=[a for a, _ in DITAC_BAD])
def test_ditac_prior_args_checked_at_construction(arg, value):
    # before: Linen checked these only at init() / when regularizer() ran, and both
    # fronts named the core's "length_scale"/"kernel", not the module's argument
    with pytest.raises(ValueError, match=arg):
        L.DiTAC(**{arg: value})
    with pytest.raises(ValueError, match=arg):
        DiTAC(**{arg: value}, rngs=nnx.Rngs(0))


# ------------------------------------------------------------ regularization()


class _VectorPenalty(nnx.Module):
    def regularizer(self):
        return jnp.ones(3)


class _Holder(nnx.Module):
    def __init__(self):
        self.lin = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
        self.pen = _VectorPenalty()


def test_regularization_refuses_non_scalar_regularizer():
    # before: returned the vector [1, 1, 1]
    with pytest.raises(ValueError, match=r"_VectorPenalty\.regularizer\(\).*pen.*scalar"):
        regularization(_Holder())


# ------------------------------------------------------------ pivotal AEs


def test_pivotal_ae_names_in_features():
    ae = PivotalAE(4, 8, rngs=nnx.Rngs(0))
    # before: a dot_general TypeError
    with pytest.raises(ValueError, match="in_features=4"):
        ae(jnp.ones((2, 5)))
    with pytest.raises(ValueError, match="num_atoms=8"):
        ae.decode(jnp.ones((2, 4)))
    conv = ConvPivotalAE(1, 4, kernel_size=3, rngs=nnx.Rngs(0))
    # before: a conv_general_dilated feature-dimension error
    with pytest.raises(ValueError, match="in_features=1"):
        conv(jnp.ones((1, 8, 8, 3)))
    with pytest.raises(ValueError, match="in_features=1"):
        conv(jnp.ones((8, 8, 1)))


def test_reference_models_name_their_input_size():
    from actfx.nn.models import MLP, SmallCNN

    mlp = MLP(6, 2, hidden=(3,), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="in_features=6"):  # before: a dot_general error
        mlp(jnp.ones((2, 5)))
    cnn = SmallCNN(num_classes=2, widths=(4,), in_channels=1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="in_channels=1"):  # before: a conv error
        cnn(jnp.ones((1, 8, 8, 3)))
