"""Loss functions with the :func:`actfx.train.fit` signature ``loss_fn(model, batch) -> (loss,
aux)`` (``batch = (inputs, targets)``, ``aux`` a dict of scalar metrics), and label checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

LossFn = Callable[[Any, tuple], tuple[jax.Array, dict[str, jax.Array]]]


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example softmax cross-entropy with integer labels, computed in float32.

    ``logits`` has shape ``(..., num_classes)`` and ``labels`` the leading shape ``(...)``
    (checked at trace time: ``ValueError`` naming both shapes, no broadcasting).

    Example:
      >>> import jax.numpy as jnp
      >>> cross_entropy(jnp.zeros((2, 3)), jnp.zeros((2, 1), jnp.int32))
      Traceback (most recent call last):
      ...
      ValueError: cross_entropy: labels of shape (2, 1) do not match logits of shape (2, 3);
      expected labels of shape (2,) (one integer class per row)
    """
    lshape, yshape = jnp.shape(logits), jnp.shape(labels)
    if len(lshape) < 1 or tuple(yshape) != tuple(lshape[:-1]):
        raise ValueError(
            f"cross_entropy: labels of shape {tuple(yshape)} do not match logits of shape "
            f"{tuple(lshape)}; expected labels of shape {tuple(lshape[:-1])} "
            "(one integer class per row)"
        )
    return optax.softmax_cross_entropy_with_integer_labels(
        jnp.asarray(logits).astype(jnp.float32), labels
    )


def cross_entropy_loss(model, batch) -> tuple[jax.Array, dict[str, jax.Array]]:
    r"""The default loss of :func:`fit`: mean softmax cross-entropy and accuracy.

    ``loss = -mean_i log softmax(model(x))_{i, y_i}``; ``aux = {"accuracy": mean_i
    [argmax model(x)_i = y_i]}``. Labels are integers in ``[0, num_classes)``; :func:`fit`
    and :func:`evaluate` check them (:func:`check_labels`) before any step, because
    ``optax`` would silently wrap ``-1`` to the last class and give NaN above the range.

    Example:
      >>> import jax.numpy as jnp
      >>> loss, aux = cross_entropy_loss(lambda x: x, (jnp.array([[0.0, 0.0]]), jnp.array([1])))
      >>> round(float(loss), 4), float(aux["accuracy"])  # log 2; argmax ties -> class 0
      (0.6931, 0.0)
    """
    x, y = batch
    logits = model(x)
    loss = cross_entropy(logits, y).mean()
    return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == y)}


def mse_loss(model, batch) -> tuple[jax.Array, dict[str, jax.Array]]:
    r"""Mean squared error ``mean((model(x) - y)^2)`` over all elements, for regression and
    reconstruction targets of any shape (``aux`` holds ``"rmse"``), computed in float32.

    ``model(x)`` and ``y`` must have the same shape (checked at trace time: ``ValueError``
    naming both; ``(N, 1)`` outputs are not broadcast against ``(N,)`` targets into an
    ``(N, N)`` matrix).

    Example:
      >>> import jax.numpy as jnp
      >>> loss, aux = mse_loss(lambda x: 2 * x, (jnp.ones((2, 3)), jnp.zeros((2, 3))))
      >>> float(loss), float(aux["rmse"])
      (4.0, 2.0)
      >>> mse_loss(lambda x: x, (jnp.ones((4, 1)), jnp.zeros(4)))
      Traceback (most recent call last):
      ...
      ValueError: mse_loss: model outputs of shape (4, 1) and targets y of shape (4,) differ
      (no broadcasting; reshape y or the model's output)
    """
    x, y = batch
    out = model(x)
    if jnp.shape(out) != jnp.shape(y):
        raise ValueError(
            f"mse_loss: model outputs of shape {tuple(jnp.shape(out))} and targets y of shape "
            f"{tuple(jnp.shape(y))} differ (no broadcasting; reshape y or the model's output)"
        )
    err = jnp.asarray(out, jnp.float32) - jnp.asarray(y, jnp.float32)
    loss = jnp.mean(err**2)
    return loss, {"rmse": jnp.sqrt(loss)}


def check_labels(name: str, y, num_classes: int | None) -> None:
    """Raise ``ValueError`` unless ``y`` holds integer labels in ``[0, num_classes)``.

    Args:
      name: how the caller calls the labels in the message (e.g. ``"y_train"``).
      y: the labels, shape ``(N,)``.
      num_classes: the number of classes (the model's output width), or ``None`` to
        check only the dtype, shape and ``>= 0``.

    Example:
      >>> import numpy as np
      >>> check_labels("y", np.array([0, 3]), 3)
      Traceback (most recent call last):
      ...
      ValueError: y: the default cross-entropy needs integer labels in [0, 3), got values in
      [0, 3] (label 3 at index 1)
    """
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"{name}: the default cross-entropy needs integer class labels, got dtype {y.dtype} "
            "(pass loss_fn=... for other targets, e.g. actfx.train.mse_loss)"
        )
    if y.ndim != 1:
        raise ValueError(
            f"{name}: the default cross-entropy needs labels of shape (N,), got {y.shape}"
        )
    if y.size == 0:
        return
    lo, hi = int(y.min()), int(y.max())
    top = num_classes if num_classes is not None else None
    if lo < 0 or (top is not None and hi >= top):
        bad = int(np.flatnonzero((y < 0) | ((y >= top) if top is not None else False))[0])
        rng = f"[0, {top})" if top is not None else ">= 0"
        raise ValueError(
            f"{name}: the default cross-entropy needs integer labels in {rng}, got values in "
            f"[{lo}, {hi}] (label {int(y[bad])} at index {bad})"
        )
