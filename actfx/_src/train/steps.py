"""Pure train/eval/predict steps over a split NNX state (wrap them in ``jax.jit``)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from actfx._src.data.augment import random_crop_flip
from actfx._src.nn.regularization import regularization
from actfx._src.train.losses import LossFn, cross_entropy, cross_entropy_loss

__all__ = ["cross_entropy", "make_eval_step", "make_predict_step", "make_train_step"]


def _all_finite(tree) -> jax.Array:
    leaves = [
        jnp.all(jnp.isfinite(v))
        for v in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.asarray(v).dtype, jnp.inexact)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def check_loss_output(out) -> tuple[jax.Array, dict]:
    """``(loss, aux)`` from a ``loss_fn`` result, or a ``TypeError`` naming ``loss_fn``.

    Runs at trace time: ``loss`` must be a scalar, ``aux`` a dict of scalars.
    """
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
        raise TypeError(
            "loss_fn must return (loss, aux) with aux a dict of scalar metrics, got "
            f"{type(out).__name__}"
        )
    loss, aux = out
    if jnp.shape(loss) != ():
        raise TypeError(f"loss_fn must return a scalar loss, got shape {jnp.shape(loss)}")
    for k, v in aux.items():
        if not isinstance(k, str) or jnp.shape(v) != ():
            raise TypeError(
                f"loss_fn's aux must map names to scalars, got {k!r}: shape {jnp.shape(v)}"
            )
    return loss, dict(aux)


def make_train_step(
    graphdef: nnx.GraphDef,
    *,
    loss_fn: LossFn | None = None,
    augment_pad: int | None = None,
    regularization_weight: float = 1.0,
) -> Callable:
    r"""``step(state, x, y, key) -> (state, metrics)`` for ``state = nnx.state((model, opt))``.

    One optimiser step on ``loss + w * actfx.nn.regularization(model)`` where ``(loss, aux)
    = loss_fn(model, (x, y))`` (default :func:`actfx.train.cross_entropy_loss`) and ``w =
    regularization_weight``, with the model in training mode (BatchNorm batch statistics).
    When ``augment_pad`` is an int the inputs are first augmented on device with
    :func:`actfx.data.random_crop_flip` using ``key``.

    ``metrics`` holds the batch ``loss`` (the data term), ``regularization`` (unweighted,
    at the parameters before the step), every ``aux`` entry, and ``finite``: whether the
    loss, the regulariser and every floating-point leaf of the updated state are finite.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from flax import nnx
      >>> m = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
      >>> g, s = nnx.split((m, nnx.Optimizer(m, optax.sgd(0.1), wrt=nnx.Param)))
      >>> x, y = jnp.ones((4, 3)), jnp.array([0, 1, 0, 1])
      >>> s, met = make_train_step(g)(s, x, y, jax.random.key(0))
      >>> sorted(met), bool(met["finite"])
      (['accuracy', 'finite', 'loss', 'regularization'], True)
    """
    loss_fn = cross_entropy_loss if loss_fn is None else loss_fn
    weight = float(regularization_weight)

    def objective(model, batch):
        loss, aux = check_loss_output(loss_fn(model, batch))
        reg = regularization(model)
        total = loss + weight * reg if weight != 0.0 else loss
        return total, (loss, reg, aux)

    def step(state, x, y, key):
        model, optimizer = nnx.merge(graphdef, state)
        model.train()
        if augment_pad is not None:
            x = random_crop_flip(key, x, pad=augment_pad)
        grad_fn = nnx.value_and_grad(objective, has_aux=True)
        (_, (loss, reg, aux)), grads = grad_fn(model, (x, y))
        optimizer.update(model, grads)
        new_state = nnx.state((model, optimizer))
        finite = jnp.isfinite(loss) & jnp.isfinite(reg) & _all_finite(nnx.state(model))
        metrics = {"loss": loss, "regularization": reg, **aux, "finite": finite}
        return new_state, metrics

    return step


def make_eval_step(graphdef: nnx.GraphDef, *, loss_fn: LossFn | None = None) -> Callable:
    """``step(model_state, x, y) -> (loss, aux)`` of ``loss_fn`` with the model in eval mode.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> g, s = nnx.split(nnx.Linear(3, 2, rngs=nnx.Rngs(0)))
      >>> loss, aux = make_eval_step(g)(s, jnp.ones((4, 3)), jnp.array([0, 1, 0, 1]))
      >>> loss.shape, sorted(aux)
      ((), ['accuracy'])
    """
    loss_fn = cross_entropy_loss if loss_fn is None else loss_fn

    def step(model_state, x, y):
        model = nnx.merge(graphdef, model_state)
        model.eval()
        return check_loss_output(loss_fn(model, (x, y)))

    return step


def make_predict_step(graphdef: nnx.GraphDef) -> Callable:
    """``step(model_state, x) -> model(x)`` with the model in eval mode.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> g, s = nnx.split(nnx.Linear(3, 2, rngs=nnx.Rngs(0)))
      >>> make_predict_step(g)(s, jnp.ones((4, 3))).shape
      (4, 2)
    """

    def step(model_state, x):
        model = nnx.merge(graphdef, model_state)
        model.eval()
        return model(x)

    return step
