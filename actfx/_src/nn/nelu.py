"""Flax NNX module for NeLU with a learnable, bounded threshold weight."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, ArrayLike

from actfx._src._checks import normalize_axes
from actfx._src.nelu import nelu
from actfx._src.nn._common import (
    as_input,
    broadcast_param,
    channel_param_shape,
    check_bool,
    check_dtype,
    check_int,
    check_num_features,
    check_real,
    fit_param,
    unit_interval,
    unit_raw,
)

NELU_METHODS = ("exact", "fixed_point", "unrolled")
NeLUMethod = Literal["exact", "fixed_point", "unrolled"]
#: Default ``lam_max``: the core's bound ``lam < 1`` for a raw weight, 8 RMS units otherwise.
DEFAULT_LAM_MAX = {False: 1.0, True: 8.0}


def validate_nelu_args(
    num_features,
    lam_init,
    lam_max,
    axis,
    channel_axis,
    two_sided,
    rms_scaled,
    method,
    iters,
    dtype,
    param_dtype,
):
    """Shared NNX/Linen checks; returns ``(num_features, lam_raw, lam_max, axis)`` with
    ``lam_raw`` the stored initial parameter (``lam_max * unit_interval(lam_raw) ==
    lam_init``)."""
    num_features = check_num_features(num_features)
    rms_scaled = check_bool("rms_scaled", rms_scaled)
    check_bool("two_sided", two_sided)
    lam_max = DEFAULT_LAM_MAX[rms_scaled] if lam_max is None else lam_max
    lam_max = check_real("lam_max", lam_max, low=0.0)
    if not rms_scaled and lam_max > 1.0:
        raise ValueError(
            f"lam_max must be <= 1 with rms_scaled=False (actfx.nelu needs lam < 1), "
            f"got {lam_max!r}"
        )
    lam = check_real("lam_init", lam_init, low=0.0, high=lam_max)
    check_dtype("param_dtype", param_dtype, allow_none=False)
    # lam = lam_max * unit_interval(lam_raw) is evaluated in float32 (or param_dtype if wider)
    fit_param("lam_max", lam_max, lam_max, jnp.promote_types(param_dtype, jnp.float32))
    lam_raw = unit_raw("lam_init", lam, param_dtype, scale=lam_max)
    if isinstance(axis, bool):
        raise ValueError(f"axis must be an int or a tuple of ints, got {axis!r}")
    if isinstance(axis, int):
        axis = int(axis)
    else:
        try:
            axis = tuple(check_int("axis", a) for a in axis)
        except TypeError:
            raise ValueError(f"axis must be an int or a tuple of ints, got {axis!r}") from None
        if not axis:
            raise ValueError("axis must name at least one axis, got ()")
    check_int("channel_axis", channel_axis)
    if method not in NELU_METHODS:
        raise ValueError(f"method must be one of {NELU_METHODS}, got {method!r}")
    if check_int("iters", iters) < 1:
        raise ValueError(f"iters must be a positive int, got {iters!r}")
    check_dtype("dtype", dtype)
    return num_features, lam_raw, lam_max, axis


def nelu_weight(lam: Array, x: Array, axis, rms_scaled: bool) -> Array:
    """The weight passed to :func:`actfx.nelu`: ``lam / sqrt(pool size)`` (or ``lam``),
    clipped into ``[tiny, nextafter(1, 0)]`` of ``x.dtype``."""
    w = lam.astype(x.dtype)
    if rms_scaled:
        axes = normalize_axes("axis", axis, x.ndim)
        n = math.prod(x.shape[a] for a in axes)
        w = w / math.sqrt(max(n, 1))
    one = jnp.ones((), x.dtype)
    return jnp.clip(w, jnp.finfo(x.dtype).tiny, jnp.nextafter(one, jnp.zeros((), x.dtype)))


class NeLU(nnx.Module):
    r"""NeLU ``relu(x - lam r)``, ``r = ||x - z||`` over each pool, with a learnable ``lam``.

    Thin over :func:`actfx.nelu`. ``lam = lam_max * clip(sigmoid(lam_raw), 1e-6, 1 - 1e-6)``
    lies strictly in ``(0, lam_max)``; ``lam_raw`` is the ``nnx.Param`` (unconstrained) and
    :attr:`lam` the read-only value: a scalar (``num_features=None``) or one per channel
    (``num_features=C``, the ``channel_axis`` of ``x``). The pool (``axis``) is one sample's
    whole code: ``-1`` for dense codes ``(N, C)``, ``(-3, -2, -1)`` for convolutional codes
    ``(N, H, W, C)``.

    With ``rms_scaled=True`` (default) the weight passed to :func:`actfx.nelu` is
    ``w = lam / sqrt(n)`` for a pool of ``n`` entries, so the threshold is
    ``t = lam * rms(x - z)``: ``lam`` is in units of the residual's root-mean-square and
    means the same for any code size (a convolutional code on a 40x40 training patch and on
    a 512x512 test image). ``rms_scaled=False`` passes ``w = lam``. :func:`actfx.nelu`
    needs ``0 < w < 1`` (``w >= 1`` zeroes the pool): ``w`` is clipped to the largest value
    below 1 of the computation dtype (and above 0), so a small pool (``lam >= sqrt(n)``,
    e.g. the defaults on 4 features) gives the strongest valid shrinkage instead of an
    error -- and the same value under ``jit``.

    Args:
      num_features: ``None`` (one ``lam``) or the number of channels (one ``lam`` each).
      lam_init: initial ``lam``, in ``[1e-6 lam_max, (1 - 1e-6) lam_max]``.
      lam_max: upper bound of ``lam``; default 8 (RMS units) with ``rms_scaled``, else 1.
      axis: axes of one pool (one code).
      channel_axis: the channel axis of ``x`` (per-channel only).
      two_sided: soft-thresholding variant.
      rms_scaled: divide ``lam`` by ``sqrt(pool size)`` (see above).
      method: ``"exact"``, ``"fixed_point"`` or ``"unrolled"`` (see :func:`actfx.nelu`).
      iters: iterations of ``"fixed_point"`` / ``"unrolled"``.
      dtype: computation dtype; ``None`` computes in ``x``'s dtype (see
        :class:`actfx.nn.MMeLU` for why this differs from Flax's promotion).
      param_dtype: storage dtype of ``lam_raw`` (default float32).
      rngs: accepted for a uniform module signature; initialisation is deterministic.

    Raises:
      ValueError: a bad ``num_features``, ``lam_init`` outside ``[1e-6 lam_max,
        (1 - 1e-6) lam_max]`` (the range of the transform: raised, not clipped),
        ``lam_max <= 0`` (or > 1 without ``rms_scaled``, or beyond float32),
        unknown ``method``, ``iters < 1``, a non-floating ``dtype``/``param_dtype``,
        ``x`` without ``num_features`` channels on ``channel_axis``.

    Reference:
      N. Goldenstein, J. Sulam, Y. Romano, *Pivotal Auto-Encoder via Self-Normalizing ReLU*,
      arXiv:2406.16052, 2024.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from actfx.nn import NeLU
      >>> act = NeLU(lam_init=0.8, rngs=nnx.Rngs(0))
      >>> act(jnp.array([[3.0, -1.0, 0.5, -2.0]]))   # lam / sqrt(4) = 0.4
      Array([[2., 0., 0., 0.]], dtype=float32)
      >>> round(float(act.lam), 4)
      0.8
      >>> NeLU()(jnp.array([[3.0, -1.0, 0.5, -2.0]])).shape   # lam = 2 = sqrt(4): clipped
      (1, 4)
    """

    def __init__(
        self,
        num_features: int | None = None,
        *,
        lam_init: float = 2.0,
        lam_max: float | None = None,
        axis: int | Sequence[int] = -1,
        channel_axis: int = -1,
        two_sided: bool = False,
        rms_scaled: bool = True,
        method: NeLUMethod = "exact",
        iters: int = 100,
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs | None = None,
    ):
        num_features, lam_raw, lam_max, axis = validate_nelu_args(
            num_features,
            lam_init,
            lam_max,
            axis,
            channel_axis,
            two_sided,
            rms_scaled,
            method,
            iters,
            dtype,
            param_dtype,
        )
        shape = () if num_features is None else (num_features,)
        self.lam_raw = nnx.Param(jnp.full(shape, lam_raw, param_dtype))
        self.num_features = num_features
        self.lam_max = lam_max
        self.axis = axis
        self.channel_axis = int(channel_axis)
        self.two_sided = bool(two_sided)
        self.rms_scaled = bool(rms_scaled)
        self.method: NeLUMethod = method
        self.iters = int(iters)
        self.dtype = dtype
        self.param_dtype = param_dtype

    @property
    def lam(self) -> Array:
        """The weight in ``(0, lam_max)`` (RMS units if ``rms_scaled``; read-only)."""
        return self.lam_max * unit_interval(self.lam_raw[...])

    def __call__(self, x: ArrayLike) -> Array:
        x = as_input(x, self.dtype)
        shape = channel_param_shape(x, self.num_features, self.channel_axis)
        if x.size == 0:  # an empty batch (or pool): nothing to threshold
            return jnp.zeros_like(x)
        lam = broadcast_param(self.lam, shape, x.dtype)
        w = nelu_weight(lam, x, self.axis, self.rms_scaled)
        return nelu(
            x, w, axis=self.axis, two_sided=self.two_sided, method=self.method, iters=self.iters
        )
