"""The training loop: deterministic batches, jit steps, sharding, checkpoints, metrics."""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from actfx.data.dataset import ImageDataset
from actfx.train.checkpoint import Checkpointer
from actfx.train.metrics import write_json
from actfx.train.optimizers import OptimizerName, ScheduleName, make_optimizer, make_schedule
from actfx.train.sharding import batch_sharded, check_divisible, make_data_mesh, replicated
from actfx.train.steps import make_eval_step, make_train_step


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`fit`. Defaults: the LayerAct CIFAR recipe, scaled by ``epochs``.

    Attributes:
      epochs: passes over the training set (ignored when ``steps`` is given).
      steps: total optimiser steps (the paper: 64000 at batch 128).
      batch_size: global batch, split over devices (must divide by the device count).
      optimizer: ``"sgd"`` (momentum, coupled L2) or ``"adamw"``.
      learning_rate: peak learning rate.
      momentum: SGD momentum.
      weight_decay: L2 (SGD) or decoupled (AdamW) weight decay.
      schedule: ``"piecewise"`` (÷10 at ``lr_boundaries``), ``"constant"`` or ``"cosine"``.
      lr_boundaries: fractions of the total steps where the piecewise rate drops.
      lr_factor: the piecewise multiplier.
      warmup_steps: linear warm-up of the cosine schedule.
      augment: random crop (``pad``) + horizontal flip on device.
      pad: crop padding.
      seed: seed of batch order and augmentation (model init uses the caller's ``rngs``).
      eval_every: steps between evaluations (``None``: once per epoch and at the end).
      eval_batch_size: batch of evaluation (the last batch is padded and masked).
      num_devices: devices of the data-parallel mesh (``None``: all).
      checkpoint_dir: where to save/resume (``None``: no checkpoints).
      checkpoint_every: steps between checkpoints (``None``: at each evaluation).
      metrics_path: JSON file rewritten with the history at each evaluation.
      progress: show a tqdm progress bar.
    """

    epochs: int = 10
    steps: int | None = None
    batch_size: int = 128
    optimizer: OptimizerName = "sgd"
    learning_rate: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: ScheduleName = "piecewise"
    lr_boundaries: tuple[float, ...] = (0.5, 0.75)
    lr_factor: float = 0.1
    warmup_steps: int = 0
    augment: bool = False
    pad: int = 4
    seed: int = 0
    eval_every: int | None = None
    eval_batch_size: int = 1000
    num_devices: int | None = None
    checkpoint_dir: str | None = None
    checkpoint_every: int | None = None
    metrics_path: str | None = None
    progress: bool = True


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns: the per-evaluation ``history`` and the ``final`` record."""

    history: list[dict[str, Any]]
    final: dict[str, Any]
    resumed_from: int | None


def batch_indices(num_examples: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Indices of the training batch at global ``step`` (drop-last epochs, reshuffled each).

    Epoch ``e = step // (N // B)`` uses the permutation of ``np.random.default_rng((seed,
    e))``; so the batch at any step is known without replaying the run (what resume needs).

    Example:
      >>> batch_indices(10, 4, seed=0, step=0).shape
      (4,)
    """
    per_epoch = num_examples // batch_size
    if per_epoch < 1:
        raise ValueError(
            f"batch_size={batch_size} must be <= the number of training examples ({num_examples})"
        )
    epoch, i = divmod(step, per_epoch)
    perm = np.random.default_rng((seed, epoch)).permutation(num_examples)
    return perm[i * batch_size : (i + 1) * batch_size]


@functools.lru_cache(maxsize=32)
def _optimizer(optimizer, learning_rate, momentum, weight_decay, schedule, total, boundaries,
               factor, warmup_steps):
    """``(tx, schedule)`` for a configuration; cached so that equal configurations give the
    same optax object, hence equal NNX graphdefs and a shared compiled step."""
    sched = make_schedule(schedule, learning_rate, total, boundaries=boundaries, factor=factor,
                          warmup_steps=warmup_steps)
    tx = make_optimizer(optimizer, sched, momentum=momentum, weight_decay=weight_decay)
    return tx, sched


@functools.lru_cache(maxsize=32)
def _compiled_train_step(graphdef, augment_pad, mesh):
    """The jitted train step for one (model, optimizer) structure, reused across runs
    (several seeds of one model compile once)."""
    return jax.jit(make_train_step(graphdef, augment_pad=augment_pad),
                   out_shardings=replicated(mesh), donate_argnums=0)


@functools.lru_cache(maxsize=32)
def _compiled_eval_step(graphdef, mesh):
    return jax.jit(make_eval_step(graphdef), out_shardings=replicated(mesh))


def _check_data(name: str, x, y) -> None:
    if np.ndim(x) < 2 or np.ndim(y) != 1 or len(x) != len(y):
        raise ValueError(
            f"{name} must be images (N, ...) and labels (N,) of equal length, got shapes "
            f"{np.shape(x)} and {np.shape(y)}"
        )


def evaluate(
    model: nnx.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int = 1000,
    num_devices: int | None = None,
) -> dict[str, float]:
    """Mean cross-entropy ``loss`` and ``accuracy`` of ``model`` (eval mode) on ``(x, y)``.

    Batches of ``batch_size`` (rounded up to a multiple of the device count); the last
    batch is zero-padded and masked out, so every example counts exactly once.

    Example:
      >>> import jax, numpy as np
      >>> from flax import nnx
      >>> from actfx.nn.models import MLP
      >>> m = MLP(4, 3, hidden=(8,), rngs=nnx.Rngs(0))
      >>> r = evaluate(m, np.ones((5, 4), np.float32), np.zeros(5, np.int32), batch_size=2)
      >>> sorted(r), 0.0 <= r["accuracy"] <= 1.0
      (['accuracy', 'loss'], True)
    """
    _check_data("(x, y)", x, y)
    mesh = make_data_mesh(num_devices)
    ndev = mesh.shape["data"]
    bs = int(math.ceil(min(batch_size, len(x)) / ndev) * ndev)
    graphdef, model_state = nnx.split(model)
    step = _compiled_eval_step(graphdef, mesh)
    model_state = jax.device_put(model_state, replicated(mesh))
    data_sh = batch_sharded(mesh)
    totals = np.zeros(3)
    for start in range(0, len(x), bs):
        xb = np.asarray(x[start : start + bs])
        yb = np.asarray(y[start : start + bs])
        n = len(xb)
        w = np.zeros(bs, np.float32)
        w[:n] = 1.0
        if n < bs:
            xb = np.concatenate([xb, np.zeros((bs - n, *xb.shape[1:]), xb.dtype)])
            yb = np.concatenate([yb, np.zeros(bs - n, yb.dtype)])
        out = step(model_state, *jax.device_put((xb, yb, w), data_sh))
        totals += [float(out["loss_sum"]), float(out["correct"]), float(out["count"])]
    return {"loss": float(totals[0] / totals[2]), "accuracy": float(totals[1] / totals[2])}


def fit(
    model: nnx.Module,
    data: ImageDataset | tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    config: TrainConfig = TrainConfig(),
    *,
    on_step: Callable[[int, dict], None] | None = None,
    extra_meta: dict | None = None,
) -> FitResult:
    """Train ``model`` in place on ``data``; evaluate, checkpoint and log along the way.

    Each step draws the batch :func:`batch_indices` gives for that step, optionally
    augments it on device, and applies one optimiser step (``config.optimizer`` with
    ``config.schedule``) to the mean softmax cross-entropy. The compiled step is a pure
    function of the replicated ``(model, optimizer)`` state and a batch sharded over a
    1-D device mesh (:func:`make_data_mesh`), so the same code runs on 1 CPU, 8 TPU chips
    or fake CPU devices. Runs are deterministic given ``config.seed`` and the model's
    initialisation; with ``config.checkpoint_dir`` a rerun resumes from the newest
    checkpoint and ends with the same parameters as an uninterrupted run.

    Args:
      model: an NNX model mapping images to logits; updated in place.
      data: an :class:`actfx.data.ImageDataset` or ``(x_train, y_train, x_test, y_test)``.
      config: a :class:`TrainConfig`.
      on_step: called as ``on_step(step, metrics)`` after each step (``step`` counts
        completed steps; ``metrics`` are device arrays). Raising in it stops training.
      extra_meta: JSON-able dict stored in the metrics file (e.g. the activation name).

    Returns:
      A :class:`FitResult` with the evaluation history and the final metrics.

    Example:
      >>> import jax
      >>> from flax import nnx
      >>> from actfx.data import load_digits
      >>> from actfx.nn.models import MLP
      >>> ds = load_digits()
      >>> m = MLP(64, 10, hidden=(32,), rngs=nnx.Rngs(0))
      >>> cfg = TrainConfig(steps=40, batch_size=64, schedule="constant", progress=False)
      >>> r = fit(m, ds, cfg)
      >>> r.final["step"], r.final["test_accuracy"] > 0.8
      (40, True)
    """
    if isinstance(data, ImageDataset):
        x_train, y_train, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
    else:
        x_train, y_train, x_test, y_test = data
    _check_data("(x_train, y_train)", x_train, y_train)
    _check_data("(x_test, y_test)", x_test, y_test)
    c = config
    n = len(x_train)
    if not isinstance(c.batch_size, int) or c.batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {c.batch_size!r}")
    per_epoch = n // c.batch_size
    if per_epoch < 1:
        raise ValueError(f"batch_size={c.batch_size} must be <= the number of training examples ({n})")
    total = c.steps if c.steps is not None else c.epochs * per_epoch
    if not isinstance(total, int) or total < 1:
        raise ValueError(f"steps/epochs must give at least one step, got steps={c.steps!r}, epochs={c.epochs!r}")
    if c.augment and (np.ndim(x_train) != 4):
        raise ValueError(f"augment=True needs NHWC images, got x_train of shape {np.shape(x_train)}")
    eval_every = c.eval_every or per_epoch
    ckpt_every = c.checkpoint_every or eval_every

    mesh = make_data_mesh(c.num_devices)
    check_divisible("batch_size", c.batch_size, mesh)
    repl, data_sh = replicated(mesh), batch_sharded(mesh)

    tx, schedule = _optimizer(
        c.optimizer, c.learning_rate, c.momentum, c.weight_decay, c.schedule, total,
        tuple(c.lr_boundaries), c.lr_factor, c.warmup_steps,
    )
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    graphdef, state = nnx.split((model, optimizer))
    state = jax.device_put(state, repl)

    train_step = _compiled_train_step(graphdef, c.pad if c.augment else None, mesh)
    base_key = jax.random.key(c.seed)

    history: list[dict[str, Any]] = []
    restored_pending: list[dict] = []
    start = 0
    resumed_from = None
    ckpt = Checkpointer(c.checkpoint_dir) if c.checkpoint_dir else None
    if ckpt is not None:
        restored = ckpt.restore_latest(state)
        if restored is not None:
            start, state, meta = restored
            state = jax.device_put(state, repl)
            history = list(meta.get("history", []))
            restored_pending = list(meta.get("pending", []))
            resumed_from = start

    def model_of(st):
        m, _ = nnx.merge(graphdef, st)
        return m

    def record(step: int, train_sums: list, t0: float, images: int) -> dict:
        # reading the train metrics waits for the steps: time them before evaluating
        losses = np.array([float(s["loss"]) for s in train_sums]) if train_sums else np.array([np.nan])
        accs = np.array([float(s["accuracy"]) for s in train_sums]) if train_sums else np.array([np.nan])
        dt = time.perf_counter() - t0
        ev = evaluate(model_of(state), x_test, y_test, batch_size=c.eval_batch_size,
                      num_devices=c.num_devices)
        rec = {
            "step": step,
            "epoch": step / per_epoch,
            "lr": float(schedule(step - 1)) if step else float(schedule(0)),
            "train_loss": float(np.mean(losses)),
            "train_accuracy": float(np.mean(accs)),
            "test_loss": float(ev["loss"]),
            "test_accuracy": float(ev["accuracy"]),
            "images_per_s": images / dt if dt > 0 else float("nan"),
        }
        history.append(rec)
        if c.metrics_path:
            write_json(c.metrics_path, {"config": dataclasses.asdict(c), "meta": extra_meta or {},
                                        "history": history})
        return rec

    bar = None
    if c.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start, desc="train", unit="step", leave=False)
    # training metrics since the last evaluation (saved with checkpoints, so a resumed run
    # reports the same running means as an uninterrupted one)
    pending: list[dict] = restored_pending
    t0, images = time.perf_counter(), 0
    step = start
    try:
        while step < total:
            idx = batch_indices(n, c.batch_size, c.seed, step)
            xb, yb = jax.device_put((np.asarray(x_train[idx]), np.asarray(y_train[idx])), data_sh)
            key = jax.random.fold_in(base_key, step)
            state, metrics = train_step(state, xb, yb, key)
            step += 1
            images += c.batch_size
            pending.append(metrics)
            if on_step is not None:
                on_step(step, metrics)
            if bar is not None:
                bar.update(1)
            if step % eval_every == 0 or step == total:
                rec = record(step, pending, t0, images)
                pending, t0, images = [], time.perf_counter(), 0
                if bar is not None:
                    bar.set_postfix(loss=f"{rec['train_loss']:.3f}", test_acc=f"{rec['test_accuracy']:.3f}")
            if ckpt is not None and (step % ckpt_every == 0 or step == total):
                pending = [{k: float(v) for k, v in p.items()} for p in pending]
                ckpt.save(step, state, {"history": history, "step": step, "pending": pending})
    finally:
        if bar is not None:
            bar.close()
        if ckpt is not None:
            ckpt.close()
    if not history or history[-1]["step"] != step:
        record(step, pending, t0, images)
    # back on the default device as plain arrays (not replicated over the mesh)
    trained, _ = nnx.merge(graphdef, jax.tree.map(jnp.asarray, jax.device_get(state)))
    nnx.update(model, nnx.state(trained))
    return FitResult(history=history, final=history[-1], resumed_from=resumed_from)
