"""Batched evaluation and prediction in eval mode, sharded over the data mesh."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from actfx._src.data.dataset import ImageDataset
from actfx._src.train._data import as_pair
from actfx._src.train.losses import LossFn, check_labels, cross_entropy_loss
from actfx._src.train.sharding import batch_sharded, make_data_mesh, replicated
from actfx._src.train.steps import cache_key, from_cache_key, make_eval_step, make_predict_step


@functools.lru_cache(maxsize=32)
def _compiled_eval_step(graphdef, loss_key, mesh):
    # per-example values, left where they were computed: nothing is reduced across devices
    del mesh  # (a cache key: one compiled step per mesh)
    return jax.jit(make_eval_step(graphdef, loss_fn=from_cache_key(loss_key), per_example=True))


@functools.lru_cache(maxsize=32)
def _compiled_predict_step(graphdef, mesh):
    return jax.jit(make_predict_step(graphdef), out_shardings=replicated(mesh))


def _batch_size(name: str, batch_size: Any, n: int, mesh: Mesh) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"{name} must be a positive int, got {batch_size!r}")
    ndev = mesh.shape["data"]
    return int(math.ceil(min(batch_size, n) / ndev) * ndev)


def _blocks(n: int, block: int, ndev: int) -> Iterator[tuple[int, int, bool]]:
    """``(start, stop, sharded)`` covering ``[0, n)`` in blocks of ``block`` examples per
    device: ``ndev`` blocks at a time split over the mesh, then the remaining whole blocks
    and the short tail one at a time on every device. Each example is thus computed in a
    block of the same size and place whatever ``ndev`` is."""
    full = n // block
    i = 0
    while i + ndev <= full:
        yield i * block, (i + ndev) * block, True
        i += ndev
    while i < full:
        yield i * block, (i + 1) * block, False
        i += 1
    if full * block < n:
        yield full * block, n, False


def _chunks(n: int, bs: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, bs):
        yield start, min(start + bs, n)


def num_outputs(graphdef, model_state, x) -> int | None:
    """Width of the model's last output axis for inputs like ``x`` (traced, no FLOPs)."""
    out = jax.eval_shape(
        make_predict_step(graphdef),
        model_state,
        jax.ShapeDtypeStruct((1, *np.shape(x)[1:]), np.asarray(x[:1]).dtype),
    )
    shape = getattr(out, "shape", None)
    return int(shape[-1]) if shape else None


def evaluate(
    model: nnx.Module,
    data: tuple[Any, Any] | ImageDataset,
    *,
    loss_fn: LossFn | None = None,
    batch_size: int = 1000,
    num_devices: int | None = None,
) -> dict[str, float]:
    """Mean ``loss`` and ``aux`` metrics of ``loss_fn`` on ``data`` with the model in eval mode.

    ``data`` is an ``(inputs, targets)`` pair (or an :class:`actfx.data.ImageDataset`,
    whose test split is used). ``loss_fn`` is evaluated on each example alone (a batch of
    one, vectorised with ``jax.vmap``) in blocks of ``batch_size`` examples per device:
    ``d`` blocks at a time split over a ``d``-device mesh, leftover blocks and the short
    tail unpadded on every device. The per-example values are then averaged in float64 on
    the host in example order. So each example counts exactly once, and the result is the
    same float on any number of devices (every example is computed in the same block, and
    nothing is reduced across examples in float32); another ``batch_size`` may change the
    last bits (XLA's matrix products round differently for other row counts). For a loss
    that is a mean over examples this is the loss of the whole set; a ``loss_fn`` whose
    value is not a mean over examples (a contrastive loss) is evaluated per example too.

    Args:
      model: an NNX model (its train/eval flag is not changed).
      data: ``(x, y)`` with equal leading dimension, or an ``ImageDataset``.
      loss_fn: ``loss_fn(model, (x, y)) -> (loss, aux)``; default
        :func:`actfx.train.cross_entropy_loss` (``y`` integer labels, checked).
      batch_size: examples per device per call (the block size above; with ``d``
        devices ``d * batch_size`` examples are evaluated per call).
      num_devices: devices of the data mesh (``None``: all).

    Returns:
      ``{"loss": float, **{name: float for name in aux}}``, the same floats on any
      number of devices.

    Raises:
      ValueError: empty or mismatched ``data``, bad ``batch_size``, labels out of range.

    Example:
      >>> import numpy as np
      >>> from flax import nnx
      >>> from actfx.nn.models import MLP
      >>> m = MLP(4, 3, hidden=(8,), rngs=nnx.Rngs(0))
      >>> r = evaluate(m, (np.ones((5, 4), np.float32), np.zeros(5, np.int32)), batch_size=2)
      >>> sorted(r), 0.0 <= r["accuracy"] <= 1.0
      (['accuracy', 'loss'], True)
    """
    if isinstance(data, ImageDataset):
        data = (data.x_test, data.y_test)
    x, y = as_pair("data", data)
    mesh = make_data_mesh(num_devices)
    bs = _block_size("batch_size", batch_size, len(x))
    graphdef, model_state = nnx.split(model)
    if loss_fn is None or loss_fn is cross_entropy_loss:
        check_labels("y", y, num_outputs(graphdef, model_state, x))
    return _evaluate_state(graphdef, model_state, x, y, loss_fn, bs, mesh)


def _block_size(name: str, batch_size: Any, n: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"{name} must be a positive int, got {batch_size!r}")
    return min(batch_size, n)


def _evaluate_state(
    graphdef, model_state, x, y, loss_fn, block: int, mesh: Mesh
) -> dict[str, float]:
    step = _compiled_eval_step(graphdef, cache_key(loss_fn), mesh)
    model_state = jax.device_put(model_state, replicated(mesh))
    data_sh, repl = batch_sharded(mesh), replicated(mesh)
    values: dict[str, list[np.ndarray]] = {}
    for start, stop, sharded in _blocks(len(x), block, mesh.shape["data"]):
        xb, yb = np.asarray(x[start:stop]), np.asarray(y[start:stop])
        loss, aux = step(model_state, *jax.device_put((xb, yb), data_sh if sharded else repl))
        for k, v in {"loss": loss, **aux}.items():
            values.setdefault(k, []).append(np.asarray(v, np.float64))
    # one float64 sum over all examples, in example order: independent of the batching
    return {k: float(np.sum(np.concatenate(v)) / len(x)) for k, v in values.items()}


def predict(
    model: nnx.Module,
    x: Any,
    *,
    batch_size: int = 1000,
    num_devices: int | None = None,
) -> np.ndarray:
    """``model(x)`` in eval mode, batched over the data mesh, as a NumPy array.

    The last batch is zero-padded to the full batch size (one compiled shape) and the
    padding dropped from the result; with BatchNorm in eval mode the examples do not
    interact, so the result equals ``model(x)`` up to float round-off.

    Args:
      model: an NNX model (its train/eval flag is not changed).
      x: inputs with a leading example axis.
      batch_size: examples per batch (rounded up to a multiple of the device count).
      num_devices: devices of the data mesh (``None``: all).

    Returns:
      ``np.ndarray`` of shape ``(len(x), ...)`` (a pytree of them if the model returns one).

    Example:
      >>> import numpy as np
      >>> from flax import nnx
      >>> m = nnx.Linear(4, 3, rngs=nnx.Rngs(0))
      >>> x = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)
      >>> p = predict(m, x, batch_size=3)
      >>> p.shape, bool(np.allclose(p, m(x), atol=1e-6))
      ((7, 3), True)
    """
    if np.ndim(x) < 1 or len(x) == 0:
        raise ValueError(f"x must have a non-empty leading example axis, got shape {np.shape(x)}")
    mesh = make_data_mesh(num_devices)
    bs = _batch_size("batch_size", batch_size, len(x), mesh)
    graphdef, model_state = nnx.split(model)
    step = _compiled_predict_step(graphdef, mesh)
    model_state = jax.device_put(model_state, replicated(mesh))
    outs = []
    for start, stop in _chunks(len(x), bs):
        xb = np.asarray(x[start:stop])
        if stop - start < bs:
            xb = np.concatenate([xb, np.zeros((bs - len(xb), *xb.shape[1:]), xb.dtype)])
        out = step(model_state, jax.device_put(xb, batch_sharded(mesh)))
        outs.append(jax.tree.map(lambda a, n=stop - start: np.asarray(a)[:n], out))
    return jax.tree.map(lambda *a: np.concatenate(a), *outs)
