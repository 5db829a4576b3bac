"""Grayscale images for denoising: offline scikit-image photos, BSD68/BSD400 PNG folders.

Nothing here downloads. ``load_offline_images`` reads only images bundled inside the
scikit-image wheel (no ``pooch`` cache); ``load_png_folder`` / ``load_bsd`` read the real
Berkeley sets from a local directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from actfx._src._checks import check_int_scalar, is_concrete
from actfx._src.data._imageio import read_image, to_unit_float
from actfx._src.data._optional import require

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
_LUMA = np.array([0.2125, 0.7154, 0.0721])  # ITU-R 709, as skimage.color.rgb2gray


def to_gray_float(image: np.ndarray) -> np.ndarray:
    """Gray or RGB(A) pixels of any bit depth -> float32 gray image in [0, 1], ``(H, W)``.

    Integer pixels are divided by their dtype's maximum (``uint8`` / 255, ``uint16`` /
    65535 for 16-bit files, see ``to_unit_float``), ``bool`` is
    0/1, floats are kept; colour is reduced with the ITU-R 709 luma weights (as
    ``skimage.color.rgb2gray``); the result is clipped to ``[0, 1]``.

    Raises:
      ValueError: a shape other than ``(H, W)`` / ``(H, W, 3|4)``, or non-finite floats.
      TypeError: a non-numeric dtype.

    Example:
      >>> import numpy as np
      >>> to_gray_float(np.full((1, 2), 65535, np.uint16)).tolist()
      [[1.0, 1.0]]
      >>> to_gray_float(np.full((1, 1, 3), 32768, np.uint16)).round(3).tolist()
      [[0.5]]
    """
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] in (3, 4):
        rgb = to_unit_float(img[..., :3]).astype(np.float64)
        return np.clip(rgb @ _LUMA, 0.0, 1.0).astype(np.float32)
    if img.ndim != 2:
        raise ValueError(f"image must be (H, W) or (H, W, 3|4), got shape {img.shape}")
    return to_unit_float(img)


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
      ImportError: scikit-image is not installed (the message names ``actfx[data]``).

    Example:
      >>> from actfx.data import load_offline_images
      >>> [im.shape for im in load_offline_images(["camera", "coins"])]
      [(512, 512), (303, 384)]
    """
    skdata = require("skimage.data", purpose="load_offline_images")
    out = []
    for name in names:
        fn = getattr(skdata, name, None)
        if fn is None or not callable(fn):
            raise ValueError(f"names: {name!r} is not a scikit-image sample image")
        try:
            img = fn()
        except (ModuleNotFoundError, OSError) as err:
            raise FileNotFoundError(
                f"skimage.data.{name} is not bundled in the installed scikit-image wheel "
                f"(it needs a download, which actfx never does): {err}"
            ) from None
        out.append(to_gray_float(np.asarray(img)))
    return out


def load_png_folder(folder: str | Path) -> list[np.ndarray]:
    """Read every ``*.png`` in ``folder`` (sorted by name) as a float32 gray image in [0, 1].

    8-bit files are divided by 255, 16-bit ones by 65535 (:func:`read_image`); colour
    files are converted to gray (ITU-R 709 luma).

    Raises:
      FileNotFoundError: ``folder`` does not exist or holds no PNG file.
      ValueError: a file that is not a readable image (truncated, not a PNG), naming it.
      ImportError: Pillow is not installed (the message names ``actfx[data]``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"expected a folder of PNG images at {folder}, it does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix in _IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"expected PNG images (*.png) in {folder}, found none")
    return [read_image(p, mode="gray") for p in files]


def load_bsd(
    data_dir: str | Path, *, train: str = "BSD400", test: str = "BSD68"
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


def random_patches(
    images: Sequence[np.ndarray], size: int, num: int, rng: np.random.Generator
) -> np.ndarray:
    """``num`` random ``size x size`` patches, images drawn in proportion to their area.

    Returns:
      float32 array ``(num, size, size)``.

    Raises:
      ValueError: ``size`` not an int >= 1, ``num`` not an int >= 0, ``rng`` not a
        ``numpy.random.Generator``, an image that is not 2-D, or no image of at least
        ``size x size``.

    Example:
      >>> import numpy as np
      >>> from actfx.data import random_patches
      >>> random_patches([np.zeros((20, 30))], 8, 5, np.random.default_rng(0)).shape
      (5, 8, 8)
    """
    size = check_int_scalar("size", size, low=1)
    num = check_int_scalar("num", num, low=0)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    images = [np.asarray(im) for im in images]
    for k, im in enumerate(images):
        if im.ndim != 2:
            raise ValueError(f"images[{k}] must be a 2-D (H, W) image, got shape {im.shape}")
    ok = [im for im in images if im.shape[0] >= size and im.shape[1] >= size]
    if not ok:
        raise ValueError(f"no image is at least {size}x{size}")
    area = np.array([im.shape[0] * im.shape[1] for im in ok], np.float64)
    which = rng.choice(len(ok), size=num, p=area / area.sum())
    out = np.empty((num, size, size), np.float32)
    for j, i in enumerate(which):
        h, w = ok[i].shape
        r, c = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        out[j] = ok[i][r : r + size, c : c + size]
    return out


def extract_patches(image: ArrayLike, size: int, stride: int = 1) -> Array:
    """All ``size x size`` patches of a ``(H, W)`` image at ``stride``, flattened row-major.

    Returns:
      ``(P, size * size)`` with ``P = ((H - size) // stride + 1) * ((W - size) // stride + 1)``.

    Raises:
      ValueError: ``size``/``stride`` not ints >= 1, ``image`` not ``(H, W)`` with
        ``H, W >= size``.

    Example:
      >>> import jax.numpy as jnp
      >>> from actfx.data import extract_patches
      >>> extract_patches(jnp.arange(12.0).reshape(3, 4), 2)[:2]
      Array([[0., 1., 4., 5.],
             [1., 2., 5., 6.]], dtype=float32)
    """
    size = check_int_scalar("size", size, low=1)
    stride = check_int_scalar("stride", stride, low=1)
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

    Raises:
      ValueError: ``size``/``stride`` not ints >= 1, ``shape`` not an ``(H, W)`` pair of
        ints >= ``size``, ``patches`` not of the shape :func:`extract_patches` gives.

    Example:
      >>> import jax.numpy as jnp
      >>> from actfx.data import extract_patches, fold_patches
      >>> img = jnp.arange(12.0).reshape(3, 4)
      >>> bool(jnp.allclose(fold_patches(extract_patches(img, 2), (3, 4), 2), img))
      True
    """
    size = check_int_scalar("size", size, low=1)
    stride = check_int_scalar("stride", stride, low=1)
    if not (isinstance(shape, (tuple, list)) and len(shape) == 2):
        raise ValueError(f"shape must be an (H, W) pair, got {shape!r}")
    h, w = (check_int_scalar("shape", d, low=size) for d in shape)
    patches = jnp.asarray(patches)
    n_patches = ((h - size) // stride + 1) * ((w - size) // stride + 1)
    if patches.shape != (n_patches, size * size):
        raise ValueError(
            f"patches must have shape ({n_patches}, {size * size}) (extract_patches of a "
            f"{(h, w)} image, size={size}, stride={stride}), got {patches.shape}"
        )
    zeros = jnp.zeros((h, w), patches.dtype)
    _, vjp = jax.vjp(lambda im: extract_patches(im, size, stride), zeros)
    total = vjp(patches)[0]
    count = vjp(jnp.ones_like(patches))[0]
    return jnp.where(count > 0, total / jnp.maximum(count, 1), 0)


def add_gaussian_noise(x: ArrayLike, sigma: float | ArrayLike, key: Array) -> Array:
    """``x + sigma * N(0, 1)`` (no clipping, as in the usual AWGN benchmarks).

    ``sigma`` may be an array broadcasting against ``x`` (e.g. one level per sample).

    Raises:
      ValueError: a negative or non-finite concrete ``sigma``, or a ``sigma`` whose shape
        does not broadcast to ``x``'s.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> add_gaussian_noise(jnp.zeros(3), 0.0, jax.random.key(0)).tolist()
      [0.0, 0.0, 0.0]
    """
    x = jnp.asarray(x)
    try:
        grown = np.broadcast_shapes(jnp.shape(sigma), x.shape) != x.shape
    except ValueError:
        grown = True
    if grown:
        raise ValueError(
            f"sigma of shape {jnp.shape(sigma)} must broadcast against x of shape {x.shape} "
            f"without enlarging it"
        )
    if is_concrete(sigma):
        s = np.asarray(sigma, np.float64)
        if s.size and (not np.isfinite(s).all() or (s < 0).any()):
            raise ValueError(f"sigma must be finite and >= 0, got {sigma!r}")
    return x + jnp.asarray(sigma, x.dtype) * jax.random.normal(key, x.shape, x.dtype)
