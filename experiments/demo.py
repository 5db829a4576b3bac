"""`make demo`: train a small CNN on the offline digits with each actfx activation.

Trains ``actfx.nn.models.SmallCNN`` on scikit-learn's 8x8 digits (offline) once per
activation and seed — ReLU, SiLU, LA-SiLU, LA-HardSiLU, Top-K (k = 0.5, after ReLU) and
MMeLU — and prints test accuracy (mean ± std over seeds) and the time per epoch after
compilation. Writes ``results/demo/demo.json`` and ``results/demo/demo.png``.

    python -m experiments.demo            # quick: 3 seeds x 12 epochs, ~2-3 min on 2 cores
    python -m experiments.demo --full     # 5 seeds x 40 epochs
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import jax
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

import actfx.nn
from actfx.data import load_digits
from actfx.nn.models import SmallCNN
from actfx.train import TrainConfig, fit
from experiments.reporting import format_table, mean_std, results_dir, save_json

# name -> (activation factory, Top-K fraction after each block or None)
ACTIVATIONS: dict[str, tuple[Callable, float | None]] = {
    "ReLU": (lambda: jax.nn.relu, None),
    "SiLU": (lambda: jax.nn.silu, None),
    "LA-SiLU": (lambda: actfx.nn.LayerAct("silu"), None),
    "LA-HardSiLU": (lambda: actfx.nn.LayerAct("hardsilu"), None),
    "Top-K (k=0.5)": (lambda: jax.nn.relu, 0.5),
    "MMeLU": (lambda: actfx.nn.MMeLU(), None),
}


def run_one(name: str, seed: int, epochs: int, data) -> dict:
    act, topk = ACTIVATIONS[name]
    model = SmallCNN(
        act=act, num_classes=data.num_classes, widths=(32, 64), topk=topk, rngs=nnx.Rngs(seed)
    )
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=64,
        optimizer="adamw",
        learning_rate=3e-3,
        weight_decay=1e-4,
        schedule="cosine",
        seed=seed,
        progress=False,
    )
    t0 = time.perf_counter()
    result = fit(model, data, config=cfg)
    wall = time.perf_counter() - t0
    per_epoch_images = (len(data.x_train) // cfg.batch_size) * cfg.batch_size
    # Epoch 1 includes compilation: time per epoch is the median over the later epochs.
    rates = [h["images_per_s"] for h in result.history[1:]] or [result.history[0]["images_per_s"]]
    return {
        "activation": name,
        "seed": seed,
        "test_accuracy": result.final["test_accuracy"],
        "test_loss": result.final["test_loss"],
        "seconds_per_epoch": float(np.median([per_epoch_images / r for r in rates])),
        "wall_seconds": wall,
        "history": result.history,
    }


def plot(summary: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    acc = [np.mean(summary[n]["test_accuracy"]) for n in names]
    err = [np.std(summary[n]["test_accuracy"]) for n in names]
    sec = [np.mean(summary[n]["seconds_per_epoch"]) * 1000 for n in names]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8))
    a1.bar(names, acc, yerr=err, color="tab:blue", capsize=3)
    a1.set_ylim(min(acc) - 0.05, 1.0)
    a1.set_ylabel("test accuracy")
    a2.bar(names, sec, color="tab:orange")
    a2.set_ylabel("ms per epoch (after compile)")
    for a in (a1, a2):
        a.tick_params(axis="x", rotation=30)
    fig.suptitle("SmallCNN on offline digits (8x8), one run per activation and seed")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (quick: 12, full: 40)")
    p.add_argument(
        "--seeds", type=int, default=None, help="seeds per activation (quick: 3, full: 5)"
    )
    p.add_argument("--full", action="store_true", help="the bigger accelerator configuration")
    p.add_argument("--only", nargs="*", choices=list(ACTIVATIONS), help="a subset of activations")
    p.add_argument("--out", default="results", help="results root directory")
    args = p.parse_args(argv)
    epochs = args.epochs or (40 if args.full else 12)
    seeds = args.seeds or (5 if args.full else 3)
    names = args.only or list(ACTIVATIONS)
    data = load_digits()
    print(
        f"digits: {len(data.x_train)} train / {len(data.x_test)} test images of shape "
        f"{data.x_train.shape[1:]}, {epochs} epochs x {seeds} seeds, "
        f"backend {jax.default_backend()}"
    )

    runs = []
    with tqdm(total=len(names) * seeds, desc="demo", unit="run") as bar:
        for name in names:
            for seed in range(seeds):
                bar.set_postfix_str(f"{name} seed {seed}")
                runs.append(run_one(name, seed, epochs, data))
                bar.update(1)

    summary = {
        n: {
            "test_accuracy": [r["test_accuracy"] for r in runs if r["activation"] == n],
            "seconds_per_epoch": [r["seconds_per_epoch"] for r in runs if r["activation"] == n],
        }
        for n in names
    }
    rows = [
        [n, mean_std(s["test_accuracy"]), f"{1000 * np.mean(s['seconds_per_epoch']):.1f}"]
        for n, s in summary.items()
    ]
    print()
    print(
        format_table(
            ["activation", f"test accuracy (mean ± std, {seeds} seeds)", "ms / epoch"], rows
        )
    )
    out = results_dir("demo", args.out)
    save_json(
        out / "demo.json",
        {
            "epochs": epochs,
            "seeds": seeds,
            "backend": jax.default_backend(),
            "summary": summary,
            "runs": runs,
        },
    )
    plot(summary, out / "demo.png")
    print(f"\nwrote {out / 'demo.json'} and {out / 'demo.png'}")
    return summary


if __name__ == "__main__":
    main()
