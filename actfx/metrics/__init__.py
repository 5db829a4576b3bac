"""Metrics: shape bias, paired-difference intervals, robustness, calibration, PSNR.

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
* :func:`expected_calibration_error`, :func:`brier_score`, :func:`negative_log_likelihood`,
  :func:`reliability_curve` — calibration of predicted class probabilities (also
  re-exported by :mod:`actfx.bayes`, whose posterior predictive they summarise).
* :func:`psnr` — peak signal-to-noise ratio of a denoised image.

NumPy only (no Flax); the driver accepts any callable classifier.
"""

from actfx._src.metrics.calibration import (
    brier_score,
    expected_calibration_error,
    negative_log_likelihood,
    reliability_curve,
)
from actfx._src.metrics.intervals import PairedDifference, paired_difference
from actfx._src.metrics.psnr import psnr
from actfx._src.metrics.robustness import (
    CORRUPTION_FAMILIES,
    corruption_family,
    family_accuracy,
    mean_corruption_accuracy,
    relative_change,
    relative_drop,
)
from actfx._src.metrics.shape_bias import (
    geirhos_shape_bias,
    imagenet_to_geirhos16,
    predict_classes,
    shape_bias,
    shape_bias_counts,
)

__all__ = [
    "CORRUPTION_FAMILIES",
    "PairedDifference",
    "brier_score",
    "corruption_family",
    "expected_calibration_error",
    "family_accuracy",
    "geirhos_shape_bias",
    "imagenet_to_geirhos16",
    "mean_corruption_accuracy",
    "negative_log_likelihood",
    "paired_difference",
    "predict_classes",
    "psnr",
    "relative_change",
    "relative_drop",
    "reliability_curve",
    "shape_bias",
    "shape_bias_counts",
]
