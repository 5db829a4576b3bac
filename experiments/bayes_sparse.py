"""Bayesian sparse networks with trainable activations, sampled by MCMC (seed 004).

Two studies (spec ``bayes.md``):

1. **Planted truth.** Data from a sparse teacher MLP (8 inputs, 3 hidden MMeLU units, only
   inputs 0-2 relevant, 5 of 24 first-layer weights non-zero, known c / lam / gamma) with
   Normal noise. The posterior of the same architecture (SoftLaplace hierarchy, NUTS) should
   recover the sparsity pattern (precision / recall of non-zero weights after matching
   hidden units to the teacher's; input relevance), cover the true activation parameters in
   90 % credible intervals, and converge (R-hat, ESS/s, divergences on identifiable
   quantities). The exact-Laplace model sampled by ``ProximalHMC`` is reported beside it.
2. **Breast cancer (Wisconsin)**, 569 x 30, binary, offline in scikit-learn: a Bayesian
   sparse MMeLU net vs a Bayesian ReLU net (both NUTS) vs optax-trained MAP nets of both
   (Adam on the same log posterior), over several random 70/30 splits: accuracy, NLL, ECE,
   Brier, fraction pruned and pruned accuracy, wall time, min ESS/s, max R-hat.

Writes ``results/bayes_sparse/bayes_sparse.json`` and ``.png`` (activation posterior with a
90 % credible band vs the teacher; reliability diagram).

    python -m experiments.bayes_sparse            # quick CPU config (~6 min on 2 idle cores)
    python -m experiments.bayes_sparse --full     # more draws, chains and splits (accelerator)
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from scipy.optimize import linear_sum_assignment
from tqdm.auto import tqdm

from actfx import mmelu
from actfx.bayes import (
    SparseMLP,
    brier_score,
    diagnostics_table,
    expected_calibration_error,
    map_estimate,
    negative_log_likelihood,
    posterior_predictive,
    prob_small,
    pruned_accuracy,
    reliability_curve,
    run_mcmc,
)
from experiments.reporting import format_table, mean_std, results_dir, save_json

TEACHER_ACT = {"c": 0.6, "lam": 1.5, "gamma": 0.5}


# ------------------------------------------------------------------------------------------
# Study 1: planted sparse teacher
# ------------------------------------------------------------------------------------------
def make_teacher(seed: int, n: int, noise: float = 0.1):
    """Sparse 8-3-1 MMeLU teacher and ``n`` noisy regression samples from it."""
    rng = np.random.default_rng(seed)
    w0 = np.zeros((8, 3))
    w0[0, 0], w0[1, 0], w0[1, 1], w0[2, 1], w0[2, 2] = 1.5, -1.2, 1.0, 1.3, -1.6
    w1 = np.array([[1.5], [-1.2], [1.4]])
    b0, b1 = np.array([0.2, -0.3, 0.1]), np.array([0.3])
    x = rng.normal(size=(n, 8))
    h = np.asarray(mmelu(x @ w0 + b0, **TEACHER_ACT))
    y = (h @ w1 + b1)[:, 0] + noise * rng.normal(size=n)
    return {"w0": w0, "w1": w1}, x.astype("float32"), y.astype("float32")


def support_metrics(w0_draws: np.ndarray, w0_true: np.ndarray, eps: float) -> dict:
    """Support precision/recall of first-layer weights after matching hidden units.

    A weight is "selected" when ``P(|w| < eps) < 0.5``. Hidden units are matched to the
    teacher's by the Hungarian assignment on |posterior mean| vs |teacher| (permutation
    symmetry). Input relevance (an input is selected if any of its weights is) needs no
    matching.
    """
    sel = prob_small(w0_draws, eps) < 0.5
    mean = np.abs(w0_draws.mean(0))
    cost = -np.abs(w0_true).T @ mean  # (teacher unit, student unit)
    _, perm = linear_sum_assignment(cost)
    sel = sel[:, perm]
    truth = w0_true != 0
    tp = np.sum(sel & truth)
    prec = tp / max(sel.sum(), 1)
    rec = tp / truth.sum()
    sin, tin = sel.any(1), truth.any(1)
    return {
        "weight_precision": float(prec),
        "weight_recall": float(rec),
        "input_precision": float(np.sum(sin & tin) / max(sin.sum(), 1)),
        "input_recall": float(np.sum(sin & tin) / tin.sum()),
        "num_selected": int(sel.sum()),
    }


def planted_study(cfg, seed: int) -> dict:
    _, x, y = make_teacher(seed, cfg.planted_n)
    teacher_w, _, _ = make_teacher(seed, 1)
    out = {}
    for label, prior, kernel in cfg.planted_runs:
        model = SparseMLP((8, 3, 1), activation="mmelu", prior=prior, likelihood="normal")
        res = run_mcmc(
            model, x, y, kernel=kernel, num_warmup=cfg.warmup, num_samples=cfg.samples,
            num_chains=cfg.chains, seed=seed, map_steps=cfg.map_steps, map_restarts=cfg.map_restarts,
            max_tree_depth=cfg.max_tree_depth, num_steps=cfg.prox_steps,
        )
        diag = diagnostics_table(res, model, x, y, print_table=cfg.verbose)
        flat = res.flat_samples()
        cover = {}
        for k, v in TEACHER_ACT.items():
            lo, hi = np.quantile(np.asarray(flat[f"layer0/act/{k}"]), [0.05, 0.95])
            cover[k] = {"true": v, "lo": float(lo), "hi": float(hi), "covered": bool(lo <= v <= hi)}
        sup = support_metrics(np.asarray(flat["layer0/w"]), teacher_w["w0"], cfg.eps)
        out[label] = {
            **sup,
            "coverage": float(np.mean([c["covered"] for c in cover.values()])),
            "intervals": cover,
            "max_r_hat": diag["max_r_hat"],
            "min_ess": diag["min_ess"],
            "min_ess_per_s": diag["min_ess_per_s"],
            "divergence_rate": diag["divergence_rate"],
            "wall_time": res.wall_time,
            "diagnostics": diag["rows"],
            "_samples": {k: np.asarray(flat[f"layer0/act/{k}"]) for k in TEACHER_ACT},
        }
    return out


# ------------------------------------------------------------------------------------------
# Study 2: breast cancer
# ------------------------------------------------------------------------------------------
def load_breast_cancer_split(seed: int, test_frac: float = 0.3):
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    x, y = data.data.astype("float64"), data.target.astype("float32")
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(y))
    n_test = int(round(test_frac * len(y)))
    te, tr = idx[:n_test], idx[n_test:]
    mu, sd = x[tr].mean(0), x[tr].std(0)
    z = ((x - mu) / sd).astype("float32")
    return z[tr], y[tr], z[te], y[te]


def _metrics(p: np.ndarray, y: np.ndarray) -> dict:
    return {
        "accuracy": float(np.mean((p > 0.5) == y)),
        "nll": negative_log_likelihood(p, y),
        "ece": expected_calibration_error(p, y),
        "brier": brier_score(p, y),
    }


def breast_cancer_study(cfg, seed: int) -> dict:
    xtr, ytr, xte, yte = load_breast_cancer_split(seed)
    sizes = (30, cfg.hidden, 1)
    out = {}
    for act in ("mmelu", "relu"):
        model = SparseMLP(sizes, activation=act, prior="soft_laplace")
        # MAP baseline: Adam (optax) on the same log posterior.
        t0 = time.perf_counter()
        point = map_estimate(model, xtr, ytr, num_steps=cfg.map_steps, seed=seed)
        t_map = time.perf_counter() - t0
        p_map = np.asarray(model.predict_mean({k: v for k, v in point.items()} | _weights(model, point), xte))
        out[f"MAP {act}"] = {**_metrics(p_map, yte), "fraction_pruned": float("nan"),
                             "pruned_accuracy": float("nan"), "wall_time": t_map,
                             "min_ess_per_s": float("nan"), "max_r_hat": float("nan"), "_p": p_map}
        res = run_mcmc(model, xtr, ytr, num_warmup=cfg.warmup, num_samples=cfg.samples,
                       num_chains=cfg.chains, seed=seed, init=point, max_tree_depth=cfg.max_tree_depth)
        diag = diagnostics_table(res, model, xtr, ytr, print_table=cfg.verbose)
        pp = posterior_predictive(model, res.samples, xte, grouped=True)
        pr = pruned_accuracy(model, res.samples, xte, yte, eps=cfg.eps, grouped=True)
        out[f"Bayes {act}"] = {**_metrics(pp["mean"], yte), "fraction_pruned": pr["fraction_pruned"],
                               "pruned_accuracy": pr["accuracy"], "wall_time": res.wall_time + t_map,
                               "min_ess_per_s": diag["min_ess_per_s"], "max_r_hat": diag["max_r_hat"],
                               "divergence_rate": diag["divergence_rate"], "_p": pp["mean"]}
        if act == "mmelu":
            out["_act_samples"] = {k: np.asarray(res.flat_samples()[f"layer0/act/{k}"]) for k in TEACHER_ACT}
    out["_y"] = yte
    return out


def _weights(model: SparseMLP, point: dict) -> dict:
    """Deterministic ``layer{l}/w`` of a MAP point (non-centred: scale * w_z)."""
    return {f"layer{l}/w": point[f"layer{l}/scale"] * point[f"layer{l}/w_z"] for l in range(model.num_layers)}


# ------------------------------------------------------------------------------------------
def plot(path, planted: dict, bc: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    grid = np.linspace(-3, 3, 241).astype("float32")

    def band(a, samples, label, color):
        f = np.stack([np.asarray(mmelu(grid, c, l, g)) for c, l, g in
                      zip(samples["c"][::4], samples["lam"][::4], samples["gamma"][::4])])
        lo, hi = np.quantile(f, [0.05, 0.95], axis=0)
        a.fill_between(grid, lo, hi, color=color, alpha=0.3, label=f"{label} 90 % band")
        a.plot(grid, f.mean(0), color=color, label=f"{label} mean")

    first = next(iter(planted.values()))
    band(ax[0], first["_samples"], "posterior", "C0")
    ax[0].plot(grid, np.asarray(mmelu(grid, **TEACHER_ACT)), "k--", label="teacher")
    ax[0].set_title("planted teacher: layer-0 MMeLU posterior")
    ax[0].legend(fontsize=8)
    band(ax[1], bc["_act_samples"], "posterior", "C1")
    ax[1].set_title("breast cancer: layer-0 MMeLU posterior")
    ax[1].legend(fontsize=8)
    for name, color in (("Bayes mmelu", "C0"), ("MAP mmelu", "C3"), ("Bayes relu", "C2")):
        r = reliability_curve(bc[name]["_p"], bc["_y"], num_bins=10)
        ok = r["count"] > 0
        ax[2].plot(r["confidence"][ok], r["accuracy"][ok], "o-", color=color, label=name)
    ax[2].plot([0.5, 1], [0.5, 1], "k:")
    ax[2].set_xlabel("confidence")
    ax[2].set_ylabel("accuracy")
    ax[2].set_title("breast cancer: reliability (last split)")
    ax[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="accelerator config: more draws/chains/splits")
    ap.add_argument("--seeds", type=int, default=None, help="number of seeds / splits")
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--samples", type=int, default=None)
    ap.add_argument("--chains", type=int, default=None)
    ap.add_argument("--max-tree-depth", type=int, default=None, help="NUTS max tree depth (default 10, as in the spec's sketch)")
    ap.add_argument("--prox-steps", type=int, default=30, help="leapfrog steps per ProximalHMC proposal")
    ap.add_argument("--no-proximal", action="store_true", help="skip the ProximalHMC row of study 1")
    ap.add_argument("--verbose", action="store_true", help="print every diagnostics table")
    ap.add_argument("--out", default="results")
    cfg = ap.parse_args(argv)
    full = cfg.full
    cfg.seeds = cfg.seeds or (5 if full else 2)
    cfg.warmup = cfg.warmup or (1000 if full else 500)
    cfg.samples = cfg.samples or (1000 if full else 500)
    cfg.chains = cfg.chains or (4 if full else 2)
    cfg.max_tree_depth = cfg.max_tree_depth or 10
    cfg.map_steps = 3000 if full else 1500
    cfg.map_restarts = 8 if full else 3
    cfg.planted_n = 400 if full else 200
    cfg.hidden = 16
    cfg.eps = 0.1
    cfg.planted_runs = [("NUTS soft_laplace", "soft_laplace", "nuts")]
    if not cfg.no_proximal:
        cfg.planted_runs.append(("ProximalHMC laplace", "laplace", "proximal"))
    print(f"jax devices: {jax.devices()}; {cfg.chains} chains x ({cfg.warmup} warm-up + {cfg.samples}), "
          f"{cfg.seeds} seeds, NUTS max tree depth {cfg.max_tree_depth}, ProximalHMC {cfg.prox_steps} steps")

    planted, bcs = [], []
    for seed in tqdm(range(cfg.seeds), desc="seeds"):
        planted.append(planted_study(cfg, seed))
        bcs.append(breast_cancer_study(cfg, seed))

    # --- tables ---------------------------------------------------------------------------
    keys1 = ["weight_precision", "weight_recall", "input_precision", "input_recall", "coverage",
             "max_r_hat", "min_ess_per_s", "divergence_rate", "wall_time"]
    rows1 = [[label] + [mean_std([p[label][k] for p in planted], "{:.3f}") for k in keys1]
             for label in planted[0]]
    print("\nStudy 1: planted sparse MMeLU teacher (8-3-1, 5/24 non-zero first-layer weights), "
          f"eps={cfg.eps}, mean ± std over {cfg.seeds} seeds")
    print(format_table(["sampler"] + keys1, rows1))
    for label in planted[0]:
        for p in planted:
            print(f"  {label}: 90 % intervals " + ", ".join(
                f"{k}={v['true']} in [{v['lo']:.2f}, {v['hi']:.2f}]" for k, v in p[label]["intervals"].items()))
    keys2 = ["accuracy", "nll", "ece", "brier", "fraction_pruned", "pruned_accuracy", "wall_time",
             "min_ess_per_s", "max_r_hat"]
    names = ["Bayes mmelu", "Bayes relu", "MAP mmelu", "MAP relu"]
    rows2 = [[n] + [mean_std([b[n][k] for b in bcs], "{:.3f}") for k in keys2] for n in names]
    print(f"\nStudy 2: breast cancer, 30-{cfg.hidden}-1, SoftLaplace hierarchy, 70/30 splits, "
          f"mean ± std over {cfg.seeds} splits (wall time includes compilation and MAP init)")
    print(format_table(["model"] + keys2, rows2))

    out_dir = results_dir("bayes_sparse", cfg.out)
    plot(out_dir / "bayes_sparse.png", planted[-1], bcs[-1])
    strip = lambda d: {k: (strip(v) if isinstance(v, dict) else v) for k, v in d.items() if not k.startswith("_")}  # noqa: E731
    record = {
        "config": {k: v for k, v in vars(cfg).items()},
        "planted": [strip(p) for p in planted],
        "breast_cancer": [strip(b) for b in bcs],
        "tables": {"planted": rows1, "breast_cancer": rows2},
    }
    save_json(out_dir / "bayes_sparse.json", record)
    print(f"wrote {out_dir / 'bayes_sparse.json'} and {out_dir / 'bayes_sparse.png'}")
    return record


if __name__ == "__main__":
    main()
