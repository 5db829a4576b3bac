"""The settings of :func:`actfx.train.fit` and what it returns, with argument checks."""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from typing import Any, Literal

from actfx._src.train.optimizers import OptimizerName, ScheduleName

ResumeMismatch = Literal["error", "ignore"]
ShardingMode = Literal["auto", "explicit"]

# Fields that change the trajectory of a run: a checkpoint written with other values is
# not resumed unless ``resume_mismatch="ignore"``. The others (logging, devices, paths)
# may differ between a run and its resumption.
TRAJECTORY_FIELDS = (
    "epochs",
    "steps",
    "batch_size",
    "optimizer",
    "learning_rate",
    "momentum",
    "weight_decay",
    "schedule",
    "lr_boundaries",
    "lr_factor",
    "warmup_steps",
    "augment",
    "pad",
    "seed",
    "regularization_weight",
)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`fit`. Defaults: the LayerAct CIFAR recipe, scaled by ``epochs``.

    Attributes:
      epochs: passes over the training set (ignored when ``steps`` is given).
      steps: total optimiser steps (the paper: 64000 at batch 128).
      batch_size: global batch, split over devices (must divide by the device count).
      optimizer: ``"sgd"`` (momentum, coupled L2) or ``"adamw"``; used when :func:`fit`
        gets no ``optimizer`` argument.
      learning_rate: peak learning rate of the schedule (finite, > 0).
      momentum: SGD momentum.
      weight_decay: L2 (SGD) or decoupled (AdamW) weight decay.
      schedule: ``"piecewise"`` (÷10 at ``lr_boundaries``), ``"constant"`` or ``"cosine"``;
        also handed to an optimizer *factory* passed to :func:`fit`.
      lr_boundaries: fractions of the total steps where the piecewise rate drops.
      lr_factor: the piecewise multiplier.
      warmup_steps: linear warm-up of the cosine schedule.
      regularization_weight: weight of ``actfx.nn.regularization(model)`` (the sum of every
        submodule's ``regularizer()``, e.g. DiTAC's prior penalty) added to the training
        loss; ``0.0`` trains on the data loss alone. Default 1.0, so that a model holding
        DiTAC trains with its prior unless told otherwise.
      augment: random crop (``pad``) + horizontal flip on device (NHWC images only).
      pad: crop padding.
      seed: seed of batch order and augmentation (model init uses the caller's ``rngs``).
      eval_every: steps between evaluations (``None``: once per epoch and at the end).
      eval_batch_size: examples per device per evaluation call (see :func:`evaluate`).
      num_devices: devices of the data-parallel mesh (``None``: all).
      sharding: ``"auto"`` (default): a mesh with ``AxisType.Auto`` and a ``jax.jit`` that
        the compiler partitions; ``"explicit"``: a mesh with
        ``jax.sharding.AxisType.Explicit``, set with ``jax.set_mesh`` while the steps are
        traced and run, so the batch's sharding is part of its type (JAX's explicit
        sharding mode). Both give the same losses up to float round-off.
      checkpoint_dir: where to save/resume (``None``: no checkpoints).
      checkpoint_every: steps between checkpoints (``None``: at each evaluation).
      max_to_keep: checkpoints kept in ``checkpoint_dir`` (older ones are deleted).
      resume_mismatch: what a rerun does when ``checkpoint_dir`` holds a run whose
        configuration (the fields in ``TRAJECTORY_FIELDS``), loss, optimizer or model
        differ from this one: ``"error"`` (default) raises ``ValueError`` listing the
        differences; ``"ignore"`` resumes anyway.
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
    regularization_weight: float = 1.0
    augment: bool = False
    pad: int = 4
    seed: int = 0
    eval_every: int | None = None
    eval_batch_size: int = 1000
    num_devices: int | None = None
    sharding: ShardingMode = "auto"
    checkpoint_dir: str | None = None
    checkpoint_every: int | None = None
    max_to_keep: int = 2
    resume_mismatch: ResumeMismatch = "error"
    metrics_path: str | None = None
    progress: bool = True

    def trajectory(self) -> dict[str, Any]:
        """The fields that determine the run's result, as a JSON-able dict."""
        d = dataclasses.asdict(self)
        out = {k: d[k] for k in TRAJECTORY_FIELDS}
        out["lr_boundaries"] = [float(b) for b in out["lr_boundaries"]]
        return out


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
      history: one record per evaluation (``step``, ``epoch``, ``lr``, ``train_loss``,
        ``train_regularization``, ``train_<aux>``, ``test_loss``, ``test_<aux>``,
        ``images_per_s``).
      final: the last record.
      resumed_from: the checkpoint step the run resumed from, or ``None``.
    """

    history: list[dict[str, Any]]
    final: dict[str, Any]
    resumed_from: int | None


def _positive_int(name: str, value: Any, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _finite(name: str, value: Any, *, lower: float, strict: bool) -> None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    ok = math.isfinite(v) and (v > lower if strict else v >= lower)
    if not ok:
        rel = ">" if strict else ">="
        raise ValueError(f"{name} must be finite and {rel} {lower}, got {value!r}")


def validate_config(c: TrainConfig) -> None:
    """Raise ``ValueError``/``TypeError`` naming the field for a bad :class:`TrainConfig`.

    Checks sizes (``batch_size``, ``steps``, ``epochs``, ``eval_every``,
    ``checkpoint_every``, ``eval_batch_size``, ``max_to_keep``), that the learning rate and
    weights are finite (a NaN/inf learning rate is rejected before any step), ``seed`` in
    ``[0, 2**63)``, the option names, that ``checkpoint_dir`` is not an existing file and
    that ``metrics_path`` is writable (:func:`check_writable`).

    Example:
      >>> validate_config(TrainConfig(steps=0))
      Traceback (most recent call last):
      ...
      ValueError: steps must be a positive int, got 0
    """
    if not isinstance(c, TrainConfig):
        raise TypeError(f"config must be an actfx.train.TrainConfig, got {type(c).__name__}")
    _positive_int("batch_size", c.batch_size)
    _positive_int("steps", c.steps, allow_none=True)
    if c.steps is None:
        _positive_int("epochs", c.epochs)
    _positive_int("eval_every", c.eval_every, allow_none=True)
    _positive_int("checkpoint_every", c.checkpoint_every, allow_none=True)
    _positive_int("eval_batch_size", c.eval_batch_size)
    _positive_int("max_to_keep", c.max_to_keep)
    _finite("learning_rate", c.learning_rate, lower=0.0, strict=True)
    _finite("weight_decay", c.weight_decay, lower=0.0, strict=False)
    _finite("regularization_weight", c.regularization_weight, lower=0.0, strict=False)
    _finite("lr_factor", c.lr_factor, lower=0.0, strict=True)
    for name in ("warmup_steps", "pad"):
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be an int >= 0, got {v!r}")
    if isinstance(c.seed, bool) or not isinstance(c.seed, int) or not 0 <= c.seed < 2**63:
        raise ValueError(f"seed must be an int in [0, 2**63), got {c.seed!r}")
    if c.sharding not in ("auto", "explicit"):
        raise ValueError(f"sharding must be 'auto' or 'explicit', got {c.sharding!r}")
    if c.optimizer not in ("sgd", "adamw"):
        raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {c.optimizer!r}")
    if c.schedule not in ("piecewise", "constant", "cosine"):
        raise ValueError(
            f"schedule must be 'piecewise', 'constant' or 'cosine', got {c.schedule!r}"
        )
    if c.resume_mismatch not in ("error", "ignore"):
        raise ValueError(f"resume_mismatch must be 'error' or 'ignore', got {c.resume_mismatch!r}")
    if (
        c.checkpoint_dir is not None
        and os.path.exists(c.checkpoint_dir)
        and not os.path.isdir(c.checkpoint_dir)
    ):
        raise ValueError(f"checkpoint_dir must be a directory, got the file {c.checkpoint_dir!r}")
    if c.metrics_path is not None:
        check_writable("metrics_path", c.metrics_path)


def check_writable(name: str, path: Any) -> None:
    """Raise ``ValueError`` naming ``name`` and ``path`` unless a file can be written there.

    Creates the parent directories and a temp file next to ``path`` (then removes it), so
    an unwritable path fails before training rather than at the first write.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"{name} must be a file path (str), got {path!r}")
    if os.path.isdir(path):
        raise ValueError(f"{name} must be a file path, got the directory {str(path)!r}")
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=".write-test-")
        os.close(fd)
        os.remove(tmp)
        if os.path.exists(path) and not os.access(path, os.W_OK):
            raise PermissionError(f"{path} is read-only")
    except OSError as e:
        raise ValueError(f"{name}={str(path)!r} is not writable: {e}") from e
