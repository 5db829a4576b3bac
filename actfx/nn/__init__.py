"""Flax NNX modules over the functional core of :mod:`actfx`.

Linen users: see :mod:`actfx.nn.linen`.
"""

from actfx.nn.layeract import LayerAct
from actfx.nn.mmelu import MMeLU
from actfx.nn.topk import TopK
from actfx.nn import models  # noqa: E402  (reference models: actfx.nn.models.ResNet, ...)

__all__ = [
    "LayerAct",
    "MMeLU",
    "TopK",
    "models",
]
