"""Reference models with a pluggable activation: CIFAR ResNets, a small CNN and an MLP.

Every model takes ``act``, a zero-argument *factory* called once per activation site::

    ResNet(20, act=lambda: jax.nn.relu, rngs=nnx.Rngs(0))
    ResNet(20, act=lambda: actfx.nn.LayerAct("silu"), rngs=nnx.Rngs(0))
"""

from actfx.nn.models.activation_factory import ActFactory, build_activation
from actfx.nn.models.mlp import MLP
from actfx.nn.models.resnet import BasicBlock, ResNet, resnet20, resnet32, resnet44, resnet56
from actfx.nn.models.small_cnn import SmallCNN

__all__ = [
    "MLP",
    "ActFactory",
    "BasicBlock",
    "ResNet",
    "SmallCNN",
    "build_activation",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
]
