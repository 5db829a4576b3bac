"""DiTAC vs ReLU vs GELU in a CNN image classifier on offline data.

Quick CPU default: ``actfx.nn.models.SmallCNN`` (conv-BN-act blocks of 16 and 32 channels,
global pooling, linear head) on the 8x8 scikit-learn digits (``actfx.data.load_digits``),
Adam, a few epochs, 3 seeds. ``--full``: ResNet-20 (``actfx.nn.models.resnet20``) on
MNIST-5k (``actfx.data.load_mnist5k``), more epochs, 5 seeds; ``--data``/``--model``
choose independently.

DiTAC: one theta per activation layer (as in the reference; ``--per-channel``: one per
channel), nc = 10, [a, b] = [-0.5, 2], lookup-table method, theta initialised from difw's
prior (length scale 5, variance 2), and the reference's regulariser ``0.1 theta^T P theta``
(DiTAC precision, length scale 5, variance 2), which ``actfx.train.fit`` adds to the loss
by itself (``actfx.nn.regularization``); ``--no-reg`` sets ``regularization_weight=0``.
Training and evaluation go through ``actfx.train.fit`` (Adam, constant learning rate,
deterministic batches; test accuracy after every epoch).

    python -m experiments.ditac_classification [--full] [--epochs N] [--seeds N]

Writes ``<out>/ditac_classification/{results.json, curves.png}`` (``--out`` is the results
root, default ``results``, as in every experiment).
"""

from __future__ import annotations

import argparse
import time

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

import actfx.data
from actfx.nn import DiTAC
from actfx.nn.models import SmallCNN, resnet20
from actfx.train import TrainConfig, fit
from experiments.reporting import format_table, mean_std, results_dir, save_json

ACTIVATIONS = ("DiTAC", "ReLU", "GELU")


def act_factory(name: str, rngs: nnx.Rngs, per_channel: bool = False):
    if name == "DiTAC":
        if per_channel:
            return lambda num_features, rngs: DiTAC(num_features, method="table", rngs=rngs)
        return lambda: DiTAC(method="table", rngs=rngs)
    if name == "ReLU":
        return lambda: jax.nn.relu
    if name == "GELU":
        return lambda: lambda x: jax.nn.gelu(x, approximate=False)
    raise ValueError(f"unknown activation {name!r}")


def build(model: str, name: str, data, seed: int, per_channel: bool = False) -> nnx.Module:
    rngs = nnx.Rngs(seed)
    act = act_factory(name, rngs, per_channel)
    if model == "smallcnn":
        return SmallCNN(
            act=act,
            num_classes=data.num_classes,
            in_channels=data.image_shape[-1],
            widths=(16, 32),
            rngs=rngs,
        )
    return resnet20(
        act=act, num_classes=data.num_classes, in_channels=data.image_shape[-1], rngs=rngs
    )


def train_one(model, data, *, epochs, batch, optimizer, seed, use_reg):
    """``actfx.train.fit`` with Adam on mean cross-entropy (+ the model's regularisers);
    returns per-epoch test accuracy and mean training cross-entropy."""
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=batch,
        schedule="constant",
        seed=seed,
        regularization_weight=1.0 if use_reg else 0.0,
        progress=False,
    )
    result = fit(model, data, config=cfg, optimizer=optimizer)
    return [h["test_accuracy"] for h in result.history], [h["train_loss"] for h in result.history]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--full", action="store_true", help="ResNet-20 on MNIST-5k, 30 epochs, 5 seeds")
    p.add_argument("--data", choices=["digits", "mnist5k"], default=None)
    p.add_argument("--model", choices=["smallcnn", "resnet20"], default=None)
    p.add_argument("--epochs", type=int, default=None, help="quick: 15")
    p.add_argument("--seeds", type=int, default=None, help="quick: 3")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--acts", nargs="+", default=list(ACTIVATIONS), choices=list(ACTIVATIONS))
    p.add_argument("--no-reg", action="store_true", help="train DiTAC without its regulariser")
    p.add_argument("--per-channel", action="store_true", help="one DiTAC theta per channel")
    p.add_argument(
        "--out", default="results", help="results root: writes <out>/ditac_classification/"
    )
    args = p.parse_args(argv)
    data_name = args.data or ("mnist5k" if args.full else "digits")
    model_name = args.model or ("resnet20" if args.full else "smallcnn")
    epochs = args.epochs or (30 if args.full else 15)
    seeds = list(range(args.seeds or (5 if args.full else 3)))
    data = actfx.data.load_digits() if data_name == "digits" else actfx.data.load_mnist5k()
    out = results_dir("ditac_classification", args.out)

    record = {
        "config": {
            **vars(args),
            "data": data_name,
            "model": model_name,
            "epochs": epochs,
            "seeds": seeds,
            "regulariser": not args.no_reg,
        },
        "results": {},
    }
    optimizer = optax.adam(args.lr)  # one object: runs of one model share a compiled step
    t0 = time.time()
    for name in tqdm(args.acts, desc="activations"):
        runs = []
        for seed in seeds:
            model = build(model_name, name, data, seed, args.per_channel)
            accs, losses = train_one(
                model,
                data,
                epochs=epochs,
                batch=args.batch,
                optimizer=optimizer,
                seed=seed,
                use_reg=not args.no_reg,
            )
            runs.append({"test_acc": accs, "train_loss": losses})
        record["results"][name] = {
            "params": int(sum(np.size(v) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))),
            "runs": runs,
            "final_test_acc": [r["test_acc"][-1] for r in runs],
        }
    rows = [
        [name, r["params"], mean_std(100 * np.array(r["final_test_acc"]), "{:.2f}")]
        for name, r in record["results"].items()
    ]
    table = format_table(["activation", "params", "final test accuracy % (mean ± std)"], rows)
    print(
        f"\n{model_name} on {data_name} ({len(data.y_train)} train / {len(data.y_test)} test), "
        f"{epochs} epochs, {len(seeds)} seeds, Adam lr {args.lr}, batch {args.batch}, DiTAC "
        f"regulariser {'off' if args.no_reg else 'on (0.1 theta^T P theta)'}. "
        f"Wall time {time.time() - t0:.0f} s.\n"
    )
    print(table)
    record["table"] = table
    save_json(out / "results.json", record)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for i, (name, r) in enumerate(record["results"].items()):
        acc = 100 * np.array([run["test_acc"] for run in r["runs"]])
        ep = np.arange(1, acc.shape[1] + 1)
        ax.plot(ep, acc.mean(0), color=f"C{i}", label=name)
        ax.fill_between(ep, acc.min(0), acc.max(0), color=f"C{i}", alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{model_name} on {data_name}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)
    print(f"\nwrote {out / 'results.json'}, {out / 'curves.png'}")
    return record


if __name__ == "__main__":
    main()
