"""Convolution building blocks shared by the reference CNNs (PyTorch-style padding and init)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array


def check_nhwc(x, in_channels: int) -> Array:
    """``x`` as an array; ``ValueError`` naming ``in_channels`` unless it is ``(N, H, W,
    in_channels)`` (instead of a convolution's feature-dimension error deep inside)."""
    x = jnp.asarray(x)
    if x.ndim != 4 or x.shape[-1] != in_channels:
        raise ValueError(
            f"x must be (N, H, W, in_channels={in_channels}) images, got shape {x.shape}"
        )
    return x


def conv3x3(
    in_channels: int, out_channels: int, *, stride: int = 1, dtype=None, rngs: nnx.Rngs
) -> nnx.Conv:
    """3x3 convolution, padding 1 on every side (as PyTorch ``padding=1``), no bias, He init.

    Explicit symmetric padding keeps strided outputs aligned like the PyTorch reference
    ResNets (``"SAME"`` would pad only the bottom/right for stride 2 on even sizes).
    """
    return nnx.Conv(
        in_channels,
        out_channels,
        kernel_size=(3, 3),
        strides=(stride, stride),
        padding=((1, 1), (1, 1)),
        use_bias=False,
        kernel_init=jax.nn.initializers.he_normal(),
        dtype=dtype,
        rngs=rngs,
    )


def batch_norm(channels: int, *, dtype=None, rngs: nnx.Rngs) -> nnx.BatchNorm:
    """BatchNorm with PyTorch's defaults: running average momentum 0.1 (flax 0.9), eps 1e-5."""
    return nnx.BatchNorm(channels, momentum=0.9, epsilon=1e-5, dtype=dtype, rngs=rngs)


def global_avg_pool(x: Array) -> Array:
    """Mean over the spatial axes of an NHWC map: ``(N, H, W, C) -> (N, C)``."""
    return jnp.mean(x, axis=(1, 2))
