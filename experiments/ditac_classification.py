"""DiTAC vs ReLU vs GELU in a CNN image classifier on offline data.

Quick CPU default: ``actfx.nn.models.SmallCNN`` (conv-BN-act blocks of 16 and 32 channels,
global pooling, linear head) on the 8x8 scikit-learn digits (``actfx.data.load_digits``),
Adam, a few epochs, 3 seeds. ``--full``: ResNet-20 (``actfx.nn.models.resnet20``) on
MNIST-5k (``actfx.data.load_mnist5k``), more epochs, 5 seeds; ``--data``/``--model``
choose independently.

DiTAC: one theta per activation layer (as in the reference), nc = 10, [a, b] = [-0.5, 2],
lookup-table mode, theta initialised from difw's prior (length scale 5, variance 2), and
the reference's regulariser ``0.1 theta^T P theta`` (DiTAC precision, length scale 5,
variance 2) added to the loss by this script's own optax loop (``actfx.train.fit`` does not
know about it); ``--no-reg`` drops it.

    python -m experiments.ditac_classification [--full] [--epochs N] [--seeds N]

Writes ``results/ditac_classification/{results.json, curves.png}``.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402
from tqdm import tqdm  # noqa: E402

import actfx.data  # noqa: E402
from actfx.nn.ditac import DiTAC, ditac_penalty  # noqa: E402
from actfx.nn.models import SmallCNN, resnet20  # noqa: E402
from experiments.reporting import format_table, mean_std, results_dir, save_json  # noqa: E402

ACTIVATIONS = ("DiTAC", "ReLU", "GELU")


def act_factory(name: str, rngs: nnx.Rngs):
    if name == "DiTAC":
        return lambda: DiTAC(mode="table", rngs=rngs)
    if name == "ReLU":
        return lambda: jax.nn.relu
    if name == "GELU":
        return lambda: (lambda x: jax.nn.gelu(x, approximate=False))
    raise ValueError(f"unknown activation {name!r}")


def build(model: str, name: str, data, seed: int) -> nnx.Module:
    rngs = nnx.Rngs(seed)
    act = act_factory(name, rngs)
    if model == "smallcnn":
        return SmallCNN(act=act, num_classes=data.num_classes, in_channels=data.image_shape[-1],
                        channels=(16, 32), rngs=rngs)
    return resnet20(act=act, num_classes=data.num_classes, in_channels=data.image_shape[-1], rngs=rngs)


def train_one(model, data, *, epochs, batch, lr, seed, use_reg):
    """Adam on mean cross-entropy (+ DiTAC regulariser); returns per-epoch test accuracy."""
    opt = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt, xb, yb):
        def loss_fn(m):
            logits = m(xb)
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
            return ce + (ditac_penalty(m) if use_reg else 0.0), ce

        (_, ce), g = nnx.value_and_grad(loss_fn, has_aux=True)(model)
        opt.update(model, g)
        return ce

    @nnx.jit
    def predict(model, xb):
        return jnp.argmax(model(xb), -1)

    def accuracy():
        model.eval()
        hits = sum(int(jnp.sum(predict(model, data.x_test[i:i + 500]) == data.y_test[i:i + 500]))
                   for i in range(0, len(data.y_test), 500))
        model.train()
        return hits / len(data.y_test)

    rng = np.random.default_rng(seed)
    n = len(data.y_train)
    accs, losses = [], []
    model.train()
    for _ in range(epochs):
        perm = rng.permutation(n)
        ep = [step(model, opt, data.x_train[perm[i:i + batch]], data.y_train[perm[i:i + batch]])
              for i in range(0, n - batch + 1, batch)]
        losses.append(float(np.mean(jax.device_get(ep))))
        accs.append(accuracy())
    return accs, losses


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="ResNet-20 on MNIST-5k, 30 epochs, 5 seeds")
    p.add_argument("--data", choices=["digits", "mnist5k"], default=None)
    p.add_argument("--model", choices=["smallcnn", "resnet20"], default=None)
    p.add_argument("--epochs", type=int, default=None, help="quick: 15")
    p.add_argument("--seeds", type=int, default=None, help="quick: 3")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--acts", nargs="+", default=list(ACTIVATIONS), choices=list(ACTIVATIONS))
    p.add_argument("--no-reg", action="store_true", help="train DiTAC without its regulariser")
    p.add_argument("--out", default="results")
    args = p.parse_args(argv)
    data_name = args.data or ("mnist5k" if args.full else "digits")
    model_name = args.model or ("resnet20" if args.full else "smallcnn")
    epochs = args.epochs or (30 if args.full else 15)
    seeds = list(range(args.seeds or (5 if args.full else 3)))
    data = actfx.data.load_digits() if data_name == "digits" else actfx.data.load_mnist5k()
    out = results_dir("ditac_classification", args.out)

    record = {"config": {**vars(args), "data": data_name, "model": model_name, "epochs": epochs,
                         "seeds": seeds, "regulariser": not args.no_reg}, "results": {}}
    t0 = time.time()
    for name in tqdm(args.acts, desc="activations"):
        runs = []
        for seed in seeds:
            model = build(model_name, name, data, seed)
            accs, losses = train_one(model, data, epochs=epochs, batch=args.batch, lr=args.lr,
                                     seed=seed, use_reg=not args.no_reg)
            runs.append({"test_acc": accs, "train_loss": losses})
        record["results"][name] = {
            "params": int(sum(np.size(v) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))),
            "runs": runs,
            "final_test_acc": [r["test_acc"][-1] for r in runs],
        }
    rows = [[name, r["params"], mean_std(100 * np.array(r["final_test_acc"]), "{:.2f}")]
            for name, r in record["results"].items()]
    table = format_table(["activation", "params", "final test accuracy % (mean ± std)"], rows)
    print(f"\n{model_name} on {data_name} ({len(data.y_train)} train / {len(data.y_test)} test), "
          f"{epochs} epochs, {len(seeds)} seeds, Adam lr {args.lr}, batch {args.batch}, DiTAC "
          f"regulariser {'off' if args.no_reg else 'on (0.1 theta^T P theta)'}. "
          f"Wall time {time.time() - t0:.0f} s.\n")
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
