"""Reference models with a pluggable activation: CIFAR ResNets, a small CNN and an MLP.

Every model takes ``act``, resolved once at build time and called once per activation site
with that site's channel count and the model's ``rngs`` (the full rule:
:func:`actfx.nn.models.resolve_activation`)::

    ResNet(20, act=jax.nn.relu, rngs=nnx.Rngs(0))                   # a plain function
    ResNet(20, act=actfx.nn.DiTAC, rngs=nnx.Rngs(0))                # per-channel theta
    ResNet(20, act=actfx.nn.MMeLU, rngs=nnx.Rngs(0))                # per-channel c, lam, gamma
    ResNet(20, act=lambda n, rngs: actfx.nn.NeLU(n, axis=(-3, -2, -1)), rngs=nnx.Rngs(0))
    ResNet(20, act=lambda: actfx.nn.LayerAct("silu"), rngs=nnx.Rngs(0))  # zero-argument
"""

from actfx._src.nn.models.activation_factory import ActFactory, build_activation, resolve_activation
from actfx._src.nn.models.mlp import MLP
from actfx._src.nn.models.resnet import BasicBlock, ResNet, resnet20, resnet32, resnet44, resnet56
from actfx._src.nn.models.small_cnn import SmallCNN

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
    "resolve_activation",
]
