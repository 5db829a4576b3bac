"""How experiments report: a plain-text table, a JSON of the numbers, a PNG path.

Every experiment writes under ``results/<name>/`` (git-ignored).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from actfx.train import write_json


def results_dir(name: str, root: str | os.PathLike = "results") -> Path:
    """``results/<name>/``, created if missing."""
    path = Path(root) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def mean_std(values: Sequence[float], fmt: str = "{:.4f}") -> str:
    """``"mean ± std"`` of ``values`` (sample std; just the mean for one value)."""
    v = np.asarray(values, dtype=float)
    if v.size == 1:
        return fmt.format(v[0])
    return f"{fmt.format(v.mean())} ± {fmt.format(v.std(ddof=1))}"


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (readable in a terminal and pasteable into an issue)."""
    cells = [[str(h) for h in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def save_json(path: str | os.PathLike, record: dict) -> Path:
    """Write ``record`` (NumPy/JAX scalars and arrays allowed, NaN/inf -> null) as indented
    JSON: :func:`actfx.train.write_json`, the one JSON writer (atomic)."""
    return write_json(path, record)
