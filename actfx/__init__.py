"""actfx: trainable and structured activation functions in JAX.

The functional core (this namespace) is pure JAX: every function works under
``jax.jit``, ``jax.vmap`` and ``jax.grad`` on CPU/GPU/TPU and does not import Flax.
Flax NNX modules live in :mod:`actfx.nn`, NumPyro models in :mod:`actfx.bayes`.
"""

from actfx import cpab
from actfx.ditac import ditac, ditac_regularizer
from actfx.layeract import layeract, layeract_hardsilu, layeract_silu
from actfx.mmelu import mmelu
from actfx.nelu import nelu
from actfx.topk import topk

cpab_transform = cpab.transform

__version__ = "0.1.0"

__all__ = [
    "cpab",
    "cpab_transform",
    "ditac",
    "ditac_regularizer",
    "layeract",
    "layeract_hardsilu",
    "layeract_silu",
    "mmelu",
    "nelu",
    "topk",
]
