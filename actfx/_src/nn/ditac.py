"""Flax NNX module for DiTAC: a trainable CPAB activation with a smoothness prior."""

from __future__ import annotations

import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, ArrayLike

import actfx
import actfx.cpab as cpab
from actfx._src._checks import normalize_axes
from actfx._src.cpab.prior import KERNELS, Kernel
from actfx._src.nn._common import (
    as_input,
    check_dtype,
    check_int,
    check_num_features,
    check_real,
    fit_param,
)

DITAC_METHODS = ("exact", "table")

# The functional core's name of the algorithm switch ("method"; "mode" before the rename).
_CORE_METHOD_KW = "method" if "method" in inspect.signature(actfx.ditac).parameters else "mode"


def core_ditac(x, theta, tess, *, a, b, method, table_size, variant):
    """:func:`actfx.ditac` with the algorithm switch passed under the core's name."""
    return actfx.ditac(
        x,
        theta,
        tess,
        a=a,
        b=b,
        table_size=table_size,
        variant=variant,
        **{_CORE_METHOD_KW: method},
    )


@functools.lru_cache(maxsize=64)
def tessellation(nc: int, basis: str) -> cpab.Tessellation:
    """The zero-boundary tessellation of a DiTAC layer (cached: modules hold only
    ``(nc, basis)``, so they pickle and deep-copy)."""
    return cpab.Tessellation(nc, zero_boundary=True, basis=basis)


@functools.lru_cache(maxsize=64)
def _validate_static(nc, basis, a, b, method, table_size, variant) -> None:
    tess = tessellation(nc, basis)
    # The core validates variant / a / b at trace time: an abstract evaluation is enough.
    jax.eval_shape(
        lambda: core_ditac(
            jnp.zeros((1,)),
            jnp.zeros((tess.theta_dim,)),
            tess,
            a=a,
            b=b,
            method=method,
            table_size=table_size,
            variant=variant,
        )
    )


#: Default lookup-table points with one theta per layer (the reference's 2048) and with one
#: theta per channel, where the table is rebuilt for every channel in every call: 64 points
#: keep a per-channel CNN train step near 3x ReLU's on CPU (``benchmarks/ditac_cnn.py``)
#: with an interpolation error of at most ``(b - a) max|T''| / 31752`` (see actfx.ditac).
TABLE_SIZE_PER_LAYER = 2048
TABLE_SIZE_PER_CHANNEL = 64


def resolve_table_size(table_size, num_features) -> int:
    """``table_size``, or its default for the layout when ``None``: 2048 with one theta per
    layer (``num_features=None``), 64 with one per channel."""
    if table_size is None:
        return TABLE_SIZE_PER_LAYER if num_features is None else TABLE_SIZE_PER_CHANNEL
    if check_int("table_size", table_size) < 2:
        raise ValueError(f"table_size must be an int >= 2 or None, got {table_size!r}")
    return int(table_size)


def validate_ditac_args(
    num_features,
    nc,
    a,
    b,
    basis,
    method,
    table_size,
    variant,
    reg_weight,
    channel_axis,
    dtype,
    param_dtype,
):
    """Shared NNX/Linen checks; returns the normalised ``(num_features, a, b, reg_weight)``."""
    num_features = check_num_features(num_features)
    if check_int("nc", nc) < 2:
        raise ValueError(f"nc must be an int >= 2, got {nc!r}")
    if not isinstance(basis, str):
        raise ValueError(f"basis must be a basis name (see actfx.cpab.Tessellation), got {basis!r}")
    if method not in DITAC_METHODS:
        raise ValueError(f"method must be one of {DITAC_METHODS}, got {method!r}")
    table_size = resolve_table_size(table_size, num_features)
    a = check_real("a", a)
    b = check_real("b", b)
    reg_weight = check_real("reg_weight", reg_weight, low=0.0, low_open=False)
    check_int("channel_axis", channel_axis)
    check_dtype("dtype", dtype)
    check_dtype("param_dtype", param_dtype, allow_none=False)
    _validate_static(int(nc), basis, a, b, method, table_size, variant)
    return num_features, a, b, reg_weight


#: Bound on |z| for a standard normal draw of ``jax.random.normal`` in any float dtype
#: (its uniform never reaches +-1; float64's extreme draw is ~8.3 sigma).
_NORMAL_DRAW_BOUND = 8.5


@functools.lru_cache(maxsize=64)
def _validate_priors(
    nc, basis, init_ls, init_var, init_kernel, reg_ls, reg_var, reg_kernel, reg_weight, pd_name
) -> None:
    tess = tessellation(nc, basis)
    dt = jnp.dtype(pd_name)
    for which, ls, var, kernel in (
        ("init", init_ls, init_var, init_kernel),
        ("reg", reg_ls, reg_var, reg_kernel),
    ):
        names = f"{which}_length_scale={ls!r}, {which}_output_variance={var!r}"
        try:
            cov = cpab.prior_covariance(tess, length_scale=ls, output_variance=var, kernel=kernel)
            if not np.all(np.isfinite(cov)):
                raise FloatingPointError("a non-finite covariance")
            if which == "init":
                w, v = np.linalg.eigh(cov)
                root = v * np.sqrt(np.clip(w, 0.0, None))
                # theta = z @ root.T: every entry (and partial sum) is below this bound
                big = _NORMAL_DRAW_BOUND * float(np.abs(root).sum(axis=1).max())
                what = "the initial theta"
            else:
                big = float(
                    np.abs(
                        cpab.precision_matrix(
                            tess, length_scale=ls, output_variance=var, kernel=kernel
                        )
                    ).max()
                )
                what = "the prior precision"
        except (ValueError, OverflowError, FloatingPointError, np.linalg.LinAlgError) as e:
            raise ValueError(f"{names}: the {which} prior cannot be computed ({e})") from None
        if not np.isfinite(big):
            raise ValueError(f"{names}: the {which} prior cannot be computed (overflow)")
        try:
            fit_param(f"{which}_output_variance", var, big, dt)
        except ValueError:
            raise ValueError(
                f"{names} (kernel {kernel!r}) give {what} entries up to {big:.4g}, which "
                f"overflow param_dtype={dt.name} (largest finite {float(jnp.finfo(dt).max):.4g})"
            ) from None
    if not np.isfinite(np.float32(reg_weight)):
        raise ValueError(f"reg_weight={reg_weight!r} overflows float32 (the regulariser's dtype)")


def validate_ditac_priors(
    nc,
    basis,
    init_length_scale,
    init_output_variance,
    init_kernel,
    reg_length_scale,
    reg_output_variance,
    reg_kernel,
    reg_weight,
    param_dtype,
) -> None:
    """Shared NNX/Linen construction-time checks of the init and regulariser priors (call
    after :func:`validate_ditac_args`): each argument is a finite positive real or a known
    kernel, and the sampled theta and the precision fit ``param_dtype``."""
    args = {}
    for name, val in (
        ("init_length_scale", init_length_scale),
        ("init_output_variance", init_output_variance),
        ("reg_length_scale", reg_length_scale),
        ("reg_output_variance", reg_output_variance),
    ):
        args[name] = check_real(name, val, low=0.0)
    for name, val in (("init_kernel", init_kernel), ("reg_kernel", reg_kernel)):
        if not isinstance(val, str) or val not in KERNELS:
            raise ValueError(f"{name} must be one of {KERNELS}, got {val!r}")
    _validate_priors(
        int(nc),
        basis,
        args["init_length_scale"],
        args["init_output_variance"],
        init_kernel,
        args["reg_length_scale"],
        args["reg_output_variance"],
        reg_kernel,
        float(reg_weight),
        jnp.dtype(param_dtype).name,
    )


def ditac_apply(
    x, theta, tess, num_features, channel_axis, dtype, *, a, b, method, table_size, variant
):
    """Shared NNX/Linen forward: channel checks, ``channel_axis`` and ``dtype`` handling."""
    x = as_input(x, dtype)
    if dtype is not None:
        theta = theta.astype(dtype)
    if num_features is None:
        return core_ditac(
            x, theta, tess, a=a, b=b, method=method, table_size=table_size, variant=variant
        )
    if x.ndim == 0:
        raise ValueError(
            f"x must have num_features={num_features} channels on axis "
            f"channel_axis={channel_axis}, got a scalar"
        )
    ax = normalize_axes("channel_axis", channel_axis, x.ndim)[0]
    if x.shape[ax] != num_features:
        raise ValueError(
            f"x must have num_features={num_features} channels on axis "
            f"channel_axis={channel_axis}, got shape {x.shape}"
        )
    y = core_ditac(
        jnp.moveaxis(x, ax, -1),
        theta,
        tess,
        a=a,
        b=b,
        method=method,
        table_size=table_size,
        variant=variant,
    )
    return jnp.moveaxis(y, -1, ax)


class PriorPrecision(nnx.Variable):
    """A fixed (non-trainable) prior precision matrix; not an ``nnx.Param``, so optimizers
    built with ``wrt=nnx.Param`` leave it alone."""


class DiTAC(nnx.Module):
    r"""DiTAC activation ``T~(x) Phi(x)`` (:func:`actfx.ditac`) with a trainable theta.

    theta is an ``nnx.Param`` of shape ``(d,)`` (``num_features=None``: one transform for
    the layer, as in the reference) or ``(num_features, d)`` (one per channel, the
    ``channel_axis`` of ``x``), ``d = nc - 1``, sampled at construction from the CPA prior
    ``N(0, Sigma(init_length_scale, init_output_variance, init_kernel))`` with a key from
    ``rngs.params()``. theta is unconstrained (every real theta is a valid CPA field), so
    there is no constrained property to read.

    The smoothness regulariser ``reg_weight * theta^T P theta`` with ``P`` the precision of
    the prior ``(reg_length_scale, reg_output_variance, reg_kernel)`` is :meth:`regularizer`
    (the :class:`actfx.nn.HasRegularizer` protocol): ``actfx.train.fit`` adds
    :func:`actfx.nn.regularization` of the model to the loss; add it yourself in your own
    loop.

    Defaults follow the reference implementation: nc = 10, [a, b] = [-0.5, 2], basis qr,
    theta initialised from difw's prior (``kernel="difw"``, length scale 5, variance 2)
    and regularised with DiTAC's own precision (``kernel="ditac"``, length scale 5,
    variance 2, weight 0.1), lookup-table method with 2048 points per layer. With one theta
    per channel the table has 64 points by default (``table_size=None``): it is rebuilt
    for every channel in every call, and 2048 points per channel made a CNN train step
    ~18x ReLU's on CPU; 64 points bring it to 2.7-3.0x (``benchmarks/ditac_cnn.py``) with an
    interpolation error of at most ``(b - a) max|T''| / (8 * 63**2)`` (7.9e-5 max|T''| on
    [-0.5, 2]), at or below the reference's own table error (nearest of 2048 points:
    ``(b - a) max|T'| / 4094``). Pass ``table_size=2048`` to get the per-layer table per
    channel, or ``method="exact"`` for no interpolation error (slower on CPU).

    The module keeps only static configuration (``nc``, ``basis``, ...) and rebuilds its
    :class:`actfx.cpab.Tessellation` (:attr:`tess`, cached), so models holding DiTAC can be
    pickled and ``copy.deepcopy``-ed.

    Args:
      num_features: ``None`` (per-layer theta) or the number of channels (per-channel).
      nc: number of CPA cells (>= 2).
      a, b: the interval where the CPAB transform acts.
      basis: CPA basis name (see :class:`actfx.cpab.Tessellation`).
      method: ``"table"`` (default, fast) or ``"exact"`` (see :func:`actfx.ditac`).
      table_size: lookup-table points (>= 2); ``None``: 2048 per layer, 64 per channel.
      variant: see :func:`actfx.ditac`.
      init_length_scale, init_output_variance, init_kernel: prior used to sample theta.
      reg_length_scale, reg_output_variance, reg_kernel: prior whose precision regularises.
      reg_weight: multiplier of ``theta^T P theta`` in :meth:`regularizer` (>= 0).
      channel_axis: the channel axis of ``x`` (per-channel only; default last).
      dtype: computation dtype. ``None`` (default) leaves it to :func:`actfx.ditac`: the
        transform is computed in ``result_type(x, theta)`` (float32 for a bfloat16 ``x``:
        the CPAB integration is never run in 16-bit unless asked) and the result has
        ``x``'s dtype. A dtype casts ``x`` and theta to it.
      param_dtype: storage dtype of theta and the precision (default float32).
      rngs: ``nnx.Rngs`` (required); ``rngs.params()`` draws the initial theta.

    Raises:
      ValueError: a bad ``num_features``/``nc``/``basis``/``method``/``table_size``/
        ``variant``/interval (``a < b``)/``reg_weight``; a length scale or variance that is
        not a finite positive real, an unknown kernel, or a prior whose sampled theta or
        precision would overflow ``param_dtype`` (e.g. ``init_output_variance=1e6`` in
        float16); ``x`` without ``num_features`` channels on ``channel_axis``.

    Reference:
      I. Chelly, S. Finder, S. Ifergane, O. Freifeld, *Trainable Highly-expressive
      Activation Functions*, ECCV 2024, arXiv:2407.07564.

    Example:
      >>> import copy, pickle
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from actfx.nn import DiTAC
      >>> act = DiTAC(rngs=nnx.Rngs(0))
      >>> act.theta.shape, act(jnp.linspace(-3, 3, 7)).shape
      ((9,), (7,))
      >>> bool(act.regularizer() > 0)
      True
      >>> DiTAC(4, rngs=nnx.Rngs(0)).theta.shape
      (4, 9)
      >>> bool(jnp.all(pickle.loads(pickle.dumps(act)).theta[...] == act.theta[...]))
      True
      >>> copy.deepcopy(act).tess == act.tess
      True
    """

    def __init__(
        self,
        num_features: int | None = None,
        *,
        nc: int = 10,
        a: float = -0.5,
        b: float = 2.0,
        basis: str = "qr",
        method: str = "table",
        table_size: int | None = None,
        variant: str = "gelu_cpab",
        init_length_scale: float = 5.0,
        init_output_variance: float = 2.0,
        init_kernel: Kernel = "difw",
        reg_length_scale: float = 5.0,
        reg_output_variance: float = 2.0,
        reg_kernel: Kernel = "ditac",
        reg_weight: float = 0.1,
        channel_axis: int = -1,
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        num_features, a, b, reg_weight = validate_ditac_args(
            num_features,
            nc,
            a,
            b,
            basis,
            method,
            table_size,
            variant,
            reg_weight,
            channel_axis,
            dtype,
            param_dtype,
        )
        validate_ditac_priors(
            nc,
            basis,
            init_length_scale,
            init_output_variance,
            init_kernel,
            reg_length_scale,
            reg_output_variance,
            reg_kernel,
            reg_weight,
            param_dtype,
        )
        if not isinstance(rngs, nnx.Rngs):
            raise TypeError(f"rngs must be an nnx.Rngs (theta is drawn at random), got {rngs!r}")
        self.num_features = num_features
        self.nc, self.basis = int(nc), basis
        self.a, self.b = a, b
        self.method, self.variant = method, variant
        self.table_size = resolve_table_size(table_size, num_features)
        self.reg_weight = reg_weight
        self.channel_axis = int(channel_axis)
        self.dtype = dtype
        self.param_dtype = param_dtype
        tess = self.tess
        self.theta = nnx.Param(
            cpab.sample_theta(
                rngs.params(),
                tess,
                num_features,
                length_scale=init_length_scale,
                output_variance=init_output_variance,
                kernel=init_kernel,
                dtype=param_dtype,
            )
        )
        precision = cpab.precision_matrix(
            tess,
            length_scale=reg_length_scale,
            output_variance=reg_output_variance,
            kernel=reg_kernel,
        )
        self.precision = PriorPrecision(jnp.asarray(precision, param_dtype))

    @property
    def tess(self) -> cpab.Tessellation:
        """The zero-boundary :class:`actfx.cpab.Tessellation` (rebuilt from ``nc``, ``basis``)."""
        return tessellation(self.nc, self.basis)

    def regularizer(self) -> Array:
        """``reg_weight * theta^T P theta`` (summed over channels), float32: add it to the loss."""
        theta = self.theta[...].astype(jnp.promote_types(self.param_dtype, jnp.float32))
        return self.reg_weight * actfx.ditac_regularizer(theta, self.precision[...])

    def __call__(self, x: ArrayLike) -> Array:
        return ditac_apply(
            x,
            self.theta[...],
            self.tess,
            self.num_features,
            self.channel_axis,
            self.dtype,
            a=self.a,
            b=self.b,
            method=self.method,
            table_size=self.table_size,
            variant=self.variant,
        )


def ditac_penalty(model: nnx.Module) -> Array:
    """Sum of :meth:`DiTAC.regularizer` over every DiTAC module inside ``model`` (0 if none).

    :func:`actfx.nn.regularization` sums every module's regulariser (DiTAC's included); use
    this one to read the DiTAC part alone.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from actfx.nn import DiTAC, ditac_penalty
      >>> act = DiTAC(rngs=nnx.Rngs(0))
      >>> bool(jnp.allclose(ditac_penalty(act), act.regularizer()))
      True
    """
    total = jnp.zeros((), jnp.float32)
    for _, m in nnx.iter_graph(model):
        if isinstance(m, DiTAC):
            total = total + m.regularizer()
    return total
