"""Paired differences with confidence intervals (seed-matched runs of two methods)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np


class PairedDifference(NamedTuple):
    """Mean paired difference ``a - b`` and its confidence interval.

    Attributes:
      mean: mean of the differences ``d_i = a_i - b_i``.
      low: lower end of the interval.
      high: upper end of the interval.
      std: sample standard deviation of the ``d_i`` (``ddof=1``; 0 for one pair).
      n: number of pairs.
      confidence: the interval's nominal coverage, e.g. 0.95.
      method: ``"t"`` or ``"bootstrap"``.
    """

    mean: float
    low: float
    high: float
    std: float
    n: int
    confidence: float
    method: str

    def excludes_zero(self) -> bool:
        """True when the whole interval lies strictly above or strictly below 0."""
        return self.low > 0 or self.high < 0

    def format(self, scale: float = 1.0, fmt: str = "{:+.2f}") -> str:
        """``"+1.23 [+0.45, +2.01]"`` with every number multiplied by ``scale``."""
        return (
            f"{fmt.format(scale * self.mean)} [{fmt.format(scale * self.low)}, "
            f"{fmt.format(scale * self.high)}]"
        )


def paired_difference(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    method: Literal["t", "bootstrap"] = "t",
    num_resamples: int = 10000,
    seed: int = 0,
) -> PairedDifference:
    r"""Mean of the paired differences ``d_i = a_i - b_i`` with a confidence interval.

    ``method="t"``: the Student-t interval over pairs,

    .. math::
        \bar d \pm t_{(1+c)/2,\,n-1}\, s_d / \sqrt{n},

    with :math:`s_d` the sample standard deviation (``ddof=1``) — the interval for seed-matched
    runs (pair ``i`` = seed ``i`` of both methods: same initialisation and batches).
    ``method="bootstrap"``: the percentile interval of the mean over ``num_resamples``
    resamples of the pairs (with replacement; ``seed`` fixes the resampling).

    With a single pair the interval is ``(-inf, inf)`` (``t``) — nothing can be concluded.

    Args:
      a: ``(n,)`` scores of method A, one per pair.
      b: ``(n,)`` scores of method B, same order (pair ``i`` is ``a[i], b[i]``).
      confidence: nominal coverage in ``(0, 1)``.
      method: ``"t"`` or ``"bootstrap"``.
      num_resamples: bootstrap resamples (``method="bootstrap"``).
      seed: seed of the bootstrap resampling.

    Returns:
      A :class:`PairedDifference`.

    Raises:
      ValueError: ``a`` and ``b`` are not 1-D of equal non-zero length, hold NaN or inf,
        ``confidence`` is outside ``(0, 1)``, ``method`` is unknown or ``num_resamples < 1``.

    References:
      W. S. Gosset ("Student"), *The probable error of a mean*, Biometrika 1908;
      B. Efron, R. Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 13.

    Example:
      >>> d = paired_difference([0.90, 0.92, 0.91, 0.93], [0.88, 0.90, 0.90, 0.90])
      >>> round(d.mean, 4), round(d.low, 4), round(d.high, 4), d.n
      (0.02, 0.007, 0.033, 4)
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError(
            f"a and b must be 1-D of equal non-zero length (one score per pair), got shapes "
            f"{a.shape} and {b.shape}"
        )
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("a and b must be finite (no NaN or inf)")
    if not (isinstance(confidence, (int, float)) and 0.0 < confidence < 1.0):
        raise ValueError(f"confidence must be a number in (0, 1), got {confidence!r}")
    if method not in ("t", "bootstrap"):
        raise ValueError(f"method must be 't' or 'bootstrap', got {method!r}")
    d = a - b
    n = d.size
    mean = float(d.mean())
    std = float(d.std(ddof=1)) if n > 1 else 0.0
    if method == "t":
        if n < 2:
            low, high = -math.inf, math.inf
        else:
            from scipy import stats

            half = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1)) * std / math.sqrt(n)
            low, high = mean - half, mean + half
    else:
        if not isinstance(num_resamples, (int, np.integer)) or num_resamples < 1:
            raise ValueError(f"num_resamples must be a positive int, got {num_resamples!r}")
        rng = np.random.default_rng(seed)
        means = d[rng.integers(0, n, size=(int(num_resamples), n))].mean(axis=1)
        q = (1 - confidence) / 2
        low, high = (float(v) for v in np.quantile(means, [q, 1 - q]))
    return PairedDifference(mean, float(low), float(high), std, n, float(confidence), method)
