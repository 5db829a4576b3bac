"""Flax NNX modules over the functional core of :mod:`actfx`.

Linen users: see :mod:`actfx.nn.linen`.
"""

from actfx.nn.ditac import DiTAC, ditac_penalty
from actfx.nn.layeract import LayerAct
from actfx.nn.mmelu import MMeLU
from actfx.nn.nelu import NeLU
from actfx.nn.regularization import HasRegularizer, regularization
from actfx.nn.pivotal_ae import BiasedReLU, ConvPivotalAE, PivotalAE
from actfx.nn.topk import TopK
from actfx.nn import models  # noqa: E402  (reference models: actfx.nn.models.ResNet, ...)

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
