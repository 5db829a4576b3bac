"""Grayscale images for denoising: offline scikit-image photos, BSD68/BSD400 PNG folders.

Nothing here downloads. ``load_offline_images`` reads only images bundled inside the
scikit-image wheel (no ``pooch`` cache); ``load_png_folder`` / ``load_bsd`` read the real
Berkeley sets from a local directory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

# Natural photos bundled in the scikit-image wheel (checked to load offline, skimage 0.26).
# The test split is the classic denoising set; the train split is everything else natural.
OFFLINE_TEST = ("camera", "astronaut", "coins", "moon")
OFFLINE_TRAIN = (
    "coffee",
    "chelsea",
    "rocket",
    "clock",
    "hubble_deep_field",
    "immunohistochemistry",
    "brick",
    "grass",
    "gravel",
)
_IMAGE_SUFFIXES = (".png", ".PNG")


def to_gray_float(image: np.ndarray) -> np.ndarray:
    """``uint8``/``bool``/float, gray or RGB(A) -> float32 gray image in [0, 1], ``(H, W)``."""
    img = np.asarray(image)
    if img.ndim == 3:
        img = img[..., :3]
        if img.dtype.kind in "ub":
            img = img.astype(np.float64) / (255.0 if img.dtype == np.uint8 else 1.0)
        img = img @ np.array([0.2125, 0.7154, 0.0721])  # ITU-R 709 luma, as skimage.rgb2gray
    elif img.ndim != 2:
        raise ValueError(f"image must be (H, W) or (H, W, 3|4), got shape {img.shape}")
    if img.dtype == np.uint8:
        img = img / 255.0
    elif img.dtype == np.uint16:
        img = img / 65535.0
    return np.clip(img.astype(np.float32), 0.0, 1.0)


def load_offline_images(names: Sequence[str] = OFFLINE_TEST) -> list[np.ndarray]:
    """Load scikit-image sample photos by name as float32 gray images in [0, 1].

    Args:
      names: names of ``skimage.data`` functions, e.g. :data:`OFFLINE_TRAIN`,
        :data:`OFFLINE_TEST`.

    Returns:
      A list of ``(H, W)`` float32 arrays.

    Raises:
      ValueError: an unknown name.
      FileNotFoundError: an image that is not bundled in the installed wheel (it would
        need a download).

    Example:
      >>> from actfx.data.denoising import load_offline_images
      >>> [im.shape for im in load_offline_images(["camera", "coins"])]
      [(512, 512), (303, 384)]
    """
    import skimage.data

    out = []
    for name in names:
        fn = getattr(skimage.data, name, None)
        if fn is None or not callable(fn):
            raise ValueError(f"names: {name!r} is not a scikit-image sample image")
        try:
            img = fn()
        except (ModuleNotFoundError, OSError) as err:
            raise FileNotFoundError(
                f"skimage.data.{name} is not bundled in the installed scikit-image wheel "
                f"(it needs a download, which actfx never does): {err}"
            ) from None
        out.append(to_gray_float(img))
    return out


def load_png_folder(folder: str | Path) -> list[np.ndarray]:
    """Read every ``*.png`` in ``folder`` (sorted by name) as a float32 gray image in [0, 1].

    Raises:
      FileNotFoundError: ``folder`` does not exist or holds no PNG file.
      ValueError: a file that is not a readable image.
    """
    import skimage.io

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"expected a folder of PNG images at {folder}, it does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix in _IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"expected PNG images (*.png) in {folder}, found none")
    out = []
    for p in files:
        try:
            out.append(to_gray_float(skimage.io.imread(p)))
        except Exception as err:  # noqa: BLE001 - any reader failure is a malformed file
            raise ValueError(f"could not read image {p}: {err}") from None
    return out


def load_bsd(data_dir: str | Path, *, train: str = "BSD400", test: str = "BSD68"
             ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Berkeley denoising sets from ``data_dir/BSD400`` (train) and ``data_dir/BSD68`` (test).

    Each sub-folder holds PNG images (colour ones are converted to gray).

    Raises:
      FileNotFoundError: naming the missing folder (``data_dir/BSD400`` or ``.../BSD68``).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"--data-dir {data_dir} does not exist; expected {data_dir}/{train}/*.png and "
            f"{data_dir}/{test}/*.png"
        )
    return load_png_folder(data_dir / train), load_png_folder(data_dir / test)


def random_patches(images: Sequence[np.ndarray], size: int, num: int,
                   rng: np.random.Generator) -> np.ndarray:
    """``num`` random ``size x size`` patches, images drawn in proportion to their area.

    Returns:
      float32 array ``(num, size, size)``.

    Example:
      >>> import numpy as np
      >>> from actfx.data.denoising import random_patches
      >>> random_patches([np.zeros((20, 30))], 8, 5, np.random.default_rng(0)).shape
      (5, 8, 8)
    """
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    ok = [im for im in images if im.shape[0] >= size and im.shape[1] >= size]
    if not ok:
        raise ValueError(f"no image is at least {size}x{size}")
    area = np.array([im.shape[0] * im.shape[1] for im in ok], np.float64)
    which = rng.choice(len(ok), size=num, p=area / area.sum())
    out = np.empty((num, size, size), np.float32)
    for j, i in enumerate(which):
        h, w = ok[i].shape
        r, c = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        out[j] = ok[i][r:r + size, c:c + size]
    return out


def extract_patches(image: ArrayLike, size: int, stride: int = 1) -> Array:
    """All ``size x size`` patches of a ``(H, W)`` image at ``stride``, flattened row-major.

    Returns:
      ``(P, size * size)`` with ``P = ((H - size) // stride + 1) * ((W - size) // stride + 1)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from actfx.data.denoising import extract_patches
      >>> extract_patches(jnp.arange(12.0).reshape(3, 4), 2)[:2]
      Array([[0., 1., 4., 5.],
             [1., 2., 5., 6.]], dtype=float32)
    """
    img = jnp.asarray(image)
    if img.ndim != 2 or img.shape[0] < size or img.shape[1] < size:
        raise ValueError(f"image must be (H, W) with H, W >= size={size}, got {img.shape}")
    p = jax.lax.conv_general_dilated_patches(
        img[None, None], (size, size), (stride, stride), "VALID"
    )  # (1, size*size, H', W')
    return p[0].reshape(size * size, -1).T


def fold_patches(patches: ArrayLike, shape: tuple[int, int], size: int, stride: int = 1) -> Array:
    """Inverse of :func:`extract_patches` by averaging: each pixel gets the mean of the
    patch values that cover it (pixels no patch covers get 0).

    Example:
      >>> import jax.numpy as jnp
      >>> from actfx.data.denoising import extract_patches, fold_patches
      >>> img = jnp.arange(12.0).reshape(3, 4)
      >>> bool(jnp.allclose(fold_patches(extract_patches(img, 2), (3, 4), 2), img))
      True
    """
    patches = jnp.asarray(patches)
    zeros = jnp.zeros(shape, patches.dtype)
    _, vjp = jax.vjp(lambda im: extract_patches(im, size, stride), zeros)
    total = vjp(patches)[0]
    count = vjp(jnp.ones_like(patches))[0]
    return jnp.where(count > 0, total / jnp.maximum(count, 1), 0)


def add_gaussian_noise(x: ArrayLike, sigma: float | ArrayLike, key: Array) -> Array:
    """``x + sigma * N(0, 1)`` (no clipping, as in the usual AWGN benchmarks)."""
    x = jnp.asarray(x)
    return x + jnp.asarray(sigma, x.dtype) * jax.random.normal(key, x.shape, x.dtype)


def psnr(clean: ArrayLike, estimate: ArrayLike, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio ``10 log10(range^2 / MSE)`` in dB.

    Example:
      >>> import numpy as np
      >>> from actfx.data.denoising import psnr
      >>> round(psnr(np.zeros(4), np.full(4, 0.1)), 6)
      20.0
    """
    mse = float(np.mean((np.asarray(clean, np.float64) - np.asarray(estimate, np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)
