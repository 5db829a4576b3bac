"""Pure train/eval/predict steps over a split NNX state (wrap them in ``jax.jit``)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from actfx._src._checks import ArgumentTypeError
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


# metric names fit itself reports next to aux: an aux entry of that name would replace them
RESERVED_METRICS = ("loss", "regularization", "finite")


class _ByIdentity:
    """A cache key for an unhashable object (a callable dataclass): equal only to itself.
    The cache holding the key keeps the object alive, so its ``id`` is not reused."""

    __slots__ = ("obj",)

    def __init__(self, obj) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other) -> bool:
        return isinstance(other, _ByIdentity) and other.obj is self.obj


def cache_key(obj):
    """``obj`` if it is hashable (equal objects share a cache entry), else a key by identity."""
    try:
        hash(obj)
    except TypeError:
        return _ByIdentity(obj)
    return obj


def from_cache_key(key):
    """The object a :func:`cache_key` stands for."""
    return key.obj if isinstance(key, _ByIdentity) else key


def _check_metric(name: str, value) -> None:
    if value is None or isinstance(value, (str, bytes, dict, list, tuple, set)):
        raise ArgumentTypeError(
            f"loss_fn's aux[{name!r}] must be a scalar real number or array, got "
            f"{type(value).__name__}"
        )
    try:
        dtype, shape = jnp.result_type(value), jnp.shape(value)
    except TypeError:
        raise ArgumentTypeError(
            f"loss_fn's aux[{name!r}] must be a scalar real number or array, got "
            f"{type(value).__name__}"
        ) from None
    if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)) and (
        dtype != jnp.bool_
    ):
        raise ArgumentTypeError(
            f"loss_fn's aux[{name!r}] must be real (float, int or bool), got {dtype}"
        )
    if shape != ():
        raise ArgumentTypeError(f"loss_fn's aux[{name!r}] must be a scalar, got shape {shape}")


def check_loss_output(out) -> tuple[jax.Array, dict]:
    """``(loss, aux)`` from a ``loss_fn`` result, or an error naming ``loss_fn``/the key.

    Runs at trace time, i.e. before the first step: ``loss`` must be a scalar (else
    ``TypeError``); ``aux`` a dict whose keys are strings other than the names fit reports
    itself (``"loss"``, ``"regularization"``, ``"finite"``) and whose values are scalar
    real numbers or arrays (else an error naming the key that is both a ``ValueError``
    and, as before, a ``TypeError``).
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
        if not isinstance(k, str):
            raise ArgumentTypeError(f"loss_fn's aux keys must be str, got {k!r}")
        if k in RESERVED_METRICS:
            raise ArgumentTypeError(
                f"loss_fn's aux may not use the name {k!r}: fit reports "
                f"{', '.join(map(repr, RESERVED_METRICS))} itself"
            )
        _check_metric(k, v)
    return loss, dict(aux)


def _augment(key, x, pad: int):
    """:func:`random_crop_flip` of ``x`` (batch-sharded under explicit sharding: the
    per-example offsets are split like the batch, so no device gathers it)."""
    return random_crop_flip(key, x, pad=pad)


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

    An optimiser that is an ``optax.GradientTransformationExtraArgs`` gets ``value`` (the
    objective), ``grad`` and ``value_fn`` (the objective at other parameters, same batch)
    as extra arguments, so line-search methods such as ``optax.lbfgs()`` work as is.

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
            x = _augment(key, x, augment_pad)
        grad_fn = nnx.value_and_grad(objective, has_aux=True)
        (total, (loss, reg, aux)), grads = grad_fn(model, (x, y))
        extra = {}
        if isinstance(optimizer.tx, optax.GradientTransformationExtraArgs):
            # line-search optimisers (optax.lbfgs, scale_by_backtracking_linesearch) need
            # the objective and a function evaluating it at other parameters; the others
            # ignore these arguments (and value_fn is then never traced)
            model_def, _, rest = nnx.split(model, nnx.Param, ...)

            def value_fn(params):
                return objective(nnx.merge(model_def, params, rest), (x, y))[0]

            extra = {"value": total, "grad": grads, "value_fn": value_fn}
        optimizer.update(model, grads, **extra)
        new_state = nnx.state((model, optimizer))
        finite = jnp.isfinite(loss) & jnp.isfinite(reg) & _all_finite(nnx.state(model))
        metrics = {"loss": loss, "regularization": reg, **aux, "finite": finite}
        return new_state, metrics

    return step


def make_eval_step(
    graphdef: nnx.GraphDef, *, loss_fn: LossFn | None = None, per_example: bool = False
) -> Callable:
    """``step(model_state, x, y) -> (loss, aux)`` of ``loss_fn`` with the model in eval mode.

    With ``per_example=True`` the loss is evaluated on each example alone (a batch of one,
    vectorised with ``jax.vmap``) and ``loss`` and every ``aux`` entry are vectors over
    the batch: no reduction across examples happens on the device, so a sum of them does
    not depend on how the batch was split over devices (what :func:`evaluate` uses).

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> g, s = nnx.split(nnx.Linear(3, 2, rngs=nnx.Rngs(0)))
      >>> loss, aux = make_eval_step(g)(s, jnp.ones((4, 3)), jnp.array([0, 1, 0, 1]))
      >>> loss.shape, sorted(aux)
      ((), ['accuracy'])
      >>> loss, aux = make_eval_step(g, per_example=True)(s, jnp.ones((4, 3)), jnp.arange(4) % 2)
      >>> loss.shape, aux["accuracy"].shape
      ((4,), (4,))
    """
    loss_fn = cross_entropy_loss if loss_fn is None else loss_fn

    def step(model_state, x, y):
        model = nnx.merge(graphdef, model_state)
        model.eval()
        return check_loss_output(loss_fn(model, (x, y)))

    if not per_example:
        return step

    def one(model_state, xi, yi):
        return step(model_state, xi[None], yi[None])

    return jax.vmap(one, in_axes=(None, 0, 0))


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
