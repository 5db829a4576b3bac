"""LayerAct: layer-level activation (Yoon & Lim, AAAI 2025)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from actfx._src import layeract_native
from actfx._src._checks import (
    ArgumentTypeError,
    check_floating,
    check_positive,
    check_real_scalar,
    normalize_axes,
)
from actfx._src.layeract_math import forward, layeract_paper

Kind = Literal["silu", "hardsilu"]
_KINDS = ("silu", "hardsilu")
_GRADS = ("autodiff", "paper")
_IMPLEMENTATIONS = (None, "xla", "native")


def validate_layeract_args(
    *, kind: str, alpha: float, ddof: int, grad: str, implementation: str | None = None
) -> None:
    """Raise ``ValueError`` (``TypeError`` for a wrong type) naming a bad static argument
    of :func:`layeract`."""
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    if not isinstance(grad, str) or grad not in _GRADS:
        raise ValueError(f"grad must be one of {_GRADS}, got {grad!r}")
    if implementation not in _IMPLEMENTATIONS:
        raise ValueError(
            f"implementation must be one of {_IMPLEMENTATIONS}, got {implementation!r}"
        )
    check_real_scalar("alpha", alpha)
    check_positive("alpha", alpha, allow_zero=True)
    if isinstance(ddof, bool) or not isinstance(ddof, (int, np.integer)):
        raise ArgumentTypeError(f"ddof must be a non-negative int, got {ddof!r}")
    if ddof < 0:
        raise ValueError(f"ddof must be a non-negative int, got {ddof!r}")


def layeract(
    x: ArrayLike,
    *,
    kind: Kind = "silu",
    alpha: float = 1e-5,
    axis: int | Sequence[int] | None = None,
    ddof: int = 1,
    grad: Literal["autodiff", "paper"] = "autodiff",
    implementation: Literal["xla", "native"] | None = None,
) -> Array:
    r"""Layer-level activation: the gate comes from the layer-normalised input.

    For each sample, with statistics over the layer axes (``axis``):

    .. math::
        \mu = \operatorname{mean}(x), \quad
        \sigma^2 = \frac{1}{N - \mathrm{ddof}} \sum (x - \mu)^2, \quad
        n = \frac{x - \mu}{\sqrt{\sigma^2 + \alpha}}, \quad
        \mathrm{LayerAct}(x) = x \cdot s(n)

    with ``s = sigmoid`` (``kind="silu"``, LA-SiLU) or ``s(n) = clip(n/6 + 1/2, 0, 1)``
    (``kind="hardsilu"``, LA-HardSiLU). The output keeps the un-normalised ``x``; there
    are no parameters and no running statistics, so train and eval behave the same.

    Statistics are computed in at least float32 (bfloat16/float16 inputs are upcast for the
    mean and variance); the output has ``x``'s dtype. They are overflow-safe: each layer
    is scaled by a power of two near ``1/max|x|`` before the mean and variance are formed
    (exact, and the same ``n``), so LayerAct is right up to the dtype's largest value
    (without it float32 returned ``x/2`` above ~1.8e19). They are taken of ``x`` minus one
    of the layer's entries (as the compiled kernel does), so a constant layer has ``n = 0``
    exactly (output ``x/2``) and a spread tiny against the layer's magnitude keeps its
    digits; ``alpha`` is scaled with the layer as a float mantissa times an exact power of
    two, so an ``alpha`` outside float32's range (``1e39``, ``1e-40``) is not rounded to
    inf or 0 first. A constant layer's gradient ``g/2 + x s'(0) (g - mean g)/sqrt(alpha)``
    overflows where ``|x| / sqrt(alpha)`` nears the dtype's max (inf/NaN there, as the
    exact value is out of range).

    Limits and documented exceptions: a constant layer with ``alpha = 0`` (``0/0``, e.g. a
    dead ReLU layer) has ``n = 0``, output ``x/2`` (``s(0) = 1/2`` for both gates) and
    finite gradients (the ``alpha -> 0`` limit). A layer containing NaN or ``+-inf``
    gives NaN for that layer. Subnormal inputs count as 0 where the backend flushes them
    (XLA on CPU does). An empty batch returns an empty array.

    Args:
      x: input with a leading batch axis, e.g. ``(N, H, W, C)`` or ``(N, D)``.
      kind: ``"silu"`` or ``"hardsilu"``.
      alpha: stabiliser added to the variance, ``>= 0`` (paper: 1e-5 CIFAR, 0.1 ImageNet).
      axis: axes of one layer's statistics; ``None`` means every axis but the first.
        (The paper's ``cal_dim_count=k`` is ``axis=tuple(range(-k, 0))``.)
      ddof: delta degrees of freedom of the variance (1, the paper's unbiased estimate).
      grad: ``"autodiff"`` (default) is the exact gradient through mean and variance;
        ``"paper"`` reproduces the reference code's hand-written LayerNorm-style backward,
        which is exact only for ``ddof=0`` and ``alpha -> 0`` (an ``O(1/N + alpha/var)``
        approximation otherwise).
      implementation: ``None`` (default) uses the compiled CPU kernel where it applies and
        pure XLA elsewhere; ``"xla"`` always uses pure XLA; ``"native"`` requires the
        kernel. The kernel (``actfx/_src/csrc/layeract_cpu.cc``, built on first use with the
        system C++ compiler, see :func:`actfx.layeract_native_status`) applies on CPU to
        float32 computation (also bfloat16/float16 inputs, which are computed in float32)
        with the layer axes trailing (``axis=None`` or e.g. ``(-3, -2, -1)``), in
        single-device computations and inside ``shard_map`` (an automatically partitioned
        multi-device ``jit`` lowers the XLA path: the partitioner cannot split a custom
        call; so does ``jax.export``, whose program must run where the kernel is not). It
        does a
        layer's passes while it is in cache, where XLA loops over the whole tensor for each
        pass (ResNet-20 train step on 2 CPU cores: 0.81x ReLU's images/s with XLA, ~0.95x
        with the kernel). It agrees with the XLA path to a few float32 ulps (its statistics
        are accumulated in float64, the XLA path's shifted by a layer entry); ``jit``,
        ``vmap``, ``grad``, ``jvp`` and higher derivatives all work, also inside
        ``shard_map`` and under explicit sharding (derivatives beyond the first use XLA
        formulas). Like
        ``jax.nn.dot_product_attention``'s ``implementation``, ``None`` picks per backend:
        on GPU/TPU both settings compile to the same XLA code.

    Returns:
      Array of the same shape and dtype as ``x``.

    Raises:
      ValueError: unknown ``kind``/``grad``/``implementation``, ``alpha`` negative or
        non-finite, an ``axis`` out of range or repeated, a layer with ``N - ddof <= 0``
        entries, or ``implementation="native"`` where the kernel does not apply (float64,
        layer axes not trailing).
      RuntimeError: ``implementation="native"`` but the kernel could not be built (the
        message gives the compiler's reason).
      TypeError: ``alpha`` not a real number, ``ddof`` not an int, ``axis`` not an int or
        a tuple of ints, ``x`` not floating (these are
        ``ArgumentTypeError``, a ``TypeError`` that is also a ``ValueError``).

    References:
      K. Yoon, J. Lim, *LayerAct: Advanced Activation Mechanism for Robust Inference of
      CNNs*, AAAI 2025, arXiv:2306.04940.

    Example:
      >>> import jax.numpy as jnp, actfx
      >>> x = jnp.array([[-1.0, 0.0, 1.0, 2.0]])
      >>> actfx.layeract(x, kind="silu")
      Array([[-0.2383...,  0. ,  0.5956...,  1.5233...]], dtype=float32)
    """
    validate_layeract_args(
        kind=kind, alpha=alpha, ddof=ddof, grad=grad, implementation=implementation
    )
    check_floating("x", x)
    x = jnp.asarray(x)
    if axis is None:
        if x.ndim < 2:
            raise ValueError(
                f"x must have a batch axis and at least one layer axis when axis=None, "
                f"got shape {x.shape}"
            )
        axes = tuple(range(1, x.ndim))
    else:
        axes = normalize_axes("axis", axis, x.ndim)
    count = 1
    for a in axes:
        count *= x.shape[a]
    if count - ddof <= 0:
        raise ValueError(
            f"axis={axis!r} gives layers of {count} entries, too few for ddof={ddof} "
            f"(need more than {ddof})"
        )
    compute_dtype = jnp.promote_types(x.dtype, jnp.float32)
    xc = x.astype(compute_dtype)
    alpha = float(alpha)
    if implementation != "xla" and _use_native(implementation, compute_dtype, axes, x.ndim):
        k = x.ndim - len(axes)
        rows = xc.reshape(int(np.prod(x.shape[:k], dtype=np.int64)), count)
        out = layeract_native.layeract_rows(rows, kind=kind, alpha=alpha, ddof=ddof, grad=grad)
        return out.reshape(x.shape).astype(x.dtype)
    if grad == "paper":
        # functools.partial(jax.custom_vjp, ...) loses the wrapped function's return type
        out = cast(Array, layeract_paper(xc, kind, axes, alpha, ddof))
    else:
        out = forward(xc, kind, axes, alpha, ddof)[0]
    return out.astype(x.dtype)


def _use_native(implementation, compute_dtype, axes, ndim) -> bool:
    """Whether :func:`layeract` takes the kernel path (raises for an impossible
    ``implementation="native"``)."""
    trailing = axes == tuple(range(ndim - len(axes), ndim)) and len(axes) < ndim
    applies = compute_dtype == jnp.float32 and trailing
    if implementation is None:
        if not applies or jax.default_backend() != "cpu":
            return False
    elif not applies:
        raise ValueError(
            "implementation='native' needs float32 computation (float32/bfloat16/float16 x) "
            f"and trailing layer axes; got dtype {compute_dtype} and axes {axes} of "
            f"{ndim} dimensions (use implementation=None to fall back to XLA)"
        )
    ok, detail = layeract_native.native_status()
    if not ok and implementation == "native":
        raise RuntimeError(
            f"implementation='native': the LayerAct CPU kernel is unavailable: {detail}"
        )
    return ok


def layeract_silu(
    x: ArrayLike,
    *,
    alpha: float = 1e-5,
    axis: int | Sequence[int] | None = None,
    ddof: int = 1,
    grad: Literal["autodiff", "paper"] = "autodiff",
    implementation: Literal["xla", "native"] | None = None,
) -> Array:
    r"""LA-SiLU: :func:`layeract` with the sigmoid gate, ``x * sigmoid(n)``.

    Example:
      >>> import jax.numpy as jnp, actfx
      >>> actfx.layeract_silu(jnp.array([[-1.0, 0.0, 1.0, 2.0]])).shape
      (1, 4)
    """
    return layeract(
        x,
        kind="silu",
        alpha=alpha,
        axis=axis,
        ddof=ddof,
        grad=grad,
        implementation=implementation,
    )


def layeract_hardsilu(
    x: ArrayLike,
    *,
    alpha: float = 1e-5,
    axis: int | Sequence[int] | None = None,
    ddof: int = 1,
    grad: Literal["autodiff", "paper"] = "autodiff",
    implementation: Literal["xla", "native"] | None = None,
) -> Array:
    r"""LA-HardSiLU: :func:`layeract` with the gate ``clip(n/6 + 1/2, 0, 1)``.

    Example:
      >>> import jax.numpy as jnp, actfx
      >>> actfx.layeract_hardsilu(jnp.array([[-1.0, 0.0, 1.0, 2.0]]))
      Array([[-0.3063...,  0. ,  0.5645...,  1.3872...]], dtype=float32)
    """
    return layeract(
        x,
        kind="hardsilu",
        alpha=alpha,
        axis=axis,
        ddof=ddof,
        grad=grad,
        implementation=implementation,
    )
