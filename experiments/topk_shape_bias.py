"""Does spatial Top-K on features that carry both cues raise shape bias? (Li et al., NeurIPS'23)

The paper inserts Top-K (keep the ``k`` % largest activations of each channel over H x W)
after every max-pool of an ImageNet-*pretrained* VGG-16 at inference, and the shape bias
on Geirhos's cue-conflict images rises (0.079 dense -> 0.584 at k = 5 %; shape decisions
77 -> 236 of 1200, texture 892 -> 168), while keeping the complement instead ("revert")
lowers it. No pretrained weights can be downloaded here, so this is a stand-in that can
show the effect or fail to:

1. **Backbone with both cues.** A BatchNorm-free VGG-style network (3 stages of 2 conv3x3
   + ReLU, each ending in a 2x2 max-pool; receptive field 36 px >= the 32 px image, so a
   unit can see the whole object) is trained on *random* shape x texture pairs of the
   synthetic benchmark (:func:`actfx.data.render_images`) with two linear heads, one for
   the shape and one for the texture (:func:`actfx.train.fit` with a two-head
   ``loss_fn``); held-out accuracy of both heads is reported.
2. **Frozen features, linear readout.** The backbone is frozen; a linear readout without
   intercept is fitted (through ``fit``) on its dense features of *cue-consistent* images
   (class ``c`` = shape ``c`` in texture ``c``), where both cues predict the class.
3. **Top-K at inference** (:class:`actfx.nn.TopK`, per sample and channel over H x W,
   ``m = max(1, int(k*H*W))``) after each pooling stage, k = 50/20/10/5 %, with the same
   readout; and at every k the controls **random-K** (the same count ``m`` of random
   positions per channel) and **revert** (drop the top-m, keep the rest), plus **dense**.
   The sparsifiers are wrapped around the frozen backbone in a new evaluation module for
   each setting (nothing in the trained model is mutated).

Scored on cue-conflict images (shape of class i, texture of class j != i):
shape bias (:func:`actfx.metrics.shape_bias`: shape / (shape + texture decisions)),
shape-decision rate and texture-decision rate (decisions / images), and clean accuracy on
cue-consistent test images; ``--seeds`` backbones (default 3), mean ± std.

**Verdict.** The claim is *supported* only if, at some k, both (a) Top-K's shape-decision
rate exceeds dense's (paired over seeds, 95 % t-interval above 0) and (b) Top-K's shape
bias beats random-K's by >= 0.1 (mean paired difference >= 0.1 with its interval above 0).
Shape bias drifts toward 0.5 as any network degrades (random guessing gives 0.5), so (a)
guards against "texture decisions collapse, nothing gained" and (b) against "any
sparsification does this". *Not supported* if at every k the shape-rate interval lies at
or below 0 or the bias advantage's interval lies below 0.1; else *inconclusive*.

**Measured (quick default, 3 seeds, 2-core CPU, 209 s wall, 310 s process CPU).** Backbone
held-out heads: shape 0.885 ± 0.023, texture 0.804 ± 0.036. Dense shape bias 0.529 (shape
decisions 0.415, texture 0.371, clean 0.999); Top-K 0.625 / 0.570 / 0.520 / 0.487 at k = 50 /
20 / 10 / 5 %; random-K 0.578 / 0.541 / 0.507 / 0.507; revert 0.498 / 0.489 / 0.536 / 0.598.
Paired (95 % t): shape-decision rate Top-K - dense +0.03 [-0.08, +0.14] at 50 %, falling to
-0.21 [-0.35, -0.06] at 5 %; shape bias Top-K - random-K +0.047 [-0.000, +0.095] at 50 %, at
most that elsewhere. Verdict: *inconclusive* -- Top-K's texture decisions fall faster than
its shape decisions at k = 50 % (as in the paper, and it beats revert by +0.127
[+0.103, +0.151]), but it never beats random-K by 0.1 and shape decisions do not rise.

    python -m experiments.topk_shape_bias            # quick CPU config
    python -m experiments.topk_shape_bias --full     # 64 px images, wider net, 5 seeds

``--geirhos-dir DIR --geirhos-model MODULE:FUNCTION`` scores your own classifier on the
real Geirhos cue-conflict folder (:func:`actfx.metrics.geirhos_shape_bias`): ``FUNCTION()``
must return a callable mapping RGB images ``(B, H, W, 3)`` in [0, 1] to scores over the
16 categories (e.g. wrap an ImageNet model with :func:`actfx.metrics.imagenet_to_geirhos16`).

Writes ``results/topk_shape_bias/{topk_shape_bias.json, topk_shape_bias.png}``.

References:
  T. Li, Z. Wen, Y. Li, T. S. Lee, *Emergence of Shape Bias in Convolutional Neural
  Networks through Activation Sparsity*, NeurIPS 2023. R. Geirhos et al., *ImageNet-trained
  CNNs are biased towards texture*, ICLR 2019.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

import actfx
from actfx import topk_num_kept
from actfx.data import SHAPES, TEXTURES, render_images, synthetic_cue_conflict
from actfx.metrics import geirhos_shape_bias, paired_difference, shape_bias_counts
from actfx.nn import TopK
from actfx.train import TrainConfig, fit, predict
from experiments.reporting import format_table, mean_std, results_dir, save_json

KS = (0.5, 0.2, 0.1, 0.05)
MODES = ("topk", "random", "revert")
MIN_BIAS_GAIN = 0.1


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 3
    size: int = 32
    num_classes: int = 8
    num_pretext: int = 3000  # random shape x texture pairs for the backbone
    num_pretext_val: int = 800
    num_readout: int = 2000  # cue-consistent images for the readout
    num_test: int = 800  # cue-consistent test images (clean accuracy)
    conflicts_per_pair: int = 20  # 8 x 7 x 20 = 1120 conflict images (Geirhos: 1280)
    widths: tuple[int, ...] = (16, 32, 64)
    epochs: int = 6  # 3000 x 6: held-out heads 0.885 / 0.804, 209 s wall on 2 idle cores
    batch_size: int = 64
    learning_rate: float = 2e-3
    readout_epochs: int = 30
    ks: tuple[float, ...] = KS
    data_seed: int = 0


QUICK = Config()
FULL = Config(
    seeds=5,
    size=64,
    num_pretext=40000,
    num_pretext_val=4000,
    num_readout=8000,
    num_test=1600,
    conflicts_per_pair=40,
    widths=(32, 64, 128, 256),
    epochs=30,
)


# ----------------------------------------------------------------------------- models


class VGGBackbone(nnx.Module):
    """BN-free VGG-style features: per stage ``[conv3x3 -> ReLU] x 2 -> max-pool 2x2``.

    ``__call__(x, after_pool=None)`` returns the flattened features; ``after_pool[s]``,
    when given, is applied to the output of pooling stage ``s`` (where the paper puts
    Top-K). Receptive field of the last stage: 36 px for 3 stages, 76 px for 4.
    """

    def __init__(self, widths: Sequence[int], *, in_channels: int = 1, rngs: nnx.Rngs):
        chans = [in_channels]
        convs = []
        for w in widths:
            convs.append(nnx.Conv(chans[-1], w, (3, 3), padding="SAME", rngs=rngs))
            convs.append(nnx.Conv(w, w, (3, 3), padding="SAME", rngs=rngs))
            chans.append(w)
        self.convs = nnx.List(convs)
        self.num_stages = len(widths)

    def __call__(self, x, after_pool: Sequence[Callable] | None = None):
        for s in range(self.num_stages):
            x = jax.nn.relu(self.convs[2 * s](x))
            x = jax.nn.relu(self.convs[2 * s + 1](x))
            x = nnx.max_pool(x, (2, 2), strides=(2, 2))
            if after_pool is not None:
                x = after_pool[s](x)
        return x.reshape(x.shape[0], -1)


def feature_dim(cfg: Config) -> int:
    side = cfg.size // 2 ** len(cfg.widths)
    return side * side * cfg.widths[-1]


class TwoHead(nnx.Module):
    """Backbone with a shape head and a texture head: ``x -> (shape_logits, texture_logits)``."""

    def __init__(self, cfg: Config, *, rngs: nnx.Rngs):
        self.backbone = VGGBackbone(cfg.widths, rngs=rngs)
        d = feature_dim(cfg)
        self.shape_head = nnx.Linear(d, cfg.num_classes, rngs=rngs)
        self.texture_head = nnx.Linear(d, cfg.num_classes, rngs=rngs)

    def __call__(self, x):
        f = self.backbone(x)
        return self.shape_head(f), self.texture_head(f)


def two_head_loss(model, batch):
    """Sum of the two cross-entropies; targets ``(B, 2)``: (shape class, texture class)."""
    x, y = batch
    ls, lt = model(x)
    loss = (
        optax.softmax_cross_entropy_with_integer_labels(ls, y[:, 0]).mean()
        + optax.softmax_cross_entropy_with_integer_labels(lt, y[:, 1]).mean()
    )
    return loss, {
        "shape_accuracy": jnp.mean(jnp.argmax(ls, -1) == y[:, 0]),
        "texture_accuracy": jnp.mean(jnp.argmax(lt, -1) == y[:, 1]),
    }


class Features(nnx.Module):
    """The frozen backbone's features, optionally sparsified after each pool."""

    def __init__(self, backbone: VGGBackbone, sparsifiers: Sequence[Callable] | None = None):
        self.backbone = backbone
        self.sparsifiers = nnx.List(sparsifiers) if sparsifiers is not None else None

    def __call__(self, x):
        return self.backbone(x, self.sparsifiers)


class Classifier(nnx.Module):
    """``readout(features(x))``: the evaluated network of one setting."""

    def __init__(self, features: Features, readout: nnx.Linear):
        self.features = features
        self.readout = readout

    def __call__(self, x):
        return self.readout(self.features(x))


class RandomK(nnx.Module):
    """Control: keep ``m = max(1, int(k*H*W))`` *random* positions per sample and channel
    (the same count Top-K keeps), zero the rest. The positions come from a fixed key,
    folded with nothing that depends on the activations."""

    def __init__(self, k: float, seed: int):
        self.k = float(k)
        self.seed = int(seed)

    def __call__(self, x):
        key = jax.random.fold_in(jax.random.key(self.seed), 7919)
        u = jax.random.uniform(key, x.shape, x.dtype) + 1.0
        keep = actfx.topk(u, self.k, by="value") > 0  # exactly m random positions
        return jnp.where(keep, x, 0.0)


class Revert(nnx.Module):
    """Control: drop the top-m entries of each channel (those :func:`actfx.topk` keeps)
    and keep the rest."""

    def __init__(self, k: float):
        self.k = float(k)

    def __call__(self, x):
        return x - actfx.topk(x, self.k)


def sparsifiers(mode: str, k: float, num_stages: int, seed: int) -> list:
    if mode == "topk":
        return [TopK(k) for _ in range(num_stages)]
    if mode == "random":
        return [RandomK(k, seed=1000 * seed + s) for s in range(num_stages)]
    if mode == "revert":
        return [Revert(k) for _ in range(num_stages)]
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


# ----------------------------------------------------------------------------- data


def pretext_data(cfg: Config, n: int, stream: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images with independent random shape and texture classes; targets ``(n, 2)``."""
    rng = np.random.default_rng((cfg.data_seed, stream))
    y = rng.integers(0, cfg.num_classes, size=(n, 2)).astype(np.int32)
    x = render_images(
        y[:, 0],
        y[:, 1],
        size=cfg.size,
        seed=cfg.data_seed,
        stream=stream,
        shapes=SHAPES[: cfg.num_classes],
        textures=TEXTURES[: cfg.num_classes],
    )
    return x, y


def make_data(cfg: Config) -> dict:
    bench = synthetic_cue_conflict(
        num_classes=cfg.num_classes,
        size=cfg.size,
        num_train=cfg.num_readout,
        num_test=cfg.num_test,
        conflicts_per_pair=cfg.conflicts_per_pair,
        seed=cfg.data_seed,
    )
    return {
        "bench": bench,
        "pretext": pretext_data(cfg, cfg.num_pretext, stream=10),
        "pretext_val": pretext_data(cfg, cfg.num_pretext_val, stream=11),
    }


# ----------------------------------------------------------------------------- runs


def train_backbone(cfg: Config, data: dict, seed: int) -> tuple[TwoHead, dict]:
    model = TwoHead(cfg, rngs=nnx.Rngs(seed))
    tcfg = TrainConfig(
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        optimizer="adamw",
        learning_rate=cfg.learning_rate,
        weight_decay=1e-4,
        schedule="cosine",
        seed=seed,
        progress=False,
        eval_every=10**9,
    )
    r = fit(model, data["pretext"], data["pretext_val"], config=tcfg, loss_fn=two_head_loss)
    return model, {
        k: r.final[k]
        for k in (
            "train_shape_accuracy",
            "train_texture_accuracy",
            "test_shape_accuracy",
            "test_texture_accuracy",
        )
    }


def fit_readout(cfg: Config, backbone: VGGBackbone, data: dict, seed: int) -> nnx.Linear:
    """A linear readout without intercept on the frozen dense features of cue-consistent
    images (the backbone is not trained: only the readout's inputs are computed by it)."""
    bench = data["bench"]
    feats = predict(Features(backbone), bench.train.x_train, batch_size=500)
    readout = nnx.Linear(
        feats.shape[1], cfg.num_classes, use_bias=False, rngs=nnx.Rngs(seed + 10_000)
    )
    tcfg = TrainConfig(
        epochs=cfg.readout_epochs,
        batch_size=min(100, len(feats)),
        optimizer="adamw",
        learning_rate=3e-3,
        weight_decay=1e-4,
        schedule="cosine",
        seed=seed,
        progress=False,
        eval_every=10**9,
    )
    fit(readout, (feats, bench.train.y_train), config=tcfg)
    return readout


def measure(model, bench) -> dict:
    """Shape-bias counts on the conflict set and clean accuracy on the clean test set."""
    both = np.concatenate([bench.x_conflict, bench.train.x_test])
    pred = np.argmax(predict(model, both, batch_size=500), axis=-1)
    p_conf, p_clean = pred[: len(bench.x_conflict)], pred[len(bench.x_conflict) :]
    c = shape_bias_counts(p_conf, bench.shape_labels, bench.texture_labels)
    return {
        "shape_bias": c["shape_bias"],
        "shape_rate": c["shape_rate"],
        "texture_rate": c["texture_rate"],
        "other_rate": c["other_rate"],
        "clean_accuracy": float(np.mean(p_clean == bench.train.y_test)),
    }


def run(cfg: Config) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    data = make_data(cfg)
    bench = data["bench"]
    records, backbones = [], []
    settings = [("dense", 1.0)] + [(m, k) for k in cfg.ks for m in MODES]
    for seed in tqdm(range(cfg.seeds), desc="backbones", unit="seed"):
        model, pre = train_backbone(cfg, data, seed)
        backbones.append({"seed": seed, **pre})
        readout = fit_readout(cfg, model.backbone, data, seed)
        for mode, k in settings:
            sp = None if mode == "dense" else sparsifiers(mode, k, len(cfg.widths), seed)
            clf = Classifier(Features(model.backbone, sp), readout)
            records.append({"setting": mode, "k": k, "seed": seed, **measure(clf, bench)})
    stage_sides = [cfg.size // 2 ** (s + 1) for s in range(len(cfg.widths))]
    kept = {f"{k:g}": [topk_num_kept(k, (s, s)) for s in stage_sides] for k in cfg.ks}
    return {
        "config": dataclasses.asdict(cfg),
        "classes": list(bench.classes),
        "num_conflict": len(bench.x_conflict),
        "backbones": backbones,
        "kept_per_stage": kept,
        "records": records,
        "wall_seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
    }


# ----------------------------------------------------------------------------- report

METRICS = ("shape_bias", "shape_rate", "texture_rate", "clean_accuracy")


def _values(result, setting, k, name):
    rs = sorted(
        (r for r in result["records"] if r["setting"] == setting and r["k"] == k),
        key=lambda r: r["seed"],
    )
    return [r[name] for r in rs]


def summarize(result: dict) -> tuple[list[str], list[list[str]], dict]:
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in result["records"]:
        groups.setdefault((r["setting"], r["k"]), []).append(r)
    order = {"dense": 0, "topk": 1, "random": 2, "revert": 3}
    header = ["setting", "k", "shape bias", "shape dec. rate", "texture dec. rate", "clean acc"]
    rows, summary = [], {}
    for (setting, k), recs in sorted(groups.items(), key=lambda g: (-g[0][1], order[g[0][0]])):

        def col(name, recs=recs):
            return [r[name] for r in recs]

        rows.append(
            [
                setting,
                "-" if setting == "dense" else f"{100 * k:g}%",
                *[mean_std(col(m), "{:.3f}") for m in METRICS],
            ]
        )
        summary[f"{setting}@{k:g}"] = {
            m: {
                "mean": float(np.nanmean(col(m))),
                "std": float(np.nanstd(col(m), ddof=1)) if len(recs) > 1 else 0.0,
                "values": col(m),
            }
            for m in (*METRICS, "other_rate")
        }
    return header, rows, summary


def verdict(result: dict) -> dict:
    """Paired tests at every k (see the module docstring) and the verdict."""
    ks = result["config"]["ks"]
    per_k, lines = {}, []
    for k in ks:
        rate = paired_difference(
            _values(result, "topk", k, "shape_rate"), _values(result, "dense", 1.0, "shape_rate")
        )
        gain = paired_difference(
            _values(result, "topk", k, "shape_bias"), _values(result, "random", k, "shape_bias")
        )
        rev = paired_difference(
            _values(result, "topk", k, "shape_bias"), _values(result, "revert", k, "shape_bias")
        )
        ok = rate.low > 0 and gain.mean >= MIN_BIAS_GAIN and gain.low > 0
        fails = rate.high <= 0 or gain.high < MIN_BIAS_GAIN
        per_k[f"{k:g}"] = {
            "shape_rate_vs_dense": rate._asdict(),
            "bias_vs_random": gain._asdict(),
            "bias_vs_revert": rev._asdict(),
            "supported": ok,
            "refuted": fails,
        }
        lines.append(
            f"k={100 * k:g}%: shape-decision rate Top-K - dense {rate.format()} ; "
            f"shape bias Top-K - random-K {gain.format(fmt='{:+.3f}')} ; "
            f"Top-K - revert {rev.format(fmt='{:+.3f}')}  (95 % t-intervals, "
            f"{rate.n} paired seeds)"
        )
    if any(v["supported"] for v in per_k.values()):
        v = "supported"
    elif all(v["refuted"] for v in per_k.values()):
        v = "not supported"
    else:
        v = "inconclusive"
    return {"verdict": v, "per_k": per_k, "lines": lines}


def plot(result: dict, summary: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = result["config"]
    ks = list(cfg["ks"])
    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    labels = {
        "shape_bias": "shape bias",
        "shape_rate": "shape-decision rate",
        "texture_rate": "texture-decision rate",
        "clean_accuracy": "clean accuracy",
    }
    for ax, m in zip(axes, METRICS):
        d = summary["dense@1"][m]
        ax.axhline(d["mean"], color="k", lw=1, label="dense")
        ax.axhspan(d["mean"] - d["std"], d["mean"] + d["std"], color="k", alpha=0.1)
        for mode, mk in (("topk", "o"), ("random", "s"), ("revert", "^")):
            mean = [summary[f"{mode}@{k:g}"][m]["mean"] for k in ks]
            std = [summary[f"{mode}@{k:g}"][m]["std"] for k in ks]
            ax.errorbar(
                [100 * k for k in ks],
                mean,
                yerr=std,
                marker=mk,
                capsize=3,
                label={"topk": "Top-K", "random": "random-K", "revert": "revert"}[mode],
            )
        if m == "shape_bias":
            ax.axhline(0.5, color="gray", ls=":", lw=1, label="random guessing")
            ax.set_ylim(0, 1)
        if m in ("shape_rate", "texture_rate"):
            ax.axhline(1 / cfg["num_classes"], color="gray", ls=":", lw=1, label="chance")
        ax.set_xscale("log")
        ax.set_xticks([100 * k for k in ks], [f"{100 * k:g}" for k in ks])
        ax.minorticks_off()
        ax.set_xlabel("k (% of H x W kept per channel)")
        ax.set_title(labels[m], fontsize=10)
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"Frozen two-cue VGG{tuple(cfg['widths'])} + linear readout, Top-K after each "
        f"pool ({cfg['size']} px, {cfg['num_classes']} classes, {cfg['seeds']} seeds)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _load_classifier(spec: str):
    module, _, fn = spec.partition(":")
    if not module or not fn:
        raise ValueError(f"--geirhos-model must be MODULE:FUNCTION, got {spec!r}")
    return getattr(importlib.import_module(module), fn)()


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--full", action="store_true", help="bigger config (accelerator)")
    p.add_argument("--seeds", type=int, help="number of backbones (default: 3 quick, 5 full)")
    p.add_argument("--epochs", type=int, help="backbone training epochs")
    p.add_argument("--num-pretext", type=int, help="random shape x texture training images")
    p.add_argument("--ks", type=float, nargs="+", help="Top-K fractions (default 0.5 0.2 0.1 0.05)")
    p.add_argument("--out", default="topk_shape_bias", help="results/<out>/")
    p.add_argument("--results-root", default="results", help="results root directory")
    p.add_argument(
        "--geirhos-dir", help="Geirhos cue-conflict folder (<shape>/<shape><i>-<texture><j>.png)"
    )
    p.add_argument(
        "--geirhos-model", help="MODULE:FUNCTION returning a classifier over the 16 categories"
    )
    args = p.parse_args(argv)
    cfg = FULL if args.full else QUICK
    overrides = {
        "seeds": args.seeds,
        "epochs": args.epochs,
        "num_pretext": args.num_pretext,
        "ks": tuple(args.ks) if args.ks else None,
    }
    cfg = dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    out = results_dir(args.out, args.results_root)

    if args.geirhos_dir:
        if not args.geirhos_model:
            p.error("--geirhos-dir needs --geirhos-model MODULE:FUNCTION")
        counts = geirhos_shape_bias(_load_classifier(args.geirhos_model), args.geirhos_dir)
        print(
            format_table(
                ["images", "shape", "texture", "other", "excluded", "shape bias"],
                [
                    [
                        counts["n_images"],
                        counts["shape"],
                        counts["texture"],
                        counts["other"],
                        counts["excluded"],
                        f"{counts['shape_bias']:.3f}",
                    ]
                ],
            )
        )
        save_json(out / "geirhos.json", counts)
        return counts

    result = run(cfg)
    header, rows, summary = summarize(result)
    result["summary"] = summary
    v = verdict(result)
    result["verdict"] = v
    bb = result["backbones"]
    print(
        f"backbone (held-out random pairs): shape head "
        f"{mean_std([b['test_shape_accuracy'] for b in bb], '{:.3f}')}, texture head "
        f"{mean_std([b['test_texture_accuracy'] for b in bb], '{:.3f}')}; "
        f"{result['num_conflict']} conflict images; kept per stage {result['kept_per_stage']}"
    )
    table = format_table(header, rows)
    print(f"mean ± std over {cfg.seeds} seeds\n\n{table}\n")
    print("\n".join(v["lines"]))
    print(f"VERDICT (Top-K raises shape bias beyond a random-K control): {v['verdict']}")
    print(f"wall {result['wall_seconds']:.0f} s, process CPU {result['cpu_seconds']:.0f} s")
    result["table"] = table
    save_json(out / "topk_shape_bias.json", result)
    plot(result, summary, out / "topk_shape_bias.png")
    print(f"wrote {out / 'topk_shape_bias.json'} and {out / 'topk_shape_bias.png'}")
    return result


if __name__ == "__main__":
    main()
