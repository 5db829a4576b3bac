"""float64 LayerAct and its exact gradient from the closed forms (independent of JAX), the
oracle shared by test_layeract.py and test_layeract_native.py."""

import numpy as np


def np_layeract_vjp(x, g, kind="silu", alpha=1e-5, ddof=1, paper=False):
    """``(y, dx)`` of LayerAct over the last axis for cotangent ``g``; ``paper=True`` divides
    the variance term of the gradient by ``m`` (the reference's custom backward) instead of
    ``m - ddof``. A zero-variance layer with ``alpha = 0`` gives ``n = 0`` (the limit)."""
    x, g = np.asarray(x, np.float64), np.asarray(g, np.float64)
    m = x.shape[-1]
    xc = x - x.mean(-1, keepdims=True)
    var = (xc**2).sum(-1, keepdims=True) / (m - ddof)
    r = np.where(var + alpha > 0, 1 / np.sqrt(np.where(var + alpha > 0, var + alpha, 1)), 0.0)
    n = xc * r
    if kind == "silu":
        s = 1 / (1 + np.exp(-n))
        ds = s * (1 - s)
    else:
        s = np.clip(n / 6 + 0.5, 0, 1)
        ds = np.where((n > -3) & (n <= 3), 1 / 6, 0.0)
    dn = g * x * r * ds
    b = m if paper else m - ddof
    dx = g * s + dn - dn.mean(-1, keepdims=True) - n * (dn * n).sum(-1, keepdims=True) / b
    return x * s, dx
