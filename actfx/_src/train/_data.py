"""Training data as ``(inputs, targets)`` pairs: unpacking, checks, deterministic batches."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from actfx._src.data.dataset import ImageDataset

Pair = tuple[np.ndarray, np.ndarray]


def as_pair(name: str, data: Any) -> Pair:
    """``(x, y)`` from a 2-tuple of arrays with equal, non-zero leading dimension."""
    if isinstance(data, ImageDataset) or not isinstance(data, (tuple, list)) or len(data) != 2:
        kind = type(data).__name__
        if isinstance(data, (tuple, list)):
            kind += f" of length {len(data)}"
        raise TypeError(f"{name} must be an (inputs, targets) pair of arrays, got {kind}")
    x, y = data
    if np.ndim(x) < 1 or np.ndim(y) < 1:
        raise ValueError(
            f"{name}: inputs and targets need a leading example axis, got shapes "
            f"{np.shape(x)} and {np.shape(y)}"
        )
    if len(x) != len(y):
        raise ValueError(
            f"{name}: inputs and targets must have equal length, got shapes "
            f"{np.shape(x)} and {np.shape(y)}"
        )
    if len(x) == 0:
        raise ValueError(f"{name} is empty (0 examples)")
    return x, y


def train_test_pairs(train: Any, test: Any) -> tuple[Pair, Pair | None, int | None]:
    """``(train_pair, test_pair or None, num_classes or None)`` from :func:`fit`'s arguments.

    ``train`` may be an :class:`ImageDataset`; then its test split is used when ``test``
    is ``None``.
    """
    num_classes = None
    if isinstance(train, ImageDataset):
        num_classes = int(train.num_classes)
        if test is None:
            test = (train.x_test, train.y_test)
        train = (train.x_train, train.y_train)
    elif isinstance(train, (tuple, list)) and len(train) == 4:
        raise TypeError(
            "train must be an (inputs, targets) pair or an ImageDataset; pass the test split "
            "separately: fit(model, (x_train, y_train), (x_test, y_test), config)"
        )
    if isinstance(test, ImageDataset):
        test = (test.x_test, test.y_test)
    train_pair = as_pair("train", train)
    test_pair = None if test is None else as_pair("test", test)
    return train_pair, test_pair, num_classes


def batch_indices(num_examples: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Indices of the training batch at global ``step`` (drop-last epochs, reshuffled each).

    Epoch ``e = step // (N // B)`` uses the permutation of ``np.random.default_rng((seed,
    e))``; so the batch at any step is known without replaying the run (what resume needs).

    Example:
      >>> batch_indices(10, 4, seed=0, step=0).shape
      (4,)
    """
    per_epoch = num_examples // batch_size
    if per_epoch < 1:
        raise ValueError(
            f"batch_size={batch_size} must be <= the number of training examples ({num_examples})"
        )
    epoch, i = divmod(step, per_epoch)
    return _permutation(num_examples, seed, epoch)[i * batch_size : (i + 1) * batch_size]


@functools.lru_cache(maxsize=4)
def _permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    # drawn once per epoch, not once per step (large training sets)
    perm = np.random.default_rng((seed, epoch)).permutation(num_examples)
    perm.setflags(write=False)
    return perm
