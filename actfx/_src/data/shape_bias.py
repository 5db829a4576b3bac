"""The real Geirhos et al. cue-conflict folder: categories, file index, PNG reading.

Layout of the real stimuli (``stimuli/style-transfer-preprocessed-512`` of
github.com/rgeirhos/texture-vs-shape, 1280 PNG files, 224x224 RGB)::

    <root>/<shape>/<shape><i>-<texture><j>.png     e.g. airplane/airplane1-bicycle2.png

with ``<shape>`` and ``<texture>`` among the 16 categories :data:`GEIRHOS_CATEGORIES`.
Nothing is downloaded: pass the folder you have. The shape-bias metric and the driver that
runs a classifier over this folder live in :mod:`actfx.metrics`
(:func:`actfx.metrics.geirhos_shape_bias`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

# The 16 entry-level categories of Geirhos et al. (2019), sorted as in their code.
GEIRHOS_CATEGORIES: tuple[str, ...] = (
    "airplane",
    "bear",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "car",
    "cat",
    "chair",
    "clock",
    "dog",
    "elephant",
    "keyboard",
    "knife",
    "oven",
    "truck",
)

# ImageNet-1k class indices pooled into each category (Geirhos et al.,
# code/helper/human_categories.py); a 1000-way classifier's probabilities are averaged
# over these to decide among the 16 categories.
IMAGENET_INDICES_16: dict[str, tuple[int, ...]] = {
    "airplane": (404,),
    "bear": (294, 295, 296, 297),
    "bicycle": (444, 671),
    "bird": (
        8,
        10,
        11,
        12,
        13,
        14,
        15,
        16,
        18,
        19,
        20,
        22,
        23,
        24,
        80,
        81,
        82,
        83,
        87,
        88,
        89,
        90,
        91,
        92,
        93,
        94,
        95,
        96,
        98,
        99,
        100,
        127,
        128,
        129,
        130,
        131,
        132,
        133,
        135,
        136,
        137,
        138,
        139,
        140,
        141,
        142,
        143,
        144,
        145,
    ),
    "boat": (472, 554, 625, 814, 914),
    "bottle": (440, 720, 737, 898, 899, 901, 907),
    "car": (436, 511, 817),
    "cat": (281, 282, 283, 284, 285, 286),
    "chair": (423, 559, 765, 857),
    "clock": (409, 530, 892),
    "dog": tuple(range(152, 192))
    + tuple(range(193, 204))
    + tuple(range(205, 227))
    + tuple(range(228, 242))
    + tuple(range(243, 251))
    + tuple(range(252, 258))
    + (259,)
    + tuple(range(261, 264))
    + tuple(range(265, 269)),
    "elephant": (385, 386),
    "keyboard": (508, 878),
    "knife": (499,),
    "oven": (766,),
    "truck": (555, 569, 656, 675, 717, 734, 864, 867),
}

_FILE_RE = re.compile(r"^(?P<shape>[a-z_]+?)(?P<i>\d+)-(?P<texture>[a-z_]+?)(?P<j>\d+)\.png$")


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
    agree (e.g. ``airplane10-airplane1.png``) are listed too; :func:`actfx.metrics.shape_bias`
    excludes them.

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
                    f"cue-conflict file {path!r}: shape {m['shape']!r} differs from its "
                    f"folder {c!r}"
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
    from actfx._src.data._imageio import read_image  # 8- and 16-bit files at their own scale

    out = []
    for p in paths:
        a = read_image(p, mode="rgb", size=size)
        if out and a.shape != out[0].shape:
            raise ValueError(
                f"image file {p!r} has shape {a.shape}, the first had {out[0].shape}; pass size="
            )
        out.append(a)
    return np.stack(out) if out else np.zeros((0, 0, 0, 3), np.float32)
