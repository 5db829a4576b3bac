"""Pivotal auto-encoders: one-layer transform-learning denoisers with NeLU or ReLU + bias."""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, ArrayLike

from actfx.nn.nelu import NeLU

_ACTIVATIONS = ("nelu", "relu")


class BiasedReLU(nnx.Module):
    r"""Baseline thresholding ``relu(x - b)`` (or ``sign(x) relu(|x| - b)`` if two-sided).

    The lasso proximal map: ``argmin_z 1/2 ||x - z||^2 + b ||z||_1`` (``z >= 0`` unless
    ``two_sided``), with a learned per-channel bias ``b`` (the last axis of ``x``).

    Example:
      >>> import jax.numpy as jnp
      >>> from actfx.nn import BiasedReLU
      >>> BiasedReLU(2, bias_init=0.5)(jnp.array([[1.0, -1.0]]))
      Array([[0.5, 0. ]], dtype=float32)
    """

    def __init__(self, channels: int, *, bias_init: float = 0.1, two_sided: bool = False,
                 dtype=jnp.float32, rngs: nnx.Rngs | None = None):
        self.bias = nnx.Param(jnp.full((channels,), bias_init, dtype))
        self.two_sided = bool(two_sided)

    def __call__(self, x: ArrayLike) -> Array:
        x = jnp.asarray(x)
        b = self.bias[...].astype(x.dtype)
        if self.two_sided:
            return jnp.sign(x) * jax.nn.relu(jnp.abs(x) - b)
        return jax.nn.relu(x - b)


def _threshold(activation: str, channels: int, axis, two_sided: bool, lam_init: float,
               bias_init: float, per_channel_lam: bool, method: str, iters: int,
               rngs: nnx.Rngs) -> nnx.Module:
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
    if activation == "nelu":
        return NeLU(channels if per_channel_lam else None, lam_init=lam_init, axis=axis,
                    two_sided=two_sided, method=method, iters=iters, rngs=rngs)
    return BiasedReLU(channels, bias_init=bias_init, two_sided=two_sided, rngs=rngs)


class PivotalAE(nnx.Module):
    r"""Dense pivotal auto-encoder on vectors / flattened patches: ``y_hat = D act(W y)``.

    ``W`` (``in_features -> num_atoms``) is the learned transform, ``act`` is NeLU (its
    threshold ``lam * rms(residual)`` follows the noise level, so ``lam`` is pivotal) or the
    baseline ``relu(. - b)`` with a learned bias, and ``D`` decodes. No biases in ``W``, ``D``.
    With ``remove_mean=True`` the mean of each input vector (a patch's DC) is removed before
    encoding and added back after decoding.

    The decoder starts at ``W^T in_features / num_atoms`` (a rough inverse of a random ``W``).

    Args:
      in_features: input size ``d`` (e.g. ``8 * 8`` for 8x8 patches).
      num_atoms: code size ``m``.
      activation: ``"nelu"`` or ``"relu"``.
      two_sided: soft-thresholding variants of both activations.
      lam_init: initial NeLU ``lam`` (RMS units, see :class:`actfx.nn.NeLU`).
      bias_init: initial ReLU bias.
      per_channel_lam: one NeLU ``lam`` per atom instead of one per layer.
      remove_mean: subtract / restore each input's mean.
      method, iters: NeLU solver (see :func:`actfx.nelu`).
      rngs: ``nnx.Rngs`` for the weights.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from actfx.nn import PivotalAE
      >>> ae = PivotalAE(64, 128, rngs=nnx.Rngs(0))
      >>> ae(jnp.ones((5, 64))).shape
      (5, 64)
    """

    def __init__(self, in_features: int, num_atoms: int, *,
                 activation: Literal["nelu", "relu"] = "nelu", two_sided: bool = False,
                 lam_init: float = 2.0, bias_init: float = 0.1, per_channel_lam: bool = False,
                 remove_mean: bool = False,
                 method: Literal["exact", "fixed_point", "unrolled"] = "exact",
                 iters: int = 100, rngs: nnx.Rngs):
        self.encoder = nnx.Linear(in_features, num_atoms, use_bias=False,
                                  kernel_init=jax.nn.initializers.orthogonal(), rngs=rngs)
        self.decoder = nnx.Linear(num_atoms, in_features, use_bias=False, rngs=rngs)
        self.decoder.kernel[...] = self.encoder.kernel[...].T * (in_features / num_atoms)
        self.act = _threshold(activation, num_atoms, -1, two_sided, lam_init, bias_init,
                              per_channel_lam, method, iters, rngs)
        self.activation = activation
        self.remove_mean = bool(remove_mean)

    def encode(self, y: ArrayLike) -> Array:
        """The sparse code ``act(W (y - mean))``, shape ``(..., num_atoms)``."""
        y = jnp.asarray(y)
        if self.remove_mean:
            y = y - jnp.mean(y, axis=-1, keepdims=True)
        return self.act(self.encoder(y))

    def __call__(self, y: ArrayLike) -> Array:
        y = jnp.asarray(y)
        out = self.decoder(self.encode(y))
        if self.remove_mean:
            out = out + jnp.mean(y, axis=-1, keepdims=True)
        return out


class ConvPivotalAE(nnx.Module):
    r"""Convolutional pivotal auto-encoder on ``(N, H, W, C)`` images.

    ``y_hat = D * act(W * y)`` with ``W`` a ``kernel_size`` convolution to ``features``
    channels and ``D`` one back to ``C`` (``"SAME"`` padding, no biases). For NeLU the pool
    is the whole ``(H, W, features)`` code of each image and ``lam`` is in RMS units, so
    one model applies to images of any size. ``remove_mean`` subtracts/restores each
    image's mean. The decoder starts as the adjoint of the encoder, scaled by
    ``1 / features``.

    Args:
      in_channels: image channels ``C`` (1 for grayscale).
      features: code channels.
      kernel_size: filter size (odd).
      activation, two_sided, lam_init, bias_init, per_channel_lam, remove_mean, method,
        iters: as in :class:`PivotalAE`.
      rngs: ``nnx.Rngs`` for the weights.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from actfx.nn import ConvPivotalAE
      >>> ae = ConvPivotalAE(1, 8, kernel_size=5, rngs=nnx.Rngs(0))
      >>> ae(jnp.ones((2, 16, 16, 1))).shape
      (2, 16, 16, 1)
    """

    def __init__(self, in_channels: int, features: int, *, kernel_size: int = 7,
                 activation: Literal["nelu", "relu"] = "nelu", two_sided: bool = False,
                 lam_init: float = 2.0, bias_init: float = 0.1, per_channel_lam: bool = False,
                 remove_mean: bool = True,
                 method: Literal["exact", "fixed_point", "unrolled"] = "exact",
                 iters: int = 100, rngs: nnx.Rngs):
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")
        k = (kernel_size, kernel_size)
        init = jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal")
        self.encoder = nnx.Conv(in_channels, features, k, padding="SAME", use_bias=False,
                                kernel_init=init, rngs=rngs)
        self.decoder = nnx.Conv(features, in_channels, k, padding="SAME", use_bias=False,
                                rngs=rngs)
        adjoint = jnp.flip(self.encoder.kernel[...], (0, 1)).transpose(0, 1, 3, 2)
        self.decoder.kernel[...] = adjoint / features
        self.act = _threshold(activation, features, (-3, -2, -1), two_sided, lam_init,
                              bias_init, per_channel_lam, method, iters, rngs)
        self.activation = activation
        self.remove_mean = bool(remove_mean)

    def encode(self, y: ArrayLike) -> Array:
        """The sparse code ``act(W * (y - mean))``, shape ``(N, H, W, features)``."""
        y = jnp.asarray(y)
        if self.remove_mean:
            y = y - jnp.mean(y, axis=(-3, -2, -1), keepdims=True)
        return self.act(self.encoder(y))

    def __call__(self, y: ArrayLike) -> Array:
        y = jnp.asarray(y)
        out = self.decoder(self.encode(y))
        if self.remove_mean:
            out = out + jnp.mean(y, axis=(-3, -2, -1), keepdims=True)
        return out
