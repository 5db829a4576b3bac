"""Does spatial Top-K activation sparsity raise shape bias? (Li, Wen, Li, Lee, NeurIPS'23)

On the synthetic cue-conflict benchmark (:func:`actfx.data.synthetic_cue_conflict`: class
``c`` = shape ``c`` filled with texture ``c``, so shape and texture are both informative)
this trains ``actfx.nn.models.SmallCNN`` (ReLU, BatchNorm) for several seeds and measures,
on cue-conflict images (shape of class i, texture of class j != i):

* **dense**: the network as trained;
* **inserted**: the same dense network with Top-K (:func:`actfx.topk`, per sample and
  channel over H x W) inserted at inference after the conv blocks ``--topk-blocks``,
  for k in {1, 2, 5, 10, 20, 50, 100} %;
* **trained**: networks trained (and evaluated) with Top-K after ``--train-topk-blocks``
  at each k of ``--train-k``;

* **control (shape only)**: networks trained on images whose texture is drawn at random
  (only the shape predicts the label) — they should score a shape bias near 1, which
  checks that the benchmark can register a shape-biased network at all;

the shape bias (:func:`actfx.data.shape_bias`), the fractions of shape / texture / other
decisions, and the clean accuracy on cue-consistent test images. A network that guesses at
random scores a shape bias of 0.5 (shape and texture decisions are equally likely), so a
bias near 0.5 with chance-level clean accuracy means "broken", not "shape-biased": read the
accuracy and the decision fractions next to the bias.

    python -m experiments.topk_shape_bias            # quick CPU config (3 seeds)
    python -m experiments.topk_shape_bias --full     # bigger images/net/data, 5 seeds

Optionally, ``--geirhos-dir DIR --geirhos-model MODULE:FUNCTION`` evaluates the shape bias
of your own classifier on the real Geirhos cue-conflict folder: ``FUNCTION()`` must return
a callable mapping RGB images ``(B, H, W, 3)`` in [0, 1] to scores over the 16 categories
(e.g. wrap an ImageNet model with :func:`actfx.data.imagenet_to_geirhos16`).

Writes ``results/topk_shape_bias/{topk_shape_bias.json, topk_shape_bias.png}``.

Measured with the quick config (3 seeds, mean ± std): the dense network is strongly
texture-biased (shape bias 0.085 ± 0.006, clean accuracy 0.969). Inserting Top-K after all
three blocks did *not* make it shape-biased: at k >= 10 % the bias stays at or below the
dense value (0.056-0.098); at k <= 2 % it rises to 0.37-0.46 only because the network
breaks (clean accuracy 0.16-0.23, chance 0.125; shape decisions 0.12 of the conflict
images, the chance rate 1/8). Top-K after the last block only lowers the bias (0.055-0.084).
Training with Top-K (k = 20 % after block 1) gives 0.074 ± 0.004. The shape-only control
reaches 0.787 ± 0.029, so the benchmark does register shape bias. At this scale the
paper's effect is not reproduced; the paper's models are ImageNet-trained VGG/AlexNet.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from actfx.data import (
    SHAPES,
    TEXTURES,
    ImageDataset,
    render_images,
    synthetic_cue_conflict,
)
from actfx.metrics import geirhos_shape_bias, shape_bias_counts
from actfx.nn.models import SmallCNN
from actfx.train import TrainConfig, fit
from experiments.reporting import format_table, mean_std, results_dir, save_json

KS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 3
    size: int = 32
    num_classes: int = 8
    num_train: int = 2400
    num_test: int = 800
    conflicts_per_pair: int = 10
    channels: tuple[int, ...] = (16, 32, 64)
    epochs: int = 6
    batch_size: int = 64
    learning_rate: float = 3e-3
    ks: tuple[float, ...] = KS
    topk_blocks: tuple[int, ...] = (0, 1, 2)
    train_ks: tuple[float, ...] = (0.2,)
    train_topk_blocks: tuple[int, ...] = (1,)
    control: bool = True
    data_seed: int = 0


QUICK = Config()
FULL = Config(seeds=5, size=64, num_train=16000, num_test=1600, conflicts_per_pair=40,
              channels=(32, 64, 128, 128), epochs=30, topk_blocks=(0, 1, 2, 3),
              train_ks=(0.05, 0.1, 0.2, 0.5), train_topk_blocks=(2,))


def predict(model: SmallCNN, x: np.ndarray, batch_size: int = 400) -> np.ndarray:
    """Eval-mode class decisions of ``model`` on ``x`` (one compilation per model layout)."""
    model.eval()
    graphdef, state = nnx.split(model)

    @jax.jit
    def forward(state, xb):
        return jnp.argmax(nnx.merge(graphdef, state)(xb), axis=-1)

    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        n = len(xb)
        if n < batch_size:   # pad: one input shape, one compilation
            xb = np.concatenate([xb, np.zeros((batch_size - n, *xb.shape[1:]), xb.dtype)])
        out.append(np.asarray(forward(state, xb))[:n])
    return np.concatenate(out)


def measure(model: SmallCNN, data) -> dict:
    """Shape-bias counts on the conflict set and clean accuracy on the clean test set."""
    both = np.concatenate([data.x_conflict, data.train.x_test])
    pred = predict(model, both)
    p_conf, p_clean = pred[: len(data.x_conflict)], pred[len(data.x_conflict) :]
    c = shape_bias_counts(p_conf, data.shape_labels, data.texture_labels)
    n = len(p_conf)
    return {
        "shape_bias": c["shape_bias"],
        "shape_frac": c["shape"] / n,
        "texture_frac": c["texture"] / n,
        "other_frac": c["other"] / n,
        "clean_accuracy": float(np.mean(p_clean == data.train.y_test)),
    }


def with_topk(model: SmallCNN, k: float | None, blocks: tuple[int, ...]) -> SmallCNN:
    """Set the Top-K of ``model`` in place (``k=None`` or 1.0: dense) and return it."""
    if k is None or k >= 1.0:
        model.topk, model.topk_blocks = None, ()
    else:
        model.topk, model.topk_blocks = float(k), tuple(blocks)
    return model


def shape_only_data(cfg: Config, data) -> ImageDataset:
    """``data.train`` with the training images redrawn with random textures (stream 3)."""
    y = data.train.y_train
    textures = np.random.default_rng((cfg.data_seed, 3)).integers(0, cfg.num_classes, len(y))
    x = render_images(y, textures, size=cfg.size, seed=cfg.data_seed, stream=3,
                      shapes=SHAPES[: cfg.num_classes], textures=TEXTURES[: cfg.num_classes])
    return data.train._replace(x_train=x, name="synthetic-shape-only")


def train(cfg: Config, data, seed: int, topk: float | None, blocks: tuple[int, ...],
          train_set: ImageDataset | None = None):
    model = SmallCNN(act=lambda: jax.nn.relu, num_classes=cfg.num_classes, in_channels=1,
                     channels=cfg.channels, topk=topk, topk_blocks=blocks if topk else None,
                     rngs=nnx.Rngs(seed))
    tcfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, optimizer="adamw",
                       learning_rate=cfg.learning_rate, weight_decay=1e-4, schedule="cosine",
                       seed=seed, progress=False, eval_every=10**9)
    t0 = time.perf_counter()
    fit(model, data.train if train_set is None else train_set, config=tcfg)
    return model, time.perf_counter() - t0


def run(cfg: Config) -> dict:
    t_start = time.perf_counter()
    data = synthetic_cue_conflict(num_classes=cfg.num_classes, size=cfg.size,
                                  num_train=cfg.num_train, num_test=cfg.num_test,
                                  conflicts_per_pair=cfg.conflicts_per_pair, seed=cfg.data_seed)
    records = []
    jobs = [(s, None) for s in range(cfg.seeds)] + [
        (s, k) for k in cfg.train_ks for s in range(cfg.seeds)
    ]
    if cfg.control:
        jobs += [(s, "control") for s in range(cfg.seeds)]
        control_set = shape_only_data(cfg, data)
    for seed, train_k in tqdm(jobs, desc="train+eval", unit="net"):
        if train_k == "control":
            model, secs = train(cfg, data, seed, None, (), train_set=control_set)
            records.append({"setting": "control (shape only)", "k": 1.0, "seed": seed,
                            "train_seconds": secs, **measure(model, data)})
            continue
        model, secs = train(cfg, data, seed, train_k, cfg.train_topk_blocks)
        if train_k is None:
            for k in cfg.ks:
                rec = measure(with_topk(model, k, cfg.topk_blocks), data)
                setting = "dense" if k >= 1.0 else "inserted"
                records.append({"setting": setting, "k": k, "seed": seed, "train_seconds": secs,
                                **rec})
        else:
            rec = measure(model, data)
            records.append({"setting": "trained", "k": train_k, "seed": seed,
                            "train_seconds": secs, **rec})
            rec = measure(with_topk(model, None, ()), data)
            records.append({"setting": "trained, dense eval", "k": train_k, "seed": seed,
                            "train_seconds": secs, **rec})
    return {"config": dataclasses.asdict(cfg), "classes": list(data.classes),
            "num_conflict": len(data.x_conflict), "records": records,
            "wall_seconds": time.perf_counter() - t_start}


def summarize(result: dict) -> tuple[list[str], list[list[str]], dict]:
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in result["records"]:
        groups.setdefault((r["setting"], r["k"]), []).append(r)
    order = {"dense": 0, "inserted": 1, "trained": 2, "trained, dense eval": 3,
             "control (shape only)": 4}
    header = ["setting", "k", "shape bias", "clean acc", "shape dec.", "texture dec.", "other"]
    rows, summary = [], {}
    for (setting, k), recs in sorted(groups.items(), key=lambda g: (order[g[0][0]], -g[0][1])):
        def col(name, recs=recs):
            return [r[name] for r in recs]
        rows.append([setting, "-" if k >= 1.0 else f"{100 * k:g}%",
                     mean_std(col("shape_bias"), "{:.3f}"), mean_std(col("clean_accuracy"), "{:.3f}"),
                     mean_std(col("shape_frac"), "{:.3f}"), mean_std(col("texture_frac"), "{:.3f}"),
                     mean_std(col("other_frac"), "{:.3f}")])
        summary[f"{setting}@{k:g}"] = {
            name: {"mean": float(np.nanmean(col(name))), "std": float(np.nanstd(col(name), ddof=1))
                   if len(recs) > 1 else 0.0, "values": col(name)}
            for name in ("shape_bias", "clean_accuracy", "shape_frac", "texture_frac", "other_frac")
        }
    return header, rows, summary


def plot(result: dict, summary: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = result["config"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric, label in ((axes[0], "shape_bias", "shape bias (cue-conflict)"),
                              (axes[1], "clean_accuracy", "clean accuracy")):
        dense = summary["dense@1"][metric]
        ax.axhline(dense["mean"], color="k", lw=1, label="dense")
        ax.axhspan(dense["mean"] - dense["std"], dense["mean"] + dense["std"], color="k", alpha=0.1)
        ks = [k for k in cfg["ks"] if k < 1.0]
        m = [summary[f"inserted@{k:g}"][metric]["mean"] for k in ks]
        s = [summary[f"inserted@{k:g}"][metric]["std"] for k in ks]
        ax.errorbar([100 * k for k in ks], m, yerr=s, marker="o", capsize=3,
                    label=f"Top-K inserted at inference (blocks {cfg['topk_blocks']})")
        if cfg["train_ks"]:
            tk = list(cfg["train_ks"])
            m = [summary[f"trained@{k:g}"][metric]["mean"] for k in tk]
            s = [summary[f"trained@{k:g}"][metric]["std"] for k in tk]
            ax.errorbar([100 * k for k in tk], m, yerr=s, marker="s", ls="none", capsize=3,
                        color="tab:red", label=f"trained with Top-K (blocks {cfg['train_topk_blocks']})")
        if "control (shape only)@1" in summary:
            ax.axhline(summary["control (shape only)@1"][metric]["mean"], color="tab:green",
                       ls="--", lw=1, label="control: trained on shape only")
        if metric == "shape_bias":
            ax.axhline(0.5, color="gray", ls=":", lw=1, label="random guessing")
            ax.set_ylim(0, 1)
        else:
            ax.axhline(1 / cfg["num_classes"], color="gray", ls=":", lw=1, label="chance")
        ax.set_xscale("log")
        ax.set_xlabel("k (% of H x W kept per channel)")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"SmallCNN{tuple(cfg['channels'])} on synthetic cue-conflict "
                 f"({cfg['size']}x{cfg['size']}, {cfg['num_classes']} classes, {cfg['seeds']} seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _load_classifier(spec: str):
    module, _, fn = spec.partition(":")
    if not module or not fn:
        raise ValueError(f"--geirhos-model must be MODULE:FUNCTION, got {spec!r}")
    return getattr(importlib.import_module(module), fn)()


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="bigger config (accelerator)")
    p.add_argument("--seeds", type=int, help="number of seeds (default: 3 quick, 5 full)")
    p.add_argument("--epochs", type=int, help="training epochs")
    p.add_argument("--num-train", type=int, help="training images")
    p.add_argument("--topk-blocks", type=int, nargs="+", help="blocks followed by inserted Top-K")
    p.add_argument("--train-k", type=float, nargs="*", help="k of the networks trained with Top-K")
    p.add_argument("--train-topk-blocks", type=int, nargs="+", help="blocks with Top-K in training")
    p.add_argument("--no-control", action="store_true",
                   help="skip the shape-only control networks")
    p.add_argument("--out", default="topk_shape_bias", help="results/<out>/")
    p.add_argument("--geirhos-dir", help="Geirhos cue-conflict folder (<shape>/<shape><i>-<texture><j>.png)")
    p.add_argument("--geirhos-model", help="MODULE:FUNCTION returning a classifier over the 16 categories")
    args = p.parse_args(argv)
    cfg = FULL if args.full else QUICK
    overrides = {"seeds": args.seeds, "epochs": args.epochs, "num_train": args.num_train,
                 "topk_blocks": tuple(args.topk_blocks) if args.topk_blocks else None,
                 "train_ks": tuple(args.train_k) if args.train_k is not None else None,
                 "train_topk_blocks": tuple(args.train_topk_blocks) if args.train_topk_blocks else None}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    if args.no_control:
        cfg = dataclasses.replace(cfg, control=False)
    out = results_dir(args.out)

    if args.geirhos_dir:
        if not args.geirhos_model:
            p.error("--geirhos-dir needs --geirhos-model MODULE:FUNCTION")
        counts = geirhos_shape_bias(_load_classifier(args.geirhos_model), args.geirhos_dir)
        print(format_table(["images", "shape", "texture", "other", "excluded", "shape bias"],
                           [[counts["n_images"], counts["shape"], counts["texture"], counts["other"],
                             counts["excluded"], f"{counts['shape_bias']:.3f}"]]))
        save_json(out / "geirhos.json", counts)
        return counts

    result = run(cfg)
    header, rows, summary = summarize(result)
    result["summary"] = summary
    print(format_table(header, rows))
    d = summary["dense@1"]["shape_bias"]["mean"]
    best = max((v["shape_bias"]["mean"], key) for key, v in summary.items() if key.startswith("inserted"))
    print(f"\ndense shape bias {d:.3f}; highest with inserted Top-K {best[0]:.3f} ({best[1]}), "
          f"clean accuracy there {summary[best[1]]['clean_accuracy']['mean']:.3f}; "
          f"random guessing gives 0.5. Wall time {result['wall_seconds']:.0f} s.")
    save_json(out / "topk_shape_bias.json", result)
    plot(result, summary, out / "topk_shape_bias.png")
    print(f"wrote {out / 'topk_shape_bias.json'} and {out / 'topk_shape_bias.png'}")
    return result


if __name__ == "__main__":
    main()
