"""The training loop of :func:`fit`, in small steps: check inputs, build the optimiser and the
compiled step, resume, train with a finite-loss guard, evaluate, checkpoint, finish."""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh

from actfx._src.data.dataset import ImageDataset
from actfx._src.train._data import Pair, batch_indices, train_test_pairs
from actfx._src.train._fingerprint import fingerprint_diff, run_fingerprint
from actfx._src.train.checkpoint import Checkpointer
from actfx._src.train.config import FitResult, TrainConfig, validate_config
from actfx._src.train.evaluation import _block_size, _evaluate_state, num_outputs
from actfx._src.train.json_record import to_jsonable, write_json
from actfx._src.train.losses import LossFn, check_labels, cross_entropy_loss
from actfx._src.train.optimizers import make_optimizer, make_schedule
from actfx._src.train.sharding import (
    batch_sharded,
    check_divisible,
    make_data_mesh,
    mesh_context,
    replicated,
)
from actfx._src.train.steps import cache_key, from_cache_key, make_train_step

OptimizerArg = (
    optax.GradientTransformation | Callable[[optax.Schedule], optax.GradientTransformation]
)

__all__ = ["FitResult", "TrainConfig", "batch_indices", "fit"]


# ----------------------------------------------------------------------------- optimiser


def _opt_key(c: TrainConfig, total: int) -> tuple:
    """The config fields the optimiser depends on (seeds etc. share one optimiser object)."""
    return (
        c.optimizer,
        float(c.learning_rate),
        float(c.momentum),
        float(c.weight_decay),
        c.schedule,
        tuple(float(b) for b in c.lr_boundaries),
        float(c.lr_factor),
        int(c.warmup_steps),
        int(total),
    )


@functools.lru_cache(maxsize=32)
def _schedule(key: tuple) -> optax.Schedule:
    name, lr, _, _, schedule, boundaries, factor, warmup, total = key
    return make_schedule(
        schedule, lr, total, boundaries=boundaries, factor=factor, warmup_steps=warmup
    )


@functools.lru_cache(maxsize=32)
def _recipe(key: tuple) -> optax.GradientTransformation:
    # cached: equal configurations give the same optax object, hence equal NNX graphdefs
    # and a shared compiled step
    return make_optimizer(key[0], _schedule(key), momentum=key[2], weight_decay=key[3])


@functools.lru_cache(maxsize=32)
def _from_factory(factory_key: Any, key: tuple) -> optax.GradientTransformation:
    tx = from_cache_key(factory_key)(_schedule(key))
    if not isinstance(tx, optax.GradientTransformation):
        raise TypeError(
            "optimizer: a factory must return an optax.GradientTransformation, got "
            f"{type(tx).__name__}"
        )
    return tx


def _make_tx(
    c: TrainConfig, optimizer: Any, total: int
) -> tuple[optax.GradientTransformation, optax.Schedule | None]:
    """``(tx, schedule or None)``: the recipe, a user transformation, or a factory's result."""
    key = _opt_key(c, total)
    if optimizer is None:
        return _recipe(key), _schedule(key)
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer, None
    if callable(optimizer):
        return _from_factory(cache_key(optimizer), key), _schedule(key)
    raise TypeError(
        "optimizer must be an optax.GradientTransformation, a callable schedule -> "
        f"GradientTransformation, or None, got {type(optimizer).__name__}"
    )


@functools.lru_cache(maxsize=32)
def _compiled_train_step(graphdef, loss_key, augment_pad, reg_weight, mesh):
    """The jitted train step for one (model, optimizer, loss) structure, reused across runs
    (several seeds of one model compile once). Keyed on the loss function (by value when it
    is hashable, else by identity: a callable dataclass is not hashable)."""
    step = make_train_step(
        graphdef,
        loss_fn=from_cache_key(loss_key),
        augment_pad=augment_pad,
        regularization_weight=reg_weight,
    )
    return jax.jit(step, out_shardings=replicated(mesh), donate_argnums=0)


# ----------------------------------------------------------------------------- set-up


@dataclasses.dataclass
class _Run:
    """Everything fixed for one call of :func:`fit`."""

    config: TrainConfig
    train: Pair
    test: Pair | None
    per_epoch: int
    total: int
    eval_every: int
    ckpt_every: int
    mesh: Mesh
    graphdef: Any
    model_graphdef: Any
    schedule: optax.Schedule | None
    train_step: Callable
    loss_fn: LossFn | None
    fingerprint: dict
    extra_meta: dict


def _check_finite_inputs(name: str, a: Any) -> None:
    a = np.asarray(a)
    if np.issubdtype(a.dtype, np.inexact) and not np.all(np.isfinite(a)):
        bad = int(np.argwhere(~np.isfinite(a.reshape(len(a), -1)))[0, 0])
        raise ValueError(f"{name} contain NaN or inf (first at example {bad})")


def _check_data(
    model, train: Pair, test: Pair | None, num_classes, c: TrainConfig, loss_fn
) -> None:
    """Finite inputs, labels for the default loss, NHWC images for augmentation."""
    for name, pair in (("train", train), ("test", test)):
        if pair is not None:
            _check_finite_inputs(f"{name} inputs", pair[0])
            _check_finite_inputs(f"{name} targets", pair[1])
    if c.augment and np.ndim(train[0]) != 4:
        raise ValueError(
            f"augment=True needs NHWC images, got train inputs of shape {np.shape(train[0])}"
        )
    if loss_fn is None or loss_fn is cross_entropy_loss:
        width = num_outputs(*nnx.split(model), train[0])
        num_classes = width if width is not None else num_classes
        check_labels("train targets (y)", train[1], num_classes)
        if test is not None:
            check_labels("test targets (y)", test[1], num_classes)


def _check_extra_meta(extra_meta: Any) -> dict:
    """``extra_meta`` as plain JSON (NumPy/JAX scalars and arrays converted, NaN -> None),
    or a ``ValueError`` naming it now rather than at the first checkpoint."""
    if extra_meta is None:
        return {}
    if not isinstance(extra_meta, dict):
        raise ValueError(f"extra_meta must be a dict, got {type(extra_meta).__name__}")
    try:
        meta = to_jsonable(extra_meta)
        json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"extra_meta must be JSON-able (str keys, numbers, ...): {e}") from e
    return meta


def _steps_of(c: TrainConfig, n: int) -> tuple[int, int]:
    per_epoch = n // c.batch_size
    if per_epoch < 1:
        raise ValueError(
            f"batch_size={c.batch_size} must be <= the number of training examples ({n})"
        )
    return per_epoch, (c.steps if c.steps is not None else c.epochs * per_epoch)


def _prepare(
    model, train, test, c: TrainConfig, loss_fn: LossFn | None, optimizer, extra_meta
) -> tuple[_Run, Any]:
    """Check everything, build the optimiser and compiled step: ``(run, initial state)``."""
    validate_config(c)
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable (model, batch) -> (loss, aux), got {loss_fn!r}")
    train_pair, test_pair, num_classes = train_test_pairs(train, test)
    _check_data(model, train_pair, test_pair, num_classes, c, loss_fn)
    per_epoch, total = _steps_of(c, len(train_pair[0]))
    mesh = make_data_mesh(c.num_devices, explicit=c.sharding == "explicit")
    check_divisible("batch_size", c.batch_size, mesh)
    meta = _check_extra_meta(extra_meta)
    tx, schedule = _make_tx(c, optimizer, total)
    opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
    graphdef, state = nnx.split((model, opt))
    # a copy: the compiled step donates its input, the caller's model must stay valid
    state = jax.device_put(jax.tree.map(jnp.copy, state), replicated(mesh))
    step = _compiled_train_step(
        graphdef,
        cache_key(loss_fn),
        c.pad if c.augment else None,
        float(c.regularization_weight),
        mesh,
    )
    eval_every = c.eval_every or per_epoch
    run = _Run(
        c,
        train_pair,
        test_pair,
        per_epoch,
        total,
        eval_every,
        c.checkpoint_every or eval_every,
        mesh,
        graphdef,
        nnx.graphdef(model),
        schedule,
        step,
        loss_fn,
        run_fingerprint(c, loss_fn, optimizer, train_pair, tx),
        meta,
    )
    return run, state


# ----------------------------------------------------------------------------- resume


@dataclasses.dataclass
class _Progress:
    """What changes during training (and is saved with each checkpoint)."""

    state: Any
    step: int = 0
    history: list = dataclasses.field(default_factory=list)
    pending: list = dataclasses.field(default_factory=list)  # train metrics since last eval
    unchecked: list = dataclasses.field(default_factory=list)  # (step, metrics) not yet checked
    last_saved: int | None = None
    resumed_from: int | None = None


def _split_state(run: _Run, state) -> tuple[Any, Any]:
    return state[0], state[1]


def _join_state(run: _Run, state, model_state, opt_state):
    m, o = nnx.merge(run.graphdef, state)
    nnx.update(m, model_state)
    nnx.update(o, opt_state)
    return jax.device_put(nnx.state((m, o)), replicated(run.mesh))


def _check_resumable(run: _Run, meta: dict, where: str) -> None:
    saved = meta.get("run")
    if run.config.resume_mismatch == "ignore":
        return
    unknown = run.fingerprint.get("undescribable")
    if saved == run.fingerprint and unknown:
        raise ValueError(
            f"checkpoint_dir holds a run ({where}) that cannot be told apart from a changed "
            "one: the loss_fn/optimizer hold objects actfx cannot compare by value ("
            + "; ".join(unknown[:3])
            + (f"; +{len(unknown) - 3} more" if len(unknown) > 3 else "")
            + "). Use a new checkpoint_dir, or TrainConfig(resume_mismatch='ignore') to "
            "resume anyway."
        )
    if saved == run.fingerprint:
        return
    diffs = (
        fingerprint_diff(saved, run.fingerprint)
        if isinstance(saved, dict)
        else ["the checkpoint does not record its run's configuration"]
    )
    raise ValueError(
        f"checkpoint_dir holds a different run ({where}): "
        + "; ".join(diffs)
        + ". Use a new checkpoint_dir, or TrainConfig(resume_mismatch='ignore') to resume anyway."
    )


def _resume(run: _Run, ckpt: Checkpointer | None, state) -> _Progress:
    """The newest intact checkpoint's progress, or a fresh start."""
    prog = _Progress(state=state)
    if ckpt is None:
        return prog
    model_t, opt_t = _split_state(run, state)
    found = ckpt.restore_latest(model_t, opt_t)
    if found is None:
        return prog
    step, model_state, opt_state, meta = found
    _check_resumable(run, meta, f"{ckpt.directory}/{step}")
    prog.state = _join_state(run, state, model_state, opt_state)
    prog.step = prog.resumed_from = prog.last_saved = step
    prog.history = list(meta.get("history", []))
    prog.pending = list(meta.get("pending", []))
    return prog


# ----------------------------------------------------------------------------- guard, eval, save


def _guard(run: _Run, prog: _Progress) -> None:
    """Raise ``FloatingPointError`` if any step since the last check left non-finite values."""
    if not prog.unchecked:
        return
    # one host transfer of the per-step flags (a jnp.stack of thousands of scalars would
    # compile a program with that many inputs)
    flags = np.asarray(jax.device_get([m["finite"] for _, m in prog.unchecked]), dtype=bool)
    if not flags.all():
        step, m = prog.unchecked[int(np.argmin(flags))]
        saved = (
            "no checkpoint was written"
            if prog.last_saved is None
            else f"the newest checkpoint is step {prog.last_saved}"
        )
        raise FloatingPointError(
            f"fit: non-finite loss or parameters at step {step} (loss={float(m['loss'])}, "
            f"regularization={float(m['regularization'])}, lr={_lr(run, prog, step)}); "
            f"training stopped, {saved} and the model was not updated. Try a smaller "
            "learning_rate or check the inputs and the loss_fn."
        )
    prog.unchecked = []


def _lr(run: _Run, prog: _Progress, step: int) -> float | None:
    if run.schedule is not None:
        return float(np.asarray(run.schedule(max(step - 1, 0))))
    found = optax.tree_utils.tree_get(prog.state[1], "learning_rate", None)
    return None if found is None else float(jnp.asarray(found))


def _mean_metrics(pending: list[dict]) -> dict[str, float]:
    keys = [k for k in (pending[0] if pending else {}) if k != "finite"]
    return {k: float(np.mean([float(p[k]) for p in pending])) for k in keys}


def _record(run: _Run, prog: _Progress, t0: float, images: int) -> dict:
    """Append an evaluation record to the history (and the metrics JSON)."""
    train = _mean_metrics(prog.pending)  # reading the train metrics waits for the steps
    dt = time.perf_counter() - t0
    rec = {
        "step": prog.step,
        "epoch": prog.step / run.per_epoch,
        "lr": _lr(run, prog, prog.step),
        **{f"train_{k}": v for k, v in train.items()},
    }
    if run.test is not None:
        bs = _block_size("eval_batch_size", run.config.eval_batch_size, len(run.test[0]))
        ev = _evaluate_state(
            run.model_graphdef, prog.state[0], *run.test, run.loss_fn, bs, run.mesh
        )
        rec.update({f"test_{k}": v for k, v in ev.items()})
    rec["images_per_s"] = images / dt if dt > 0 else float("nan")
    prog.history.append(rec)
    if run.config.metrics_path:
        write_json(
            run.config.metrics_path,
            {
                "config": dataclasses.asdict(run.config),
                "meta": run.extra_meta,
                "history": prog.history,
            },
        )
    prog.pending = []
    return rec


def _save(run: _Run, prog: _Progress, ckpt: Checkpointer) -> None:
    prog.pending = [{k: float(v) for k, v in p.items() if k != "finite"} for p in prog.pending]
    model_state, opt_state = _split_state(run, prog.state)
    ckpt.save(
        prog.step,
        model_state,
        opt_state,
        {
            "history": prog.history,
            "step": prog.step,
            "pending": prog.pending,
            "run": run.fingerprint,
            "extra_meta": run.extra_meta,
        },
    )
    prog.last_saved = prog.step


# ----------------------------------------------------------------------------- loop


def _progress_bar(run: _Run, start: int):
    if not run.config.progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=run.total, initial=start, desc="train", unit="step", leave=False)


def _one_step(run: _Run, prog: _Progress, base_key) -> dict:
    c = run.config
    idx = batch_indices(len(run.train[0]), c.batch_size, c.seed, prog.step)
    xb, yb = np.asarray(run.train[0][idx]), np.asarray(run.train[1][idx])
    xb, yb = jax.device_put((xb, yb), batch_sharded(run.mesh))
    key = jax.random.fold_in(base_key, prog.step)
    prog.state, metrics = run.train_step(prog.state, xb, yb, key)
    prog.step += 1
    prog.pending.append(metrics)
    prog.unchecked.append((prog.step, metrics))
    return metrics


def _train(run: _Run, prog: _Progress, ckpt: Checkpointer | None, on_step) -> None:
    c, bar = run.config, _progress_bar(run, prog.step)
    base_key = jax.random.key(c.seed)
    t0, images = time.perf_counter(), 0
    try:
        while prog.step < run.total:
            metrics = _one_step(run, prog, base_key)
            images += c.batch_size
            if on_step is not None:
                on_step(prog.step, metrics)
            if bar is not None:
                bar.update(1)
            done = prog.step == run.total
            if prog.step % run.eval_every == 0 or done:
                _guard(run, prog)
                rec = _record(run, prog, t0, images)
                t0, images = time.perf_counter(), 0
                if bar is not None:
                    bar.set_postfix(loss=f"{rec['train_loss']:.3f}")
            if ckpt is not None and (prog.step % run.ckpt_every == 0 or done):
                _guard(run, prog)
                _save(run, prog, ckpt)
    finally:
        if bar is not None:
            bar.close()
    if not prog.history or prog.history[-1]["step"] != prog.step:
        _record(run, prog, t0, images)


def _finish(run: _Run, model: nnx.Module, prog: _Progress) -> FitResult:
    """Copy the trained state into ``model`` (plain arrays on the default device)."""
    trained, _ = nnx.merge(run.graphdef, jax.tree.map(jnp.asarray, jax.device_get(prog.state)))
    nnx.update(model, nnx.state(trained))
    return FitResult(history=prog.history, final=prog.history[-1], resumed_from=prog.resumed_from)


def fit(
    model: nnx.Module,
    train: tuple[Any, Any] | ImageDataset,
    test: tuple[Any, Any] | None = None,
    config: TrainConfig = TrainConfig(),
    *,
    loss_fn: LossFn | None = None,
    optimizer: OptimizerArg | None = None,
    on_step: Callable[[int, dict], None] | None = None,
    extra_meta: dict | None = None,
) -> FitResult:
    r"""Train ``model`` in place; evaluate, checkpoint and log along the way.

    Each step draws the batch :func:`batch_indices` gives for that step, optionally
    augments it on device, and applies one optimiser step to

    .. math:: L(\theta) = \text{loss\_fn}(\text{model}, (x, y))_0
              + w \cdot \text{actfx.nn.regularization}(\text{model}),

    ``w = config.regularization_weight`` (default 1: a model holding ``actfx.nn.DiTAC``
    trains with its prior penalty). The compiled step is a pure function of the
    replicated ``(model, optimizer)`` state and a batch sharded over a 1-D device mesh
    (:func:`make_data_mesh`), so the same code runs on 1 CPU, 8 TPU chips or fake CPU
    devices. Runs are deterministic given ``config.seed`` and the model's initialisation;
    with ``config.checkpoint_dir`` a rerun resumes from the newest intact checkpoint and
    ends with the same parameters as an uninterrupted run.

    With ``config.sharding="explicit"`` the mesh's axis is
    ``jax.sharding.AxisType.Explicit`` and the steps are traced and run under
    ``jax.set_mesh(mesh)`` (JAX's explicit sharding: the batch's sharding is part of its
    type); the losses equal the default ``"auto"`` mesh's and one device's up to float
    round-off (tested on 2 forced CPU devices).

    Guards: inputs with NaN/inf, labels outside ``[0, num_classes)`` (default loss), a
    bad config value (``seed`` outside ``[0, 2**63)``, ...), an empty test set, a
    ``checkpoint_dir`` that is a file, an unwritable ``metrics_path`` and an
    ``extra_meta`` that is not JSON-able are rejected before the first step; a
    ``loss_fn`` result is checked when the step is traced, before the first update
    (``loss`` a scalar; ``aux`` values scalar real numbers, names other than ``"loss"``,
    ``"regularization"``, ``"finite"``). A checkpoint of another run (other config, data,
    loss, optimizer or model) is not resumed unless ``config.resume_mismatch="ignore"``:
    the run's fingerprint describes the loss and optimizer *by value* — every
    hyper-parameter in an ``optax.chain``, schedule or ``MultiSteps`` (the closure cells
    of optax's functions), arrays by a SHA-256 of their bytes, user functions and
    callable objects by a digest of their bytecode, closures, defaults and the globals
    they read — so e.g. a new learning rate inside ``chain(clip, adam(lr))`` or a loss
    edited under the same name is refused; a loss or optimizer holding an object that
    cannot be described by value is never resumed silently (the refusal names it). A
    non-finite loss or parameter stops training with ``FloatingPointError`` at the next
    evaluation or checkpoint, before that state is saved (the model is then unchanged).

    Args:
      model: an NNX model; updated in place at the end.
      train: ``(inputs, targets)`` arrays with equal leading dimension (targets of any
        shape and dtype), or an :class:`actfx.data.ImageDataset` (whose test split is used
        when ``test`` is ``None``).
      test: ``(inputs, targets)`` evaluated at each evaluation, or ``None``.
      config: a :class:`TrainConfig`.
      loss_fn: ``loss_fn(model, (x, y)) -> (loss, aux)`` with ``aux`` a dict of scalar
        metrics reported as ``train_<name>``/``test_<name>``; default
        :func:`actfx.train.cross_entropy_loss` (integer labels, ``aux = {"accuracy"}``).
        The compiled step is cached on its identity: pass the same function object to
        reuse a compilation.
      optimizer: an ``optax.GradientTransformation``; or a callable ``schedule ->
        GradientTransformation`` that gets the schedule ``config`` describes; or ``None``
        for the ``config.optimizer`` recipe. Line-search optimisers (``optax.lbfgs()``)
        get ``value``, ``grad`` and ``value_fn`` (see :func:`make_train_step`). The
        loss and the factory may be unhashable (a callable dataclass): the compiled step
        is then cached on their identity.
      on_step: called as ``on_step(step, metrics)`` after each step (``step`` counts
        completed steps; ``metrics`` are device arrays). Raising in it stops training.
      extra_meta: JSON-able dict stored in the metrics file and checkpoints (NumPy/JAX
        scalars and arrays are converted when ``fit`` is called).

    Returns:
      A :class:`FitResult` with the evaluation history and the final metrics.

    Raises:
      ValueError / TypeError: bad data, labels, config or arguments (naming them), or a
        checkpoint of a different run.
      FloatingPointError: the loss or the parameters became non-finite.

    Example:
      >>> import optax
      >>> from flax import nnx
      >>> from actfx.data import load_digits
      >>> from actfx.nn.models import MLP
      >>> ds = load_digits()
      >>> m = MLP(64, 10, hidden=(32,), rngs=nnx.Rngs(0))
      >>> cfg = TrainConfig(steps=40, batch_size=64, progress=False)
      >>> r = fit(m, ds, config=cfg, optimizer=optax.adam(1e-2))
      >>> r.final["step"], r.final["test_accuracy"] > 0.8, r.final["train_regularization"]
      (40, True, 0.0)
    """
    if isinstance(test, TrainConfig):
        raise TypeError(
            "test got a TrainConfig: the signature is fit(model, train, test=None, "
            "config=TrainConfig(), ...); pass config=... by keyword"
        )
    run, state = _prepare(model, train, test, config, loss_fn, optimizer, extra_meta)
    ckpt = (
        Checkpointer(config.checkpoint_dir, max_to_keep=config.max_to_keep)
        if config.checkpoint_dir
        else None
    )
    try:
        with mesh_context(run.mesh):
            prog = _resume(run, ckpt, state)
            _train(run, prog, ckpt, on_step)
            _guard(run, prog)
    finally:
        if ckpt is not None:
            ckpt.close()
    return _finish(run, model, prog)
