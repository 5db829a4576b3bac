"""Peak signal-to-noise ratio of a denoised image."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike


def psnr(clean: ArrayLike, estimate: ArrayLike, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio ``10 log10(range^2 / MSE)`` in dB.

    Example:
      >>> import numpy as np
      >>> from actfx.metrics import psnr
      >>> round(psnr(np.zeros(4), np.full(4, 0.1)), 6)
      20.0
    """
    mse = float(np.mean((np.asarray(clean, np.float64) - np.asarray(estimate, np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)
