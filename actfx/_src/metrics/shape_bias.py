r"""Shape bias (Geirhos et al., 2019) and a driver that scores a classifier with it.

Definition (Geirhos et al., ICLR 2019, Sec. 2 and their ``analysis.py``): on *cue-conflict*
images — the shape of class :math:`s_n` rendered with the texture of class :math:`t_n` —
each decision :math:`\hat y_n` is a *shape decision* if :math:`\hat y_n = s_n`, a *texture
decision* if :math:`\hat y_n = t_n`, and neither otherwise. Images whose shape and
texture class agree (:math:`s_n = t_n`) are excluded. Then

.. math::
    \text{shape bias} = \frac{\#\text{shape decisions}}
                              {\#\text{shape decisions} + \#\text{texture decisions}}.

Decisions that are neither are ignored by the bias, so a broken classifier that guesses
uniformly at random scores about 0.5; read the bias together with the *shape-decision
rate* and *texture-decision rate* (decisions / non-excluded images) that
:func:`shape_bias_counts` also returns. The real stimuli are read by
:func:`actfx.data.scan_geirhos_cue_conflict`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from actfx._src.data.shape_bias import (
    GEIRHOS_CATEGORIES,
    IMAGENET_INDICES_16,
    load_png_images,
    scan_geirhos_cue_conflict,
)


def _check_batch_size(batch_size) -> None:
    if (
        isinstance(batch_size, (bool, np.bool_))
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


def shape_bias_counts(
    pred: Sequence[int] | np.ndarray,
    shape_labels: Sequence[int] | np.ndarray,
    texture_labels: Sequence[int] | np.ndarray,
) -> dict[str, float]:
    """Counts behind :func:`shape_bias` and the bias itself.

    Args:
      pred: ``(N,)`` predicted classes.
      shape_labels: ``(N,)`` class of each image's shape.
      texture_labels: ``(N,)`` class of each image's texture.

    Returns:
      A dict with the counts ``shape`` (decisions == shape class), ``texture`` (== texture
      class), ``other`` (neither; ignored by the bias), ``excluded`` (images whose shape
      class equals their texture class); ``shape_bias`` (NaN when there is no shape or
      texture decision); and the rates over the non-excluded images ``shape_rate``,
      ``texture_rate``, ``other_rate`` (NaN when every image is excluded).

    Raises:
      ValueError: the three arrays are not 1-D of equal length, or hold values that are
        not whole numbers (NaN, 0.5, strings: a decision must be a class index).

    Example:
      >>> c = shape_bias_counts([0, 1, 0, 3], [0, 0, 1, 3], [1, 1, 2, 3])
      >>> c["shape"], c["texture"], c["other"], c["excluded"], c["shape_bias"]
      (1, 1, 1, 1, 0.5)
      >>> round(c["shape_rate"], 4), round(c["texture_rate"], 4)
      (0.3333, 0.3333)
    """
    pred = np.asarray(pred)
    s = np.asarray(shape_labels)
    t = np.asarray(texture_labels)
    if pred.ndim != 1 or s.shape != pred.shape or t.shape != pred.shape:
        raise ValueError(
            "pred, shape_labels and texture_labels must be 1-D of equal length, got shapes "
            f"{pred.shape}, {s.shape}, {t.shape}"
        )
    for name, a in (("pred", pred), ("shape_labels", s), ("texture_labels", t)):
        if a.dtype.kind not in "iuf" or (
            a.dtype.kind == "f" and not np.all(np.isfinite(a) & (a == np.round(a)))
        ):
            raise ValueError(f"{name} must hold class indices (whole numbers), got {a[:8]}")
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
        "shape_rate": n_shape / n_kept if n_kept else float("nan"),
        "texture_rate": n_texture / n_kept if n_kept else float("nan"),
        "other_rate": (n_kept - decided) / n_kept if n_kept else float("nan"),
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


def _decisions(r, n: int, num_classes: int | None) -> np.ndarray:
    """Checked class decisions of one batch's ``classify`` output ``r``."""
    head = f"classify must return scores (B, num_classes) or decisions (B,) for a batch of B={n}"
    if r.dtype.kind not in "biuf":
        raise ValueError(f"{head}, got dtype {r.dtype}")
    if r.ndim == 2 and r.shape[0] == n:
        if num_classes is not None and r.shape[1] != num_classes:
            raise ValueError(
                f"classify returned scores of shape {r.shape} for {num_classes} classes; "
                f"expected ({n}, {num_classes})"
            )
        if r.dtype.kind == "f" and not np.all(np.isfinite(r)):
            row = int(np.flatnonzero(~np.all(np.isfinite(r), axis=1))[0])
            raise ValueError(f"classify returned NaN or infinite scores (row {row} of the batch)")
        return r.argmax(axis=-1).astype(np.int64)
    if not (r.ndim == 1 and r.shape[0] == n):
        raise ValueError(f"{head}, got shape {r.shape}")
    if r.dtype.kind in "bf":
        if r.dtype.kind == "b" or not np.all(np.isfinite(r) & (r == np.round(r))):
            raise ValueError(f"classify returned decisions that are not whole numbers: {r[:8]}")
    hi = num_classes if num_classes is not None else np.inf
    bad = np.flatnonzero((r < 0) | (r >= hi))
    if bad.size:
        rng = f"[0, {num_classes})" if num_classes is not None else ">= 0"
        raise ValueError(
            f"classify returned decision {r[bad[0]].item()!r} (batch row {int(bad[0])}); decisions "
            f"must be class indices in {rng}"
        )
    return r.astype(np.int64)


def predict_classes(
    classify: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    *,
    batch_size: int = 64,
    num_classes: int | None = None,
) -> np.ndarray:
    """Class decisions of ``classify`` on ``images``, batch by batch.

    ``classify`` maps a batch ``(B, H, W, C)`` to scores ``(B, num_classes)`` (decision:
    argmax) or to integer decisions ``(B,)``.

    Args:
      classify: the classifier.
      images: ``(N, H, W, C)`` images.
      batch_size: images per call of ``classify``.
      num_classes: when given, scores must have ``num_classes`` columns and decisions
        lie in ``[0, num_classes)``.

    Raises:
      ValueError: a bad ``batch_size``/``num_classes``; ``classify`` returns an output of
        the wrong shape or dtype, NaN/infinite scores, or decisions that are not class
        indices.

    Example:
      >>> import numpy as np
      >>> images = np.eye(3)[:, None, None, :]
      >>> predict_classes(lambda x: x.reshape(len(x), -1), images, batch_size=2)
      array([0, 1, 2])
    """
    _check_batch_size(batch_size)
    if num_classes is not None and (
        isinstance(num_classes, (bool, np.bool_))
        or not isinstance(num_classes, (int, np.integer))
        or num_classes < 1
    ):
        raise ValueError(f"num_classes must be None or a positive int, got {num_classes!r}")
    out = []
    for start in range(0, len(images), batch_size):
        xb = np.asarray(images[start : start + batch_size])
        out.append(_decisions(np.asarray(classify(xb)), len(xb), num_classes))
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def imagenet_to_geirhos16(probs: np.ndarray) -> np.ndarray:
    """Pool ImageNet-1k probabilities ``(N, 1000)`` into the 16 categories ``(N, 16)``.

    Category ``c`` scores the mean probability of its ImageNet classes
    (:data:`IMAGENET_INDICES_16`), as in Geirhos et al.'s ``probabilities_to_decision``;
    columns follow :data:`GEIRHOS_CATEGORIES`. Pass softmax probabilities, not logits.

    Raises:
      ValueError: ``probs`` not ``(N, 1000)``, or with NaN/infinite/negative entries.

    Example:
      >>> import numpy as np
      >>> p = np.zeros((1, 1000)); p[0, 404] = 1.0   # 404 = airliner
      >>> GEIRHOS_CATEGORIES[int(imagenet_to_geirhos16(p).argmax())]
      'airplane'
    """
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[1] != 1000:
        raise ValueError(f"probs must have shape (N, 1000), got {probs.shape}")
    if probs.dtype.kind not in "iuf" or not np.all(np.isfinite(probs) & (probs >= 0)):
        raise ValueError("probs must be finite probabilities >= 0 (softmax outputs, not logits)")
    return np.stack(
        [probs[:, list(IMAGENET_INDICES_16[c])].mean(axis=1) for c in GEIRHOS_CATEGORIES], axis=1
    )


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

    Raises:
      FileNotFoundError: see :func:`actfx.data.scan_geirhos_cue_conflict`.
      ValueError: a bad ``batch_size``; ``classify`` returns scores without
        ``len(classes)`` columns, NaN/infinite scores, or decisions outside
        ``[0, len(classes))`` (see :func:`predict_classes`).

    Example:
      >>> geirhos_shape_bias(lambda x: x, "/nonexistent")
      Traceback (most recent call last):
      ...
      FileNotFoundError: cue-conflict root '/nonexistent' is not a directory
    """
    index = scan_geirhos_cue_conflict(root, classes=classes)
    _check_batch_size(batch_size)
    preds = []
    for start in range(0, len(index.paths), batch_size):
        xb = load_png_images(index.paths[start : start + batch_size], size=size)
        preds.append(
            predict_classes(classify, xb, batch_size=batch_size, num_classes=len(index.classes))
        )
    pred = np.concatenate(preds)
    counts = shape_bias_counts(pred, index.shape_labels, index.texture_labels)
    counts["n_images"] = len(index.paths)
    return counts
