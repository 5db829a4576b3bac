"""Validation of the Top-K insertion options of the reference CNNs."""

from __future__ import annotations

from actfx.topk import check_fraction


def check_topk_fraction(topk) -> None:
    """Raise ``ValueError`` unless ``topk`` is ``None`` or a fraction in ``(0, 1]``.

    The models' ``topk=`` option accepts exactly what :func:`actfx.topk`'s ``k`` accepts
    (plus ``None``): this is :func:`actfx.topk.check_fraction` under the name ``topk``.

    Example:
      >>> check_topk_fraction(None), check_topk_fraction(0.25)
      (None, None)
      >>> check_topk_fraction(1.5)
      Traceback (most recent call last):
      ...
      ValueError: topk must be a fraction in (0, 1], got 1.5
    """
    check_fraction("topk", topk, allow_none=True)
