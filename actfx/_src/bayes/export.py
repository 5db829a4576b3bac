"""Export posterior draws to ArviZ (optional dependency: ``pip install 'actfx[bayes]'``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from jaxtyping import ArrayLike

from actfx._src.bayes.inference import MCMCResult
from actfx._src.bayes.model import SparseMLP

INSTALL_HINT = "pip install 'actfx[bayes]' (or: pip install arviz)"


def _import_arviz():
    try:
        import arviz
    except ImportError as e:  # pragma: no cover - exercised by a monkeypatched test
        raise ImportError(
            f"to_inference_data needs ArviZ, which is not installed: {INSTALL_HINT}"
        ) from e
    return arviz


def to_inference_data(
    result: MCMCResult | Mapping[str, ArrayLike],
    model: SparseMLP | None = None,
    x: ArrayLike | None = None,
    y: ArrayLike | None = None,
    *,
    coords: Mapping[str, Any] | None = None,
    dims: Mapping[str, list[str]] | None = None,
) -> Any:
    """Posterior draws as an :class:`arviz.InferenceData`.

    Groups: ``posterior`` (every site of ``result.samples``, shape ``(chain, draw, ...)``,
    NumPyro site names such as ``layer0/act/c`` kept as variable names), ``sample_stats``
    (``diverging`` per draw, when ``result`` is an :class:`MCMCResult` from a kernel that
    records it), and, when ``model``, ``x`` and ``y`` are given, ``log_likelihood`` (``y``
    per draw and data point, for ``arviz.loo`` / ``arviz.waic``) and ``observed_data``.
    ArviZ's own :func:`arviz.from_numpyro` needs the ``MCMC`` object and re-runs the model;
    this works as well from a plain dict of grouped draws.

    Variable names keep the ``/`` of the site names; for ``to_netcdf`` rename them first
    (``idata.posterior.rename({...})``), since netCDF forbids ``/`` in names.

    Args:
      result: a :class:`MCMCResult`, or a dict ``site -> (chains, draws, ...)``.
      model, x, y: the model and data, to add the pointwise log-likelihood.
      coords, dims: passed to :func:`arviz.from_dict`.

    Returns:
      ``arviz.InferenceData``.

    Raises:
      ImportError: ArviZ is not installed (names the extra to install).
      ValueError: a site with fewer than 2 dimensions (not grouped by chain), or only some
        of ``model``/``x``/``y`` given.

    Example:
      >>> import numpy as np
      >>> idata = to_inference_data({"layer0/act/c": np.full((2, 5), 0.5)})
      >>> idata.posterior["layer0/act/c"].shape
      (2, 5)
    """
    az = _import_arviz()
    samples = result.samples if isinstance(result, MCMCResult) else result
    post = {}
    for k, v in samples.items():
        v = np.asarray(v)
        if v.ndim < 2:
            raise ValueError(
                "result must hold draws grouped by chain (chains, draws, ...); "
                f"site {k!r} has shape {v.shape}"
            )
        post[k] = v
    lead = {k: v.shape[:2] for k, v in post.items()}
    if len(set(lead.values())) > 1:
        raise ValueError(
            "result must hold the same (chains, draws) for every site (ArviZ would pad the "
            f"shorter ones with NaN draws), got {lead}"
        )
    given = [a is not None for a in (model, x, y)]
    if any(given) and not all(given):
        raise ValueError(
            "model, x and y must be given together (for the log-likelihood), or none of them"
        )
    stats = {}
    if isinstance(result, MCMCResult) and result.kernel != "gibbs":
        try:
            div = result.mcmc.get_extra_fields(group_by_chain=True).get("diverging")
        except Exception:
            div = None
        if div is not None:
            stats["diverging"] = np.asarray(div)
    kw: dict[str, Any] = {"posterior": post, "coords": coords, "dims": dims}
    if stats:
        kw["sample_stats"] = stats
    if model is not None and x is not None and y is not None:  # all three or none (above)
        from numpyro.infer.util import log_likelihood

        c, s = next(iter(post.values())).shape[:2]
        flat = {k: v.reshape((c * s,) + v.shape[2:]) for k, v in post.items()}
        model.check_data(x, y)
        ll = np.asarray(log_likelihood(model, flat, np.asarray(x), np.asarray(y))["y"])
        kw["log_likelihood"] = {"y": ll.reshape((c, s) + ll.shape[1:])}
        kw["observed_data"] = {"y": np.asarray(y)}
    return az.from_dict(**kw)
