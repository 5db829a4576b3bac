"""Posterior predictive summaries and sparsity of the weights under the posterior."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from actfx._src.bayes.model import SparseMLP

_NETWORK_SUFFIXES = ("/w", "/b")


def _draws(samples: Mapping[str, ArrayLike], grouped: bool) -> dict[str, Array]:
    out = {}
    for k, v in samples.items():
        v = jnp.asarray(v)
        out[k] = v.reshape((-1,) + v.shape[2:]) if grouped else v
    return out


def network_params(samples: Mapping[str, ArrayLike], *, grouped: bool = False) -> dict[str, Array]:
    """The draws that :meth:`SparseMLP.forward` needs (weights, biases, activation params)."""
    d = _draws(samples, grouped)
    return {k: v for k, v in d.items() if k.endswith(_NETWORK_SUFFIXES) or "/act/" in k}


def predictive_draws(
    model: SparseMLP, samples: Mapping[str, ArrayLike], x: ArrayLike, *, grouped: bool = False
) -> Array:
    """Predictive mean of ``y`` for every draw: shape ``(S, N)`` (Bernoulli, 1-D Normal) or
    ``(S, N, K)``; ``grouped=True`` when ``samples`` are ``(chains, draws, ...)``.

    Raises:
      ValueError: ``x`` not a finite ``(N, in_features)`` float array, or ``samples``
        missing a network site or holding non-finite draws.
    """
    model.check_data(x)
    params = network_params(samples, grouped=grouped)
    missing = [
        k
        for k in model.weight_sites() + [w[:-2] + "/b" for w in model.weight_sites()]
        if k not in params
    ] + [k for k in model.activation_sites() if k not in params]
    if missing:
        raise ValueError(f"samples must hold the network sites, missing {missing}")
    bad = [k for k, v in params.items() if not np.all(np.isfinite(np.asarray(v)))]
    if bad:
        raise ValueError(f"samples must be finite, got NaN or infinite draws at sites {bad}")
    return jax.lax.map(lambda p: model.predict_mean(p, x), params, batch_size=64)


def posterior_predictive(
    model: SparseMLP,
    samples: Mapping[str, ArrayLike],
    x: ArrayLike,
    *,
    prob: float = 0.9,
    grouped: bool = False,
) -> dict[str, np.ndarray]:
    """Posterior predictive mean and equal-tailed ``prob`` credible interval of E[y | x, w].

    Returns ``{"mean", "lower", "upper"}``, each of shape ``(N,)`` or ``(N, K)``.

    Example:
      >>> import numpy as np
      >>> m = SparseMLP((2, 3, 1), activation="relu")
      >>> s = {"layer0/w": np.zeros((5, 2, 3)), "layer0/b": np.zeros((5, 3)),
      ...      "layer1/w": np.zeros((5, 3, 1)), "layer1/b": np.zeros((5, 1))}
      >>> posterior_predictive(m, s, np.ones((4, 2), "float32"))["mean"]
      array([0.5, 0.5, 0.5, 0.5], dtype=float32)
    """
    if not 0 < prob < 1:
        raise ValueError(f"prob must be in (0, 1), got {prob!r}")
    d = np.asarray(predictive_draws(model, samples, x, grouped=grouped))
    lo, hi = np.quantile(d, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    return {"mean": d.mean(0), "lower": lo, "upper": hi}


def prob_small(w: ArrayLike, eps: float) -> np.ndarray:
    """Posterior probability ``P(|w| < eps)`` per weight from draws ``w`` of shape ``(S, ...)``.

    Example:
      >>> prob_small(np.array([[0.0, 1.0], [0.5, 1.0]]), 0.1).tolist()
      [0.5, 0.0]
    """
    _check_eps(eps)
    return np.mean(np.abs(np.asarray(w)) < eps, axis=0)


def _check_eps(eps) -> None:
    if isinstance(eps, bool) or not (
        isinstance(eps, (int, float, np.floating)) and np.isfinite(eps) and eps > 0
    ):
        raise ValueError(f"eps must be a finite float > 0, got {eps!r}")


def prune_masks(
    model: SparseMLP,
    samples: Mapping[str, ArrayLike],
    *,
    eps: float = 0.05,
    threshold: float = 0.5,
    grouped: bool = False,
) -> dict[str, np.ndarray]:
    """Keep-masks ``layer{l}/w -> bool`` (True = kept): a weight is pruned when
    ``P(|w| < eps) > threshold``.

    Raises:
      ValueError: ``eps`` not a finite float > 0, ``threshold`` not in [0, 1] (NaN included),
        or ``samples`` missing a weight site.
    """
    _check_eps(eps)
    if isinstance(threshold, bool) or not (
        isinstance(threshold, (int, float, np.floating)) and 0 <= threshold <= 1
    ):
        raise ValueError(f"threshold must be a float in [0, 1], got {threshold!r}")
    missing = [k for k in model.weight_sites() if k not in samples]
    if missing:
        raise ValueError(
            f"samples must hold the weight sites {model.weight_sites()}, missing {missing}"
        )
    d = _draws(samples, grouped)
    return {k: prob_small(d[k], eps) <= threshold for k in model.weight_sites()}


def pruned_accuracy(
    model: SparseMLP,
    samples: Mapping[str, ArrayLike],
    x: ArrayLike,
    y: ArrayLike,
    *,
    eps: float = 0.05,
    threshold: float = 0.5,
    grouped: bool = False,
) -> dict[str, float]:
    """Accuracy of the posterior-mean predictor with pruned weights set to zero in every draw.

    Returns ``{"accuracy", "fraction_pruned"}`` (classification likelihoods only).

    Raises:
      ValueError: a Normal likelihood, ``x``/``y`` not valid for the model (e.g. a label 2 for
        Bernoulli), or bad ``eps``/``threshold``/``samples`` (see :func:`prune_masks`).
    """
    if model.likelihood == "normal":
        raise ValueError(
            "pruned_accuracy needs a classification likelihood, got likelihood='normal'"
        )
    model.check_data(x, y)  # labels in {0, 1} / [0, K), one per row of x
    masks = prune_masks(model, samples, eps=eps, threshold=threshold, grouped=grouped)
    d = network_params(samples, grouped=grouped)
    for k, keep in masks.items():
        d[k] = d[k] * jnp.asarray(keep, d[k].dtype)
    p = np.asarray(predictive_draws(model, d, x)).mean(0)
    pred = (p > 0.5).astype(int) if p.ndim == 1 else p.argmax(-1)
    total = sum(m.size for m in masks.values())
    pruned = sum(int((~m).sum()) for m in masks.values())
    return {"accuracy": float(np.mean(pred == np.asarray(y))), "fraction_pruned": pruned / total}
