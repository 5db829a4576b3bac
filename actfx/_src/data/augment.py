"""Standard CIFAR augmentation in JAX: zero-pad, random crop back to size, random h-flip."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from actfx._src._checks import is_concrete


def _check_images(images) -> None:
    if jnp.ndim(images) != 4:
        raise ValueError(f"images must have rank 4 (N, H, W, C), got shape {jnp.shape(images)}")


def _check_pad(pad) -> int:
    if isinstance(pad, (bool, np.bool_)) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise ValueError(f"pad must be an int >= 0, got {pad!r}")
    return int(pad)


def _check_offsets(name: str, off, n: int, pad: int) -> None:
    """``off`` must be ``(n,)`` integers; concrete values must lie in ``[0, 2 pad]``
    (``dynamic_slice`` would clamp any other offset silently)."""
    if not isinstance(off, jax.Array):  # a list / NumPy array (a tracer is a jax.Array)
        off = np.asarray(off)
    if off.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one offset per image), got {off.shape}")
    if not jnp.issubdtype(off.dtype, jnp.integer):
        raise ValueError(f"{name} must hold integers, got dtype {off.dtype}")
    if is_concrete(off):
        a = np.asarray(off)
        bad = np.flatnonzero((a < 0) | (a > 2 * pad))
        if bad.size:
            raise ValueError(
                f"{name} must lie in [0, 2*pad] = [0, {2 * pad}]; {name}[{bad[0]}] is "
                f"{int(a[bad[0]])}"
            )


def crop_flip(
    images: ArrayLike, dy: ArrayLike, dx: ArrayLike, flip: ArrayLike, *, pad: int = 4
) -> Array:
    r"""Deterministic crop+flip: the window at offset ``(dy, dx)`` of the zero-padded image.

    For image ``i``, with ``P`` the zero-padded image (``pad`` pixels on each side),

    .. math::
        y_i[h, w] = P_i[dy_i + h,\ dx_i + w'], \qquad
        w' = W - 1 - w \text{ if } \mathrm{flip}_i \text{ else } w

    so ``dy = dx = pad`` and ``flip = False`` is the identity.

    Args:
      images: ``(N, H, W, C)``.
      dy, dx: ``(N,)`` integer offsets in ``[0, 2*pad]``.
      flip: ``(N,)`` booleans, mirror left-right when true.
      pad: zero padding on each spatial side, ``>= 0``.

    Returns:
      ``(N, H, W, C)`` array with the dtype of ``images``.

    Raises:
      ValueError: ``images`` not rank 4, a bad ``pad``, ``dy``/``dx``/``flip`` not of
        shape ``(N,)``, non-integer offsets, or (concrete) offsets outside ``[0, 2*pad]``
        (under ``jit`` they cannot be checked and are clamped into range).

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.arange(4.0).reshape(1, 2, 2, 1)
      >>> crop_flip(x, jnp.array([1]), jnp.array([1]), jnp.array([True]), pad=1)[0, ..., 0]
      Array([[1., 0.],
             [3., 2.]], dtype=float32)
    """
    _check_images(images)
    pad = _check_pad(pad)
    images = jnp.asarray(images)
    n, h, w, c = images.shape
    _check_offsets("dy", dy, n, pad)
    _check_offsets("dx", dx, n, pad)
    if np.shape(flip) != (n,):
        raise ValueError(f"flip must have shape ({n},) (one per image), got {np.shape(flip)}")
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))

    def one(img, oy, ox):
        return jax.lax.dynamic_slice(img, (oy, ox, 0), (h, w, c))

    crops = jax.vmap(one)(padded, jnp.asarray(dy, jnp.int32), jnp.asarray(dx, jnp.int32))
    flip = jnp.asarray(flip, bool)[:, None, None, None]
    return jnp.where(flip, crops[:, :, ::-1, :], crops)


def random_crop_flip(key: Array, images: ArrayLike, *, pad: int = 4, flip: bool = True) -> Array:
    """Random crop (offsets uniform in ``[0, 2*pad]``) and random horizontal flip (p = 1/2).

    The standard CIFAR augmentation of He et al. (2016), as torchvision's
    ``RandomCrop(size, padding=pad)`` + ``RandomHorizontalFlip()``; see :func:`crop_flip`
    for the formula. Pure and jit-able: the same ``key`` gives the same batch.

    Args:
      key: a ``jax.random`` key.
      images: ``(N, H, W, C)``.
      pad: zero padding on each side, ``>= 0``.
      flip: whether to flip at random.

    Returns:
      ``(N, H, W, C)`` augmented images.

    References:
      K. He, X. Zhang, S. Ren, J. Sun, *Deep Residual Learning for Image Recognition*,
      CVPR 2016 (Sec. 4.2).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> x = jnp.ones((2, 8, 8, 3))
      >>> random_crop_flip(jax.random.key(0), x).shape
      (2, 8, 8, 3)
    """
    _check_images(images)
    pad = _check_pad(pad)
    if not isinstance(flip, (bool, np.bool_)):
        raise ValueError(f"flip must be a bool, got {flip!r}")
    n = jnp.shape(images)[0]
    ky, kx, kf = jax.random.split(key, 3)
    dy = jax.random.randint(ky, (n,), 0, 2 * pad + 1)
    dx = jax.random.randint(kx, (n,), 0, 2 * pad + 1)
    fl = jax.random.bernoulli(kf, 0.5, (n,)) if flip else jnp.zeros((n,), bool)
    dy, dx, fl = (_sharded_like_batch(v, images) for v in (dy, dx, fl))
    return crop_flip(images, dy, dx, fl, pad=pad)


def _sharded_like_batch(v: Array, images: ArrayLike) -> Array:
    """``v`` (one value per example) split over the mesh axes that split ``images``' batch.

    Under explicit sharding (``AxisType.Explicit`` + ``jax.set_mesh``) the per-example offsets
    drawn from a key are replicated, and an explicit ``vmap`` over a batch-sharded image refuses
    them; resharding them like the batch keeps every example's crop on its own device. A no-op
    outside an explicit mesh."""
    sharding = getattr(jax.typeof(images), "sharding", None)
    spec = getattr(sharding, "spec", None)
    mesh = getattr(sharding, "mesh", None)
    if not spec or spec[0] is None or mesh is None or not mesh.explicit_axes:
        return v
    return jax.sharding.reshard(v, jax.sharding.PartitionSpec(spec[0]))
