"""Image files and integer pixel arrays to float images in [0, 1] (any bit depth)."""

from __future__ import annotations

import os

import numpy as np

from actfx._src.data._optional import require


def to_unit_float(pixels: np.ndarray, *, name: str = "image") -> np.ndarray:
    """Pixel values -> float32 in ``[0, 1]``: integers divided by their dtype's maximum.

    ``uint8`` / 255, ``uint16`` / 65535 (16-bit PNGs), any other unsigned or signed
    integer dtype by ``np.iinfo(dtype).max`` (negative values clip to 0), ``bool`` as 0/1,
    floats kept (then clipped to ``[0, 1]``).

    Raises:
      TypeError: a complex, string or object array (naming ``name``).
      ValueError: a float image with NaN or infinite values.

    Example:
      >>> import numpy as np
      >>> to_unit_float(np.array([0, 32768, 65535], np.uint16)).round(4).tolist()
      [0.0, 0.5, 1.0]
    """
    a = np.asarray(pixels)
    if a.dtype == bool:
        return a.astype(np.float32)
    if a.dtype.kind in "ui":
        return np.clip(a.astype(np.float64) / np.iinfo(a.dtype).max, 0.0, 1.0).astype(np.float32)
    if a.dtype.kind == "f":
        if a.size and not np.isfinite(a).all():
            raise ValueError(f"{name} has NaN or infinite pixel values")
        return np.clip(a.astype(np.float32), 0.0, 1.0)
    raise TypeError(f"{name} must hold bool, integer or float pixels, got dtype {a.dtype}")


def read_image(
    path: str | os.PathLike, *, mode: str = "rgb", size: int | None = None
) -> np.ndarray:
    """Read an image file as float32 in ``[0, 1]`` at its own bit depth.

    8-bit files are divided by 255 and 16-bit ones (Pillow modes ``I;16*``, and ``I``
    as Pillow opens 16-bit grayscale PNGs) by 65535, so a 16-bit PNG does not saturate
    to white. ``mode="rgb"`` gives ``(H, W, 3)`` (gray replicated), ``"gray"`` gives
    ``(H, W)`` (ITU-R 709 luma of colour files, as ``skimage.color.rgb2gray``).

    Args:
      path: the file.
      mode: ``"rgb"`` or ``"gray"``.
      size: resize to ``size x size`` (bilinear, in float) when given.

    Raises:
      FileNotFoundError: ``path`` does not exist.
      ValueError: a file that is not a readable image (truncated, not an image, over
        Pillow's decompression-bomb pixel limit) or a float image with NaN/infinite
        pixels, naming the file; a bad ``mode`` / ``size``.
      ImportError: Pillow is missing (names the ``actfx[data]`` extra).
    """
    if mode not in ("rgb", "gray"):
        raise ValueError(f"mode must be 'rgb' or 'gray', got {mode!r}")
    if size is not None and (
        isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1
    ):
        raise ValueError(f"size must be None or a positive int, got {size!r}")
    image = require("PIL.Image", purpose="reading image files")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file {path!r} does not exist")
    try:
        with image.open(path) as im:
            im.load()
            if im.mode.startswith("I;16"):
                a = np.asarray(im).astype(np.float64) / 65535.0
            elif im.mode == "I":  # 16-bit gray PNGs (and 32-bit TIFFs, rare) open as "I"
                a = np.asarray(im).astype(np.float64)
                a = a / (65535.0 if a.size == 0 or a.max() <= 65535 else np.iinfo(np.int32).max)
            elif im.mode == "F":
                a = np.asarray(im).astype(np.float64)
            else:
                a = (
                    np.asarray(
                        im.convert("RGB" if im.mode not in ("L", "1") else "L"), dtype=np.float64
                    )
                    / 255.0
                )
    except (OSError, SyntaxError, ValueError) as e:  # PIL raises these for bad files
        raise ValueError(f"could not read image file {path!r}: {e}") from e
    except image.DecompressionBombError as e:  # an Exception, not an OSError
        raise ValueError(
            f"could not read image file {path!r}: {e} (Pillow's decompression-bomb guard; "
            f"raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file)"
        ) from e
    if not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise ValueError(f"image file {path!r} has {bad} NaN or infinite pixel value(s)")
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1) if mode == "rgb" else a
    elif mode == "gray":
        a = a[..., :3] @ np.array([0.2125, 0.7154, 0.0721])
    if size is not None:
        chans = a[..., None] if a.ndim == 2 else a
        chans = np.stack(
            [
                np.asarray(
                    image.fromarray(chans[..., c].astype(np.float32), "F").resize(
                        (int(size), int(size)), image.BILINEAR
                    )
                )
                for c in range(chans.shape[-1])
            ],
            axis=-1,
        )
        a = chans[..., 0] if a.ndim == 2 else chans
    return np.clip(a, 0.0, 1.0).astype(np.float32)
