"""Flax Linen twins of the :mod:`actfx.nn` modules, for Linen code bases.

Same arguments, checks and error messages as the NNX modules; outputs and gradients are
bit-equal to them (``tests/test_linen.py``). ``mmelu_values`` and ``nelu_lam`` map a module's
unconstrained parameters to the constrained values, like the NNX properties.
"""

from actfx._src.nn.linen import (
    BiasedReLU,
    DiTAC,
    LayerAct,
    MMeLU,
    NeLU,
    TopK,
    mmelu_values,
    nelu_lam,
)

__all__ = [
    "BiasedReLU",
    "DiTAC",
    "LayerAct",
    "MMeLU",
    "NeLU",
    "TopK",
    "mmelu_values",
    "nelu_lam",
]
