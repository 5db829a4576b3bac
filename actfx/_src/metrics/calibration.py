"""Calibration metrics of predictive probabilities: ECE, Brier score, NLL, reliability curve."""

from __future__ import annotations

import numpy as np
from jaxtyping import ArrayLike

_ATOL = 1e-4  # tolerance on p in [0, 1] and on rows of (N, K) probabilities summing to 1


def _as_probs(p: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(P (N, K), labels (N,))``; a binary ``p`` of shape ``(N,)`` becomes K = 2.

    Raises:
      ValueError: naming ``p`` (wrong shape, non-finite, outside [0, 1], rows not summing to
        1) or ``y`` (wrong shape, non-integer or out-of-range labels).
    """
    try:
        p = np.asarray(p, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"p and y must be numeric arrays: {e}") from None
    if p.ndim not in (1, 2) or y.ndim != 1 or p.shape[0] != y.shape[0] or p.shape[0] == 0:
        raise ValueError(
            f"p must be (N,) or (N, K) and y (N,) with N >= 1, got p {p.shape} and y {y.shape}"
        )
    if not np.all(np.isfinite(p)):
        raise ValueError("p must hold finite probabilities, got a NaN or infinite entry")
    if np.any(p < -_ATOL) or np.any(p > 1 + _ATOL):
        raise ValueError(
            f"p must hold probabilities in [0, 1], got values in [{p.min():.4g}, {p.max():.4g}]"
        )
    if p.ndim == 2 and np.any(np.abs(p.sum(1) - 1) > _ATOL * p.shape[1]):
        raise ValueError(
            "p of shape (N, K) must have rows that sum to 1 (class probabilities, not logits)"
        )
    p = np.clip(p, 0.0, 1.0)
    if p.ndim == 1:
        p = np.stack([1 - p, p], axis=1)
    if not np.all(np.isfinite(y)) or np.any((y < 0) | (y >= p.shape[1]) | (y != np.round(y))):
        raise ValueError(
            f"y must hold integer labels in [0, {p.shape[1]}), got {np.unique(y)[:10]}"
        )
    return p, y.astype(int)


def _check_num_bins(num_bins) -> None:
    if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
        raise ValueError(f"num_bins must be an int >= 1, got {num_bins!r}")


def reliability_curve(p: ArrayLike, y: ArrayLike, num_bins: int = 10) -> dict[str, np.ndarray]:
    """Top-label reliability: per confidence bin the mean confidence, accuracy and count.

    Example:
      >>> r = reliability_curve([0.9, 0.8, 0.3], [1, 0, 0], num_bins=2)
      >>> r["count"].tolist()
      [0, 3]
    """
    _check_num_bins(num_bins)
    p, y = _as_probs(p, y)
    conf = p.max(1)
    correct = (p.argmax(1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, num_bins - 1)
    count = np.bincount(idx, minlength=num_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, conf, num_bins) / count
        acc = np.bincount(idx, correct, num_bins) / count
    return {"edges": edges, "confidence": mean_conf, "accuracy": acc, "count": count}


def expected_calibration_error(p: ArrayLike, y: ArrayLike, num_bins: int = 10) -> float:
    r"""Top-label expected calibration error with equal-width bins.

    .. math:: \mathrm{ECE} = \sum_b \frac{n_b}{N} |\mathrm{acc}_b - \mathrm{conf}_b|

    ``p``: P(y = 1) of shape ``(N,)`` or class probabilities ``(N, K)``; ``y``: labels ``(N,)``.

    Raises:
      ValueError: ``p`` not finite probabilities in [0, 1] (rows summing to 1), ``y`` not
        integer labels, or ``num_bins`` not an int >= 1.

    References:
      C. Guo et al., *On calibration of modern neural networks*, ICML 2017.

    Example:
      >>> round(expected_calibration_error([0.9, 0.9, 0.9, 0.9], [1, 1, 1, 0]), 6)
      0.15
    """
    r = reliability_curve(p, y, num_bins)
    n = r["count"].sum()
    ok = r["count"] > 0
    return float(np.sum(r["count"][ok] / n * np.abs(r["accuracy"][ok] - r["confidence"][ok])))


def brier_score(p: ArrayLike, y: ArrayLike) -> float:
    r"""Multi-class Brier score :math:`\frac1N \sum_n \sum_k (p_{nk} - [y_n = k])^2`.

    For binary ``p`` of shape ``(N,)`` this is twice the usual binary Brier score.

    Raises:
      ValueError: ``p`` not finite probabilities in [0, 1] (rows summing to 1) or ``y`` not
        integer labels (both named).

    Example:
      >>> brier_score([1.0, 0.0], [1, 1])
      1.0
    """
    p, y = _as_probs(p, y)
    onehot = np.eye(p.shape[1])[y]
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def negative_log_likelihood(p: ArrayLike, y: ArrayLike, eps: float = 1e-12) -> float:
    r"""Mean negative log predictive probability of the labels, :math:`-\frac1N\sum\log p_{n y_n}`.

    Example:
      >>> round(negative_log_likelihood([0.5, 0.5], [0, 1]), 4)
      0.6931
    """
    if (
        isinstance(eps, (bool, np.bool_))
        or not isinstance(eps, (int, float, np.integer, np.floating))
        or not 0 < eps < 1
    ):
        raise ValueError(f"eps must be a float in (0, 1), got {eps!r}")
    p, y = _as_probs(p, y)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], eps, 1.0))))
