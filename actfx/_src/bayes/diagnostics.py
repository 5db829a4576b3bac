"""Convergence diagnostics (R-hat, ESS, ESS/s, divergences) on identifiable quantities."""

from __future__ import annotations

import numpy as np
from jaxtyping import ArrayLike
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin
from numpyro.infer.util import log_likelihood

from actfx._src.bayes.inference import MCMCResult
from actfx._src.bayes.model import SparseMLP
from actfx._src.bayes.posterior import predictive_draws

NOTE = (
    "Hidden-unit weights are not identifiable (unit permutations, sign flips), so convergence is "
    "reported on activation parameters, layer scales, noise scale, the log-likelihood and the "
    "posterior predictive mean (worst data point)."
)


def _row(name: str, chains: np.ndarray, wall_time: float) -> dict:
    """Summary of one scalar quantity from ``chains`` of shape ``(C, S)``."""
    flat = chains.reshape(-1)
    ess = float(effective_sample_size(chains)) if chains.shape[1] > 3 else float("nan")
    rhat = (
        float(split_gelman_rubin(chains)) if chains.shape[0] * chains.shape[1] > 3 else float("nan")
    )
    q5, q95 = np.quantile(flat, [0.05, 0.95])
    return {
        "name": name,
        "mean": float(flat.mean()),
        "std": float(flat.std()),
        "q5": float(q5),
        "q95": float(q95),
        "r_hat": rhat,
        "ess": ess,
        "ess_per_s": ess / wall_time if wall_time > 0 else float("nan"),
    }


def _scalar_series(samples: dict, names: list[str]) -> list[tuple[str, np.ndarray]]:
    out = []
    for k in names:
        if k not in samples:
            continue
        v = np.asarray(samples[k])
        if v.ndim == 2:
            out.append((k, v))
        else:
            flat = v.reshape(v.shape[:2] + (-1,))
            out.extend((f"{k}[{i}]", flat[..., i]) for i in range(flat.shape[-1]))
    return out


def diagnostics_table(
    result: MCMCResult, model: SparseMLP, x: ArrayLike, y: ArrayLike, *, print_table: bool = True
) -> dict:
    """R-hat, ESS and ESS/s of the identifiable quantities of a :class:`SparseMLP` posterior.

    Rows: every activation parameter, layer scale (and ``noise/scale``), the total
    log-likelihood ``log_lik`` and the posterior predictive mean at the data point with the
    worst R-hat (``predictive[worst]``). ESS/s divides by ``result.wall_time`` (compile,
    warm-up and sampling included). Split R-hat and ESS are NumPyro's
    (:func:`numpyro.diagnostics.split_gelman_rubin`,
    :func:`~numpyro.diagnostics.effective_sample_size`).

    Returns:
      ``{"rows": [...], "max_r_hat", "min_ess", "min_ess_per_s", "divergences",
      "divergence_rate", "wall_time", "note"}``; with ``print_table`` the table is printed.
    """
    s = {k: np.asarray(v) for k, v in result.samples.items()}
    names = model.activation_sites() + model.scale_sites() + ["noise/scale"]
    series = _scalar_series(s, names)
    # Log-likelihood per draw.
    flat = result.flat_samples()
    ll = log_likelihood(model, flat, x, y)["y"]
    ll = np.asarray(ll).reshape(ll.shape[0], -1).sum(-1)
    c = s[next(iter(s))].shape[0]
    series.append(("log_lik", ll.reshape(c, -1)))
    rows = [_row(n, v, result.wall_time) for n, v in series]
    pred = np.asarray(predictive_draws(model, result.samples, x, grouped=True))
    pred = pred.reshape(c, -1, int(np.prod(pred.shape[1:])))  # (chains, draws, N * K)
    worst = int(np.nanargmax(np.asarray(split_gelman_rubin(pred))))
    prow = _row("predictive[worst]", pred[..., worst], result.wall_time)
    prow["ess"] = float(np.min(np.asarray(effective_sample_size(pred))))  # worst ESS over points
    prow["ess_per_s"] = prow["ess"] / result.wall_time
    rows.append(prow)
    out = {
        "rows": rows,
        "max_r_hat": float(np.nanmax([r["r_hat"] for r in rows])),
        "min_ess": float(np.nanmin([r["ess"] for r in rows])),
        "min_ess_per_s": float(np.nanmin([r["ess_per_s"] for r in rows])),
        "divergences": result.num_divergences,
        "divergence_rate": result.num_divergences / result.num_draws,
        "wall_time": result.wall_time,
        "note": NOTE,
    }
    if print_table:
        print(format_table(out))
    return out


def format_table(diag: dict) -> str:
    """Plain-text table of :func:`diagnostics_table`'s output."""
    head = (
        f"{'quantity':<24}{'mean':>10}{'std':>9}{'5%':>9}{'95%':>9}"
        f"{'r_hat':>8}{'ess':>8}{'ess/s':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in diag["rows"]:
        lines.append(
            f"{r['name']:<24}{r['mean']:>10.4g}{r['std']:>9.3g}{r['q5']:>9.3g}{r['q95']:>9.3g}"
            f"{r['r_hat']:>8.3f}{r['ess']:>8.0f}{r['ess_per_s']:>9.1f}"
        )
    lines.append(
        f"max r_hat {diag['max_r_hat']:.3f} | min ess {diag['min_ess']:.0f} | min ess/s "
        f"{diag['min_ess_per_s']:.1f} | divergences {diag['divergences']} "
        f"({100 * diag['divergence_rate']:.2f} %) | wall {diag['wall_time']:.1f} s"
    )
    lines.append(diag["note"])
    return "\n".join(lines)
