"""Flax NNX module for NeLU with a learnable, softplus-parameterised threshold weight."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, ArrayLike

from actfx._checks import check_positive, normalize_axes
from actfx.nelu import nelu


def _inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class NeLU(nnx.Module):
    r"""NeLU ``relu(x - lam r)``, ``r = ||x - z||`` over each pool, with a learnable ``lam``.

    Thin over :func:`actfx.nelu`. ``lam = softplus(lam_raw)`` is stored unconstrained as an
    ``nnx.Param``: a scalar (``channels=None``) or one per channel (``channels=C``, the
    ``channel_axis`` of ``x``). The pool (``axis``) is one sample's whole code: ``-1`` for
    dense codes ``(N, C)``, ``(-3, -2, -1)`` for convolutional codes ``(N, H, W, C)``.

    With ``rms_scaled=True`` (default) the weight passed to :func:`actfx.nelu` is
    ``lam / sqrt(n)`` for a pool of ``n`` entries, so the threshold is
    ``t = lam * rms(x - z)``: ``lam`` is in units of the residual's root-mean-square and
    means the same for any code size (a convolutional code on a 40x40 training patch and on
    a 512x512 test image). :func:`actfx.nelu` needs ``lam / sqrt(n) < 1``, i.e.
    ``lam < sqrt(n)``; under ``jit`` this is not checked, and a channel that exceeds it is
    always zero. ``rms_scaled=False`` passes ``lam`` as is.

    Args:
      channels: ``None`` (one ``lam``) or the number of channels (one ``lam`` each).
      lam_init: initial ``lam`` (> 0).
      axis: axes of one pool (one code).
      channel_axis: the channel axis of ``x`` (used when ``channels`` is set).
      two_sided: soft-thresholding variant.
      rms_scaled: divide ``lam`` by ``sqrt(pool size)`` (see above).
      method, iters: passed to :func:`actfx.nelu`.
      dtype: parameter dtype.
      rngs: accepted for a uniform module signature (initialisation is deterministic).

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from actfx.nn import NeLU
      >>> act = NeLU(lam_init=0.8, rngs=nnx.Rngs(0))
      >>> act(jnp.array([[3.0, -1.0, 0.5, -2.0]]))   # lam / sqrt(4) = 0.4
      Array([[2., 0., 0., 0.]], dtype=float32)
      >>> round(float(act.lam), 4)
      0.8
    """

    def __init__(
        self,
        channels: int | None = None,
        *,
        lam_init: float = 2.0,
        axis: int | Sequence[int] = -1,
        channel_axis: int = -1,
        two_sided: bool = False,
        rms_scaled: bool = True,
        method: Literal["exact", "fixed_point", "unrolled"] = "exact",
        iters: int = 100,
        dtype=jnp.float32,
        rngs: nnx.Rngs | None = None,
    ):
        check_positive("lam_init", lam_init)
        if channels is not None and (not isinstance(channels, int) or channels < 1):
            raise ValueError(f"channels must be None or a positive int, got {channels!r}")
        shape = () if channels is None else (channels,)
        self.lam_raw = nnx.Param(jnp.full(shape, _inverse_softplus(float(lam_init)), dtype))
        self.channels = channels
        self.axis = axis if isinstance(axis, int) else tuple(axis)
        self.channel_axis = int(channel_axis)
        self.two_sided = bool(two_sided)
        self.rms_scaled = bool(rms_scaled)
        self.method = method
        self.iters = int(iters)

    @property
    def lam(self) -> Array:
        """The positive weight ``softplus(lam_raw)`` (in RMS units if ``rms_scaled``)."""
        return jax.nn.softplus(self.lam_raw[...])

    def __call__(self, x: ArrayLike) -> Array:
        x = jnp.asarray(x)
        lam = self.lam.astype(x.dtype)
        if self.channels is not None:
            ax = normalize_axes("channel_axis", self.channel_axis, x.ndim)[0]
            if x.shape[ax] != self.channels:
                raise ValueError(
                    f"x has {x.shape[ax]} channels on axis {self.channel_axis}, "
                    f"expected channels={self.channels}"
                )
            lam = lam.reshape([self.channels if i == ax else 1 for i in range(x.ndim)])
        if self.rms_scaled:
            axes = normalize_axes("axis", self.axis, x.ndim)
            lam = lam / math.sqrt(math.prod(x.shape[a] for a in axes))
        return nelu(
            x, lam, axis=self.axis, two_sided=self.two_sided, method=self.method, iters=self.iters
        )
