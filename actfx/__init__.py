"""actfx: trainable and structured activation functions in JAX.

The functional core (this namespace) is pure JAX: every function works under
``jax.jit``, ``jax.vmap`` and ``jax.grad`` on CPU/GPU/TPU and does not import Flax.
Flax NNX modules live in :mod:`actfx.nn`, NumPyro models in :mod:`actfx.bayes`.
"""

from actfx import cpab
from actfx._src.ditac import ditac, ditac_interval, ditac_regularizer
from actfx._src.layeract import layeract, layeract_hardsilu, layeract_silu
from actfx._src.layeract_native import native_status as layeract_native_status
from actfx._src.mmelu import mmelu
from actfx._src.nelu import nelu
from actfx._src.topk import num_kept as topk_num_kept
from actfx._src.topk import topk

cpab_transform = cpab.transform

__version__ = "0.1.0"

__all__ = [
    "cpab",
    "cpab_transform",
    "ditac",
    "ditac_interval",
    "ditac_regularizer",
    "layeract",
    "layeract_hardsilu",
    "layeract_native_status",
    "layeract_silu",
    "mmelu",
    "nelu",
    "topk",
    "topk_num_kept",
]
