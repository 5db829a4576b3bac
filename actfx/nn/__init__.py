"""Flax NNX modules over the functional core of :mod:`actfx`.

Linen users: see :mod:`actfx.nn.linen`.
"""

from actfx.nn.ditac import DiTAC
from actfx.nn.layeract import LayerAct
from actfx.nn.mmelu import MMeLU
from actfx.nn.nelu import NeLU
from actfx.nn.pivotal_ae import BiasedReLU, ConvPivotalAE, PivotalAE
from actfx.nn.topk import TopK
from actfx.nn import models  # noqa: E402  (reference models: actfx.nn.models.ResNet, ...)

__all__ = [
    "BiasedReLU",
    "ConvPivotalAE",
    "DiTAC",
    "LayerAct",
    "MMeLU",
    "NeLU",
    "PivotalAE",
    "TopK",
    "models",
]
