"""Robustness summaries of per-corruption accuracies, and feature fluctuation under noise."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# Corruption families. Ours (actfx.data.CORRUPTIONS) and the CIFAR-10-C / ImageNet-C names of
# Hendrycks & Dietterich (2019). Contrast is its own family here: on MNIST it is a shift of
# the black background to grey (degenerate, see experiments/layeract_robustness.py), so the
# experiments report it apart from the "digital" family it belongs to in CIFAR-C.
CORRUPTION_FAMILIES: dict[str, tuple[str, ...]] = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"),
    "blur": ("gaussian_blur", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "frost", "fog", "brightness", "spatter"),
    "digital": ("pixelate", "jpeg_compression", "elastic_transform", "saturate"),
    "contrast": ("contrast",),
}


def corruption_family(name: str) -> str:
    """The family of corruption ``name`` in :data:`CORRUPTION_FAMILIES`.

    Raises:
      ValueError: ``name`` is in no family.

    Example:
      >>> corruption_family("shot_noise"), corruption_family("contrast")
      ('noise', 'contrast')
    """
    for fam, names in CORRUPTION_FAMILIES.items():
        if name in names:
            return fam
    raise ValueError(f"corruption name {name!r} is in no family of {sorted(CORRUPTION_FAMILIES)}")


def _per_corruption(acc: Mapping[str, Sequence[float]]) -> dict[str, np.ndarray]:
    if not isinstance(acc, Mapping) or not acc:
        raise ValueError("accuracies must be a non-empty mapping corruption -> accuracies")
    out = {}
    for k, v in acc.items():
        a = np.asarray(v, dtype=float).reshape(-1)
        if a.size == 0 or not np.all(np.isfinite(a)):
            raise ValueError(f"accuracies[{k!r}] must be non-empty and finite, got {v!r}")
        out[k] = a
    return out


def mean_corruption_accuracy(accuracies: Mapping[str, Sequence[float]]) -> float:
    r"""Mean accuracy over corruptions and severities (each corruption weighs the same).

    .. math:: \bar a = \frac{1}{|C|} \sum_{c \in C} \frac{1}{|S|}\sum_{s \in S} a_{c,s}

    Args:
      accuracies: corruption name -> accuracies over severities.

    Raises:
      ValueError: empty mapping, or an empty / non-finite entry.

    Example:
      >>> mean_corruption_accuracy({"a": [1.0, 0.8], "b": [0.5]})
      0.7
    """
    per = _per_corruption(accuracies)
    return float(np.mean([v.mean() for v in per.values()]))


def family_accuracy(
    accuracies: Mapping[str, Sequence[float]],
    families: Mapping[str, Sequence[str]] = CORRUPTION_FAMILIES,
) -> dict[str, float]:
    """Mean corruption accuracy per family, over the corruptions present in ``accuracies``.

    Families with no corruption in ``accuracies`` are left out.

    Raises:
      ValueError: a corruption of ``accuracies`` is in no family, or bad accuracies.

    Example:
      >>> family_accuracy({"gaussian_noise": [0.8, 0.6], "impulse_noise": [0.9],
      ...                  "contrast": [0.3]})
      {'noise': 0.8, 'contrast': 0.3}
    """
    per = _per_corruption(accuracies)
    lookup = {c: f for f, cs in families.items() for c in cs}
    unknown = [c for c in per if c not in lookup]
    if unknown:
        raise ValueError(
            f"accuracies has corruptions {unknown} that are in no family of {families}"
        )
    out = {}
    for fam in families:
        vals = [per[c].mean() for c in per if lookup[c] == fam]
        if vals:
            out[fam] = round(float(np.mean(vals)), 12)
    return out


def relative_drop(clean: float, corrupted: float) -> float:
    r"""Relative accuracy drop ``(clean - corrupted) / clean``.

    Raises:
      ValueError: ``clean`` is not positive or either value is not finite.

    Example:
      >>> relative_drop(0.8, 0.6)
      0.25
    """
    clean, corrupted = float(clean), float(corrupted)
    if not (np.isfinite(clean) and np.isfinite(corrupted)):
        raise ValueError(f"clean and corrupted must be finite, got {clean}, {corrupted}")
    if clean <= 0:
        raise ValueError(f"clean accuracy must be > 0 for a relative drop, got {clean}")
    return round((clean - corrupted) / clean, 12)


def relative_change(clean: np.ndarray, corrupted: np.ndarray) -> np.ndarray:
    r"""Per-sample relative change of a feature: :math:`\|f(\tilde x) - f(x)\|_2 / \|f(x)\|_2`.

    The norms run over every axis but the first (the sample axis). Used to measure how much
    an activation's *scale* (its gate, e.g. ``sigmoid(x)`` for SiLU) fluctuates between a
    clean image and its corrupted copy — the mechanism the LayerAct paper argues for.

    Args:
      clean: ``(N, ...)`` features of the clean inputs.
      corrupted: ``(N, ...)`` features of the corrupted copies, same shape.

    Returns:
      ``(N,)`` float64 relative changes (``inf`` where a clean feature is all zero but the
      corrupted one is not; 0 where both are zero).

    Raises:
      ValueError: shapes differ or the arrays have no sample axis.

    Example:
      >>> import numpy as np
      >>> relative_change(np.array([[3.0, 4.0]]), np.array([[3.0, 5.0]]))
      array([0.2])
    """
    a = np.asarray(clean, dtype=np.float64)
    b = np.asarray(corrupted, dtype=np.float64)
    if a.shape != b.shape or a.ndim < 1:
        raise ValueError(
            f"clean and corrupted must have the same shape (N, ...), got {a.shape} and {b.shape}"
        )
    a2 = a.reshape(len(a), -1)
    num = np.linalg.norm(b.reshape(len(b), -1) - a2, axis=1)
    den = np.linalg.norm(a2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(num == 0, 0.0, num / den)
    return out
