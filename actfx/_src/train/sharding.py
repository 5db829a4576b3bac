"""Data-parallel sharding: a 1-D device mesh, replicated state, batch split over devices."""

from __future__ import annotations

import contextlib

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_data_mesh(num_devices: int | None = None, *, explicit: bool = False) -> Mesh:
    """A 1-D mesh over the first ``num_devices`` devices (all when ``None``), axis ``"data"``.

    Works the same with one device (CPU) and with many (TPU chips, GPUs, or fake CPU
    devices via ``jax.config.update("jax_num_cpu_devices", 8)``). The axis is
    ``AxisType.Auto`` (the compiler partitions a ``jax.jit``), or ``AxisType.Explicit``
    with ``explicit=True`` (use it under ``jax.set_mesh``: shardings are part of the types).

    Example:
      >>> dict(make_data_mesh(1).shape)
      {'data': 1}
      >>> make_data_mesh(1, explicit=True).axis_types
      (Explicit,)
    """
    devices = jax.devices()
    n = len(devices) if num_devices is None else num_devices
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(devices):
        raise ValueError(f"num_devices must be an int in [1, {len(devices)}], got {num_devices!r}")
    kind = AxisType.Explicit if explicit else AxisType.Auto
    return jax.make_mesh((n,), (DATA_AXIS,), axis_types=(kind,), devices=devices[:n])


def mesh_context(mesh: Mesh):
    """``jax.set_mesh(mesh)`` for a mesh with explicit axes, else a no-op context."""
    if AxisType.Explicit in tuple(mesh.axis_types):
        return jax.set_mesh(mesh)
    return contextlib.nullcontext()


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding that keeps a full copy on every device (parameters, optimiser state)."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Sharding that splits the leading (batch) axis over the ``"data"`` mesh axis."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_divisible(name: str, batch_size: int, mesh: Mesh) -> None:
    """Raise ``ValueError`` unless ``batch_size`` splits evenly over the mesh's devices."""
    n = mesh.shape[DATA_AXIS]
    if batch_size % n:
        raise ValueError(f"{name}={batch_size} must be divisible by the number of devices ({n})")
