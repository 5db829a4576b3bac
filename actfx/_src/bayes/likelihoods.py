"""Observation models (Bernoulli, Categorical, Normal) and checks on the data they get."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jaxtyping import Array, ArrayLike

from actfx._src._checks import is_concrete

LIKELIHOODS = ("bernoulli", "categorical", "normal")


def check_likelihood(likelihood: str) -> None:
    """Raise ``ValueError`` unless ``likelihood`` is one of :data:`LIKELIHOODS`."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")


def check_data(
    x: ArrayLike, y: ArrayLike | None, likelihood: str, in_features: int, out_features: int
) -> None:
    """Validate a design matrix ``x`` and targets ``y`` for ``likelihood``.

    ``x`` must be a floating ``(N, in_features)`` array; ``y`` (when given) must have ``N``
    rows and be: 0/1 labels of shape ``(N,)`` for ``"bernoulli"``, integer classes in
    ``[0, out_features)`` of shape ``(N,)`` for ``"categorical"``, floats of shape ``(N,)``
    (``out_features == 1``) or ``(N, out_features)`` for ``"normal"``. Value checks run on
    concrete arrays only (they are skipped under ``jit``); shape checks always run.

    Raises:
      ValueError: naming ``x`` or ``y`` and what was expected.

    Example:
      >>> import numpy as np
      >>> check_data(np.zeros((3, 2)), np.array([0, 1, 2]), "bernoulli", 2, 1)
      Traceback (most recent call last):
        ...
      ValueError: y must hold binary labels in {0, 1} for likelihood='bernoulli', got values [0 1 2]
    """
    check_likelihood(likelihood)
    xs = jnp.shape(x)
    if len(xs) != 2 or xs[1] != in_features:
        raise ValueError(f"x must have shape (N, {in_features}), got {xs}")
    if xs[0] < 1:
        raise ValueError(f"x must have at least one row, got shape {xs}")
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise ValueError(f"x must have a floating dtype, got {jnp.result_type(x)}")
    if is_concrete(x) and not np.all(np.isfinite(np.asarray(x))):
        raise ValueError("x must be finite, got a NaN or infinite entry")
    if y is None:
        return
    ys = jnp.shape(y)
    if len(ys) == 0 or ys[0] != xs[0]:
        raise ValueError(f"y must have {xs[0]} rows to match x of shape {xs}, got shape {ys}")
    if likelihood in ("bernoulli", "categorical"):
        if len(ys) != 1:
            raise ValueError(f"y must have shape (N,) for likelihood={likelihood!r}, got {ys}")
        if not is_concrete(y):
            return
        vals = np.unique(np.asarray(y))
        if likelihood == "bernoulli" and not np.all(np.isin(vals, (0, 1))):
            raise ValueError(
                "y must hold binary labels in {0, 1} for likelihood='bernoulli', "
                f"got values {vals[:10]}"
            )
        if likelihood == "categorical" and (
            not np.all(vals == np.round(vals)) or vals.min() < 0 or vals.max() >= out_features
        ):
            raise ValueError(
                f"y must hold integer classes in [0, {out_features}) for likelihood='categorical', "
                f"got values {vals[:10]}"
            )
    else:
        want = [(xs[0],), (xs[0], out_features)] if out_features == 1 else [(xs[0], out_features)]
        if ys not in [tuple(w) for w in want]:
            raise ValueError(
                f"y must have shape {' or '.join(map(str, want))} for likelihood='normal', got {ys}"
            )
        if is_concrete(y) and not np.all(np.isfinite(np.asarray(y, dtype=float))):
            raise ValueError("y must be finite, got a NaN or infinite entry")


def observe(likelihood: str, out: Array, y: ArrayLike | None) -> None:
    """Add the observation site ``"y"`` (and ``"noise/scale"`` for Normal) given network outputs.

    ``out`` has shape ``(N, out_features)``: logits for Bernoulli (``out_features == 1``) and
    Categorical, means for Normal (noise ``sigma ~ HalfNormal(1)``, site ``noise/scale``).
    """
    check_likelihood(likelihood)
    n = out.shape[0]
    if likelihood == "normal":
        sigma = numpyro.sample("noise/scale", dist.HalfNormal(1.0))
    with numpyro.plate("data", n):
        if likelihood == "bernoulli":
            numpyro.sample("y", dist.Bernoulli(logits=out[:, 0]), obs=y)
        elif likelihood == "categorical":
            # what dist.Categorical(logits=out) returns (that factory is typed as maybe None)
            numpyro.sample("y", dist.CategoricalLogits(out), obs=y)
        elif out.shape[1] == 1 and (y is None or jnp.ndim(y) == 1):
            numpyro.sample("y", dist.Normal(out[:, 0], sigma), obs=y)
        else:
            numpyro.sample("y", dist.Normal(out, sigma).to_event(1), obs=y)


def output_mean(likelihood: str, out: Array) -> Array:
    """Predictive mean of ``y`` given network outputs: P(y=1) ``(N,)``, class probabilities
    ``(N, K)``, or the Normal mean (``(N,)`` when ``out_features == 1``)."""
    check_likelihood(likelihood)
    if likelihood == "bernoulli":
        return jax.nn.sigmoid(out[..., 0])
    if likelihood == "categorical":
        return jax.nn.softmax(out, axis=-1)
    return out[..., 0] if out.shape[-1] == 1 else out
