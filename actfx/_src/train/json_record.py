"""Writing metrics to JSON: the one JSON writer of actfx, its experiments and benchmarks."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np


def to_jsonable(obj: Any) -> Any:
    """``obj`` with NumPy/JAX arrays and scalars made plain Python, NaN and +-inf made ``None``.

    Dicts (keys made ``str``), lists and tuples (made lists) are converted recursively;
    arrays become nested lists; ``bool``/``int``/``float``/``str``/``None`` pass through.
    Anything else is returned as is (``json`` then raises ``TypeError`` naming its type).

    Example:
      >>> import numpy as np
      >>> to_jsonable({1: np.array([0.5, np.nan]), "n": np.int64(3), "t": (np.inf, True)})
      {'1': [0.5, None], 'n': 3, 't': [None, True]}
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.ndarray) or (hasattr(obj, "__array__") and hasattr(obj, "dtype")):
        return to_jsonable(np.asarray(obj).tolist())  # NumPy and JAX arrays
    return obj


def write_json(path: str | os.PathLike, record: Any) -> Path:
    """Write ``record`` as indented, strict JSON to ``path`` atomically (temp file + rename).

    The record goes through :func:`to_jsonable` first: NumPy/JAX arrays and scalars are
    allowed, and NaN/inf become ``null`` (so every JSON parser reads the file). Parent
    directories are created. A reader never sees a half-written file, even if the run is
    killed while writing.

    Args:
      path: the file to write.
      record: dicts, lists, tuples, numbers, strings, ``None`` and arrays.

    Returns:
      ``path`` as a :class:`pathlib.Path`.

    Raises:
      TypeError: ``record`` holds an object JSON cannot represent (the temp file is removed).

    Example:
      >>> import tempfile, json, os
      >>> import numpy as np
      >>> with tempfile.TemporaryDirectory() as d:
      ...     p = write_json(os.path.join(d, "sub", "m.json"), {"acc": np.array([0.5, np.nan])})
      ...     json.loads(p.read_text())
      {'acc': [0.5, None]}
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w") as f:
            json.dump(to_jsonable(record), f, indent=2, allow_nan=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
