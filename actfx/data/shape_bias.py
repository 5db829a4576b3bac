"""Shape bias on cue-conflict images, and the real Geirhos et al. cue-conflict folder.

Layout of the real stimuli (``stimuli/style-transfer-preprocessed-512`` of
github.com/rgeirhos/texture-vs-shape, 1280 PNG files, 224x224 RGB)::

    <root>/<shape>/<shape><i>-<texture><j>.png     e.g. airplane/airplane1-bicycle2.png

with ``<shape>`` and ``<texture>`` among the 16 categories :data:`GEIRHOS_CATEGORIES`.
Nothing is downloaded: pass the folder you have.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

# The 16 entry-level categories of Geirhos et al. (2019), sorted as in their code.
GEIRHOS_CATEGORIES: tuple[str, ...] = (
    "airplane", "bear", "bicycle", "bird", "boat", "bottle", "car", "cat",
    "chair", "clock", "dog", "elephant", "keyboard", "knife", "oven", "truck",
)

# ImageNet-1k class indices pooled into each category (Geirhos et al.,
# code/helper/human_categories.py); a 1000-way classifier's probabilities are averaged
# over these to decide among the 16 categories.
IMAGENET_INDICES_16: dict[str, tuple[int, ...]] = {
    "airplane": (404,),
    "bear": (294, 295, 296, 297),
    "bicycle": (444, 671),
    "bird": (8, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 22, 23, 24, 80, 81, 82, 83, 87, 88,
             89, 90, 91, 92, 93, 94, 95, 96, 98, 99, 100, 127, 128, 129, 130, 131, 132, 133,
             135, 136, 137, 138, 139, 140, 141, 142, 143, 144, 145),
    "boat": (472, 554, 625, 814, 914),
    "bottle": (440, 720, 737, 898, 899, 901, 907),
    "car": (436, 511, 817),
    "cat": (281, 282, 283, 284, 285, 286),
    "chair": (423, 559, 765, 857),
    "clock": (409, 530, 892),
    "dog": tuple(range(152, 192)) + tuple(range(193, 204)) + tuple(range(205, 227))
           + tuple(range(228, 242)) + tuple(range(243, 251)) + tuple(range(252, 258))
           + (259,) + tuple(range(261, 264)) + tuple(range(265, 269)),
    "elephant": (385, 386),
    "keyboard": (508, 878),
    "knife": (499,),
    "oven": (766,),
    "truck": (555, 569, 656, 675, 717, 734, 864, 867),
}

_FILE_RE = re.compile(r"^(?P<shape>[a-z_]+?)(?P<i>\d+)-(?P<texture>[a-z_]+?)(?P<j>\d+)\.png$")


# --------------------------------------------------------------------------- metric


def shape_bias_counts(
    pred: Sequence[int] | np.ndarray,
    shape_labels: Sequence[int] | np.ndarray,
    texture_labels: Sequence[int] | np.ndarray,
) -> dict[str, float]:
    """Counts behind :func:`shape_bias` and the bias itself.

    Returns a dict with ``shape`` (decisions == shape class), ``texture`` (== texture
    class), ``other`` (neither; ignored), ``excluded`` (images whose shape class equals
    their texture class), ``shape_bias`` (NaN when there is no shape or texture decision),
    and ``shape_accuracy`` / ``texture_accuracy``: the fraction of non-excluded images
    decided by shape / by texture.

    Example:
      >>> c = shape_bias_counts([0, 1, 0, 3], [0, 0, 1, 3], [1, 1, 2, 3])
      >>> c["shape"], c["texture"], c["other"], c["excluded"], c["shape_bias"]
      (1, 1, 1, 1, 0.5)
    """
    pred = np.asarray(pred)
    s = np.asarray(shape_labels)
    t = np.asarray(texture_labels)
    if pred.ndim != 1 or s.shape != pred.shape or t.shape != pred.shape:
        raise ValueError(
            "pred, shape_labels and texture_labels must be 1-D of equal length, got shapes "
            f"{pred.shape}, {s.shape}, {t.shape}"
        )
    keep = s != t
    n_shape = int(np.sum(keep & (pred == s)))
    n_texture = int(np.sum(keep & (pred == t)))
    n_kept = int(np.sum(keep))
    decided = n_shape + n_texture
    return {
        "shape": n_shape,
        "texture": n_texture,
        "other": n_kept - decided,
        "excluded": int(pred.size - n_kept),
        "shape_bias": n_shape / decided if decided else float("nan"),
        "shape_accuracy": n_shape / n_kept if n_kept else float("nan"),
        "texture_accuracy": n_texture / n_kept if n_kept else float("nan"),
    }


def shape_bias(
    pred: Sequence[int] | np.ndarray,
    shape_labels: Sequence[int] | np.ndarray,
    texture_labels: Sequence[int] | np.ndarray,
) -> float:
    r"""Fraction of shape decisions among shape-or-texture decisions on cue-conflict images.

    .. math::
        \text{shape bias} = \frac{\#\{n : \hat y_n = s_n\}}
                                 {\#\{n : \hat y_n = s_n\} + \#\{n : \hat y_n = t_n\}}

    over images with ``s_n != t_n``. Decisions that are neither the shape class ``s_n`` nor
    the texture class ``t_n`` are ignored; images with ``s_n == t_n`` are excluded.

    Args:
      pred: ``(N,)`` predicted classes.
      shape_labels: ``(N,)`` class of each image's shape.
      texture_labels: ``(N,)`` class of each image's texture.

    Returns:
      The shape bias in ``[0, 1]``; NaN when no decision is a shape or texture decision.

    Raises:
      ValueError: the three arrays are not 1-D of equal length.

    References:
      R. Geirhos et al., *ImageNet-trained CNNs are biased towards texture; increasing
      shape bias improves accuracy and robustness*, ICLR 2019.

    Example:
      >>> shape_bias([0, 2, 5, 1], [0, 1, 2, 1], [3, 2, 4, 1])   # shape, texture, neither, excluded
      0.5
    """
    return shape_bias_counts(pred, shape_labels, texture_labels)["shape_bias"]


def predict_classes(
    classify: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    *,
    batch_size: int = 64,
) -> np.ndarray:
    """Class decisions of ``classify`` on ``images``, batch by batch.

    ``classify`` maps a batch ``(B, H, W, C)`` to scores ``(B, num_classes)`` (decision:
    argmax) or to integer decisions ``(B,)``.

    Example:
      >>> import numpy as np
      >>> predict_classes(lambda x: x.reshape(len(x), -1), np.eye(3)[:, None, None, :], batch_size=2)
      array([0, 1, 2])
    """
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    out = []
    for start in range(0, len(images), batch_size):
        xb = np.asarray(images[start : start + batch_size])
        r = np.asarray(classify(xb))
        if r.ndim == 2 and r.shape[0] == len(xb):
            r = r.argmax(axis=-1)
        elif not (r.ndim == 1 and r.shape[0] == len(xb)):
            raise ValueError(
                f"classify must return scores (B, num_classes) or decisions (B,) for a batch "
                f"of B={len(xb)}, got shape {r.shape}"
            )
        out.append(r.astype(np.int64))
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def imagenet_to_geirhos16(probs: np.ndarray) -> np.ndarray:
    """Pool ImageNet-1k probabilities ``(N, 1000)`` into the 16 categories ``(N, 16)``.

    Category ``c`` scores the mean probability of its ImageNet classes
    (:data:`IMAGENET_INDICES_16`), as in Geirhos et al.'s ``probabilities_to_decision``;
    columns follow :data:`GEIRHOS_CATEGORIES`. Pass softmax probabilities, not logits.

    Example:
      >>> import numpy as np
      >>> p = np.zeros((1, 1000)); p[0, 404] = 1.0   # 404 = airliner
      >>> GEIRHOS_CATEGORIES[int(imagenet_to_geirhos16(p).argmax())]
      'airplane'
    """
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[1] != 1000:
        raise ValueError(f"probs must have shape (N, 1000), got {probs.shape}")
    return np.stack([probs[:, list(IMAGENET_INDICES_16[c])].mean(axis=1)
                     for c in GEIRHOS_CATEGORIES], axis=1)


# --------------------------------------------------------------------------- Geirhos folder


class GeirhosCueConflict(NamedTuple):
    """Index of a Geirhos-style cue-conflict folder (images are read on demand).

    Attributes:
      paths: ``(N,)`` file paths, sorted.
      shape_labels: ``(N,)`` int32 index of the shape category in ``classes``.
      texture_labels: ``(N,)`` int32 index of the texture category.
      classes: the category names.
    """

    paths: tuple[str, ...]
    shape_labels: np.ndarray
    texture_labels: np.ndarray
    classes: tuple[str, ...]


def scan_geirhos_cue_conflict(
    root: str | os.PathLike, *, classes: Sequence[str] = GEIRHOS_CATEGORIES
) -> GeirhosCueConflict:
    """List ``<root>/<shape>/<shape><i>-<texture><j>.png`` and parse both labels.

    Hidden files (``.DS_Store``) are skipped. Images whose shape and texture category
    agree (e.g. ``airplane10-airplane1.png``) are listed too; :func:`shape_bias` excludes
    them.

    Args:
      root: the folder holding one sub-folder per category.
      classes: category names (default: the 16 of Geirhos et al.); every one needs a
        sub-folder.

    Returns:
      A :class:`GeirhosCueConflict`.

    Raises:
      FileNotFoundError: ``root`` or a category sub-folder is missing, or no PNG file
        was found.
      ValueError: a file name does not match the pattern, its shape is not its folder's
        category, or it names an unknown category.

    Example:
      >>> scan_geirhos_cue_conflict("/nonexistent")
      Traceback (most recent call last):
      ...
      FileNotFoundError: cue-conflict root '/nonexistent' is not a directory
    """
    root = os.fspath(root)
    classes = tuple(classes)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"cue-conflict root {root!r} is not a directory")
    index = {c: k for k, c in enumerate(classes)}
    missing = [c for c in classes if not os.path.isdir(os.path.join(root, c))]
    if missing:
        raise FileNotFoundError(
            f"cue-conflict root {root!r} lacks the category folder(s) {missing} (expected one "
            f"folder per category <root>/<shape>/<shape><i>-<texture><j>.png)"
        )
    paths, s_lab, t_lab = [], [], []
    for c in classes:
        folder = os.path.join(root, c)
        for name in sorted(os.listdir(folder)):
            if name.startswith("."):
                continue
            path = os.path.join(folder, name)
            m = _FILE_RE.match(name)
            if m is None:
                raise ValueError(
                    f"cue-conflict file {path!r} does not match <shape><i>-<texture><j>.png"
                )
            if m["shape"] != c:
                raise ValueError(
                    f"cue-conflict file {path!r}: shape {m['shape']!r} differs from its folder {c!r}"
                )
            if m["texture"] not in index:
                raise ValueError(
                    f"cue-conflict file {path!r}: texture {m['texture']!r} is not one of {classes}"
                )
            paths.append(path)
            s_lab.append(index[c])
            t_lab.append(index[m["texture"]])
    if not paths:
        raise FileNotFoundError(f"no <shape><i>-<texture><j>.png files under {root!r}")
    return GeirhosCueConflict(
        tuple(paths), np.asarray(s_lab, np.int32), np.asarray(t_lab, np.int32), classes
    )


def load_png_images(paths: Sequence[str], *, size: int | None = None) -> np.ndarray:
    """Read PNG files as RGB ``(N, H, W, 3)`` float32 in ``[0, 1]``, optionally resized.

    Args:
      paths: image files; all must share one size unless ``size`` is given.
      size: resize every image to ``size x size`` (bilinear) when given.

    Raises:
      FileNotFoundError: a file is missing.
      ValueError: a file is not a readable image, or sizes differ without ``size``.
    """
    from PIL import Image

    out = []
    for p in paths:
        if not os.path.isfile(p):
            raise FileNotFoundError(f"image file {p!r} does not exist")
        try:
            with Image.open(p) as im:
                im = im.convert("RGB")
                if size is not None:
                    im = im.resize((int(size), int(size)), Image.BILINEAR)
                a = np.asarray(im, dtype=np.float32) / 255.0
        except OSError as e:
            raise ValueError(f"could not read image file {p!r}: {e}") from e
        if out and a.shape != out[0].shape:
            raise ValueError(
                f"image file {p!r} has shape {a.shape}, the first had {out[0].shape}; pass size="
            )
        out.append(a)
    return np.stack(out) if out else np.zeros((0, 0, 0, 3), np.float32)


def geirhos_shape_bias(
    classify: Callable[[np.ndarray], np.ndarray],
    root: str | os.PathLike,
    *,
    classes: Sequence[str] = GEIRHOS_CATEGORIES,
    size: int | None = None,
    batch_size: int = 64,
) -> dict[str, float]:
    """Shape bias of a classifier on a Geirhos cue-conflict folder.

    Images are read batch by batch (:func:`load_png_images`, RGB float32 in ``[0, 1]``;
    any normalisation is ``classify``'s job) and decided by ``classify``, which returns
    scores over ``classes`` (``(B, len(classes))``; for an ImageNet model, wrap it with
    :func:`imagenet_to_geirhos16`) or decisions ``(B,)``.

    Returns:
      :func:`shape_bias_counts` of the decisions, plus ``n_images``.

    Example:
      >>> geirhos_shape_bias(lambda x: x, "/nonexistent")
      Traceback (most recent call last):
      ...
      FileNotFoundError: cue-conflict root '/nonexistent' is not a directory
    """
    index = scan_geirhos_cue_conflict(root, classes=classes)
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    preds = []
    for start in range(0, len(index.paths), batch_size):
        xb = load_png_images(index.paths[start : start + batch_size], size=size)
        preds.append(predict_classes(classify, xb, batch_size=batch_size))
    pred = np.concatenate(preds)
    counts = shape_bias_counts(pred, index.shape_labels, index.texture_labels)
    counts["n_images"] = len(index.paths)
    return counts
