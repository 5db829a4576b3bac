"""actfx: trainable and structured activation functions in JAX.

The functional core (this namespace) is pure JAX: every function works under
``jax.jit``, ``jax.vmap`` and ``jax.grad`` on CPU/GPU/TPU and does not import Flax.
Flax NNX modules live in :mod:`actfx.nn`, NumPyro models in :mod:`actfx.bayes`.
"""

from actfx.layeract import layeract, layeract_hardsilu, layeract_silu
from actfx.mmelu import mmelu
from actfx.nelu import nelu
from actfx.topk import topk

__version__ = "0.1.0"

__all__ = [
    "layeract",
    "layeract_hardsilu",
    "layeract_silu",
    "mmelu",
    "nelu",
    "topk",
]
