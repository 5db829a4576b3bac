"""CIFAR-10 / CIFAR-100 from the official "python version" pickles in a local directory.

Nothing is downloaded: get ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` from
https://www.cs.toronto.edu/~kriz/cifar.html yourself, extract it, and pass the directory.
Pickles can run code when loaded: only read files from that official source.
"""

from __future__ import annotations

import os
import pickle
from typing import Literal

import numpy as np

from actfx._src.data.dataset import ImageDataset, check_labels

CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
CIFAR100_TRAIN_FILE = "train"
CIFAR100_TEST_FILE = "test"


def _resolve_dir(data_dir: str | os.PathLike, subdir: str, required: tuple[str, ...]) -> str:
    """``data_dir`` itself, or ``data_dir/subdir`` (the extracted archive's folder)."""
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"data_dir {data_dir!r} is not a directory")
    for d in (data_dir, os.path.join(data_dir, subdir)):
        if all(os.path.isfile(os.path.join(d, f)) for f in required):
            return d
    d = (
        os.path.join(data_dir, subdir)
        if os.path.isdir(os.path.join(data_dir, subdir))
        else data_dir
    )
    missing = [f for f in required if not os.path.isfile(os.path.join(d, f))]
    raise FileNotFoundError(
        f"missing CIFAR file {os.path.join(d, missing[0])!r} (expected {', '.join(required)} in "
        f"{data_dir!r} or {os.path.join(data_dir, subdir)!r}; extract the official python-version "
        f"archive there)"
    )


def _read_batch(path: str, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, 32, 32, 3), labels int32 (N,))`` of one pickled batch file."""
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
    except Exception as e:
        raise ValueError(f"could not unpickle CIFAR file {path!r}: {e}") from e
    if not isinstance(d, dict):
        raise ValueError(f"CIFAR file {path!r} should hold a dict, got {type(d).__name__}")
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    for key in ("data", label_key):
        if key not in d:
            raise ValueError(f"CIFAR file {path!r} has no {key!r} entry (keys: {sorted(d)})")
    data = np.asarray(d["data"])
    try:
        labels = np.asarray(d[label_key])
    except Exception as e:
        raise ValueError(f"CIFAR file {path!r}: {label_key!r} is not an array: {e}") from e
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise ValueError(
            f"CIFAR file {path!r}: 'data' should be uint8 of shape (N, 3072), got "
            f"{data.dtype} {data.shape}"
        )
    if data.shape[0] == 0:
        raise ValueError(f"CIFAR file {path!r} holds no images ('data' has 0 rows)")
    if labels.shape != (data.shape[0],):
        raise ValueError(
            f"CIFAR file {path!r}: {label_key!r} should have {data.shape[0]} entries, got "
            f"shape {labels.shape}"
        )
    # rows are [R (32x32 row-major), G, B]  ->  NHWC
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, check_labels(labels, num_classes, where=f"CIFAR file {path!r} {label_key!r}")


def _finish(x_train, y_train, x_test, y_test, num_classes, name, dtype) -> ImageDataset:
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        conv = np.ascontiguousarray
    elif dtype.kind == "f":

        def conv(a):
            return (a.astype(dtype) / dtype.type(255)).astype(dtype)
    else:
        raise ValueError(f"dtype must be uint8 or a float dtype, got {dtype}")
    return ImageDataset(conv(x_train), y_train, conv(x_test), y_test, num_classes, name)


def load_cifar10(data_dir: str | os.PathLike, *, dtype=np.float32) -> ImageDataset:
    """CIFAR-10 (50000 train / 10000 test, 32x32x3, 10 classes) from local pickles.

    ``data_dir`` is the extracted ``cifar-10-batches-py`` folder or its parent, holding
    ``data_batch_1`` .. ``data_batch_5`` and ``test_batch`` (dicts with ``b"data"``, a
    uint8 ``(N, 3072)`` array of R, G, B planes, and ``b"labels"``).

    Args:
      data_dir: directory with the batch files.
      dtype: ``np.float32`` (default; pixels / 255 in ``[0, 1]``), another float dtype, or
        ``np.uint8`` (raw pixels, 4x less memory).

    Returns:
      An :class:`ImageDataset` with NHWC images.

    Raises:
      FileNotFoundError: ``data_dir`` or one of the expected files is missing (the message
        names it).
      ValueError: a file is not a valid CIFAR pickle (truncated, wrong dtype or shape, no
        rows), or holds a label that is not a whole number in ``[0, 10)`` (file and value
        named).

    References:
      A. Krizhevsky, *Learning Multiple Layers of Features from Tiny Images*, tech. report,
      University of Toronto, 2009.

    Example:
      >>> load_cifar10("/nonexistent")
      Traceback (most recent call last):
      ...
      FileNotFoundError: data_dir '/nonexistent' is not a directory
    """
    d = _resolve_dir(data_dir, "cifar-10-batches-py", (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE))
    parts = [_read_batch(os.path.join(d, f), "labels", 10) for f in CIFAR10_TRAIN_FILES]
    x_test, y_test = _read_batch(os.path.join(d, CIFAR10_TEST_FILE), "labels", 10)
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    return _finish(x_train, y_train, x_test, y_test, 10, "cifar10", dtype)


def load_cifar100(
    data_dir: str | os.PathLike,
    *,
    label_mode: Literal["fine", "coarse"] = "fine",
    dtype=np.float32,
) -> ImageDataset:
    """CIFAR-100 (50000 train / 10000 test, 32x32x3) from local pickles.

    ``data_dir`` is the extracted ``cifar-100-python`` folder or its parent, holding
    ``train`` and ``test`` (dicts with ``b"data"``, ``b"fine_labels"`` (100 classes) and
    ``b"coarse_labels"`` (20 superclasses)).

    Args:
      data_dir: directory with the files.
      label_mode: ``"fine"`` (100 classes) or ``"coarse"`` (20 superclasses).
      dtype: ``np.float32`` (pixels / 255), another float dtype, or ``np.uint8``.

    Returns:
      An :class:`ImageDataset` with NHWC images.

    Raises:
      FileNotFoundError: ``data_dir`` or an expected file is missing.
      ValueError: bad ``label_mode``, a malformed or empty file, or a label that is not a whole
        number in ``[0, 100)`` (fine) / ``[0, 20)`` (coarse), naming the file and value.

    References:
      A. Krizhevsky, *Learning Multiple Layers of Features from Tiny Images*, 2009.

    Example:
      >>> load_cifar100("/nonexistent", label_mode="fine")
      Traceback (most recent call last):
      ...
      FileNotFoundError: data_dir '/nonexistent' is not a directory
    """
    if label_mode not in ("fine", "coarse"):
        raise ValueError(f"label_mode must be 'fine' or 'coarse', got {label_mode!r}")
    d = _resolve_dir(data_dir, "cifar-100-python", (CIFAR100_TRAIN_FILE, CIFAR100_TEST_FILE))
    key = f"{label_mode}_labels"
    n = 100 if label_mode == "fine" else 20
    x_train, y_train = _read_batch(os.path.join(d, CIFAR100_TRAIN_FILE), key, n)
    x_test, y_test = _read_batch(os.path.join(d, CIFAR100_TEST_FILE), key, n)
    return _finish(x_train, y_train, x_test, y_test, n, f"cifar100-{label_mode}", dtype)
