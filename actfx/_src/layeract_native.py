"""LayerAct as JAX primitives whose CPU lowering is a fused compiled kernel.

XLA makes every pass of LayerAct (statistics, gate, output; and the backward's two sums and
the gradient) a loop over the whole tensor, and it cannot fuse the BatchNorm before it into
the reductions: in a ResNet-20 train step that cost LayerAct 0.81x ReLU's images/s on CPU.
``csrc/layeract_cpu.cc`` does all passes of one layer while it is in cache.

Three primitives on ``(rows, m)`` float arrays (a layer = one row):

- ``layeract_p(x)`` -> ``x s(n)``;
- ``layeract_jvp_p(x, t)`` -> the tangent (linear in ``t``);
- ``layeract_vjp_p(x, g)`` -> the cotangent of ``x`` (linear in ``g``); ``paper=True`` is the
  reference code's LayerNorm-style backward.

On CPU with float32 and the kernel built (:mod:`actfx._src.native_build`), ``layeract_p``
and ``layeract_vjp_p`` lower to the kernel; otherwise, and for ``layeract_jvp_p`` always,
they lower to the pure-JAX LayerAct of :mod:`actfx._src.layeract_math` (the formulas of
the XLA path of :func:`actfx.layeract`), which is also the reference the kernel is tested
against. JVP, transpose and batching rules make ``grad``, ``jvp``, ``vmap``, ``hessian`` and
``grad`` of ``grad`` work; derivatives beyond the first go through the pure-JAX formulas.
Every result has its first operand's abstract type (shape, dtype, sharding, and the manual
axes it varies over inside ``shard_map``); the two-operand primitives are bound with both
operands varying over the same manual axes (:func:`_bind2`).
"""

from __future__ import annotations

import math
from functools import cache, partial
from typing import cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir
from jaxtyping import Array

from actfx._src import native_build
from actfx._src.layeract_math import rows_forward as _pure_forward
from actfx._src.layeract_math import rows_jvp as _pure_jvp
from actfx._src.layeract_math import rows_vjp as _pure_vjp

_SOURCE = "layeract_cpu.cc"
_FWD_TARGET = "actfx_layeract_forward"
_BWD_TARGET = "actfx_layeract_backward"
_KIND_CODE = {"silu": 0, "hardsilu": 1}


def native_library() -> native_build.NativeLibrary | None:
    """The built and registered LayerAct CPU kernel, or ``None`` (builds on first call)."""
    return native_build.load(
        _SOURCE, {_FWD_TARGET: "ActfxLayerActForward", _BWD_TARGET: "ActfxLayerActBackward"}
    )


def native_status() -> tuple[bool, str]:
    """``(available, detail)``: whether the compiled LayerAct CPU kernel is built and loaded,
    with the library path or the reason it is not (builds it on first call).

    Example:
      >>> import actfx
      >>> ok, detail = actfx.layeract_native_status()
      >>> isinstance(ok, bool) and isinstance(detail, str)
      True
    """
    lib = native_library()
    if lib is not None:
        return True, lib.path
    return False, native_build.reason(_SOURCE) or "not built"


# ---- primitives ---------------------------------------------------------------------

layeract_p = Primitive("actfx_layeract")
layeract_jvp_p = Primitive("actfx_layeract_jvp")
layeract_vjp_p = Primitive("actfx_layeract_vjp")


@cache
def _jitted_bind(prim, params):
    return jax.jit(lambda *args: prim.bind(*args, **dict(params)))


def _impl(prim):
    return lambda *args, **params: _jitted_bind(prim, tuple(sorted(params.items())))(*args)


for _p in (layeract_p, layeract_jvp_p, layeract_vjp_p):
    _p.def_impl(_impl(_p))
    # x's type, sharding and varying manual axes included (a bare ShapedArray(shape, dtype)
    # dropped them: grad inside shard_map failed with "Expected cotangent type
    # float32[...]{V:data} but got float32[...]")
    _p.def_abstract_eval(lambda x, *rest, **params: x.update(weak_type=False))


def _varying(a) -> frozenset:
    """The manual mesh axes ``a`` varies over (inside ``shard_map``; empty elsewhere)."""
    aval = jax.typeof(a)
    vma = getattr(aval, "vma", None)  # jax < 0.9
    if vma is None:
        vma = getattr(getattr(aval, "mat", None), "varying", frozenset())
    return frozenset(vma)


def _pvary(a, names: tuple):
    if hasattr(jax.lax, "pcast"):
        return jax.lax.pcast(a, names, to="varying")
    return jax.lax.pvary(a, names)  # type: ignore[attr-defined]  # jax < 0.8


def _explicit_sharding(a):
    """``a``'s sharding where its mesh has explicit axes (``jax.set_mesh``), else ``None``."""
    sharding = getattr(jax.typeof(a), "sharding", None)
    mesh = getattr(sharding, "mesh", None)
    if mesh is None or not getattr(mesh, "_any_axis_explicit", False):
        return None
    return sharding


def _bind2(prim, x, v, **params):
    """``prim.bind(x, v)`` with ``v`` of ``x``'s type: sharded like ``x`` under explicit
    sharding (``vmap`` broadcasts an unmapped operand unsharded), and both varying over the
    same manual axes inside ``shard_map`` (as JAX's own binary primitives do: the one that
    varies less is cast to vary, whose transpose is the ``psum`` reverse mode needs)."""
    sx = _explicit_sharding(x)
    if sx is not None and _explicit_sharding(v) != sx and hasattr(jax.sharding, "reshard"):
        v = jax.sharding.reshard(v, sx.spec)
    vx, vv = _varying(x), _varying(v)
    if vx != vv:
        union = vx | vv
        if vx != union:
            x = _pvary(x, tuple(sorted(union - vx, key=str)))
        if vv != union:
            v = _pvary(v, tuple(sorted(union - vv, key=str)))
    return prim.bind(x, v, **params)


def _zeros_if_symbolic(t, like):
    return jnp.zeros_like(like) if type(t) is ad.Zero else t


def _layeract_jvp_rule(primals, tangents, *, kind, alpha, ddof):
    (x,), (t,) = primals, tangents
    out = layeract_p.bind(x, kind=kind, alpha=alpha, ddof=ddof)
    if type(t) is ad.Zero:
        return out, jnp.zeros_like(out)
    return out, _bind2(layeract_jvp_p, x, t, kind=kind, alpha=alpha, ddof=ddof)


def _linear_jvp_rule(prim, pure):
    """JVP of ``prim(x, v)``, linear in ``v``: the ``x`` part through the pure formula."""

    def rule(primals, tangents, **params):
        (x, v), (dx, dv) = primals, tangents
        out = _bind2(prim, x, v, **params)
        t = jnp.zeros_like(out) if type(dv) is ad.Zero else _bind2(prim, x, dv, **params)
        if type(dx) is not ad.Zero:
            t = t + jax.jvp(lambda x_: pure(x_, v, **params), (x,), (dx,))[1]
        return out, t

    return rule


# Both linear primitives are linear in their second operand only: JAX transposes them with
# ``x`` known (a primal), never as the unknown. Every operand and result has x's shape.


def _jvp_transpose(ct, x, t, *, kind, alpha, ddof):
    assert not ad.is_undefined_primal(x), "the LayerAct tangent is linear in t only"
    ct = _zeros_if_symbolic(ct, x)
    return None, _bind2(layeract_vjp_p, x, ct, kind=kind, alpha=alpha, ddof=ddof, paper=False)


def _vjp_transpose(ct, x, g, *, kind, alpha, ddof, paper):
    assert not ad.is_undefined_primal(x), "the LayerAct cotangent is linear in g only"
    ct = _zeros_if_symbolic(ct, x)
    if not paper:  # the exact pullback's transpose is the JVP
        return None, _bind2(layeract_jvp_p, x, ct, kind=kind, alpha=alpha, ddof=ddof)
    pull = partial(_pure_vjp, x, kind=kind, alpha=alpha, ddof=ddof, paper=True)
    return None, jax.linear_transpose(pull, x)(ct)[0]


ad.primitive_jvps[layeract_p] = _layeract_jvp_rule
ad.primitive_jvps[layeract_jvp_p] = _linear_jvp_rule(layeract_jvp_p, _pure_jvp)
ad.primitive_jvps[layeract_vjp_p] = _linear_jvp_rule(layeract_vjp_p, _pure_vjp)
ad.primitive_transposes[layeract_jvp_p] = _jvp_transpose
ad.primitive_transposes[layeract_vjp_p] = _vjp_transpose


def _batch_rule(prim):
    """vmap: fold the mapped axis into the rows (every row is an independent layer)."""

    def rule(args, dims, **params):
        size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
        moved = [
            jnp.broadcast_to(a, (size, *a.shape)) if d is None else jnp.moveaxis(a, d, 0)
            for a, d in zip(args, dims)
        ]
        shape = moved[0].shape  # explicit: an empty batch has no -1 to infer
        folded = [a.reshape(math.prod(shape[:-1]), shape[-1]) for a in moved]
        out = prim.bind(*folded, **params) if len(folded) == 1 else _bind2(prim, *folded, **params)
        return out.reshape(shape), 0

    return rule


for _p in (layeract_p, layeract_jvp_p, layeract_vjp_p):
    batching.primitive_batchers[_p] = _batch_rule(_p)


# ---- lowerings ----------------------------------------------------------------------

_lower_pure_forward = mlir.lower_fun(_pure_forward, multiple_results=False)
_lower_pure_vjp = mlir.lower_fun(_pure_vjp, multiple_results=False)
mlir.register_lowering(layeract_p, _lower_pure_forward)
mlir.register_lowering(layeract_jvp_p, mlir.lower_fun(_pure_jvp, multiple_results=False))
mlir.register_lowering(layeract_vjp_p, _lower_pure_vjp)


def _native_ok(ctx) -> bool:
    """float32 operands, the kernel built, not lowering for ``jax.export`` (the serialized
    program would call a kernel only this process has), and not inside an automatically
    partitioned multi-device computation: XLA's SPMD partitioner cannot split a custom call,
    so it would all-gather the batch onto every device (inside ``shard_map`` the code is
    per-device and the kernel is used)."""
    if not all(a.dtype == np.float32 for a in ctx.avals_in):
        return False
    # jax.export: a serialized program must not call a kernel that only this machine has
    if getattr(ctx.module_context.lowering_parameters, "for_export", False):
        return False
    axis_context = ctx.module_context.axis_context
    if type(axis_context).__name__ == "ShardingContext" and axis_context.num_devices > 1:
        return False
    return native_library() is not None


def _cpu_forward(ctx, x, *, kind, alpha, ddof):
    if not _native_ok(ctx):
        return _lower_pure_forward(ctx, x, kind=kind, alpha=alpha, ddof=ddof)
    m = ctx.avals_in[0].shape[-1]
    return jax.ffi.ffi_lowering(_FWD_TARGET)(
        ctx, x, kind=np.int64(_KIND_CODE[kind]), alpha=np.float64(alpha), dof=np.float64(m - ddof)
    )


def _cpu_backward(ctx, x, g, *, kind, alpha, ddof, paper):
    if not _native_ok(ctx):
        return _lower_pure_vjp(ctx, x, g, kind=kind, alpha=alpha, ddof=ddof, paper=paper)
    m = ctx.avals_in[0].shape[-1]
    return jax.ffi.ffi_lowering(_BWD_TARGET)(
        ctx,
        x,
        g,
        kind=np.int64(_KIND_CODE[kind]),
        alpha=np.float64(alpha),
        dof=np.float64(m - ddof),
        bdof=np.float64(m if paper else m - ddof),
    )


mlir.register_lowering(layeract_p, _cpu_forward, platform="cpu")
mlir.register_lowering(layeract_vjp_p, _cpu_backward, platform="cpu")


# ---- entry points -------------------------------------------------------------------


def layeract_rows(x: Array, *, kind: str, alpha: float, ddof: int, grad: str) -> Array:
    """LayerAct of each row of a 2-D float array through the primitives (the exact
    gradient, or the paper's with ``grad="paper"``)."""
    if grad == "paper":
        return cast(Array, _layeract_paper_rows(x, kind, alpha, ddof))
    return cast(Array, layeract_p.bind(x, kind=kind, alpha=alpha, ddof=ddof))


@partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _layeract_paper_rows(x, kind, alpha, ddof):
    return layeract_p.bind(x, kind=kind, alpha=alpha, ddof=ddof)


def _paper_rows_fwd(x, kind, alpha, ddof):
    return layeract_p.bind(x, kind=kind, alpha=alpha, ddof=ddof), x


def _paper_rows_bwd(kind, alpha, ddof, x, g):
    return (_bind2(layeract_vjp_p, x, g, kind=kind, alpha=alpha, ddof=ddof, paper=True),)


_layeract_paper_rows.defvjp(_paper_rows_fwd, _paper_rows_bwd)
