"""Peak signal-to-noise ratio of a denoised image."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from actfx._src._checks import check_positive_real


def psnr(clean: ArrayLike, estimate: ArrayLike, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio ``10 log10(range^2 / MSE)`` in dB.

    Raises:
      ValueError: ``clean`` and ``estimate`` of different shapes (no broadcasting), empty,
        or with NaN/infinite values; ``data_range`` not a finite number > 0.

    Example:
      >>> import numpy as np
      >>> from actfx.metrics import psnr
      >>> round(psnr(np.zeros(4), np.full(4, 0.1)), 6)
      20.0
    """
    data_range = check_positive_real("data_range", data_range)
    clean, estimate = np.asarray(clean, np.float64), np.asarray(estimate, np.float64)
    if clean.shape != estimate.shape or clean.size == 0:
        raise ValueError(
            f"clean and estimate must be non-empty arrays of one shape, got {clean.shape} and "
            f"{estimate.shape}"
        )
    for name, arr in (("clean", clean), ("estimate", estimate)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} has NaN or infinite values")
    mse = float(np.mean((clean - estimate) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)
