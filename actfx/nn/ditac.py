"""Flax NNX module for DiTAC: a trainable CPAB activation with a smoothness prior."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, ArrayLike

import actfx.cpab as cpab
from actfx.ditac import MODES, _interval, ditac, ditac_regularizer


class PriorPrecision(nnx.Variable):
    """A fixed (non-trainable) prior precision matrix; not an ``nnx.Param``, so optimizers
    built with ``wrt=nnx.Param`` leave it alone."""


class DiTAC(nnx.Module):
    r"""DiTAC activation ``T~(x) Phi(x)`` (:func:`actfx.ditac`) with a trainable theta.

    theta is an ``nnx.Param`` of shape ``(d,)`` (``channels=None``: one transform for the
    layer, as in the reference) or ``(channels, d)`` (one per channel, the last axis of
    ``x``), ``d = nc - 1``, sampled at construction from the CPA prior
    ``N(0, Sigma(init_length_scale, init_output_variance, init_kernel))`` with a key from
    ``rngs.params()``. The smoothness regulariser
    ``reg_weight * theta^T P theta`` with ``P`` the precision of the prior
    ``(reg_length_scale, reg_output_variance, reg_kernel)`` is *not* added automatically:
    add :meth:`regularizer` (or :func:`ditac_penalty` of the whole model) to the loss.

    Defaults follow the reference implementation: nc = 10, [a, b] = [-0.5, 2], basis qr,
    theta initialised from difw's prior (``kernel="difw"``, length scale 5, variance 2)
    and regularised with DiTAC's own precision (``kernel="ditac"``, length scale 5,
    variance 2, weight 0.1), lookup-table mode with 2048 points.

    Args:
      channels: ``None`` (per-layer theta) or the number of channels (per-channel).
      nc: number of CPA cells (>= 2).
      a, b: the interval where the CPAB transform acts.
      basis: CPA basis name (see :class:`actfx.cpab.Tessellation`).
      mode: ``"table"`` (default, fast) or ``"exact"``.
      table_size: lookup-table points.
      variant: see :func:`actfx.ditac`.
      init_length_scale, init_output_variance, init_kernel: prior used to sample theta.
      reg_length_scale, reg_output_variance, reg_kernel: prior whose precision regularises.
      reg_weight: multiplier of ``theta^T P theta`` in :meth:`regularizer` (>= 0).
      param_dtype: dtype of theta.
      rngs: ``nnx.Rngs``; ``rngs.params()`` draws the initial theta.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from actfx.nn import DiTAC
      >>> act = DiTAC(rngs=nnx.Rngs(0))
      >>> act.theta.shape, act(jnp.linspace(-3, 3, 7)).shape
      ((9,), (7,))
      >>> bool(act.regularizer() > 0)
      True
    """

    def __init__(
        self,
        channels: int | None = None,
        *,
        nc: int = 10,
        a: float = -0.5,
        b: float = 2.0,
        basis: str = "qr",
        mode: str = "table",
        table_size: int = 2048,
        variant: str = "gelu_cpab",
        init_length_scale: float = 5.0,
        init_output_variance: float = 2.0,
        init_kernel: str = "difw",
        reg_length_scale: float = 5.0,
        reg_output_variance: float = 2.0,
        reg_kernel: str = "ditac",
        reg_weight: float = 0.1,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        if channels is not None and (isinstance(channels, bool) or not isinstance(channels, int) or channels < 1):
            raise ValueError(f"channels must be None or a positive int, got {channels!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if isinstance(table_size, bool) or not isinstance(table_size, int) or table_size < 2:
            raise ValueError(f"table_size must be an int >= 2, got {table_size!r}")
        if not (isinstance(reg_weight, (int, float)) and np.isfinite(reg_weight) and reg_weight >= 0):
            raise ValueError(f"reg_weight must be a finite float >= 0, got {reg_weight!r}")
        _interval(variant, a, b)  # validates a < b and the variant name
        self.tess = cpab.Tessellation(nc, zero_boundary=True, basis=basis)
        self.channels = channels
        self.a, self.b = float(a), float(b)
        self.mode, self.table_size, self.variant = mode, table_size, variant
        self.reg_weight = float(reg_weight)

        theta = cpab.sample_theta(
            rngs.params(),
            self.tess,
            None if channels is None else channels,
            length_scale=init_length_scale,
            output_variance=init_output_variance,
            kernel=init_kernel,
            dtype=param_dtype,
        )
        self.theta = nnx.Param(theta)
        precision = cpab.precision_matrix(
            self.tess,
            length_scale=reg_length_scale,
            output_variance=reg_output_variance,
            kernel=reg_kernel,
        )
        self.precision = PriorPrecision(jnp.asarray(precision, param_dtype))

    def regularizer(self) -> Array:
        """``reg_weight * theta^T P theta`` (summed over channels): add it to the loss."""
        return self.reg_weight * ditac_regularizer(self.theta[...], self.precision[...])

    def __call__(self, x: ArrayLike) -> Array:
        x = jnp.asarray(x)
        if self.channels is not None and (x.ndim == 0 or x.shape[-1] != self.channels):
            raise ValueError(f"x must have {self.channels} channels on its last axis, got shape {x.shape}")
        return ditac(
            x, self.theta[...], self.tess, a=self.a, b=self.b, mode=self.mode,
            table_size=self.table_size, variant=self.variant,
        )


def ditac_penalty(model: nnx.Module) -> Array:
    """Sum of :meth:`DiTAC.regularizer` over every DiTAC module inside ``model`` (0 if none).

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from actfx.nn import DiTAC
      >>> from actfx.nn.ditac import ditac_penalty
      >>> act = DiTAC(rngs=nnx.Rngs(0))
      >>> bool(jnp.allclose(ditac_penalty(act), act.regularizer()))
      True
    """
    total = jnp.zeros((), jnp.float32)
    for _, m in nnx.iter_graph(model):
        if isinstance(m, DiTAC):
            total = total + m.regularizer()
    return total
