"""One protocol for model regularisers: modules that carry a prior expose ``regularizer()``.

:func:`regularization` sums them over a whole model, so a training loop (``actfx.train.fit``
or your own) adds every trainable activation's prior penalty without knowing which modules
the model holds.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from flax import nnx


@runtime_checkable
class HasRegularizer(Protocol):
    """A module whose ``regularizer()`` returns a scalar penalty to add to the loss."""

    def regularizer(self) -> jax.Array: ...


def regularization(model: nnx.Module) -> jax.Array:
    """Sum of ``m.regularizer()`` over every submodule ``m`` of ``model`` that defines it.

    The sum is float32 and 0 for a model with no regularised module. Each module is counted
    once even when it is shared (``nnx.iter_graph`` visits a node once).

    Args:
      model: any NNX module (or a pytree-of-modules graph node).

    Returns:
      A scalar ``jax.Array``.

    Raises:
      ValueError: a module's ``regularizer()`` returns a non-scalar (naming the module).

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from actfx.nn import DiTAC
      >>> act = DiTAC(rngs=nnx.Rngs(0))
      >>> bool(jnp.allclose(regularization(act), act.regularizer()))
      True
      >>> float(regularization(nnx.Linear(2, 2, rngs=nnx.Rngs(0))))
      0.0
    """
    total = jnp.zeros((), jnp.float32)
    for path, m in nnx.iter_graph(model):
        if isinstance(m, nnx.Module) and isinstance(m, HasRegularizer):
            r = m.regularizer()
            if jnp.ndim(r) != 0:
                where = "/".join(map(str, path)) or "the model itself"
                raise ValueError(
                    f"{type(m).__name__}.regularizer() (module at {where}) must return a "
                    f"scalar penalty, got shape {jnp.shape(r)}; sum it yourself if you "
                    f"meant a total"
                )
            total = total + jnp.asarray(r, jnp.float32)
    return total
