"""An in-memory image classification dataset and a seeded stratified train/test split."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from actfx._src._checks import check_real_scalar


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


def check_labels(labels, num_classes: int, *, where: str) -> np.ndarray:
    """Validate class labels and return them as int32.

    Labels must be a 1-D array of finite, integer-valued numbers (an integer dtype, or a
    float dtype holding whole numbers; bool is rejected) in ``[0, num_classes)``.

    Args:
      labels: the labels as read from a file.
      num_classes: number of classes.
      where: what the labels came from (a file name), for the message.

    Returns:
      ``labels`` as an int32 array.

    Raises:
      ValueError: naming ``where`` and the first bad value and its index (NaN/inf,
        a fractional value, out of range, a non-numeric dtype, not 1-D).

    Example:
      >>> check_labels([0, 2.0, 1], 3, where="y.npy").tolist()
      [0, 2, 1]
      >>> check_labels([0, 2.7], 3, where="y.npy")
      Traceback (most recent call last):
      ...
      ValueError: y.npy: labels must be whole numbers in [0, 3); label 1 is 2.7 (not an integer)
    """
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"{where}: labels must be 1-D, got shape {y.shape}")
    if y.dtype.kind not in "iuf":
        raise ValueError(f"{where}: labels must be integers, got dtype {y.dtype}")
    head = f"{where}: labels must be whole numbers in [0, {num_classes})"
    if y.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(y))
        if bad.size:
            raise ValueError(f"{head}; label {bad[0]} is {y[bad[0]]} (not finite)")
        bad = np.flatnonzero(y != np.round(y))
        if bad.size:
            raise ValueError(f"{head}; label {bad[0]} is {y[bad[0]]} (not an integer)")
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if bad.size:
        v = y[bad[0]]
        v = int(v) if float(v).is_integer() else v
        raise ValueError(
            f"{head}; label {bad[0]} is {v} (out of range, {int(bad.size)} such labels)"
        )
    return y.astype(np.int32)


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
      ValueError: ``test_fraction`` not a real number in ``(0, 1)``, ``seed`` not a
        non-negative int, ``labels`` not a
        non-empty 1-D array, or a split that would leave the train or the test set empty
        (e.g. ``test_fraction=0.9999`` rounds every class entirely into the test set).

    Example:
      >>> import numpy as np
      >>> tr, te = stratified_split(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 0.5, seed=0)
      >>> len(tr), len(te), sorted(np.r_[tr, te].tolist()) == list(range(8))
      (4, 4, True)
    """
    frac = check_real_scalar("test_fraction", test_fraction)
    if not 0.0 < frac < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    test_fraction = frac
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n_test = int(round(test_fraction * idx.size))
        test.append(rng.permutation(idx)[:n_test])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(labels.size), test_idx)
    for side, idx in (("train", train_idx), ("test", test_idx)):
        if idx.size == 0:
            raise ValueError(
                f"test_fraction={test_fraction!r} leaves the {side} set empty: "
                f"round(test_fraction * n_c) is {'every' if side == 'train' else 'no'} "
                f"sample of each class for {labels.size} samples in "
                f"{np.unique(labels).size} classes"
            )
    return train_idx, test_idx


def split_arrays(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    test_fraction: float,
    seed: int,
    num_classes: int,
    name: str,
) -> ImageDataset:
    """Build an :class:`ImageDataset` from all images and labels with :func:`stratified_split`."""
    labels = check_labels(labels, num_classes, where=name)
    train_idx, test_idx = stratified_split(labels, test_fraction, seed)
    return ImageDataset(
        images[train_idx], labels[train_idx], images[test_idx], labels[test_idx], num_classes, name
    )
