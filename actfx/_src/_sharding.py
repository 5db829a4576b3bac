"""Helpers that keep arrays' sharding types under ``shard_map`` and explicit sharding.

Under ``jax.shard_map`` (``check_vma=True``) every value carries the set of manual mesh
axes it varies over (``jax.typeof(v).vma``); under explicit sharding
(``AxisType.Explicit`` + ``jax.set_mesh``) it carries its ``NamedSharding`` in its type.
Constants built from shapes alone (``jnp.zeros(shape)``, ``broadcasted_iota``) are
invariant and replicated, so a loop carry, a ``select`` or a ``sort`` that mixes them with
values derived from a sharded input fails to type-check. These helpers build such values
*like* a reference array, and reduce a custom rule's cotangent to its primal's type. Outside
any mesh they are no-ops (plain JAX).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P


def _vma(v) -> frozenset:
    """The manual mesh axes ``v`` varies over (``aval.vma`` in older JAX releases,
    ``aval.mat.varying`` in newer ones); empty outside ``shard_map``."""
    aval = jax.typeof(v)
    vma = getattr(aval, "vma", None)
    if vma is None:
        vma = getattr(getattr(aval, "mat", None), "varying", None)
    return frozenset(vma or ())


def _explicit_sharding(v):
    """``v``'s sharding when it lives on a mesh with explicit axes, else ``None``."""
    s = getattr(jax.typeof(v), "sharding", None)
    if isinstance(s, NamedSharding) and not s.mesh.empty and s.mesh.explicit_axes:
        return s
    return None


def is_explicitly_sharded(v) -> bool:
    """Whether ``v`` is split over explicit mesh axes (what :func:`per_shard` acts on)."""
    s = _explicit_sharding(v)
    # by the type, not the device count: a mesh axis of size 1 still types the array as
    # split (and JAX's gathers/sorts refuse it the same way)
    return s is not None and any(p is not None for p in s.spec)


def match_vma(v, ref):
    """``v`` made varying over every manual axis that ``ref`` varies over (``shard_map``)."""
    extra = tuple(sorted(_vma(ref) - _vma(v)))
    return jax.lax.pcast(v, extra, to="varying") if extra else v


def reduce_to_vma(ct, primal):
    """A cotangent reduced (``psum``) over the manual axes it varies over and ``primal``
    does not: the transpose of the implicit broadcast of an invariant ``primal``."""
    extra = tuple(sorted(_vma(ct) - _vma(primal)))
    return jax.lax.psum(ct, extra) if extra else ct


def full_like(ref, value, dtype=None):
    """``jnp.full_like(ref, value, dtype)`` with ``ref``'s sharding and varying type."""
    return match_vma(jnp.full_like(ref, value, dtype), ref)


def iota_like(ref, dtype, dimension: int):
    """``broadcasted_iota(dtype, ref.shape, dimension)`` with ``ref``'s sharding and
    varying type (a constant iota is replicated, which ``sort``/``select`` with a sharded
    operand reject under explicit sharding)."""
    s = _explicit_sharding(ref)
    if s is not None:
        it = jax.lax.broadcasted_iota(dtype, ref.shape, dimension, out_sharding=s)
    else:
        it = jax.lax.broadcasted_iota(dtype, ref.shape, dimension)
    return match_vma(it, ref)


def gather(table, idx):
    """``table[idx]`` (promise in bounds) for a replicated ``table`` and sharded ``idx``:
    under explicit sharding the result takes ``idx``'s sharding (JAX cannot infer it)."""
    s = _explicit_sharding(idx)
    if s is not None:
        return table.at[idx].get(mode="promise_in_bounds", out_sharding=s)
    return table.at[idx].get(mode="promise_in_bounds")


def per_shard(fn, x, pool_axes: tuple[int, ...], *args, arg_specs=None):
    """``fn(x, *args)`` (same shape as ``x``) run on each shard of ``x`` when ``x`` is
    sharded over explicit mesh axes: the pool axes (which ``fn`` reduces over) are gathered
    first, the other axes stay split, and ``fn`` runs under ``jax.shard_map``. The result
    is resharded like ``x``. Without explicit sharding: ``fn(x, *args)``.

    ``args`` are replicated unless ``arg_specs(local)`` (``local``: the list of ``x``'s
    per-axis mesh axes used inside) returns their ``PartitionSpec`` s (they are resharded
    to them). For computations that are independent per pool but use data-dependent
    gathers, sorts or loops whose sharding JAX cannot infer.
    """
    s = _explicit_sharding(x)
    if s is None or not is_explicitly_sharded(x):
        return fn(x, *args)
    spec = list(s.spec) + [None] * (x.ndim - len(s.spec))
    local = list(spec)
    for a in pool_axes:
        local[a] = None
    local_spec, x_spec = P(*local), P(*spec)
    if local != spec:
        x = jax.sharding.reshard(x, local_spec)
    a_specs = tuple(arg_specs(local)) if arg_specs is not None else (P(),) * len(args)
    args = tuple(jax.sharding.reshard(a, sp) for a, sp in zip(args, a_specs))
    out = jax.shard_map(fn, mesh=s.mesh, in_specs=(local_spec, *a_specs), out_specs=local_spec)(
        x, *args
    )
    return jax.sharding.reshard(out, x_spec) if local != spec else out
