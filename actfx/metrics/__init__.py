"""Metrics shared by the experiments: shape bias, paired-difference intervals, robustness.

* :func:`shape_bias`, :func:`shape_bias_counts` — Geirhos et al.'s shape bias on
  cue-conflict images, and :func:`geirhos_shape_bias` / :func:`predict_classes`, the
  driver that runs a classifier over images (or the real Geirhos folder, read by
  :func:`actfx.data.scan_geirhos_cue_conflict`) and scores its decisions.
* :func:`paired_difference` — mean of paired differences (seed-matched runs) with a 95 %
  t-interval or a paired bootstrap interval.
* :func:`mean_corruption_accuracy`, :func:`relative_drop`, :func:`family_accuracy`,
  :data:`CORRUPTION_FAMILIES` — robustness summaries of per-corruption accuracies, and
  :func:`relative_change`, the relative fluctuation of a feature between a clean input and
  its corrupted copy.

NumPy only (no Flax); the driver accepts any callable classifier.
"""

from actfx.metrics.intervals import PairedDifference, paired_difference
from actfx.metrics.robustness import (
    CORRUPTION_FAMILIES,
    corruption_family,
    family_accuracy,
    mean_corruption_accuracy,
    relative_change,
    relative_drop,
)
from actfx.metrics.shape_bias import (
    geirhos_shape_bias,
    imagenet_to_geirhos16,
    predict_classes,
    shape_bias,
    shape_bias_counts,
)

__all__ = [
    "CORRUPTION_FAMILIES",
    "PairedDifference",
    "corruption_family",
    "family_accuracy",
    "geirhos_shape_bias",
    "imagenet_to_geirhos16",
    "mean_corruption_accuracy",
    "paired_difference",
    "predict_classes",
    "relative_change",
    "relative_drop",
    "shape_bias",
    "shape_bias_counts",
]
