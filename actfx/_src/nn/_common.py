"""Shared pieces of the NNX and Linen modules: argument checks, dtypes, parameter transforms.

Private: the modules in :mod:`actfx.nn` and :mod:`actfx.nn.linen` use these so both
front-ends accept the same arguments, raise the same errors and constrain parameters the
same way.

Constrained parameters are stored unconstrained (``*_raw``) and mapped through a
transform that is computed in at least float32 and then *clipped strictly inside* the
valid set, so no optimiser step, however large, puts a value exactly on a bound:

* ``(0, 1)`` (MMeLU ``c``): ``clip(sigmoid(raw), 1e-6, 1 - 1e-6)``;
* ``(0, hi)`` (NeLU ``lam``): ``hi * clip(sigmoid(raw), 1e-6, 1 - 1e-6)``;
* ``(0, inf)`` (MMeLU ``lam``): ``max(softplus(raw), 1e-6)``.

Inside the clip range each transform is exact and invertible (:func:`logit`,
:func:`inverse_softplus` give the raw value of an initial value).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from actfx._src._checks import normalize_axes

#: Distance kept from the bounds of (0, 1) by :func:`unit_interval`.
UNIT_EPS = 1e-6
#: Smallest positive value returned by :func:`positive`.
POSITIVE_MIN = 1e-6


def inverse_softplus(y: float) -> float:
    """``x`` with ``softplus(x) = y`` for ``y > 0`` (``y + log(-expm1(-y))``, stable)."""
    return y + math.log(-math.expm1(-y))


def logit(p: float) -> float:
    """``x`` with ``sigmoid(x) = p`` for ``0 < p < 1``."""
    return math.log(p) - math.log1p(-p)


def _wide(raw: jax.Array) -> jax.Array:
    """``raw`` in at least float32 (transforms are never evaluated in 16-bit)."""
    return raw.astype(jnp.promote_types(raw.dtype, jnp.float32))


def unit_interval(raw: jax.Array) -> jax.Array:
    """``clip(sigmoid(raw), UNIT_EPS, 1 - UNIT_EPS)``: strictly inside (0, 1), float32+."""
    return jnp.clip(jax.nn.sigmoid(_wide(raw)), UNIT_EPS, 1.0 - UNIT_EPS)


def positive(raw: jax.Array) -> jax.Array:
    """``max(softplus(raw), POSITIVE_MIN)``: strictly positive, float32+."""
    return jnp.maximum(jax.nn.softplus(_wide(raw)), POSITIVE_MIN)


def check_real(name: str, value, *, low=None, high=None, low_open=True, high_open=True) -> float:
    """``value`` as a Python float; ``ValueError`` naming ``name`` unless it is a finite real
    number (not a bool or string) inside the given (open by default) bounds."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (v <= low if low_open else v < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (v >= high if high_open else v > high):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")
    return v


def check_num_features(num_features, *, allow_none: bool = True) -> int | None:
    """``None`` (one shared parameter set) or a positive int, else ``ValueError``."""
    if num_features is None and allow_none:
        return None
    if (
        isinstance(num_features, (bool, np.bool_))
        or not isinstance(num_features, (int, np.integer))
        or num_features < 1
    ):
        want = "None or a positive int" if allow_none else "a positive int"
        raise ValueError(f"num_features must be {want}, got {num_features!r}")
    return int(num_features)


def check_int(name: str, value) -> int:
    """``value`` as an int; ``ValueError`` naming ``name`` unless it is an int (not a bool)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {value!r}")
    return int(value)


def check_dtype(name: str, dtype: Any, *, allow_none: bool = True):
    """``None`` or a floating dtype (``jnp.float32``, ``"bfloat16"``, ...), else ``ValueError``."""
    if dtype is None:
        if allow_none:
            return None
        raise ValueError(f"{name} must be a floating dtype, got None")
    try:
        dt = jnp.dtype(dtype)
    except TypeError:
        raise ValueError(f"{name} must be a floating dtype or None, got {dtype!r}") from None
    if not jnp.issubdtype(dt, jnp.floating):
        raise ValueError(f"{name} must be a floating dtype or None, got {dtype!r}")
    return dt


def fit_param(name: str, value, raw: float, param_dtype) -> float:
    """``raw`` (the stored parameter of the initial value ``value``) if it is finite once
    cast to ``param_dtype``; else ``ValueError`` naming ``name`` and the dtype (an init
    value that overflows the storage dtype would become ``inf``)."""
    dt = np.dtype(jnp.dtype(param_dtype))
    with np.errstate(over="ignore", invalid="ignore"):
        stored = np.asarray(raw, np.float64).astype(dt)
    if not np.all(np.isfinite(stored)):
        raise ValueError(
            f"{name}={value!r} does not fit param_dtype={dt.name} (the stored parameter "
            f"{raw:.6g} overflows; its largest finite value is {float(np.finfo(dt).max):.6g})"
        )
    return float(raw)


def unit_raw(name: str, value: float, param_dtype, *, scale: float = 1.0) -> float:
    """The raw parameter with ``scale * unit_interval(raw) == value``.

    ``ValueError`` naming ``name`` unless ``value / scale`` lies in ``[UNIT_EPS,
    1 - UNIT_EPS]``, the range :func:`unit_interval` can return (a value outside it would
    be clipped silently to the nearest bound)."""
    u = value / scale
    if not UNIT_EPS <= u <= 1.0 - UNIT_EPS:
        lo, hi = scale * UNIT_EPS, scale * (1.0 - UNIT_EPS)
        where = "" if scale == 1.0 else f" (lam_max={scale!r} times [{UNIT_EPS}, 1 - {UNIT_EPS}])"
        raise ValueError(
            f"{name} must be in [{lo:.9g}, {hi:.9g}]{where}, the range the parameter "
            f"transform can represent, got {value!r}"
        )
    return fit_param(name, value, logit(u), param_dtype)


def positive_raw(name: str, value: float, param_dtype) -> float:
    """The raw parameter with ``positive(raw) == value``; ``ValueError`` naming ``name`` if
    ``value < POSITIVE_MIN`` (it would be clipped silently) or the raw value overflows
    ``param_dtype``."""
    if value < POSITIVE_MIN:
        raise ValueError(
            f"{name} must be >= {POSITIVE_MIN} (the smallest value the parameter transform "
            f"can represent), got {value!r}"
        )
    return fit_param(name, value, inverse_softplus(value), param_dtype)


def check_bool(name: str, value) -> bool:
    """``value`` as a bool; ``ValueError`` naming ``name`` unless it is a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def as_input(x, dtype) -> jax.Array:
    """``x`` as a floating array in the computation dtype (``None``: ``x``'s own dtype)."""
    x = jnp.asarray(x)
    if dtype is not None:
        return x.astype(dtype)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"x must have a floating dtype (or set dtype=...), got {x.dtype}")
    return x


def channel_param_shape(x: jax.Array, num_features: int | None, channel_axis: int) -> tuple:
    """Shape that broadcasts a per-channel parameter of ``x``; ``()`` when shared.

    Raises ``ValueError`` when ``x`` has no ``channel_axis`` or its size there is not
    ``num_features``.
    """
    if num_features is None:
        return ()
    if x.ndim == 0:
        raise ValueError(
            f"x must have {num_features} channels on axis channel_axis={channel_axis}, got a scalar"
        )
    ax = normalize_axes("channel_axis", channel_axis, x.ndim)[0]
    if x.shape[ax] != num_features:
        raise ValueError(
            f"x must have num_features={num_features} channels on axis "
            f"channel_axis={channel_axis}, got shape {x.shape}"
        )
    return tuple(num_features if i == ax else 1 for i in range(x.ndim))


def broadcast_param(p: jax.Array, shape: tuple, dtype) -> jax.Array:
    """``p`` reshaped to ``shape`` (``()``: as is) and cast to ``dtype``."""
    p = p.astype(dtype)
    return p if shape == () else p.reshape(shape)
