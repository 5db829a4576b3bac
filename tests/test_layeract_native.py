"""The compiled LayerAct CPU kernel against the pure-XLA LayerAct and a float64 reference.

The kernel (``actfx/_src/csrc/layeract_cpu.cc``) is what ``layeract(..., implementation=None)``
runs on CPU for float32 computation; ``implementation="xla"`` is the pure-JAX path, tested
on its own in test_layeract.py against NumPy. Here: the two agree to float32 round-off in
value and gradient (exact and the paper's), at the edges (non-finite layers, constant
layers, near-overflow and tiny layers, layer sizes around the 16-lane vector width), under
every transformation, and the dispatch picks what it says. The fallback (no compiler,
``ACTFX_NATIVE=0``) is tested in fresh processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads
from layeract_reference import np_layeract_vjp  # the float64 closed-form oracle

import actfx
import actfx.nn
import actfx.nn.linen
import actfx.nn.models
from actfx._src import layeract_native, native_build

AVAILABLE, DETAIL = actfx.layeract_native_status()
needs_kernel = pytest.mark.skipif(not AVAILABLE, reason=f"LayerAct kernel unavailable: {DETAIL}")
EPS = float(jnp.finfo(jnp.float32).eps)


def _both(x, g=None, **kw):
    """(value, gradient) of the kernel and of pure XLA."""
    g = jnp.ones_like(x) if g is None else g
    out = []
    for impl in ("native", "xla"):
        f = lambda v, impl=impl: actfx.layeract(v, implementation=impl, **kw)
        y, pull = jax.vjp(f, x)
        out.append((np.asarray(y, np.float64), np.asarray(pull(g)[0], np.float64)))
    return out


def _close(a, b, scale, k=16):
    np.testing.assert_allclose(a, b, rtol=k * EPS, atol=k * EPS * scale)


# Default: the scalar tail alone (2), the 16-lane loop alone (16), two loop passes and a tail
# (33); the other sizes (each one new compile per kind x grad x path) under -m slow.
_SLOW = pytest.mark.slow


@needs_kernel
@pytest.mark.parametrize("kind", ["silu", "hardsilu"])
@pytest.mark.parametrize("grad", ["autodiff", "paper"])
@pytest.mark.parametrize(
    "m", [2, 16, 33, *(pytest.param(m, marks=_SLOW) for m in (3, 15, 17, 31, 1000))]
)
def test_kernel_matches_float64_reference_and_xla(kind, grad, m):
    """Every layer size around the 16-lane main loop and its scalar tail."""
    kx, kg = jax.random.split(jax.random.key(m))
    x = jax.random.normal(kx, (5, m)) * 1.7 + 0.4
    g = jax.random.normal(kg, (5, m))
    (yn, gn), (yx, gx) = _both(x, g, kind=kind, grad=grad)
    yr, gr = np_layeract_vjp(x, g, kind, 1e-5, 1, paper=grad == "paper")
    scale = float(np.abs(yr).max())
    _close(yn, yr, scale)
    _close(gn, gr, float(np.abs(gr).max()), k=64)
    _close(yn, yx, scale)
    _close(gn, gx, float(np.abs(gx).max()), k=64)


_AXES = [((3, 4, 5, 6), None), ((3, 4, 5, 6), (-2, -1)), ((7, 9), -1)]
_DDOF_ALPHA = [(0, 0.0), (1, 1e-5), (2, 0.1)]


@needs_kernel
@pytest.mark.parametrize(
    "shape,axis,ddof,alpha",
    [
        # default: each layer layout and each (ddof, alpha) once; the full cross under slow
        pytest.param(*sa, *da, marks=[] if i == j else [_SLOW])
        for i, sa in enumerate(_AXES)
        for j, da in enumerate(_DDOF_ALPHA)
    ],
)
def test_kernel_axes_ddof_alpha(shape, axis, ddof, alpha):
    x = jax.random.normal(jax.random.key(1), shape) * 3 - 1
    g = jax.random.normal(jax.random.key(2), shape)
    (yn, gn), (yx, gx) = _both(x, g, axis=axis, ddof=ddof, alpha=alpha)
    _close(yn, yx, float(np.abs(yx).max()))
    _close(gn, gx, float(np.abs(gx).max()), k=64)


@needs_kernel
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_kernel_half_precision_inputs_match_xla(dtype):
    """16-bit inputs are computed in float32, so they take the kernel too."""
    x = (jax.random.normal(jax.random.key(3), (4, 8, 8, 3)) * 2).astype(dtype)
    yn = actfx.layeract(x, implementation="native")
    yx = actfx.layeract(x, implementation="xla")
    assert yn.dtype == dtype
    # both round the same float32 result; allow one 16-bit ulp where they straddle a tie
    ulp = float(jnp.finfo(dtype).eps)
    np.testing.assert_allclose(
        np.asarray(yn, np.float32), np.asarray(yx, np.float32), rtol=ulp, atol=ulp
    )


@needs_kernel
def test_kernel_non_finite_layer_is_nan_and_others_untouched():
    x = np.array(jax.random.normal(jax.random.key(4), (4, 20)), np.float32)
    x[1, 3], x[2, 0] = np.nan, np.inf
    (yn, gn), (yx, gx) = _both(jnp.asarray(x))
    for y, gr in ((yn, gn), (yx, gx)):
        assert np.isnan(y[1:3]).all() and np.isnan(gr[1:3]).all()
        assert np.isfinite(y[[0, 3]]).all() and np.isfinite(gr[[0, 3]]).all()
    _close(yn[[0, 3]], yx[[0, 3]], 4.0)
    _close(gn[[0, 3]], gx[[0, 3]], 4.0, k=64)


@needs_kernel
def test_kernel_constant_layer_with_alpha_zero():
    """0/0: n = 0, output x/2, gradient g/2 (the documented alpha -> 0 convention)."""
    x = jnp.full((2, 37), 3.25).at[1].set(-0.5)
    g = jax.random.normal(jax.random.key(5), x.shape)
    (yn, gn), (yx, gx) = _both(x, g, alpha=0.0)
    np.testing.assert_array_equal(yn, np.asarray(x) / 2)
    np.testing.assert_array_equal(gn, np.asarray(g) / 2)
    np.testing.assert_array_equal(yx, yn)
    np.testing.assert_allclose(gx, gn, rtol=EPS)


@needs_kernel
@pytest.mark.parametrize("grad", ["autodiff", "paper"])
def test_kernel_constant_layers_at_every_magnitude(grad):
    """n = 0 exactly: x/2 and dx = g/2 + (x / sqrt(alpha)) s'(0) (g - mean g) on both paths.
    The kernel gave NaN for |x| >= ~1e36 (r / p overflowed float32, n = 0 * inf)."""
    vals = np.array([0.1, -3.0, 1e30, 1e36, 1e-30, -3e38], np.float32)
    x = jnp.asarray(np.repeat(vals[:, None], 9, axis=1))
    g = jax.random.normal(jax.random.key(15), x.shape) / 4
    for kind in ("silu", "hardsilu"):
        (yn, gn), (yx, gx) = _both(x, g, kind=kind, grad=grad)
        np.testing.assert_array_equal(yn, np.asarray(x) / 2)
        np.testing.assert_array_equal(yx, np.asarray(x) / 2)
        _, gr = np_layeract_vjp(x, g, kind, 1e-5, 1)
        finite = np.abs(gr).max(-1) < 1e38  # |x| / sqrt(alpha) s'(0) overflows float32 beyond
        assert finite[:5].all() and not finite[5:].all()
        for d in (gn, gx):
            err = np.abs(d - gr)[finite] / np.abs(gr[finite]).max(-1, keepdims=True)
            assert err.max() <= 8 * EPS, (kind, err.max(-1) / EPS)


@needs_kernel
@pytest.mark.parametrize("kind", ["silu", "hardsilu"])
@pytest.mark.parametrize(
    "scale,offset",
    [(1.7e38, 0.0), (1e30, 0.0), (1e-30, 0.0), (1e-3, 1e4), (1.0, 1e6), (2.0**-60, 0.0)],
)
def test_kernel_extreme_layers_match_xla(kind, scale, offset):
    """Near FLT_MAX (x - mean and 1/std leave float32), tiny, and a large mean over std."""
    base = jax.random.normal(jax.random.key(6), (3, 50))
    base = base / jnp.abs(base).max()  # |base| <= 1, so scale bounds |x|
    x = (base * scale + offset).astype(jnp.float32)
    assert bool(jnp.isfinite(x).all())
    g = jax.random.normal(jax.random.key(7), x.shape)
    (yn, gn), (yx, gx) = _both(x, g, kind=kind, alpha=0.0)
    assert np.isfinite(yn).all() and np.isfinite(gn).all()
    # float64 reference on x / scale (LayerAct with alpha = 0 is positively homogeneous)
    xs = np.asarray(x, np.float64) / scale
    yr, gr = np_layeract_vjp(xs, g, kind, 0.0, 1)
    _close(yn / scale, yr, float(np.abs(yr).max()), k=16)
    # the kernel's float64 statistics and two-float mean keep the gradient at round-off
    # even where |mean| / std is 3e7 (measured: <= 1.1 eps in value and gradient)
    _close(gn, gr, float(np.abs(gr).max()), k=16)
    # and the XLA path, shifted by a layer entry, agrees there too (it used to be off by
    # ulp(mean) / std: 2e5-8e5 eps in the gradient at |mean| / std = 3e7)
    _close(yx / scale, yr, float(np.abs(yr).max()), k=16)
    _close(gx, gr, float(np.abs(gr).max()), k=16)


@needs_kernel
def test_kernel_transformations_agree_with_xla():
    x = jax.random.normal(jax.random.key(8), (2, 3, 4, 5)) + 0.2
    t = jax.random.normal(jax.random.key(9), x.shape)

    def f(impl):
        return lambda v: actfx.layeract(v, implementation=impl)

    def close(a, b, k=64):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        _close(a, b, float(np.abs(b).max()) + 1e-30, k=k)

    nat, xla = f("native"), f("xla")
    close(jax.jit(nat)(x), nat(x), k=0)  # eager and jitted: the same floats
    # Every other transformation runs jitted: eager, each composite dispatches (and
    # compiles) its ops one by one, seconds of compiles for nothing the jitted run misses.
    vm = lambda h: jax.jit(jax.vmap(h, in_axes=1, out_axes=1))(x)
    close(vm(nat), vm(xla))
    jv = lambda h: jax.jit(lambda v, w: jax.jvp(h, (v,), (w,))[1])(x, t)
    close(jv(nat), jv(xla))
    # grad of grad, and a full Hessian (forward over reverse)
    gg = lambda h: jax.jit(
        jax.grad(lambda v: jnp.sum(jax.grad(lambda u: jnp.sum(jnp.sin(h(u))))(v) ** 2))
    )
    close(gg(nat)(x), gg(xla)(x), k=256)
    y = x[:2, :1, :2, :3]
    hess = lambda h: jax.jit(jax.hessian(lambda v: jnp.sum(jnp.sin(h(v)))))(y)
    close(hess(nat), hess(xla), k=256)
    # vmap of grad, grad of vmap
    vg = lambda h: jax.jit(jax.vmap(jax.grad(lambda v: jnp.sum(h(v) * v))))(x)
    close(vg(nat), vg(xla))
    # remat, scan, linearize
    tot = lambda h: lambda v: jnp.sum(jnp.tanh(h(v)))
    close(jax.jit(jax.grad(jax.checkpoint(tot(nat))))(x), jax.jit(jax.grad(tot(xla)))(x))
    scan = lambda h: jax.jit(
        jax.grad(lambda v: jax.lax.scan(lambda c, xi: (c + tot(h)(xi[None]), None), 0.0, v)[0])
    )
    close(scan(nat)(x), scan(xla)(x))
    lin = lambda h: jax.jit(lambda v, w: jax.linearize(tot(h), v)[1](w))(x, t)
    close(lin(nat), lin(xla))


@needs_kernel
@pytest.mark.slow
def test_kernel_check_grads_second_order():
    """Numerical second-order check of the kernel (~7 s of compiles); by default its first
    and second derivatives are checked against the float64 closed form and XLA above."""
    x = jax.random.normal(jax.random.key(8), (2, 3, 4, 5)) + 0.2
    nat = lambda v: actfx.layeract(v, implementation="native")
    check_grads(jax.jit(nat), (x[:1, :2],), order=2, modes=("fwd", "rev"), atol=2e-2, rtol=2e-2)


def _custom_calls(fn, *args) -> str:
    text = jax.jit(fn).lower(*args).as_text()
    return "actfx_layeract" if "custom_call @actfx_layeract_" in text else ""


@needs_kernel
def test_dispatch_takes_the_kernel_only_where_it_applies(x64):
    x = jnp.arange(24.0, dtype=jnp.float32).reshape(2, 3, 4)
    grad = lambda **kw: jax.grad(lambda v: jnp.sum(actfx.layeract(v, **kw)))
    assert _custom_calls(lambda v: actfx.layeract(v), x)
    assert _custom_calls(grad(), x)
    assert not _custom_calls(lambda v: actfx.layeract(v, implementation="xla"), x)
    assert not _custom_calls(lambda v: actfx.layeract(v), x.astype(jnp.float64))
    assert not _custom_calls(lambda v: actfx.layeract(v, axis=(0, 1)), x)  # not trailing
    with pytest.raises(ValueError, match="implementation='native' needs float32"):
        actfx.layeract(x.astype(jnp.float64), implementation="native")
    with pytest.raises(ValueError, match="trailing layer axes"):
        actfx.layeract(x, axis=1, implementation="native")


@needs_kernel
def test_export_serializes_the_xla_path():
    """jax.export must not bake in a call to a kernel only this process has."""
    from jax import export

    x = jax.random.normal(jax.random.key(3), (2, 3, 8))
    loss = lambda v: jnp.sum(actfx.layeract(v) ** 2)
    for fn in (actfx.layeract, jax.grad(loss)):
        exp = export.export(jax.jit(fn))(x)
        assert "custom_call @actfx" not in exp.mlir_module()
        np.testing.assert_allclose(exp.call(x), fn(x), rtol=1e-5, atol=1e-6)
    assert _custom_calls(actfx.layeract, x)  # plain jit still takes the kernel


def test_bad_implementation_is_a_value_error():
    with pytest.raises(ValueError, match="implementation must be one of"):
        actfx.layeract(jnp.ones((2, 3)), implementation="cuda")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="implementation"):
        actfx.nn.LayerAct(implementation="fast")  # type: ignore[arg-type]


def test_native_unavailable_raises_only_when_asked(monkeypatch):
    monkeypatch.setattr(layeract_native, "native_status", lambda: (False, "no compiler (test)"))
    x = jax.random.normal(jax.random.key(0), (2, 9))
    with pytest.raises(RuntimeError, match="no compiler \\(test\\)"):
        actfx.layeract(x, implementation="native")
    np.testing.assert_array_equal(actfx.layeract(x), actfx.layeract(x, implementation="xla"))


@needs_kernel
def test_kernel_threads_and_row_counts():
    """0, 1 and many rows (the rows are spread over XLA's intra-op thread pool)."""
    for rows in (0, 1, 3, 257):
        x = jax.random.normal(jax.random.key(rows), (rows, 40))
        (yn, gn), (yx, gx) = _both(x)
        assert yn.shape == (rows, 40)
        if rows:
            _close(yn, yx, float(np.abs(yx).max()))
            _close(gn, gx, float(np.abs(gx).max()), k=64)


def _kernel_matches_xla(rows, m, log_scale, shift, kind, seed):
    x = (jax.random.normal(jax.random.key(seed), (rows, m)) + shift) * np.float32(10.0**log_scale)
    (yn, gn), (yx, gx) = _both(x.astype(jnp.float32), kind=kind)
    _close(yn, yx, float(np.abs(yx).max()) + 1e-37, k=64)
    cond = float(np.max(np.abs(shift) + 1) * 4)
    _close(gn, gx, float(np.abs(gx).max()) + 1e-37, k=64 * cond)


_VALUES = dict(
    log_scale=st.floats(-30, 30),
    shift=st.floats(-3, 3),
    kind=st.sampled_from(["silu", "hardsilu"]),
    seed=st.integers(0, 2**16),
)


@needs_kernel
@settings(max_examples=10, deadline=None)
@given(**_VALUES)
def test_kernel_matches_xla_property(log_scale, shift, kind, seed):
    """One shape (a loop pass and a tail; each new shape compiles): the values are what is
    explored. The slow variant draws the shape too."""
    _kernel_matches_xla(4, 17, log_scale, shift, kind, seed)


@needs_kernel
@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(rows=st.sampled_from([1, 4]), m=st.sampled_from([2, 17, 64]), **_VALUES)
def test_kernel_matches_xla_property_shapes(rows, m, log_scale, shift, kind, seed):
    _kernel_matches_xla(rows, m, log_scale, shift, kind, seed)


@needs_kernel
def test_modules_pass_implementation_through():
    x = jax.random.normal(jax.random.key(1), (2, 4, 4, 3))
    ref = actfx.layeract(x, kind="hardsilu", implementation="xla")
    for impl in (None, "native", "xla"):
        m = actfx.nn.LayerAct("hardsilu", implementation=impl)
        assert m.implementation == impl
        _close(np.asarray(m(x)), np.asarray(ref), float(jnp.abs(ref).max()))
        lin = actfx.nn.linen.LayerAct(kind="hardsilu", implementation=impl)
        _close(np.asarray(lin.apply({}, x)), np.asarray(ref), float(jnp.abs(ref).max()))


@needs_kernel
@pytest.mark.slow
def test_resnet_train_step_agrees_between_the_paths():
    """End to end (two ResNet compiles): the train step's loss and gradients agree between
    the kernel and XLA (their value and gradient agreement is the default tests' subject)."""
    from flax import nnx

    losses = {}
    for impl in ("native", "xla"):
        model = actfx.nn.models.ResNet(
            8,
            act=lambda impl=impl: actfx.nn.LayerAct("silu", implementation=impl),
            widths=(4, 8, 8),
            rngs=nnx.Rngs(0),
        )
        imgs = jax.random.uniform(jax.random.key(2), (4, 8, 8, 3))
        loss, grads = nnx.jit(nnx.value_and_grad(lambda m: jnp.mean(m(imgs) ** 2)))(model)
        losses[impl] = (float(loss), jax.tree.leaves(grads))
    assert abs(losses["native"][0] - losses["xla"][0]) <= 1e-5 * abs(losses["xla"][0])
    for a, b in zip(losses["native"][1], losses["xla"][1]):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5 * float(jnp.abs(b).max() + 1))


def _run(code: str, **env) -> str:
    full = {**os.environ, **env}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


_FALLBACK = """
    import jax, jax.numpy as jnp, numpy as np, actfx
    ok, why = actfx.layeract_native_status()
    x = jax.random.normal(jax.random.key(0), (3, 10))
    hlo = jax.jit(actfx.layeract).lower(x).as_text()
    same = bool(np.array_equal(actfx.layeract(x), actfx.layeract(x, implementation="xla")))
    try:
        actfx.layeract(x, implementation="native"); raised = ""
    except RuntimeError as e:
        raised = str(e)
    print(ok, "custom_call @actfx_layeract_" in hlo, same, "|", why, "|", raised)
"""


def test_fallback_when_disabled_by_environment(tmp_path):
    out = _run(_FALLBACK, ACTFX_NATIVE="0", ACTFX_CACHE_DIR=str(tmp_path))
    assert out.startswith("False False True |"), out
    assert "disabled by ACTFX_NATIVE=0" in out.split("|")[1]
    assert "disabled by ACTFX_NATIVE=0" in out.split("|")[2]
    assert not list(tmp_path.rglob("*.so"))


def test_fallback_when_the_compiler_writes_nothing(tmp_path):
    """``CXX=/bin/true`` exits 0 without writing the library: the reason says so and
    LayerAct uses XLA (every call raised FileNotFoundError from os.replace)."""
    out = _run(_FALLBACK, CXX="/bin/true", ACTFX_CACHE_DIR=str(tmp_path), ACTFX_NATIVE="1")
    assert out.startswith("False False True |"), out
    assert "build failed" in out and "exited 0 but wrote no library" in out
    assert not list(tmp_path.rglob("*.so")) and not list(tmp_path.rglob("*.tmp"))


def _compiler(tmp_path, body: str) -> str:
    """A fake C++ compiler: ``--version`` answers, a build runs ``body`` with ``$out`` the
    output file and appends a line to ``tmp_path/compiles``."""
    cxx = tmp_path / "fake-c++"
    cxx.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--version" ]; then echo fake 1; exit 0; fi\n'
        f"echo build >> {tmp_path / 'compiles'}\n"
        'while [ $# -gt 0 ]; do if [ "$1" = "-o" ]; then out="$2"; fi; shift; done\n'
        f"{body}\n"
    )
    cxx.chmod(0o755)
    return str(cxx)


@pytest.mark.parametrize(
    "body, reason",
    [
        ("echo 'broken compiler' >&2; exit 3", "exited 3: broken compiler"),
        ("exit 0", "exited 0 but wrote no library"),
        (': > "$out"', "exited 0 but wrote an empty library"),
        ('head -c 5000 /dev/urandom > "$out"', "loading the layeract_cpu.cc kernel failed"),
    ],
)
def test_any_build_or_load_failure_is_a_reason(tmp_path, monkeypatch, body, reason):
    """In-process: every way the build can fail (a garbage library fails dlopen) is
    returned as a reason (the fallback test above shows the reason reaches
    ``layeract_native_status()`` and LayerAct uses XLA); nothing half-built stays."""
    monkeypatch.setenv("CXX", _compiler(tmp_path, body))
    monkeypatch.setenv("ACTFX_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ACTFX_NATIVE", "1")
    got = native_build._load("layeract_cpu.cc", {})
    assert isinstance(got, str) and reason in got, got
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob(".*.so"))


@needs_kernel
def test_damaged_cache_is_rebuilt_never_loaded(tmp_path, monkeypatch):
    """The cache records each library's size and SHA-256; a library that does not match
    (truncated: SIGBUS; flipped bytes: SIGSEGV in the backward pass, when it was loaded
    as is), a missing or garbage record, is rebuilt, never loaded. The fake compiler
    "builds" by copying this process's kernel, so the rebuilt bytes are known."""
    good = open(DETAIL, "rb").read()
    cxx = _compiler(tmp_path, f'cp {DETAIL} "$out"')
    env = {"CXX": cxx, "ACTFX_CACHE_DIR": str(tmp_path / "cache"), "ACTFX_NATIVE": "1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    compiles = lambda: len((tmp_path / "compiles").read_text().splitlines())

    def build():
        built = native_build._build("layeract_cpu.cc")
        assert isinstance(built, tuple), built
        assert built[1] == good and built[0].read_bytes() == good
        return built[0]

    lib = build()
    (record,) = lib.parent.glob("*.json")
    assert json.loads(record.read_text()) == {
        "file": lib.name,
        "size": len(good),
        "sha256": hashlib.sha256(good).hexdigest(),
    }
    assert build() == lib and compiles() == 1  # cached: no second build
    flipped = bytearray(good)
    flipped[len(good) // 2 : len(good) // 2 + 64] = bytes(64)
    damages = {
        "truncated": lambda: lib.write_bytes(good[: len(good) // 3]),
        "flipped bytes": lambda: lib.write_bytes(bytes(flipped)),
        "missing library": lib.unlink,
        "garbage record": lambda: record.write_text("{not json"),
        "record of another file": lambda: record.write_text(
            json.dumps({"file": "../x.so", "size": 1, "sha256": ""})
        ),
        "missing record": record.unlink,
    }
    for i, (what, damage) in enumerate(damages.items(), start=2):
        damage()
        assert build() == lib and compiles() == i, what
    # a fresh process over a truncated cache rebuilds and computes (it died of SIGBUS)
    lib.write_bytes(good[:5000])
    code = """
        import jax, jax.numpy as jnp, numpy as np, actfx
        ok, path = actfx.layeract_native_status()
        x = jax.random.normal(jax.random.key(0), (3, 40))
        la = lambda v, impl: jnp.sum(jnp.sin(actfx.layeract(v, implementation=impl)))
        d = jax.grad(la)(x, "native") - jax.grad(la)(x, "xla")
        print(ok, path, float(np.max(np.abs(d))))
    """
    ok, path, diff = _run(code, **env).split()
    assert ok == "True" and path == str(lib) and float(diff) < 1e-5
    assert lib.read_bytes() == good and compiles() == len(damages) + 2


@needs_kernel
def test_build_is_cached_and_keyed(tmp_path):
    """A fresh cache builds once; a second process reuses the file."""
    code = "import actfx; print(actfx.layeract_native_status()[1])"
    first = _run(code, ACTFX_CACHE_DIR=str(tmp_path)).strip()
    assert first.startswith(str(tmp_path)) and first.endswith(".so")
    mtime = os.path.getmtime(first)
    second = _run(code, ACTFX_CACHE_DIR=str(tmp_path)).strip()
    assert second == first and os.path.getmtime(second) == mtime


# (kind, grad, implementation) under shard_map / explicit sharding / vmap of grad: the
# kernel's two backward passes by default; the XLA path under slow (test_sharding_matrix
# runs its silu under all three modes by default).
_KERNEL_COMBOS = [["silu", "autodiff", None], ["hardsilu", "paper", None]]
_XLA_COMBOS = [["silu", "autodiff", "xla"], ["hardsilu", "paper", "xla"]]


@needs_kernel
@pytest.mark.parametrize(
    "combos", [_KERNEL_COMBOS, pytest.param(_XLA_COMBOS, marks=_SLOW)], ids=["kernel", "xla"]
)
def test_sharded_computations_stay_sharded(combos):
    """Under jit over 2 devices the partitioner cannot split a custom call (it would
    all-gather the batch), so the XLA path is lowered; inside shard_map, the kernel.
    Gradients inside shard_map (check_vma=True) and under explicit sharding equal the
    single-device ones: the primitives keep the input's varying-axes type and sharding
    (grad in shard_map failed: "Expected cotangent type float32[2,180]{V:data} but got
    float32[2,180]"; vmap of grad under explicit sharding: "got float32[8,30], but
    expected float32[8@data,30]")."""
    out = _run(
        """
        import json, jax, jax.numpy as jnp, numpy as np, actfx
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        mesh = Mesh(np.array(jax.devices()), ("data",))
        x = jax.random.normal(jax.random.key(0), (8, 6, 6, 5))
        w = jax.random.normal(jax.random.key(1), x.shape)
        xs = jax.device_put(x, NamedSharding(mesh, P("data")))
        loss = lambda u: jnp.sum(actfx.layeract(u) ** 2)
        f = jax.jit(jax.grad(loss))
        hlo = f.lower(xs).compile().as_text()
        g = f(xs)
        ref = jax.grad(lambda u: jnp.sum(actfx.layeract(u, implementation="xla") ** 2))(x)
        sm = jax.jit(jax.shard_map(actfx.layeract, mesh=mesh, in_specs=P("data"),
                                   out_specs=P("data")))
        y = sm(xs)
        out = dict(n=len(jax.devices()), spec=g.sharding.spec == P("data"),
                   gather="all-gather" in hlo,
                   kernel="custom-call" in sm.lower(xs).compile().as_text(),
                   jit=float(jnp.max(jnp.abs(g - ref))),
                   fwd=float(jnp.max(jnp.abs(y - actfx.layeract(x)))))
        emesh = jax.make_mesh((2,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))
        for kind, grad, impl in COMBOS:
            la = lambda v: actfx.layeract(v, kind=kind, grad=grad, implementation=impl)
            vg = lambda v, u: jax.value_and_grad(lambda a: jnp.sum((u * la(a)) ** 2))(v)
            r_val, r_grad = vg(x, w)
            def vg_sum(v, u, vg=vg):  # the total over the shards
                val, grad_ = vg(v, u)
                return jax.lax.psum(val, "data"), grad_
            sm = jax.jit(jax.shard_map(vg_sum, mesh=mesh, in_specs=P("data"),
                                       out_specs=(P(), P("data"))))
            v_sm, g_sm = sm(xs, jax.device_put(w, NamedSharding(mesh, P("data"))))
            with jax.set_mesh(emesh):
                xe = jax.device_put(x, NamedSharding(emesh, P("data")))
                we = jax.device_put(w, NamedSharding(emesh, P("data")))
                v_ex, g_ex = jax.jit(vg)(xe, we)
                per = jax.jit(jax.vmap(jax.grad(lambda a: jnp.sum(jnp.sin(la(a[None]))))))
                g_vm = per(xe)
            g_vm_ref = jax.vmap(jax.grad(lambda a: jnp.sum(jnp.sin(la(a[None])))))(x)
            scale = float(jnp.max(jnp.abs(r_grad)))
            out[f"{kind}-{grad}-{impl}"] = [
                abs(float(v_sm) - float(r_val)) / abs(float(r_val)),
                float(jnp.max(jnp.abs(g_sm - r_grad))) / scale,
                abs(float(v_ex) - float(r_val)) / abs(float(r_val)),
                float(jnp.max(jnp.abs(g_ex - r_grad))) / scale,
                float(jnp.max(jnp.abs(g_vm - g_vm_ref))),
                g_ex.sharding.spec[0] == "data" and g_vm.sharding.spec[0] == "data",
            ]
        print(json.dumps(out))
        """.replace("COMBOS", repr(combos)),
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
    )
    res = json.loads(out.strip().splitlines()[-1])
    assert (res["n"], res["spec"], res["gather"], res["kernel"]) == (2, True, False, True), res
    assert res["jit"] < 1e-5 and res["fwd"] < 1e-5, res
    for kind, grad, impl in combos:
        key = f"{kind}-{grad}-{impl}"
        *errs, specs = res[key]
        assert specs and max(errs) < 64 * EPS, (key, res[key])
