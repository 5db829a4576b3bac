"""Writing metrics to JSON: the one JSON writer of actfx, its experiments and benchmarks."""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np


def to_jsonable(obj: Any) -> Any:
    """``obj`` with NumPy/JAX arrays and scalars made plain Python, NaN and +-inf made ``None``.

    Dicts (keys made ``str``), lists and tuples (made lists) are converted recursively;
    arrays become nested lists; ``bool``/``int``/``float``/``str``/``None`` pass through.
    Anything else is returned as is (``json`` then raises ``TypeError`` naming its type).

    Raises:
      ValueError: ``obj`` contains itself (a circular record), or a dict has two keys with
        the same ``str`` (``{1: "a", "1": "b"}``: one would silently replace the other).

    Example:
      >>> import numpy as np
      >>> to_jsonable({1: np.array([0.5, np.nan]), "n": np.int64(3), "t": (np.inf, True)})
      {'1': [0.5, None], 'n': 3, 't': [None, True]}
      >>> to_jsonable({1: "a", "1": "b"})
      Traceback (most recent call last):
      ...
      ValueError: record: the keys 1 and '1' of one dict are both written as "1"
    """
    return _jsonable(obj, "record", set())


def _jsonable(obj: Any, path: str, active: set[int]) -> Any:
    if isinstance(obj, (dict, list, tuple)):
        if id(obj) in active:
            raise ValueError(f"{path}: the record is circular (it contains itself)")
        active.add(id(obj))
        try:
            if isinstance(obj, dict):
                out: dict[str, Any] = {}
                first: dict[str, Any] = {}
                for k, v in obj.items():
                    key = str(k)
                    if key in first:
                        raise ValueError(
                            f"{path}: the keys {first[key]!r} and {k!r} of one dict are both "
                            f'written as "{key}"'
                        )
                    first[key] = k
                    out[key] = _jsonable(v, f"{path}[{k!r}]", active)
                return out
            return [_jsonable(v, f"{path}[{i}]", active) for i, v in enumerate(obj)]
        finally:
            active.discard(id(obj))
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.ndarray) or (hasattr(obj, "__array__") and hasattr(obj, "dtype")):
        return _jsonable(np.asarray(obj).tolist(), path, active)  # NumPy and JAX arrays
    return obj


def write_json(path: str | os.PathLike, record: Any) -> Path:
    """Write ``record`` as indented, strict JSON to ``path`` atomically (temp file + rename).

    The record goes through :func:`to_jsonable` first: NumPy/JAX arrays and scalars are
    allowed, and NaN/inf become ``null`` (so every JSON parser reads the file). Parent
    directories are created. Each call writes its own uniquely named temp file in the
    same directory, flushes it to disk and renames it over ``path``, so a reader never sees
    a half-written file and concurrent writers (threads or processes) never mix their
    bytes: the file always holds one complete record, the last one renamed.

    Args:
      path: the file to write.
      record: dicts, lists, tuples, numbers, strings, ``None`` and arrays.

    Returns:
      ``path`` as a :class:`pathlib.Path`.

    Raises:
      TypeError: ``record`` holds an object JSON cannot represent (nothing is written).
      ValueError: ``record`` is circular or has dict keys that collide as strings
        (nothing is written).

    Example:
      >>> import tempfile, json, os
      >>> import numpy as np
      >>> with tempfile.TemporaryDirectory() as d:
      ...     p = write_json(os.path.join(d, "sub", "m.json"), {"acc": np.array([0.5, np.nan])})
      ...     json.loads(p.read_text())
      {'acc': [0.5, None]}
    """
    path = Path(path)
    text = json.dumps(to_jsonable(record), indent=2, allow_nan=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a name no other writer uses; O_EXCL never opens someone else's file, and the
    # default mode (0o666 minus the umask) is what a plain open() would have given
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
