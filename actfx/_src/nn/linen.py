"""Flax Linen twins of the :mod:`actfx.nn` NNX activation modules, for users on Linen.

Each wrapper takes the same arguments as its NNX twin (as dataclass fields, without
``rngs``: Linen draws from the ``"params"`` stream), validates them the same way at
construction with the same error messages, stores the same parameters under the same
names in ``variables["params"]`` (``c_raw``/``lam_raw``/``gamma_raw``, ``lam_raw``,
``theta``, ``bias``) and computes the same function: for identical parameters the outputs
and gradients agree exactly (``tests/test_linen.py``).

=================  ======================  ==============================
Linen              NNX twin                parameters
=================  ======================  ==============================
``LayerAct``       ``actfx.nn.LayerAct``   none
``TopK``           ``actfx.nn.TopK``       none
``MMeLU``          ``actfx.nn.MMeLU``      ``c_raw``, ``lam_raw``, ``gamma_raw``
``NeLU``           ``actfx.nn.NeLU``       ``lam_raw``
``DiTAC``          ``actfx.nn.DiTAC``      ``theta``
``BiasedReLU``     ``actfx.nn.BiasedReLU`` ``bias``
=================  ======================  ==============================

The constrained values are available through the module functions :func:`mmelu_values`
and :func:`nelu_lam` (Linen modules hold no state outside ``variables``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

import actfx.cpab as cpab
from actfx._src.cpab.prior import Kernel
from actfx._src.layeract import layeract
from actfx._src.mmelu import mmelu
from actfx._src.nelu import nelu
from actfx._src.nn._common import (
    as_input,
    broadcast_param,
    channel_param_shape,
    positive,
    unit_interval,
)
from actfx._src.nn.ditac import (
    ditac_apply,
    resolve_table_size,
    tessellation,
    validate_ditac_args,
    validate_ditac_priors,
)
from actfx._src.nn.layeract import validate_layeract_module_args
from actfx._src.nn.mmelu import validate_mmelu_args
from actfx._src.nn.nelu import NeLUMethod, nelu_weight, validate_nelu_args
from actfx._src.nn.pivotal_ae import validate_biased_relu_args
from actfx._src.nn.topk import validate_topk_module_args
from actfx._src.topk import topk

__all__ = [
    "BiasedReLU",
    "DiTAC",
    "LayerAct",
    "MMeLU",
    "NeLU",
    "TopK",
    "mmelu_values",
    "nelu_lam",
]

Dtype = Any


def _const(value: float, dtype):
    return lambda key, shape: jnp.full(shape, value, dtype)


class LayerAct(nn.Module):
    """Linen :class:`actfx.nn.LayerAct` (no parameters).

    Example:
      >>> import jax.numpy as jnp
      >>> from actfx.nn.linen import LayerAct
      >>> LayerAct().apply({}, jnp.ones((2, 5))).shape
      (2, 5)
    """

    kind: Literal["silu", "hardsilu"] = "silu"
    alpha: float = 1e-5
    axis: int | Sequence[int] | None = None
    ddof: int = 1
    grad: Literal["autodiff", "paper"] = "autodiff"
    dtype: Dtype | None = None
    implementation: Literal["xla", "native"] | None = None

    def __post_init__(self):
        validate_layeract_module_args(
            self.kind, self.alpha, self.axis, self.ddof, self.grad, self.dtype, self.implementation
        )
        super().__post_init__()

    @nn.compact
    def __call__(self, x):
        axis = self.axis if self.axis is None or isinstance(self.axis, int) else tuple(self.axis)
        return layeract(
            as_input(x, self.dtype),
            kind=self.kind,
            alpha=self.alpha,
            axis=axis,
            ddof=self.ddof,
            grad=self.grad,
            implementation=self.implementation,
        )


class TopK(nn.Module):
    """Linen :class:`actfx.nn.TopK` (no parameters).

    Example:
      >>> import jax.numpy as jnp
      >>> from actfx.nn.linen import TopK
      >>> y = TopK(0.25).apply({}, jnp.arange(32.0).reshape(1, 4, 4, 2))
      >>> int((y != 0).sum())
      8
    """

    k: float
    axis: int | Sequence[int] = (-3, -2)
    by: Literal["abs", "value"] = "abs"
    method: Literal["exact", "approx"] = "exact"
    enabled: bool = True
    dtype: Dtype | None = None

    def __post_init__(self):
        validate_topk_module_args(self.k, self.axis, self.by, self.method, self.enabled, self.dtype)
        super().__post_init__()

    @nn.compact
    def __call__(self, x):
        x = as_input(x, self.dtype)
        if not self.enabled:
            return x
        axis = self.axis if isinstance(self.axis, int) else tuple(self.axis)
        return topk(x, float(self.k), axis=axis, by=self.by, method=self.method)


def mmelu_values(params) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(c, lam, gamma)`` of a Linen (or NNX-state) MMeLU parameter dict.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from actfx.nn.linen import MMeLU, mmelu_values
      >>> v = MMeLU(c_init=0.25).init(jax.random.key(0), jnp.ones(3))
      >>> [round(float(a), 6) for a in mmelu_values(v["params"])]
      [0.25, 1.0, 0.0]
    """
    return (
        unit_interval(jnp.asarray(params["c_raw"])),
        positive(jnp.asarray(params["lam_raw"])),
        jnp.asarray(params["gamma_raw"]),
    )


class MMeLU(nn.Module):
    """Linen :class:`actfx.nn.MMeLU`: same arguments, checks, parameters and transforms.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from actfx.nn.linen import MMeLU
      >>> m = MMeLU(num_features=4)
      >>> v = m.init(jax.random.key(0), jnp.ones((2, 4)))
      >>> sorted(v["params"]), m.apply(v, jnp.ones((2, 4))).shape
      (['c_raw', 'gamma_raw', 'lam_raw'], (2, 4))
    """

    num_features: int | None = None
    c_init: float = 0.5
    lam_init: float = 1.0
    gamma_init: float = 0.0
    channel_axis: int = -1
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32

    def _checked(self):
        return validate_mmelu_args(
            self.num_features,
            self.c_init,
            self.lam_init,
            self.gamma_init,
            self.channel_axis,
            self.dtype,
            self.param_dtype,
        )

    def __post_init__(self):
        self._checked()
        super().__post_init__()

    @nn.compact
    def __call__(self, x):
        _, c_raw, lam_raw, gamma_raw = self._checked()
        shape = () if self.num_features is None else (int(self.num_features),)
        pd = self.param_dtype
        params = {
            "c_raw": self.param("c_raw", _const(c_raw, pd), shape),
            "lam_raw": self.param("lam_raw", _const(lam_raw, pd), shape),
            "gamma_raw": self.param("gamma_raw", _const(gamma_raw, pd), shape),
        }
        x = as_input(x, self.dtype)
        bshape = channel_param_shape(x, self.num_features, self.channel_axis)
        c, lam, gamma = mmelu_values(params)
        dt = x.dtype
        return mmelu(
            x,
            broadcast_param(c, bshape, dt),
            broadcast_param(lam, bshape, dt),
            broadcast_param(gamma, bshape, dt),
        )


def nelu_lam(lam_raw, lam_max: float) -> jax.Array:
    """NeLU's ``lam`` in ``(0, lam_max)`` from its raw parameter (as :attr:`actfx.nn.NeLU.lam`)."""
    return lam_max * unit_interval(jnp.asarray(lam_raw))


class NeLU(nn.Module):
    """Linen :class:`actfx.nn.NeLU`: same arguments, checks, parameter and transform.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from actfx.nn.linen import NeLU
      >>> m = NeLU(lam_init=0.8)
      >>> x = jnp.array([[3.0, -1.0, 0.5, -2.0]])
      >>> m.apply(m.init(jax.random.key(0), x), x)
      Array([[2., 0., 0., 0.]], dtype=float32)
    """

    num_features: int | None = None
    lam_init: float = 2.0
    lam_max: float | None = None
    axis: int | Sequence[int] = -1
    channel_axis: int = -1
    two_sided: bool = False
    rms_scaled: bool = True
    method: NeLUMethod = "exact"
    iters: int = 100
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32

    def _checked(self):
        return validate_nelu_args(
            self.num_features,
            self.lam_init,
            self.lam_max,
            self.axis,
            self.channel_axis,
            self.two_sided,
            self.rms_scaled,
            self.method,
            self.iters,
            self.dtype,
            self.param_dtype,
        )

    def __post_init__(self):
        self._checked()
        super().__post_init__()

    @nn.compact
    def __call__(self, x):
        num_features, lam_raw, lam_max, axis = self._checked()
        shape = () if num_features is None else (num_features,)
        lam_raw = self.param("lam_raw", _const(lam_raw, self.param_dtype), shape)
        x = as_input(x, self.dtype)
        bshape = channel_param_shape(x, num_features, self.channel_axis)
        if x.size == 0:  # an empty batch (or pool): nothing to threshold
            return jnp.zeros_like(x)
        lam = broadcast_param(nelu_lam(lam_raw, lam_max), bshape, x.dtype)
        w = nelu_weight(lam, x, axis, bool(self.rms_scaled))
        return nelu(
            x,
            w,
            axis=axis,
            two_sided=bool(self.two_sided),
            method=self.method,
            iters=int(self.iters),
        )


class DiTAC(nn.Module):
    """Linen :class:`actfx.nn.DiTAC`: ``theta`` drawn from the CPA prior with the ``"params"``
    key; :meth:`regularizer` gives ``reg_weight * theta^T P theta``
    (``module.apply(variables, method=DiTAC.regularizer)``): add it to your loss.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from actfx.nn.linen import DiTAC
      >>> m = DiTAC(num_features=3)
      >>> x = jnp.ones((2, 3))
      >>> v = m.init(jax.random.key(0), x)
      >>> v["params"]["theta"].shape, m.apply(v, x).shape
      ((3, 9), (2, 3))
      >>> bool(m.apply(v, method=DiTAC.regularizer) > 0)
      True
    """

    num_features: int | None = None
    nc: int = 10
    a: float = -0.5
    b: float = 2.0
    basis: str = "qr"
    method: str = "table"
    table_size: int | None = None
    variant: str = "gelu_cpab"
    init_length_scale: float = 5.0
    init_output_variance: float = 2.0
    init_kernel: Kernel = "difw"
    reg_length_scale: float = 5.0
    reg_output_variance: float = 2.0
    reg_kernel: Kernel = "ditac"
    reg_weight: float = 0.1
    channel_axis: int = -1
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32

    def __post_init__(self):
        validate_ditac_args(
            self.num_features,
            self.nc,
            self.a,
            self.b,
            self.basis,
            self.method,
            self.table_size,
            self.variant,
            self.reg_weight,
            self.channel_axis,
            self.dtype,
            self.param_dtype,
        )
        validate_ditac_priors(
            self.nc,
            self.basis,
            self.init_length_scale,
            self.init_output_variance,
            self.init_kernel,
            self.reg_length_scale,
            self.reg_output_variance,
            self.reg_kernel,
            self.reg_weight,
            self.param_dtype,
        )
        super().__post_init__()

    @property
    def tess(self) -> cpab.Tessellation:
        return tessellation(int(self.nc), self.basis)

    def _theta(self):
        def init(key):
            return cpab.sample_theta(
                key,
                self.tess,
                self.num_features,
                length_scale=self.init_length_scale,
                output_variance=self.init_output_variance,
                kernel=self.init_kernel,
                dtype=self.param_dtype,
            )

        return self.param("theta", init)

    @nn.compact
    def __call__(self, x):
        return ditac_apply(
            x,
            self._theta(),
            self.tess,
            self.num_features,
            int(self.channel_axis),
            self.dtype,
            a=float(self.a),
            b=float(self.b),
            method=self.method,
            table_size=resolve_table_size(self.table_size, self.num_features),
            variant=self.variant,
        )

    def regularizer(self):
        """``reg_weight * theta^T P theta`` (float32), as :meth:`actfx.nn.DiTAC.regularizer`."""
        import actfx

        precision = cpab.precision_matrix(
            self.tess,
            length_scale=self.reg_length_scale,
            output_variance=self.reg_output_variance,
            kernel=self.reg_kernel,
        )
        wide = jnp.promote_types(self.param_dtype, jnp.float32)
        theta = jnp.asarray(self.variables["params"]["theta"]).astype(wide)
        return float(self.reg_weight) * actfx.ditac_regularizer(
            theta, jnp.asarray(jnp.asarray(precision, self.param_dtype), wide)
        )


class BiasedReLU(nn.Module):
    """Linen :class:`actfx.nn.BiasedReLU`: ``relu(x - b)`` (or two-sided) with a learned ``bias``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from actfx.nn.linen import BiasedReLU
      >>> m = BiasedReLU(2, bias_init=0.5)
      >>> x = jnp.array([[1.0, -1.0]])
      >>> m.apply(m.init(jax.random.key(0), x), x)
      Array([[0.5, 0. ]], dtype=float32)
    """

    num_features: int | None = None
    bias_init: float = 0.1
    two_sided: bool = False
    channel_axis: int = -1
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32

    def __post_init__(self):
        validate_biased_relu_args(
            self.num_features,
            self.bias_init,
            self.two_sided,
            self.channel_axis,
            self.dtype,
            self.param_dtype,
        )
        super().__post_init__()

    @nn.compact
    def __call__(self, x):
        shape = () if self.num_features is None else (int(self.num_features),)
        bias = self.param("bias", _const(float(self.bias_init), self.param_dtype), shape)
        x = as_input(x, self.dtype)
        b = broadcast_param(
            bias, channel_param_shape(x, self.num_features, self.channel_axis), x.dtype
        )
        if self.two_sided:
            return jnp.sign(x) * jax.nn.relu(jnp.abs(x) - b)
        return jax.nn.relu(x - b)
