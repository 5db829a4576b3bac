"""The CIFAR-C common corruptions (noise, blur, contrast, pixelate, JPEG) at 5 severities.

Eight of the corruptions of Hendrycks & Dietterich's CIFAR-10-C, with their severity
parameters, re-implemented in JAX (jit-able; JPEG goes through Pillow and is not). Images
are NHWC floats in ``[0, 1]``; every corruption clips its output to ``[0, 1]`` and keeps the
input's shape and dtype. Random corruptions take an explicit PRNG key (``corrupt`` takes an
int seed or a key), so a corrupted test set is reproducible.

The noise is drawn independently per pixel *and channel* (as ``np.random`` did on the
HWC array in the original code); blur, contrast and pixelation act on each image and
channel separately.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import partial
from typing import cast

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from actfx._src._checks import (
    check_floating,
    check_int_scalar,
    check_positive_real,
    is_concrete,
)
from actfx._src.data._optional import require

#: Severity parameters 1..5 of each corruption (CIFAR-10-C, Hendrycks & Dietterich 2019).
CORRUPTION_PARAMS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),  # noise std
    "shot_noise": (500.0, 250.0, 100.0, 75.0, 50.0),  # Poisson photons per unit intensity
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),  # salt-and-pepper fraction
    "speckle_noise": (0.06, 0.10, 0.12, 0.16, 0.20),  # multiplicative noise std
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),  # blur sigma in pixels
    "contrast": (0.75, 0.50, 0.40, 0.30, 0.15),  # contrast factor
    "pixelate": (0.95, 0.90, 0.85, 0.75, 0.65),  # downscale factor
    "jpeg_compression": (80, 65, 58, 50, 40),  # JPEG quality
}

# ----------------------------------------------------------------------------- checks


def _check_severity(severity) -> int:
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)):
        raise ValueError(f"severity must be an int in 1..5, got {severity!r}")
    if not 1 <= int(severity) <= 5:
        raise ValueError(f"severity must be an int in 1..5, got {severity!r}")
    return int(severity)


def _check_images(images) -> Array:
    """NHWC floating images in [0, 1] (the value check is skipped for tracers)."""
    if np.ndim(images) != 4:
        raise ValueError(
            f"images must be a batch of NHWC images (rank 4), got shape {np.shape(images)}"
        )
    check_floating("images", images)
    if is_concrete(images):
        arr = np.asarray(images, dtype=np.float32) if np.size(images) else np.zeros(1)
        lo, hi = float(np.min(arr)), float(np.max(arr))
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0.0 or hi > 1.0:
            raise ValueError(f"images must have finite values in [0, 1], got range [{lo}, {hi}]")
    return jnp.asarray(images)


def _as_key(seed) -> Array:
    """A PRNG key from an int seed (or a key, returned as is)."""
    if isinstance(seed, bool):
        raise ValueError(f"seed must be an int or a jax PRNG key, got {seed!r}")
    if isinstance(seed, (int, np.integer)):
        return jax.random.key(int(seed))
    if isinstance(seed, jax.Array) and (
        jnp.issubdtype(seed.dtype, jax.dtypes.prng_key) or seed.shape == (2,)
    ):
        return seed
    raise ValueError(f"seed must be an int or a jax PRNG key, got {seed!r}")


def _compute_dtype(x: Array):
    """Work in at least float32 (bf16/f16 inputs are cast back at the end)."""
    return jnp.promote_types(x.dtype, jnp.float32)


# ----------------------------------------------------------------------------- noise


@jax.jit
def _gaussian_noise(x, std, key):
    ct = _compute_dtype(x)
    y = x.astype(ct) + std * jax.random.normal(key, x.shape, ct)
    return jnp.clip(y, 0, 1).astype(x.dtype)


@jax.jit
def _shot_noise(x, rate, key):
    ct = _compute_dtype(x)
    counts = jax.random.poisson(key, x.astype(ct) * rate, x.shape)
    return jnp.clip(counts.astype(ct) / rate, 0, 1).astype(x.dtype)


@jax.jit
def _impulse_noise(x, amount, key):
    k_flip, k_salt = jax.random.split(key)
    flip = jax.random.uniform(k_flip, x.shape) < amount
    salt = jax.random.uniform(k_salt, x.shape) < 0.5
    return jnp.where(flip, salt.astype(x.dtype), x)


@jax.jit
def _speckle_noise(x, std, key):
    ct = _compute_dtype(x)
    xc = x.astype(ct)
    y = xc + xc * std * jax.random.normal(key, x.shape, ct)
    return jnp.clip(y, 0, 1).astype(x.dtype)


def gaussian_noise(images: ArrayLike, severity: int = 1, *, key: Array) -> Array:
    r"""Additive Gaussian noise: :math:`\mathrm{clip}(x + \sigma\,\varepsilon, 0, 1)`.

    :math:`\varepsilon \sim \mathcal N(0, 1)` i.i.d. per pixel and channel; :math:`\sigma`
    = 0.04, 0.06, 0.08, 0.09, 0.10 for severities 1..5.

    Args:
      images: ``(N, H, W, C)`` floats in ``[0, 1]``.
      severity: 1..5.
      key: a JAX PRNG key.

    Returns:
      Corrupted images, same shape and dtype.

    References:
      Hendrycks & Dietterich, ICLR 2019 (arXiv:1903.12261).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> y = gaussian_noise(jnp.full((2, 4, 4, 3), 0.5), 3, key=jax.random.key(0))
      >>> y.shape, bool(jnp.all((y >= 0) & (y <= 1)))
      ((2, 4, 4, 3), True)
    """
    x = _check_images(images)
    return _gaussian_noise(
        x, CORRUPTION_PARAMS["gaussian_noise"][_check_severity(severity) - 1], key
    )


def shot_noise(images: ArrayLike, severity: int = 1, *, key: Array) -> Array:
    r"""Poisson (shot) noise: :math:`\mathrm{clip}(\mathrm{Poisson}(c\,x) / c, 0, 1)`.

    The photon rate :math:`c` = 500, 250, 100, 75, 50 for severities 1..5, so the noise
    variance is :math:`x / c` (signal dependent).

    Args:
      images: ``(N, H, W, C)`` floats in ``[0, 1]``.
      severity: 1..5.
      key: a JAX PRNG key.

    Returns:
      Corrupted images, same shape and dtype.

    References:
      Hendrycks & Dietterich, ICLR 2019 (arXiv:1903.12261).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> y = shot_noise(jnp.zeros((1, 4, 4, 1)), 5, key=jax.random.key(0))
      >>> float(y.max())  # Poisson(0) is always 0
      0.0
    """
    x = _check_images(images)
    return _shot_noise(x, CORRUPTION_PARAMS["shot_noise"][_check_severity(severity) - 1], key)


def impulse_noise(images: ArrayLike, severity: int = 1, *, key: Array) -> Array:
    r"""Salt-and-pepper noise: each value is replaced w.p. :math:`a` by 0 or 1 (even odds).

    The amount :math:`a` = 0.01, 0.02, 0.03, 0.05, 0.07 for severities 1..5; as in
    ``skimage.util.random_noise(mode="s&p")`` each pixel *and channel* flips independently.

    Args:
      images: ``(N, H, W, C)`` floats in ``[0, 1]``.
      severity: 1..5.
      key: a JAX PRNG key.

    Returns:
      Corrupted images, same shape and dtype.

    References:
      Hendrycks & Dietterich, ICLR 2019 (arXiv:1903.12261).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> y = impulse_noise(jnp.full((1, 8, 8, 1), 0.5), 5, key=jax.random.key(0))
      >>> sorted({float(v) for v in y.ravel()} - {0.5}) in ([], [0.0], [1.0], [0.0, 1.0])
      True
    """
    x = _check_images(images)
    return _impulse_noise(x, CORRUPTION_PARAMS["impulse_noise"][_check_severity(severity) - 1], key)


def speckle_noise(images: ArrayLike, severity: int = 1, *, key: Array) -> Array:
    r"""Multiplicative (speckle) noise: :math:`\mathrm{clip}(x + x\,\sigma\,\varepsilon, 0, 1)`.

    :math:`\varepsilon \sim \mathcal N(0, 1)`; :math:`\sigma` = 0.06, 0.10, 0.12, 0.16, 0.20
    for severities 1..5.

    Args:
      images: ``(N, H, W, C)`` floats in ``[0, 1]``.
      severity: 1..5.
      key: a JAX PRNG key.

    Returns:
      Corrupted images, same shape and dtype.

    References:
      Hendrycks & Dietterich, ICLR 2019 (arXiv:1903.12261).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> y = speckle_noise(jnp.zeros((1, 4, 4, 3)), 5, key=jax.random.key(0))
      >>> float(jnp.abs(y).max())  # black stays black
      0.0
    """
    x = _check_images(images)
    return _speckle_noise(x, CORRUPTION_PARAMS["speckle_noise"][_check_severity(severity) - 1], key)


# ----------------------------------------------------------------------------- blur


def gaussian_kernel_1d(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Normalised 1-D Gaussian taps of radius ``int(truncate * sigma + 0.5)`` (as SciPy).

    Raises:
      ValueError: ``sigma`` or ``truncate`` not a finite number > 0.

    Example:
      >>> k = gaussian_kernel_1d(1.0)
      >>> k.shape, round(float(k.sum()), 6)
      ((9,), 1.0)
    """
    sigma = check_positive_real("sigma", sigma)
    truncate = check_positive_real("truncate", truncate)
    radius = int(truncate * sigma + 0.5)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (t / float(sigma)) ** 2)
    return w / w.sum()


@partial(jax.jit, static_argnames=("sigma",))
def _gaussian_blur(x, sigma):
    ct = _compute_dtype(x)
    taps = gaussian_kernel_1d(sigma)
    r = (len(taps) - 1) // 2
    y = x.astype(ct)
    for axis in (1, 2):  # separable: blur H, then W; edges replicated ("nearest")
        pad = [(0, 0)] * 4
        pad[axis] = (r, r)
        yp = jnp.pad(y, pad, mode="edge")
        n = y.shape[axis]
        # taps is never empty, so the sum is an array (never sum()'s start value 0)
        y = cast(
            Array,
            sum(
                float(w) * jax.lax.slice_in_dim(yp, i, i + n, axis=axis) for i, w in enumerate(taps)
            ),
        )
    return jnp.clip(y, 0, 1).astype(x.dtype)


def gaussian_blur(images: ArrayLike, severity: int = 1, *, key: Array | None = None) -> Array:
    r"""Gaussian blur over H and W: :math:`\mathrm{clip}(G_\sigma * x, 0, 1)` per channel.

    :math:`\sigma` = 0.4, 0.6, 0.7, 0.8, 1.0 pixels for severities 1..5; the kernel is
    truncated at :math:`4\sigma` and edges are replicated, like
    ``scipy.ndimage.gaussian_filter(mode="nearest")`` (used by ``skimage.filters.gaussian``
    in the original code). Deterministic: ``key`` is ignored.

    Args:
      images: ``(N, H, W, C)`` floats in ``[0, 1]``.
      severity: 1..5.
      key: unused (accepted so every corruption has the same signature).

    Returns:
      Blurred images, same shape and dtype.

    References:
      Hendrycks & Dietterich, ICLR 2019 (arXiv:1903.12261).

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.zeros((1, 5, 5, 1)).at[0, 2, 2, 0].set(1.0)
      >>> y = gaussian_blur(x, 5)
      >>> round(float(y.sum()), 5), bool(y[0, 2, 2, 0] < 1)
      (1.0, True)
    """
    x = _check_images(images)
    return _gaussian_blur(
        x, float(CORRUPTION_PARAMS["gaussian_blur"][_check_severity(severity) - 1])
    )


# ----------------------------------------------------------------------------- contrast


@jax.jit
def _contrast(x, c):
    ct = _compute_dtype(x)
    xc = x.astype(ct)
    m = jnp.mean(xc, axis=(1, 2), keepdims=True)
    return jnp.clip((xc - m) * c + m, 0, 1).astype(x.dtype)


def contrast(images: ArrayLike, severity: int = 1, *, key: Array | None = None) -> Array:
    r"""Lower contrast: :math:`\mathrm{clip}((x - \bar x)\,c + \bar x, 0, 1)`.

    :math:`\bar x` is the mean of each image and channel over H, W; :math:`c` = 0.75, 0.5,
    0.4, 0.3, 0.15 for severities 1..5. Deterministic: ``key`` is ignored.

    Args:
      images: ``(N, H, W, C)`` floats in ``[0, 1]``.
      severity: 1..5.
      key: unused.

    Returns:
      Images with reduced contrast, same shape and dtype.

    References:
      Hendrycks & Dietterich, ICLR 2019 (arXiv:1903.12261).

    Example:
      >>> import jax.numpy as jnp
      >>> contrast(jnp.array([0.0, 1.0]).reshape(1, 1, 2, 1), 2).ravel()
      Array([0.25, 0.75], dtype=float32)
    """
    x = _check_images(images)
    return _contrast(x, CORRUPTION_PARAMS["contrast"][_check_severity(severity) - 1])


# ----------------------------------------------------------------------------- pixelate


def box_resize_matrix(in_size: int, out_size: int) -> np.ndarray:
    """``(out_size, in_size)`` row-stochastic matrix of Pillow's ``Image.BOX`` resampling.

    Output pixel ``i`` has centre ``(i + 1/2) * s`` in input coordinates (``s = in/out``)
    and averages the input pixels whose centres fall in the box ``(centre - s/2, centre +
    s/2]`` (at least one pixel when upsampling), as Pillow's ``precompute_coeffs``.

    Raises:
      ValueError: a size that is not an int >= 1 (naming it).

    Example:
      >>> box_resize_matrix(4, 2)
      array([[0.5, 0.5, 0. , 0. ],
             [0. , 0. , 0.5, 0.5]])
    """
    in_size = check_int_scalar("in_size", in_size, low=1)
    out_size = check_int_scalar("out_size", out_size, low=1)
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    m = np.zeros((out_size, in_size))
    for i in range(out_size):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        for j in range(lo, hi):
            t = (j - center + 0.5) / filterscale
            m[i, j] = 1.0 if -0.5 < t <= 0.5 else 0.0
        total = m[i].sum()
        if total > 0:
            m[i] /= total
    return m


def pixelate_matrix(size: int, factor: float) -> np.ndarray:
    """``(size, size)`` matrix of BOX-downsampling to ``int(size * factor)`` and back.

    Raises:
      ValueError: ``size`` not an int >= 1, ``factor`` not in ``(0, 1]``.

    Example:
      >>> pixelate_matrix(4, 0.5).sum(axis=1)
      array([1., 1., 1., 1.])
    """
    size = check_int_scalar("size", size, low=1)
    factor = check_positive_real("factor", factor, high=1.0)
    small = max(int(size * factor), 1)
    return box_resize_matrix(small, size) @ box_resize_matrix(size, small)


@partial(jax.jit, static_argnames=("factor",))
def _pixelate(x, factor):
    ct = _compute_dtype(x)
    mh = jnp.asarray(pixelate_matrix(x.shape[1], factor), ct)
    mw = jnp.asarray(pixelate_matrix(x.shape[2], factor), ct)
    y = jnp.einsum("ih,nhwc,jw->nijc", mh, x.astype(ct), mw)
    return jnp.clip(y, 0, 1).astype(x.dtype)


def pixelate(images: ArrayLike, severity: int = 1, *, key: Array | None = None) -> Array:
    r"""Pixelation: BOX-downsample H, W by a factor :math:`f`, then BOX-upsample back.

    The small image is ``int(H f) x int(W f)``; :math:`f` = 0.95, 0.9, 0.85, 0.75, 0.65 for
    severities 1..5 (the original resized 32x32 PIL images with ``Image.BOX`` both ways;
    here in float, with no uint8 rounding in between). Linear in ``x``:
    :math:`y = M_H\,x\,M_W^\top` (see :func:`pixelate_matrix`). Deterministic.

    Args:
      images: ``(N, H, W, C)`` floats in ``[0, 1]``.
      severity: 1..5.
      key: unused.

    Returns:
      Pixelated images, same shape and dtype.

    References:
      Hendrycks & Dietterich, ICLR 2019 (arXiv:1903.12261).

    Example:
      >>> import jax.numpy as jnp
      >>> y = pixelate(jnp.full((1, 32, 32, 3), 0.25), 5)
      >>> y.shape, bool(jnp.allclose(y, 0.25))
      ((1, 32, 32, 3), True)
    """
    x = _check_images(images)
    return _pixelate(x, float(CORRUPTION_PARAMS["pixelate"][_check_severity(severity) - 1]))


# ----------------------------------------------------------------------------- JPEG


def _jpeg_numpy(x: np.ndarray, quality: int) -> np.ndarray:
    Image = require("PIL.Image", purpose="jpeg_compression")

    channels = x.shape[-1]
    if channels not in (1, 3):
        raise ValueError(f"jpeg_compression needs 1 or 3 channels, got images with {channels}")
    u8 = np.round(np.clip(x.astype(np.float32), 0, 1) * 255).astype(np.uint8)
    out = np.empty_like(u8)
    for i, img in enumerate(u8):
        pil = Image.fromarray(img[..., 0], "L") if channels == 1 else Image.fromarray(img, "RGB")
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        dec = np.asarray(Image.open(buf))
        out[i] = dec.reshape(img.shape)
    return out.astype(np.float32) / 255.0


def jpeg_compression(images: ArrayLike, severity: int = 1, *, key: Array | None = None) -> Array:
    """JPEG round trip at quality 80, 65, 58, 50, 40 for severities 1..5 (via Pillow).

    Each image is rounded to uint8, encoded with Pillow's libjpeg (default 4:2:0 chroma
    subsampling for RGB, ``"L"`` mode for one channel) and decoded; the result is
    ``uint8 / 255`` in the input dtype. Deterministic; runs on the host, so it is not
    jit-able (call it outside ``jax.jit``).

    Args:
      images: ``(N, H, W, C)`` floats in ``[0, 1]`` with ``C`` 1 or 3.
      severity: 1..5.
      key: unused.

    Returns:
      Compressed images, same shape and dtype.

    References:
      Hendrycks & Dietterich, ICLR 2019 (arXiv:1903.12261).

    Example:
      >>> import jax.numpy as jnp
      >>> y = jpeg_compression(jnp.full((1, 8, 8, 3), 0.5), 5)
      >>> y.dtype, bool(jnp.allclose(y, 0.5, atol=2 / 255))  # flat images survive JPEG
      (dtype('float32'), True)
    """
    x = _check_images(images)
    if not is_concrete(x):
        raise ValueError("jpeg_compression runs Pillow on the host: call it outside jax.jit")
    if x.shape[-1] not in (1, 3):
        raise ValueError(f"jpeg_compression needs images with 1 or 3 channels, got {x.shape[-1]}")
    quality = CORRUPTION_PARAMS["jpeg_compression"][_check_severity(severity) - 1]
    return jnp.asarray(_jpeg_numpy(np.asarray(x), int(quality))).astype(x.dtype)


# ----------------------------------------------------------------------------- registry

#: name -> ``fn(images, severity, *, key)``, in the order of :data:`CORRUPTION_PARAMS`.
CORRUPTIONS: dict[str, Callable[..., Array]] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise,
    "gaussian_blur": gaussian_blur,
    "contrast": contrast,
    "pixelate": pixelate,
    "jpeg_compression": jpeg_compression,
}


def corrupt(images: ArrayLike, name: str, severity: int, *, seed: int | Array) -> Array:
    """Apply the CIFAR-C corruption ``name`` at ``severity`` (1..5) to NHWC images in [0, 1].

    ``name`` is one of :data:`CORRUPTIONS` (parameters in :data:`CORRUPTION_PARAMS`).
    ``seed`` (an int, or a JAX PRNG key) fixes the noise: the same seed gives the same
    corrupted images. The output is clipped to ``[0, 1]`` with the input's shape and dtype.

    Args:
      images: ``(N, H, W, C)`` floating images with values in ``[0, 1]``.
      name: corruption name, e.g. ``"gaussian_noise"``.
      severity: 1..5.
      seed: int seed or ``jax.random.key``.

    Returns:
      The corrupted images.

    Raises:
      ValueError: unknown ``name``, ``severity`` outside 1..5, images not rank 4, not
        floating, or outside ``[0, 1]``.

    References:
      D. Hendrycks, T. Dietterich, *Benchmarking Neural Network Robustness to Common
      Corruptions and Perturbations*, ICLR 2019 (arXiv:1903.12261).

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.full((2, 8, 8, 3), 0.5)
      >>> a = corrupt(x, "gaussian_noise", 2, seed=0)
      >>> bool(jnp.array_equal(a, corrupt(x, "gaussian_noise", 2, seed=0)))
      True
      >>> corrupt(x, "fog", 1, seed=0)
      Traceback (most recent call last):
      ...
      ValueError: name must be one of gaussian_noise, shot_noise, impulse_noise, speckle_noise,
      gaussian_blur, contrast, pixelate, jpeg_compression; got 'fog'
    """
    if name not in CORRUPTIONS:
        raise ValueError(f"name must be one of {', '.join(CORRUPTIONS)}; got {name!r}")
    severity = _check_severity(severity)
    return CORRUPTIONS[name](images, severity, key=_as_key(seed))
