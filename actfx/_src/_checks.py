"""Argument validation shared by the functional core.

Every check runs at trace time on static (Python) data or on concrete arrays, and raises a
``ValueError`` whose message names the argument and the allowed range. Traced values are
never branched on: checks on array *values* are skipped when the value is a tracer.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.core import Tracer


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type. A ``TypeError`` and, for code written against the
    earlier ``ValueError`` of these checks, a ``ValueError`` too (as ``numpy.AxisError``
    is both a ``ValueError`` and an ``IndexError``)."""


def is_concrete(x) -> bool:
    """True when ``x`` holds concrete values (not a tracer inside jit/grad/vmap)."""
    return not isinstance(x, Tracer)


def check_finite(name: str, value) -> None:
    """Raise ``ValueError`` if a concrete ``value`` has a NaN or infinite entry."""
    if is_concrete(value):
        arr = np.asarray(value)
        if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite, got a NaN or infinite entry: {value!r}")


def check_positive(name: str, value, *, allow_zero: bool = False) -> None:
    """Raise ``ValueError`` unless a concrete ``value`` is finite and > 0 (or >= 0)."""
    check_finite(name, value)
    if is_concrete(value):
        arr = np.asarray(value)
        bad = np.any(arr < 0) if allow_zero else np.any(arr <= 0)
        if bad:
            bound = ">= 0" if allow_zero else "> 0"
            raise ValueError(f"{name} must be {bound}, got {value!r}")


def check_floating(name: str, x) -> None:
    """Raise :class:`ArgumentTypeError` unless ``x`` is an array (or number) of a real
    floating dtype (not complex, integer, bool, string or object)."""
    try:
        dtype = jax.numpy.result_type(x)
    except (TypeError, ValueError):
        raise ArgumentTypeError(
            f"{name} must be a floating array, got {type(x).__name__}: {x!r:.80}"
        ) from None
    if not jax.numpy.issubdtype(dtype, jax.numpy.floating):
        raise ArgumentTypeError(f"{name} must have a floating dtype, got {dtype}")


def check_real_scalar(name: str, value) -> float:
    """A Python/NumPy real number (not bool, not an array) as a float, else
    :class:`ArgumentTypeError` naming ``name``; for static arguments."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise ArgumentTypeError(
            f"{name} must be a real number, got {type(value).__name__}: {value!r}"
        )
    return float(value)


def normalize_axes(name: str, axis: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    """Normalise ``axis`` (int or sequence) to sorted non-negative ints for rank ``ndim``."""
    if isinstance(axis, (bool, np.bool_)):
        raise ArgumentTypeError(f"{name} must be an int or a tuple of ints, got {axis!r}")
    if isinstance(axis, (int, np.integer)):
        axes = (axis,)
    elif isinstance(axis, Sequence) and not isinstance(axis, (str, bytes)):
        axes = tuple(axis)
    else:
        raise ArgumentTypeError(
            f"{name} must be an int or a tuple of ints, got {type(axis).__name__}: {axis!r}"
        )
    if len(axes) == 0:
        raise ValueError(f"{name} must name at least one axis, got {axis!r}")
    out = []
    for a in axes:
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
            raise ArgumentTypeError(f"{name} must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"{name}={axis!r} is out of range for an input of rank {ndim}")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}={axis!r} repeats an axis")
    return tuple(sorted(out))


def check_int_scalar(name: str, value, *, low: int | None = None) -> int:
    """A Python/NumPy int (not bool) as an int, else :class:`ArgumentTypeError` naming
    ``name``; ``ValueError`` if it is below ``low``. For static size/count arguments."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ArgumentTypeError(f"{name} must be an int, got {type(value).__name__}: {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def check_positive_real(name: str, value, *, high: float | None = None) -> float:
    """A finite real number ``> 0`` (and ``<= high`` when given) as a float, else an error
    naming ``name`` (:class:`ArgumentTypeError` for a non-number). For static scales."""
    v = check_real_scalar(name, value)
    if not (np.isfinite(v) and v > 0 and (high is None or v <= high)):
        bound = "> 0" if high is None else f"in (0, {high}]"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return v


def check_bool_scalar(name: str, value) -> bool:
    """``value`` as a bool; :class:`ArgumentTypeError` naming ``name`` unless it is a
    Python or NumPy bool (``"no"`` or ``0`` are not taken for ``False``)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(f"{name} must be a bool, got {type(value).__name__}: {value!r}")
    return bool(value)
