"""scikit-learn's 8x8 handwritten digits as an image dataset (offline, ships with sklearn)."""

from __future__ import annotations

import numpy as np

from actfx._src.data._optional import require
from actfx._src.data.dataset import ImageDataset, split_arrays


def load_digits(*, test_fraction: float = 0.2, seed: int = 0) -> ImageDataset:
    """The 1797 8x8 grayscale digits of ``sklearn.datasets.load_digits``, split by class.

    Pixel values (0..16 in the source) are divided by 16, so images are float32 in
    ``[0, 1]`` with shape ``(N, 8, 8, 1)`` (NHWC). The split is a seeded stratified split
    (:func:`actfx.data.stratified_split`): the same ``seed`` gives the same split.

    Args:
      test_fraction: fraction of each class held out for the test set, in ``(0, 1)``.
      seed: seed of the split.

    Returns:
      An :class:`ImageDataset` with 10 classes.

    Raises:
      ImportError: scikit-learn is not installed (the message names ``actfx[data]``).
      ValueError: ``test_fraction`` outside ``(0, 1)``, or so close to 0 or 1 that the
        train or test set would be empty (naming ``test_fraction``).

    References:
      E. Alpaydin, C. Kaynak, *Optical Recognition of Handwritten Digits*, UCI ML Repository
      (1998); distributed with scikit-learn.

    Example:
      >>> ds = load_digits(seed=0)
      >>> ds.x_train.shape, ds.x_test.shape, ds.x_train.dtype, ds.num_classes
      ((1438, 8, 8, 1), (359, 8, 8, 1), dtype('float32'), 10)
    """
    d = require("sklearn.datasets", purpose="load_digits").load_digits()
    images = (d.images.astype(np.float32) / 16.0)[..., None]
    return split_arrays(
        images, d.target, test_fraction=test_fraction, seed=seed, num_classes=10, name="digits"
    )
