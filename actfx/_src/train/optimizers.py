"""Optimisers and learning-rate schedules for the reference training loop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import optax

OptimizerName = Literal["sgd", "adamw"]
ScheduleName = Literal["piecewise", "constant", "cosine"]


def piecewise_schedule(
    base_lr: float,
    total_steps: int,
    *,
    boundaries: Sequence[float] = (0.5, 0.75),
    factor: float = 0.1,
) -> optax.Schedule:
    r"""Step decay at fractions of training: ``lr(t) = base_lr * factor^{#\{b : t >= b T\}}``.

    The LayerAct/ResNet CIFAR recipe: 64k iterations, ``lr = 0.1`` divided by 10 at 32k
    and 48k, i.e. ``boundaries=(0.5, 0.75)``, ``factor=0.1``.

    Args:
      base_lr: initial learning rate, > 0.
      total_steps: number of training steps ``T``, >= 1.
      boundaries: increasing fractions of ``T`` in (0, 1) where the rate is multiplied.
      factor: the multiplier at each boundary, > 0.

    Returns:
      An optax schedule ``step -> lr``.

    References:
      K. He et al., *Deep Residual Learning for Image Recognition*, CVPR 2016 (Sec. 4.2);
      K. Yoon, J. Lim, *LayerAct*, AAAI 2025 (same CIFAR schedule).

    Example:
      >>> s = piecewise_schedule(0.1, 64000)
      >>> [round(float(s(t)), 6) for t in (0, 31999, 32000, 48000)]
      [0.1, 0.1, 0.01, 0.001]
    """
    if not base_lr > 0:
        raise ValueError(f"base_lr must be > 0, got {base_lr!r}")
    if not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"total_steps must be a positive int, got {total_steps!r}")
    b = tuple(float(x) for x in boundaries)
    if any(not 0.0 < x < 1.0 for x in b) or list(b) != sorted(b):
        raise ValueError(f"boundaries must be increasing fractions in (0, 1), got {boundaries!r}")
    if not factor > 0:
        raise ValueError(f"factor must be > 0, got {factor!r}")
    steps = {}
    for x in b:
        t = int(round(x * total_steps))
        steps[t] = steps.get(t, 1.0) * factor
    return optax.piecewise_constant_schedule(base_lr, steps)


def make_schedule(
    name: ScheduleName,
    base_lr: float,
    total_steps: int,
    *,
    boundaries: Sequence[float] = (0.5, 0.75),
    factor: float = 0.1,
    warmup_steps: int = 0,
) -> optax.Schedule:
    """A schedule by name: ``"piecewise"`` (see :func:`piecewise_schedule`), ``"constant"``,
    or ``"cosine"`` (linear warm-up for ``warmup_steps``, then cosine decay to 0).

    Example:
      >>> float(make_schedule("cosine", 1.0, 100)(100))
      0.0
    """
    if name == "piecewise":
        return piecewise_schedule(base_lr, total_steps, boundaries=boundaries, factor=factor)
    if name == "constant":
        return optax.constant_schedule(base_lr)
    if name == "cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0 if warmup_steps else base_lr, base_lr, warmup_steps, max(total_steps, 1), 0.0
        )
    raise ValueError(f"schedule must be 'piecewise', 'constant' or 'cosine', got {name!r}")


def make_optimizer(
    name: OptimizerName,
    learning_rate: float | optax.Schedule,
    *,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    nesterov: bool = False,
) -> optax.GradientTransformation:
    """SGD with momentum and coupled L2 weight decay, or AdamW.

    ``"sgd"``: ``g <- g + wd * w`` then heavy-ball momentum (PyTorch ``SGD(weight_decay=wd,
    momentum=m)``, the LayerAct paper's optimiser: ``lr 0.1, m 0.9, wd 1e-4``).
    ``"adamw"``: ``optax.adamw`` with decoupled decay ``weight_decay``.

    Example:
      >>> import jax.numpy as jnp
      >>> tx = make_optimizer("sgd", 0.1, momentum=0.0, weight_decay=0.5)
      >>> w = jnp.ones(2)
      >>> upd, _ = tx.update(jnp.ones(2), tx.init(w), w)  # -lr * (g + wd * w)
      >>> upd
      Array([-0.15, -0.15], dtype=float32)
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if name == "sgd":
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        return optax.chain(
            optax.add_decayed_weights(weight_decay),
            optax.sgd(learning_rate, momentum=momentum or None, nesterov=nesterov),
        )
    if name == "adamw":
        return optax.adamw(learning_rate, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {name!r}")
