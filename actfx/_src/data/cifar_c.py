"""CIFAR-10-C / CIFAR-100-C from the released ``.npy`` files in a local directory.

Nothing is downloaded: get ``CIFAR-10-C.tar`` / ``CIFAR-100-C.tar`` (Hendrycks &
Dietterich, https://zenodo.org/records/2535967 and /3555552), extract it, and pass the
directory. Each corruption is one file ``<corruption>.npy``: uint8 ``(5 * n, 32, 32, 3)``,
severities 1..5 stacked in that order (``n = 10000``), with the test labels repeated 5
times in ``labels.npy``.
"""

from __future__ import annotations

import os

import numpy as np

from actfx._src.data.dataset import check_labels

#: The 19 corruptions released in CIFAR-10-C / CIFAR-100-C (15 benchmark + 4 extra).
CIFAR_C_CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
    "elastic_transform", "pixelate", "jpeg_compression",
    "speckle_noise", "gaussian_blur", "spatter", "saturate",
)  # fmt: skip

LABELS_FILE = "labels.npy"


def _load_npy(path: str, what: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"missing CIFAR-C file {path!r} ({what}); extract CIFAR-10-C.tar / "
            f"CIFAR-100-C.tar into that directory"
        )
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:
        raise ValueError(f"could not read CIFAR-C file {path!r} as a .npy array: {e}") from e


def load_cifar_c(
    data_dir: str | os.PathLike,
    corruption: str,
    severity: int | None = None,
    *,
    dtype=np.float32,
    num_classes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one CIFAR-10-C / CIFAR-100-C corruption from a local directory.

    ``data_dir`` holds ``<corruption>.npy`` (uint8 ``(5 n, H, W, C)``: the ``n`` test
    images at severity 1, then 2, ..., 5) and ``labels.npy`` (``(5 n,)`` or ``(n,)``).
    With ``severity`` ``s`` only rows ``(s - 1) n .. s n - 1`` are read (memory-mapped).

    Args:
      data_dir: directory of the extracted archive (``CIFAR-10-C`` or ``CIFAR-100-C``).
      corruption: one of :data:`CIFAR_C_CORRUPTIONS`, e.g. ``"gaussian_noise"``.
      severity: 1..5, or ``None`` for all five (stacked, ``5 n`` images).
      dtype: ``np.float32`` (default; pixels / 255 in ``[0, 1]``), another float dtype,
        or ``np.uint8``.
      num_classes: labels must lie in ``[0, num_classes)``. ``None``: 100 when the
        folder's name contains ``"100"`` (``CIFAR-100-C``), else 10 (``CIFAR-10-C``); a
        CIFAR-100-C folder under another name needs ``num_classes=100``.

    Returns:
      ``(images (m, H, W, C), labels (m,) int32)`` with ``m = n`` or ``5 n``.

    Raises:
      FileNotFoundError: ``data_dir`` or an expected file is missing (named in the message).
      ValueError: unknown ``corruption``, ``severity`` outside 1..5, bad ``dtype``, or a
        malformed file (wrong rank/dtype, image count not a multiple of 5, label count
        mismatch), or a label that is not a whole number in ``[0, num_classes)`` (NaN,
        2.7, -3, 99 for CIFAR-10-C), naming the file and the value.

    References:
      D. Hendrycks, T. Dietterich, *Benchmarking Neural Network Robustness to Common
      Corruptions and Perturbations*, ICLR 2019 (arXiv:1903.12261).

    Example:
      >>> load_cifar_c("/nonexistent", "gaussian_noise", 1)
      Traceback (most recent call last):
      ...
      FileNotFoundError: data_dir '/nonexistent' is not a directory
    """
    if corruption not in CIFAR_C_CORRUPTIONS:
        raise ValueError(
            f"corruption must be one of {', '.join(CIFAR_C_CORRUPTIONS)}; got {corruption!r}"
        )
    if severity is not None and (
        isinstance(severity, bool)
        or not isinstance(severity, (int, np.integer))
        or not 1 <= severity <= 5
    ):
        raise ValueError(f"severity must be an int in 1..5 or None, got {severity!r}")
    dtype = np.dtype(dtype)
    if dtype != np.uint8 and dtype.kind != "f":
        raise ValueError(f"dtype must be uint8 or a float dtype, got {dtype}")
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"data_dir {data_dir!r} is not a directory")
    if num_classes is None:
        num_classes = 100 if "100" in os.path.basename(os.path.abspath(data_dir)) else 10
    elif (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, (int, np.integer))
        or num_classes < 1
    ):
        raise ValueError(f"num_classes must be a positive int or None, got {num_classes!r}")

    path = os.path.join(data_dir, f"{corruption}.npy")
    images = _load_npy(path, f"the {corruption} images")
    labels = np.asarray(_load_npy(os.path.join(data_dir, LABELS_FILE), "the labels"))
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(
            f"CIFAR-C file {path!r} should hold uint8 images (5 n, H, W, C), got "
            f"{images.dtype} {images.shape}"
        )
    total = images.shape[0]
    if total == 0 or total % 5:
        raise ValueError(
            f"CIFAR-C file {path!r} should hold 5 severities x n images, got {total} images"
        )
    n = total // 5
    if labels.ndim != 1 or labels.shape[0] not in (n, total):
        raise ValueError(
            f"CIFAR-C labels {os.path.join(data_dir, LABELS_FILE)!r} should have {total} "
            f"(or {n}) entries, got shape {labels.shape}"
        )
    labels_path = os.path.join(data_dir, LABELS_FILE)
    labels = check_labels(labels, int(num_classes), where=f"CIFAR-C labels {labels_path!r}")
    if labels.shape[0] == n:
        labels = np.tile(labels, 5)
    if severity is None:
        x, y = images[:], labels
    else:
        sl = slice((int(severity) - 1) * n, int(severity) * n)
        x, y = images[sl], labels[sl]
    x = np.array(x)  # read from the memory map
    if dtype != np.uint8:
        x = (x.astype(dtype) / dtype.type(255)).astype(dtype)
    return x, np.asarray(y, dtype=np.int32)
