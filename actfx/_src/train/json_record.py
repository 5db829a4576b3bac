"""Writing training metrics to JSON."""

from __future__ import annotations

import json
import os
from typing import Any


def write_json(path: str | os.PathLike, record: Any) -> None:
    """Write ``record`` as indented JSON to ``path`` atomically (temp file + rename).

    Parent directories are created. A reader never sees a half-written file, even if
    the run is killed while writing.

    Example:
      >>> import tempfile, json, os
      >>> with tempfile.TemporaryDirectory() as d:
      ...     write_json(os.path.join(d, "sub", "m.json"), {"acc": [0.5]})
      ...     json.load(open(os.path.join(d, "sub", "m.json")))
      {'acc': [0.5]}
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=2)
    os.replace(tmp, path)
