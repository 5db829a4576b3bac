"""An in-memory image classification dataset and a seeded stratified train/test split."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class ImageDataset(NamedTuple):
    """Images and integer labels, already split into train and test.

    Attributes:
      x_train: ``(N_train, H, W, C)`` images (NHWC), float32 in ``[0, 1]`` unless a loader
        says otherwise.
      y_train: ``(N_train,)`` int32 labels in ``[0, num_classes)``.
      x_test: ``(N_test, H, W, C)`` images.
      y_test: ``(N_test,)`` int32 labels.
      num_classes: number of classes.
      name: a short name, e.g. ``"digits"``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    name: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of one image."""
        return tuple(self.x_train.shape[1:])


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split: indices ``(train_idx, test_idx)`` of ``labels``.

    Each class ``c`` with ``n_c`` samples puts ``round(test_fraction * n_c)`` of them (a
    random subset drawn with ``np.random.default_rng(seed)``) in the test set. Both index
    arrays are sorted, so the split does not depend on the order classes are visited.

    Args:
      labels: ``(N,)`` integer labels.
      test_fraction: fraction of each class held out, in ``(0, 1)``.
      seed: seed of the NumPy generator.

    Returns:
      ``(train_idx, test_idx)``, disjoint sorted int64 arrays covering ``range(N)``.

    Raises:
      ValueError: ``test_fraction`` outside ``(0, 1)``.

    Example:
      >>> import numpy as np
      >>> tr, te = stratified_split(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 0.5, seed=0)
      >>> len(tr), len(te), sorted(np.r_[tr, te].tolist()) == list(range(8))
      (4, 4, True)
    """
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n_test = int(round(test_fraction * idx.size))
        test.append(rng.permutation(idx)[:n_test])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(labels.size), test_idx)
    return train_idx, test_idx


def split_arrays(
    images: np.ndarray, labels: np.ndarray, *, test_fraction: float, seed: int, num_classes: int,
    name: str,
) -> ImageDataset:
    """Build an :class:`ImageDataset` from all images and labels with :func:`stratified_split`."""
    train_idx, test_idx = stratified_split(labels, test_fraction, seed)
    labels = np.asarray(labels, dtype=np.int32)
    return ImageDataset(
        images[train_idx], labels[train_idx], images[test_idx], labels[test_idx], num_classes, name
    )
