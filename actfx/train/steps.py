"""Pure, jit-compiled train and eval steps over a split NNX (model, optimizer) state."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from actfx.data.augment import random_crop_flip


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example softmax cross-entropy with integer labels, computed in float32."""
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)


def make_train_step(
    graphdef: nnx.GraphDef, *, augment_pad: int | None = None
) -> Callable:
    """``step(state, x, y, key) -> (state, metrics)`` for ``state = nnx.state((model, opt))``.

    One SGD step on the mean cross-entropy, with BatchNorm in training mode; when
    ``augment_pad`` is an int, the batch is first augmented on device with
    :func:`actfx.data.random_crop_flip` using ``key``. ``metrics`` holds the batch mean
    ``loss`` and ``accuracy``. Pure: wrap it in ``jax.jit`` (the loop does, with shardings).
    """

    def step(state, x, y, key):
        model, optimizer = nnx.merge(graphdef, state)
        model.train()
        if augment_pad is not None:
            x = random_crop_flip(key, x, pad=augment_pad)

        def loss_fn(m):
            logits = m(x)
            return cross_entropy(logits, y).mean(), logits

        (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
        optimizer.update(model, grads)
        acc = jnp.mean(jnp.argmax(logits, -1) == y)
        return nnx.state((model, optimizer)), {"loss": loss, "accuracy": acc}

    return step


def make_eval_step(graphdef: nnx.GraphDef) -> Callable:
    """``step(model_state, x, y, weight) -> {"loss_sum", "correct", "count"}`` in eval mode.

    ``weight`` (0 or 1 per example) masks the padding of a short last batch.
    """

    def step(model_state, x, y, weight):
        model = nnx.merge(graphdef, model_state)
        model.eval()
        logits = model(x)
        w = weight.astype(jnp.float32)
        return {
            "loss_sum": jnp.sum(cross_entropy(logits, y) * w),
            "correct": jnp.sum((jnp.argmax(logits, -1) == y) * w),
            "count": jnp.sum(w),
        }

    return step
