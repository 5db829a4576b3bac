"""A JSON description of a run (config, loss, optimizer) stored with its checkpoints, so a
rerun with other settings is refused instead of silently resuming a different run."""

from __future__ import annotations

import functools
import hashlib
import math
from typing import Any

import numpy as np

_MAX_DEPTH = 6


def describe(obj: Any, depth: int = 0) -> Any:
    """A best-effort JSON description of a callable or optax transformation.

    Functions are named by module and qualified name plus the values they close over
    (numbers, strings, nested functions and transformations), so ``optax.adam(1e-3)`` and
    ``optax.adam(1e-2)`` differ while two separately built ``optax.adam(1e-3)`` agree.

    Example:
      >>> import optax
      >>> describe(optax.adam(1e-3)) == describe(optax.adam(1e-3))
      True
      >>> describe(optax.adam(1e-3)) == describe(optax.adam(1e-2))
      False
    """
    if depth > _MAX_DEPTH:
        return "..."
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else repr(obj)
    if isinstance(obj, (tuple, list)):
        return [describe(o, depth + 1) for o in obj]
    if isinstance(obj, dict):
        items = sorted(obj.items(), key=lambda kv: str(kv[0]))
        return {str(k): describe(v, depth + 1) for k, v in items}
    if hasattr(obj, "init") and hasattr(obj, "update") and not isinstance(obj, type):
        return {
            "transform": type(obj).__name__,
            "init": describe(obj.init, depth + 1),
            "update": describe(obj.update, depth + 1),
        }
    if isinstance(obj, functools.partial):
        return {
            "partial": describe(obj.func, depth + 1),
            "args": describe(list(obj.args), depth + 1),
            "keywords": describe(dict(obj.keywords), depth + 1),
        }
    if hasattr(obj, "__self__") and hasattr(obj, "__func__"):  # bound method
        return {"method": describe(obj.__func__, depth + 1), "of": type(obj.__self__).__qualname__}
    if callable(obj) and hasattr(obj, "__qualname__"):
        out: dict[str, Any] = {"fn": f"{getattr(obj, '__module__', '?')}.{obj.__qualname__}"}
        cells = getattr(obj, "__closure__", None) or ()
        names = getattr(getattr(obj, "__code__", None), "co_freevars", ())
        closure = {}
        for name, cell in zip(names, cells):
            try:
                closure[name] = describe(cell.cell_contents, depth + 1)
            except ValueError:  # empty cell
                closure[name] = None
        if closure:
            out["closure"] = closure
        defaults = getattr(obj, "__defaults__", None)
        if defaults:
            out["defaults"] = describe(list(defaults), depth + 1)
        return out
    shape = getattr(obj, "shape", None)
    if shape is not None:
        return f"{type(obj).__name__}{tuple(shape)}:{getattr(obj, 'dtype', '')}"
    return type(obj).__qualname__


def data_digest(x, y, max_examples: int = 1024) -> dict[str, Any]:
    """Shapes, dtypes and a SHA-256 of up to ``max_examples`` evenly strided examples."""
    n = len(x)
    idx = np.unique(np.linspace(0, n - 1, min(n, max_examples)).astype(np.int64))
    h = hashlib.sha256()
    for a in (np.asarray(x[idx]), np.asarray(y[idx])):
        h.update(np.ascontiguousarray(a).tobytes())
    return {
        "x": [list(np.shape(x)), str(np.asarray(x[:1]).dtype)],
        "y": [list(np.shape(y)), str(np.asarray(y[:1]).dtype)],
        "sha256": h.hexdigest(),
    }


def run_fingerprint(config, loss_fn, optimizer, train) -> dict[str, Any]:
    """``{"config": trajectory fields, "loss_fn", "optimizer", "train"}`` of a run."""
    return {
        "config": config.trajectory(),
        "loss_fn": "default" if loss_fn is None else describe(loss_fn),
        "optimizer": "recipe" if optimizer is None else describe(optimizer),
        "train": data_digest(*train),
    }


def fingerprint_diff(saved: dict, now: dict) -> list[str]:
    """Human-readable differences between two :func:`run_fingerprint` records."""
    diffs = []
    saved_cfg, now_cfg = saved.get("config", {}), now.get("config", {})
    for k in sorted(set(saved_cfg) | set(now_cfg)):
        if saved_cfg.get(k) != now_cfg.get(k):
            diffs.append(f"{k}: {saved_cfg.get(k)!r} in the checkpoint, {now_cfg.get(k)!r} now")
    for k in ("loss_fn", "optimizer"):
        if saved.get(k) != now.get(k):
            diffs.append(f"{k} differs from the one the checkpoint was written with")
    if saved.get("train") != now.get("train"):
        diffs.append("the train data differ from the checkpoint's (shape, dtype or values)")
    for k in sorted(set(saved) | set(now)):
        if k not in ("config", "loss_fn", "optimizer", "train") and saved.get(k) != now.get(k):
            diffs.append(f"{k} differs from the checkpoint's")
    if not diffs and saved != now:
        diffs.append("the run record differs from the checkpoint's (written by another actfx?)")
    return diffs
