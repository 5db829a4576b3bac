"""Flax NNX modules over the functional core of :mod:`actfx`.

Every module follows ``flax.nnx``: per-channel modules (:class:`MMeLU`, :class:`NeLU`,
:class:`DiTAC`, :class:`BiasedReLU`) take ``num_features`` (``None``: one shared parameter
set) and ``channel_axis``; ``dtype`` is the computation dtype (``None``: the input's),
``param_dtype`` the storage dtype (float32); every module accepts ``rngs`` (required by
:class:`DiTAC`, whose theta is random); trainable values are unconstrained ``nnx.Param`` s
with read-only properties for the constrained values (``MMeLU.c/.lam/.gamma``,
``NeLU.lam``); algorithm switches are called ``method``. Reference models that take an
activation: :mod:`actfx.nn.models`. Linen users: :mod:`actfx.nn.linen` (same arguments).
"""

from actfx._src.nn.ditac import DiTAC, ditac_penalty
from actfx._src.nn.layeract import LayerAct
from actfx._src.nn.mmelu import MMeLU
from actfx._src.nn.nelu import NeLU
from actfx._src.nn.pivotal_ae import BiasedReLU, ConvPivotalAE, PivotalAE
from actfx._src.nn.regularization import HasRegularizer, regularization
from actfx._src.nn.topk import TopK
from actfx.nn import models

__all__ = [
    "BiasedReLU",
    "ConvPivotalAE",
    "DiTAC",
    "HasRegularizer",
    "LayerAct",
    "MMeLU",
    "NeLU",
    "PivotalAE",
    "TopK",
    "ditac_penalty",
    "models",
    "regularization",
]
