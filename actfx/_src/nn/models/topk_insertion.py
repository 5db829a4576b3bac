"""Validation of the Top-K insertion options of the reference CNNs."""

from __future__ import annotations

import math


def check_topk_fraction(topk) -> None:
    """Raise ``ValueError`` unless ``topk`` is ``None`` or a Python float in ``(0, 1]``."""
    if topk is None:
        return
    if isinstance(topk, bool) or not isinstance(topk, (int, float)):
        raise ValueError(f"topk must be None or a Python float in (0, 1], got {topk!r}")
    if math.isnan(topk) or not 0.0 < topk <= 1.0:
        raise ValueError(f"topk must be a fraction in (0, 1], got {topk!r}")
