"""A multi-layer perceptron with a pluggable activation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, ArrayLike

from actfx._src.nn.models.activation_factory import ActFactory, default_act, resolve_activation


class MLP(nnx.Module):
    """``Dense -> act`` repeated, then a linear head; inputs are flattened after the batch axis.

    ``y = W_L act(... act(W_1 flatten(x) + b_1) ...) + b_L``. ``act`` is resolved once and
    called once per hidden layer as ``act(num_features, rngs=rngs)`` with the layer's width
    (see :func:`actfx.nn.models.resolve_activation`).

    Args:
      in_features: size of the flattened input.
      num_classes: output size.
      hidden: widths of the hidden layers.
      act: ``jax.nn.relu`` (default) or any activation function, a module class
        (``actfx.nn.MMeLU``, ``actfx.nn.DiTAC``: one parameter per unit),
        ``lambda n, rngs: ...``, or a zero-argument factory ``lambda: actfx.nn.LayerAct()``.
      dtype: computation dtype (``None``: inferred from inputs and parameters).
      rngs: ``nnx.Rngs`` for initialisation.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> m = MLP(64, 10, hidden=(32,), act=lambda: jax.nn.silu, rngs=nnx.Rngs(0))
      >>> m(jnp.ones((5, 8, 8, 1))).shape
      (5, 10)
      >>> import actfx
      >>> m = MLP(4, 2, hidden=(8, 3), act=actfx.nn.DiTAC, rngs=nnx.Rngs(0))
      >>> [a.theta.shape for a in m.acts]
      [(8, 9), (3, 9)]
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        hidden: Sequence[int] = (256, 256),
        act: ActFactory = default_act,
        dtype=None,
        rngs: nnx.Rngs,
    ):
        if isinstance(in_features, bool) or not isinstance(in_features, int) or in_features < 1:
            raise ValueError(f"in_features must be a positive int, got {in_features!r}")
        hidden = tuple(hidden)
        if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
            raise ValueError(f"hidden must be a sequence of positive ints, got {hidden!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        make = resolve_activation(act)
        widths = (in_features, *hidden)
        self.layers = nnx.List(
            [nnx.Linear(a, b, dtype=dtype, rngs=rngs) for a, b in zip(widths[:-1], widths[1:])]
        )
        self.acts = nnx.List([make(h, rngs) for h in hidden])
        self.head = nnx.Linear(widths[-1], num_classes, dtype=dtype, rngs=rngs)

    def __call__(self, x: ArrayLike) -> Array:
        x = jnp.asarray(x)
        n_in = (self.layers[0] if len(self.layers) else self.head).in_features
        if x.ndim < 2 or math.prod(x.shape[1:]) != n_in:
            raise ValueError(
                f"x must be (N, ...) with in_features={n_in} entries per sample after the batch "
                f"axis, got shape {x.shape}"
            )
        x = x.reshape(x.shape[0], -1)
        for layer, act in zip(self.layers, self.acts):
            x = act(layer(x))
        return self.head(x)
