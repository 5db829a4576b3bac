"""Accelerator readiness: everything public lowers with ``jax.export`` for CUDA and TPU.

For every public array function of :mod:`actfx` and :mod:`actfx.cpab` (forward and
gradient), every NNX module of :mod:`actfx.nn` and :mod:`actfx.nn.models` (forward), a
ResNet-20 train step with LayerAct / Top-K / DiTAC activations and the Bayes
potential of :class:`actfx.bayes.SparseMLP`, in float32 and bfloat16, the program is
exported (lowered only: nothing is compiled or run) with ``platforms=("cuda",)`` and
``("tpu",)``, and its StableHLO must not call a custom-call target that does not exist on
that platform (the LayerAct CPU kernel, LAPACK, a host callback, ...). Arguments are
``jax.ShapeDtypeStruct`` s and the models are built with ``nnx.eval_shape``, so no array is
ever computed.

The public API is enumerated from the ``__all__`` lists: a new public function or module
without an export case here fails :func:`test_every_public_callable_has_an_export_case`.
"""

from __future__ import annotations

import functools
import re
import types
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

import actfx
import actfx.cpab
import actfx.nn
import actfx.nn.models
from actfx.bayes import SparseMLP
from actfx.cpab import Tessellation
from actfx.train import make_optimizer, make_train_step

PLATFORMS = ("cuda", "tpu")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

# ---- the custom-call check -----------------------------------------------------------

# custom-call targets that exist on the platform (XLA's own or those jaxlib registers for it)
_COMMON = {"ApproxTopK", "Sharding", "SPMDFullToShardShape", "SPMDShardToFullShape"}
_ALLOWED_EXACT = {
    "cuda": _COMMON,
    "tpu": _COMMON
    | {
        "LuDecomposition",
        "Qr",
        "ProductOfElementaryHouseholderReflectors",
        "Eigh",
        "tpu_custom_call",
    },
}
_ALLOWED_PREFIX = {
    "cuda": ("cusolver_", "cublas", "cu_", "cuda_"),  # jaxlib's CUDA solvers and helpers
    "tpu": (),
}

_TARGET = re.compile(r'custom_call\s*@([\w.$\-]+)|call_target_name\s*=\s*"([^"]+)"')


def custom_call_targets(mlir_text: str) -> set[str]:
    """Every custom-call target named in a StableHLO module's text (pretty or generic form)."""
    return {a or b for a, b in _TARGET.findall(mlir_text)}


def foreign_targets(targets: set[str], platform: str) -> list[str]:
    """The targets that do not exist on ``platform`` (sorted)."""
    return sorted(
        t
        for t in targets
        if t not in _ALLOWED_EXACT[platform] and not t.startswith(_ALLOWED_PREFIX[platform])
    )


def assert_lowers_everywhere(fn: Callable, *args) -> dict[str, set[str]]:
    """Export ``jit(fn)`` for each platform in :data:`PLATFORMS` (one trace, one lowering
    per platform) and assert that no custom call is foreign to the platform. Returns the
    targets seen per platform."""
    jitted = jax.jit(fn)
    seen = {}
    for platform in PLATFORMS:
        exp = jax.export.export(jitted, platforms=(platform,))(*args)
        assert exp.platforms == (platform,)
        seen[platform] = custom_call_targets(exp.mlir_module())
        bad = foreign_targets(seen[platform], platform)
        assert not bad, f"custom call(s) {bad} do not exist on {platform}"
    return seen


# ---- shared shapes ---------------------------------------------------------------------

NHWC = (2, 4, 4, 8)  # activations: batch 2, 4x4 pixels, 8 channels
C = NHWC[-1]
NPTS = 16  # CPAB points
TESS = Tessellation(6, zero_boundary=True)
DITAC_TESS = Tessellation(10, zero_boundary=True)


def spec(shape, dtype):
    return jax.ShapeDtypeStruct(tuple(shape), dtype)


def grad_of(fn: Callable, argnums) -> Callable:
    """Gradient of ``sum(fn(...))`` (accumulated in float32) w.r.t. ``argnums``."""
    return jax.grad(lambda *a: jnp.sum(fn(*a).astype(jnp.float32)), argnums=argnums)


class Case(NamedTuple):
    """``fn(*args)`` is exported; ``covers``: the public names it stands for."""

    name: str
    covers: tuple[str, ...]
    build: Callable  # dtype -> (fn, args)
    xfail: str | None = None


def _fn_cases(name, covers, fn, arg_shapes, diff_argnums, xfail=None):
    """Forward and gradient cases of ``fn`` over float arguments of ``arg_shapes``."""

    def fwd(dtype):
        return fn, [spec(s, dtype) for s in arg_shapes]

    def grad(dtype):
        return grad_of(fn, diff_argnums), [spec(s, dtype) for s in arg_shapes]

    return [
        Case(f"{name}-fwd", covers, fwd, xfail),
        Case(f"{name}-grad", covers, grad, xfail),
    ]


def _sample_theta(dtype):
    def fn(raw):
        return actfx.cpab.sample_theta(jax.random.wrap_key_data(raw), TESS, 3, dtype=dtype)

    return fn, [spec((2,), jnp.uint32)]


FUNCTION_CASES = [
    *_fn_cases(
        "layeract-paper",
        ("actfx.layeract",),
        functools.partial(actfx.layeract, kind="hardsilu", grad="paper", axis=-1),
        [NHWC],
        0,
    ),
    *_fn_cases("layeract_silu", ("actfx.layeract_silu",), actfx.layeract_silu, [NHWC], 0),
    *_fn_cases(
        "layeract_hardsilu", ("actfx.layeract_hardsilu",), actfx.layeract_hardsilu, [NHWC], 0
    ),
    *_fn_cases("topk-exact", ("actfx.topk",), functools.partial(actfx.topk, k=0.25), [NHWC], 0),
    *_fn_cases(
        "topk-approx",
        ("actfx.topk",),
        functools.partial(actfx.topk, k=0.25, method="approx", by="value"),
        [NHWC],
        0,
    ),
    *_fn_cases("mmelu", ("actfx.mmelu",), actfx.mmelu, [NHWC, (C,), (C,), (C,)], (0, 1, 2, 3)),
    *_fn_cases("nelu", ("actfx.nelu",), actfx.nelu, [NHWC, (C,)], (0, 1)),
    *_fn_cases(
        "nelu-unrolled",
        ("actfx.nelu",),
        functools.partial(actfx.nelu, method="unrolled", iters=3, axis=(1, 2, 3)),
        [NHWC, ()],
        (0, 1),
    ),
    *_fn_cases(
        "ditac-exact",
        ("actfx.ditac",),
        lambda x, th: actfx.ditac(x, th, DITAC_TESS, method="exact"),
        [NHWC, (DITAC_TESS.theta_dim,)],
        (0, 1),
    ),
    *_fn_cases(
        "ditac-table",
        ("actfx.ditac",),
        lambda x, th: actfx.ditac(x, th, DITAC_TESS, method="table", table_size=64),
        [NHWC, (DITAC_TESS.theta_dim,)],
        (0, 1),
    ),
    *_fn_cases(
        "ditac_regularizer",
        ("actfx.ditac_regularizer",),
        actfx.ditac_regularizer,
        [(DITAC_TESS.theta_dim,), (DITAC_TESS.theta_dim,) * 2],
        (0, 1),
    ),
    *_fn_cases(
        "cpab.transform",
        ("actfx.cpab_transform", "actfx.cpab.transform"),
        lambda x, th, t: actfx.cpab.transform(x, th, TESS, time=t),
        [(NPTS,), (TESS.theta_dim,), ()],
        (0, 1, 2),
    ),
    *_fn_cases(
        "cpab.inverse",
        ("actfx.cpab.inverse",),
        lambda x, th: actfx.cpab.inverse(x, th, TESS),
        [(NPTS,), (TESS.theta_dim,)],
        (0, 1),
    ),
    *_fn_cases(
        "cpab.grad_x",
        ("actfx.cpab.grad_x",),
        lambda x, th: actfx.cpab.grad_x(x, th, TESS),
        [(NPTS,), (TESS.theta_dim,)],
        (0, 1),
    ),
    *_fn_cases(
        "cpab.velocity",
        ("actfx.cpab.velocity",),
        lambda x, th: actfx.cpab.velocity(x, th, TESS),
        [(NPTS,), (TESS.theta_dim,)],
        (0, 1),
    ),
    *_fn_cases(
        "cpab.transform_numeric",
        ("actfx.cpab.transform_numeric",),
        lambda x, th: actfx.cpab.transform_numeric(x, th, TESS, steps=4),
        [(NPTS,), (TESS.theta_dim,)],
        (0, 1),
    ),
    # a random sample: forward only (no parameter to differentiate)
    Case("cpab.sample_theta-fwd", ("actfx.cpab.sample_theta",), _sample_theta),
]


# ---- NNX modules: forward via nnx.split / merge --------------------------


def _module_case(name, covers, make, x_shape):
    def fwd(dtype):
        graphdef, state = nnx.split(nnx.eval_shape(lambda: make(dtype)))

        def apply(state, x):
            return nnx.merge(graphdef, state)(x)

        return apply, [state, spec(x_shape, dtype)]

    # forward only: the gradients of LayerAct, Top-K, DiTAC and BasicBlock are in the
    # ResNet-20 train steps, those of the functional cores in FUNCTION_CASES
    return [Case(f"{name}-fwd", covers, fwd)]


def _rngs():
    return nnx.Rngs(0)


MODULE_CASES = [
    *_module_case(
        "nn.LayerAct", ("actfx.nn.LayerAct",), lambda d: actfx.nn.LayerAct(dtype=d), NHWC
    ),
    *_module_case("nn.TopK", ("actfx.nn.TopK",), lambda d: actfx.nn.TopK(0.25, dtype=d), NHWC),
    *_module_case("nn.MMeLU", ("actfx.nn.MMeLU",), lambda d: actfx.nn.MMeLU(C, dtype=d), NHWC),
    *_module_case("nn.NeLU", ("actfx.nn.NeLU",), lambda d: actfx.nn.NeLU(C, dtype=d), NHWC),
    *_module_case(
        "nn.DiTAC",
        ("actfx.nn.DiTAC", "actfx.nn.ditac_penalty", "actfx.nn.regularization"),
        lambda d: _WithPenalty(actfx.nn.DiTAC(C, table_size=64, dtype=d, rngs=_rngs())),
        NHWC,
    ),
    *_module_case(
        "nn.BiasedReLU",
        ("actfx.nn.BiasedReLU",),
        lambda d: actfx.nn.BiasedReLU(C, dtype=d),
        NHWC,
    ),
    *_module_case(
        "nn.PivotalAE",
        ("actfx.nn.PivotalAE",),
        lambda d: actfx.nn.PivotalAE(C, 6, dtype=d, rngs=_rngs()),
        (2, C),
    ),
    *_module_case(
        "nn.ConvPivotalAE",
        ("actfx.nn.ConvPivotalAE",),
        lambda d: actfx.nn.ConvPivotalAE(1, 4, kernel_size=3, dtype=d, rngs=_rngs()),
        (2, 8, 8, 1),
    ),
    *_module_case(
        "nn.models.MLP",
        ("actfx.nn.models.MLP",),
        lambda d: actfx.nn.models.MLP(C, 3, hidden=(8,), act=actfx.nn.MMeLU, dtype=d, rngs=_rngs()),
        (2, C),
    ),
    *_module_case(
        "nn.models.SmallCNN",
        ("actfx.nn.models.SmallCNN",),
        lambda d: actfx.nn.models.SmallCNN(widths=(4, 8), dtype=d, rngs=_rngs()),  # Top-K: ResNet
        (2, 8, 8, 1),
    ),
    *_module_case(
        "nn.models.BasicBlock",
        ("actfx.nn.models.BasicBlock",),
        lambda d: actfx.nn.models.BasicBlock(
            4, 8, stride=2, act=lambda: actfx.nn.LayerAct(), dtype=d, rngs=_rngs()
        ),
        (2, 8, 8, 4),
    ),
]


class _WithPenalty(nnx.Module):
    """``act(x)`` plus both regularisers, so that they are exported with the module."""

    def __init__(self, act):
        self.act = act

    def __call__(self, x):
        pen = actfx.nn.ditac_penalty(self) + actfx.nn.regularization(self)
        return self.act(x) + pen.astype(x.dtype)


# ---- ResNet-20 train steps and the Bayes potential ------------------------------------

RESNET_ACTS = {
    "layeract": dict(act=lambda: actfx.nn.LayerAct("silu")),
    "topk": dict(act=lambda: jax.nn.relu, topk=0.25),
    "ditac": dict(act=actfx.nn.DiTAC),
}


def _resnet_step(act):
    def build(dtype):
        def make():
            model = actfx.nn.models.ResNet(
                20, num_classes=10, in_channels=3, dtype=dtype, rngs=_rngs(), **RESNET_ACTS[act]
            )
            return model, nnx.Optimizer(model, make_optimizer("sgd", 0.1), wrt=nnx.Param)

        graphdef, state = nnx.split(nnx.eval_shape(make))
        args = [
            state,
            spec((2, 8, 8, 3), jnp.float32),
            spec((2,), jnp.int32),
            spec((2,), jnp.uint32),
        ]

        def step(state, x, y, raw_key):
            return make_train_step(graphdef)(state, x, y, jax.random.wrap_key_data(raw_key))

        return step, args

    return Case(f"resnet20-train-step-{act}", ("actfx.nn.models.ResNet",), build)


def _bayes_potential(activation):
    def build(dtype):
        from numpyro import handlers
        from numpyro.distributions import biject_to
        from numpyro.infer.util import potential_energy

        model = SparseMLP((3, 4, 1), activation=activation)
        x, y = spec((5, 3), dtype), spec((5,), dtype)

        def unconstrained(x, y):  # the sample sites in NUTS's (unconstrained) space
            tr = handlers.trace(handlers.seed(model, 0)).get_trace(x, y)
            return {
                k: biject_to(s["fn"].support).inv(s["value"])
                for k, s in tr.items()
                if s["type"] == "sample" and not s["is_observed"]
            }

        z = jax.tree.map(lambda v: spec(v.shape, dtype), jax.eval_shape(unconstrained, x, y))

        def potential_and_grad(z, x, y):  # what NUTS evaluates (initialize_model's potential_fn)
            return jax.value_and_grad(lambda z: potential_energy(model, (x, y), {}, z))(z)

        return potential_and_grad, [z, x, y]

    return Case(f"bayes-potential-{activation}", (), build)


MODEL_CASES = [
    *(_resnet_step(a) for a in RESNET_ACTS),
    *(_bayes_potential(a) for a in ("mmelu", "ditac")),
]

CASES = FUNCTION_CASES + MODULE_CASES + MODEL_CASES

# ---- the public API: what must have a case ----------------------------------------------

NAMESPACES = (actfx, actfx.cpab, actfx.nn, actfx.nn.models)

# public callables that are not array programs (documented exceptions)
NOT_ARRAY_FUNCTIONS = {
    "actfx.ditac_interval": "returns Python floats from the variant's constants",
    "actfx.layeract_native_status": "reports whether the CPU kernel is built",
    "actfx.topk_num_kept": "integer arithmetic on static sizes",
    "actfx.cpab.Tessellation": "a static (hashable) description of cells, built with NumPy",
    "actfx.cpab.affine_covariance": "NumPy (float64) prior covariance",
    "actfx.cpab.constraint_matrix": "NumPy constraint matrix",
    "actfx.cpab.precision_matrix": "NumPy (float64) prior precision",
    "actfx.cpab.prior_covariance": "NumPy (float64) prior covariance",
    "actfx.nn.HasRegularizer": "a typing Protocol",
    "actfx.nn.models.build_activation": "builds a module; its modules are exported here",
    "actfx.nn.models.resolve_activation": "resolves a factory; no array program",
    "actfx.nn.models.resnet20": "ResNet(20, ...) factory; the ResNet-20 step is exported",
    "actfx.nn.models.resnet32": "ResNet(32, ...) factory (ResNet is exported at depth 20)",
    "actfx.nn.models.resnet44": "ResNet(44, ...) factory (ResNet is exported at depth 20)",
    "actfx.nn.models.resnet56": "ResNet(56, ...) factory (ResNet is exported at depth 20)",
}


def public_callables() -> set[str]:
    """``namespace.name`` of every public function and class (NNX modules included)."""
    out = set()
    for ns in NAMESPACES:
        for name in ns.__all__:
            obj = getattr(ns, name)
            if isinstance(obj, (types.FunctionType, type)):
                out.add(f"{ns.__name__}.{name}")
    return out


def test_every_public_callable_has_an_export_case():
    covered = {c for case in CASES for c in case.covers}
    public = public_callables()
    missing = public - covered - set(NOT_ARRAY_FUNCTIONS)
    assert not missing, f"public callables without an export case: {sorted(missing)}"
    stale = (covered | set(NOT_ARRAY_FUNCTIONS)) - public
    assert not stale, f"cases or exceptions naming no public callable: {sorted(stale)}"
    assert not covered & set(NOT_ARRAY_FUNCTIONS)


# ---- the checker itself can fail --------------------------------------------------------


def test_checker_flags_cpu_only_custom_calls():
    # a real CPU export of a linear solve calls LAPACK: foreign to CUDA and TPU
    exp = jax.export.export(jax.jit(jnp.linalg.solve), platforms=("cpu",))(
        spec((3, 3), jnp.float32), spec((3,), jnp.float32)
    )
    targets = custom_call_targets(exp.mlir_module())
    assert any(t.startswith("lapack_") for t in targets), targets
    for platform in PLATFORMS:
        assert foreign_targets(targets, platform) == sorted(targets)
    generic = 'stablehlo.custom_call"(%0) {call_target_name = "xla_python_cpu_callback"}'
    assert custom_call_targets(generic) == {"xla_python_cpu_callback"}
    assert foreign_targets({"actfx_layeract_forward", "cusolver_potrf_ffi"}, "cuda") == [
        "actfx_layeract_forward"
    ]
    assert foreign_targets({"cusolver_potrf_ffi", "LuDecomposition"}, "tpu") == [
        "cusolver_potrf_ffi"
    ]


def test_layeract_kernel_is_left_out_of_exports():
    """On CPU ``jit`` calls the LayerAct kernel; an export (any platform, CPU included) must
    use the XLA path instead: the kernel exists only in this process."""
    ok, detail = actfx.layeract_native_status()
    if not ok:
        pytest.skip(f"LayerAct kernel unavailable: {detail}")
    f = grad_of(actfx.layeract_silu, 0)
    x = spec(NHWC, jnp.float32)
    lowered = custom_call_targets(jax.jit(f).lower(x).as_text())
    assert {"actfx_layeract_forward", "actfx_layeract_backward"} & lowered, lowered
    exported = jax.export.export(jax.jit(f), platforms=("cpu",))(x)
    assert not any(t.startswith("actfx") for t in custom_call_targets(exported.mlir_module()))


# ---- the export matrix ----------------------------------------------------------------------


def _params():
    for case in CASES:
        for dname in DTYPES:
            marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
            yield pytest.param(case, dname, id=f"{case.name}-{dname}", marks=marks)


@pytest.mark.parametrize(("case", "dtype"), list(_params()))
def test_exports_for_cuda_and_tpu(case, dtype):
    fn, args = case.build(DTYPES[dtype])
    assert_lowers_everywhere(fn, *args)
