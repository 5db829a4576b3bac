"""DiTAC vs ReLU / GELU / PReLU / MMeLU on small regression tasks (DiTAC's regression example).

Targets:

* ``sines2d`` -- the reference task: ``y = sum_k w_k sin(A_k . x)``, ``x ~ U([-1, 1]^2)``,
  rows of A = (9,-7), (-9,11), (3,13), (9,9), (13,5), (3,19), w = (.4, .1, .15, .15, .1, .1);
* ``sines1d`` -- ``y = sin(6x) + 0.5 sin(15x)`` on [-1, 1];
* ``abs1d`` -- ``y = |x| - 0.5`` (a kink);
* ``bump1d`` -- ``y = exp(-25 x^2)`` (a narrow bump).

Model: the reference's ``in -> H -> 1`` MLP with one activation layer (H = 50 for DiTAC),
Adam (lr 0.005), batch 98, MSE; every step sees a fresh batch of uniform points (a training
set of ``steps x batch`` i.i.d. points drawn per seed, one pass). DiTAC as in the reference
example: nc = 10, [a, b] = [-3, 3], basis qr, one theta for the layer, initialised from
difw's prior (length scale 3, variance 2), regulariser ``0.1 theta^T P theta`` with DiTAC's
precision (length scale 5, variance 1), lookup-table method; ``actfx.train.fit`` adds the
regulariser to the MSE by itself. PReLU is ``flax.nnx.PReLU`` (slope init 0.25). Same
parameter budget: every other activation gets the largest hidden width whose total
parameter count does not exceed DiTAC's (trainable activation parameters included).
Training goes through ``actfx.train.fit`` (one run per seed; runs of one model share a
compiled step); the test MSE is on 4096 fixed uniform points.

    python -m experiments.ditac_regression            # quick CPU config (a few minutes)
    python -m experiments.ditac_regression --full     # 10 000 steps, 5 seeds (the reference's)

Writes ``results/ditac_regression/{results.json, fits.png, activations.png}``.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

import actfx
from actfx.nn import DiTAC
from actfx.nn.models import MLP
from actfx.train import TrainConfig, fit, mse_loss, predict
from experiments.reporting import format_table, mean_std, results_dir, save_json

_A = np.array([[9, -7], [-9, 11], [3, 13], [9, 9], [13, 5], [3, 19]], np.float32)
_W = np.array([0.4, 0.1, 0.15, 0.15, 0.1, 0.1], np.float32)

TARGETS = {
    "sines2d": (2, lambda x: jnp.sin(x @ _A.T) @ _W),
    "sines1d": (1, lambda x: jnp.sin(6 * x[:, 0]) + 0.5 * jnp.sin(15 * x[:, 0])),
    "abs1d": (1, lambda x: jnp.abs(x[:, 0]) - 0.5),
    "bump1d": (1, lambda x: jnp.exp(-25 * x[:, 0] ** 2)),
}
ACTIVATIONS = ("DiTAC", "ReLU", "GELU", "PReLU", "MMeLU")


def act_factory(name: str, rngs: nnx.Rngs, method: str):
    if name == "DiTAC":
        return lambda: DiTAC(
            nc=10,
            a=-3.0,
            b=3.0,
            basis="qr",
            method=method,
            init_length_scale=3.0,
            init_output_variance=2.0,
            init_kernel="difw",
            reg_length_scale=5.0,
            reg_output_variance=1.0,
            reg_kernel="ditac",
            reg_weight=0.1,
            rngs=rngs,
        )
    if name == "ReLU":
        return lambda: jax.nn.relu
    if name == "GELU":
        return lambda: lambda x: jax.nn.gelu(x, approximate=False)
    if name == "PReLU":
        return lambda: nnx.PReLU(negative_slope_init=0.25)
    if name == "MMeLU":
        return lambda: actfx.nn.MMeLU(rngs=rngs)
    raise ValueError(f"unknown activation {name!r}")


def count_params(model: nnx.Module) -> int:
    return int(sum(np.size(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param))))


def build(name: str, d_in: int, width: int, seed: int, method: str) -> MLP:
    rngs = nnx.Rngs(seed)
    return MLP(d_in, 1, hidden=(width,), act=act_factory(name, rngs, method), rngs=rngs)


def matched_width(name: str, d_in: int, budget: int, method: str) -> int:
    """Largest hidden width whose parameter count does not exceed ``budget``."""
    extra = count_params(build(name, d_in, 1, 0, method)) - (d_in + 1 + 2)  # activation params
    return (budget - 1 - extra) // (d_in + 2)


def train_seeds(name, target, width, seeds, steps, batch, optimizer, method, x_test):
    """One ``actfx.train.fit`` run per seed; return final test MSEs, loss curves, models."""
    d_in, f = TARGETS[target]
    test = (x_test, np.asarray(f(jnp.asarray(x_test)))[:, None])
    mses, curves, trained = [], [], []
    for s in seeds:
        x = np.asarray(
            jax.random.uniform(
                jax.random.key(1000 + s), (steps * batch, d_in), minval=-1.0, maxval=1.0
            )
        )
        y = np.asarray(f(jnp.asarray(x)))[:, None]
        model = build(name, d_in, width, s, method)
        curve = []
        cfg = TrainConfig(
            steps=steps,
            batch_size=batch,
            schedule="constant",
            seed=s,
            eval_every=steps,
            progress=False,
        )
        result = fit(
            model,
            (x, y),
            test,
            config=cfg,
            loss_fn=mse_loss,
            optimizer=optimizer,
            on_step=lambda step, m: curve.append(m["loss"]),
        )
        mses.append(result.final["test_loss"])
        curves.append(np.asarray(jax.device_get(curve)))
        trained.append(model)
    return np.asarray(mses), np.stack(curves), trained


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--full", action="store_true", help="reference config: 10000 steps, 5 seeds")
    p.add_argument("--steps", type=int, default=None, help="Adam steps (quick: 2000)")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (quick: 3)")
    p.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    p.add_argument("--acts", nargs="+", default=list(ACTIVATIONS), choices=list(ACTIVATIONS))
    p.add_argument("--width", type=int, default=50, help="DiTAC hidden width (sets the budget)")
    p.add_argument("--method", default="table", choices=["table", "exact"], help="DiTAC method")
    p.add_argument("--batch", type=int, default=98)
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--out", default="results")
    args = p.parse_args(argv)
    steps = args.steps or (10_000 if args.full else 2000)
    seeds = list(range(args.seeds or (5 if args.full else 3)))
    out = results_dir("ditac_regression", args.out)
    optimizer = optax.adam(args.lr)  # one object: the seeds of one model share a compiled step

    record = {"config": {**vars(args), "steps": steps, "seeds": seeds}, "results": {}}
    rows, fitted, act_models = [], {}, {}
    combos = [(t, a) for t in args.targets for a in args.acts]
    t0 = time.time()
    for target, name in tqdm(combos, desc="target x activation"):
        d_in, f = TARGETS[target]
        budget = count_params(build("DiTAC", d_in, args.width, 0, args.method))
        width = args.width if name == "DiTAC" else matched_width(name, d_in, budget, args.method)
        x_test = np.asarray(
            jax.random.uniform(jax.random.key(12345), (4096, d_in), minval=-1.0, maxval=1.0)
        )
        test, curve, trained = train_seeds(
            name, target, width, seeds, steps, args.batch, optimizer, args.method, x_test
        )
        n_params = count_params(trained[0])
        record["results"].setdefault(target, {})[name] = {
            "width": width,
            "params": n_params,
            "test_mse": test.tolist(),
            "final_train_mse_last100": curve[:, -100:].mean(1).tolist(),
        }
        fitted[(target, name)] = trained[0]
        if name in ("DiTAC", "PReLU", "MMeLU"):
            act_models[(target, name)] = trained[0].acts[0]
    for target in args.targets:
        res = record["results"][target]
        best = min(res, key=lambda k: np.mean(res[k]["test_mse"]))
        for name in args.acts:
            r = res[name]
            rows.append(
                [
                    target,
                    name + (" *" if name == best else ""),
                    r["width"],
                    r["params"],
                    mean_std(r["test_mse"], "{:.2e}"),
                ]
            )
    table = format_table(["target", "activation", "width", "params", "test MSE (mean ± std)"], rows)
    print(
        f"\n{len(seeds)} seeds, {steps} steps, batch {args.batch}, Adam lr {args.lr}, DiTAC method "
        f"{args.method}; * = lowest mean. Wall time {time.time() - t0:.0f} s.\n"
    )
    print(table)
    record["table"] = table
    save_json(out / "results.json", record)
    plot_fits(fitted, args.targets, args.acts, out / "fits.png")
    plot_activations(act_models, args.targets, out / "activations.png")
    print(f"\nwrote {out / 'results.json'}, {out / 'fits.png'}, {out / 'activations.png'}")
    return record


def plot_fits(fitted, targets, acts, path) -> None:
    fig, axes = plt.subplots(
        len(targets),
        len(acts) + 1,
        figsize=(2.6 * (len(acts) + 1), 2.4 * len(targets)),
        squeeze=False,
    )
    for i, target in enumerate(targets):
        d_in, f = TARGETS[target]
        if d_in == 2:
            g = np.linspace(-1, 1, 101, dtype=np.float32)
            xx = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
            panels = [("target", np.asarray(f(jnp.asarray(xx))))]
            panels += [(a, predict(fitted[(target, a)], xx)[:, 0]) for a in acts]
            vmin, vmax = panels[0][1].min(), panels[0][1].max()
            for j, (title, z) in enumerate(panels):
                axes[i, j].imshow(
                    z.reshape(101, 101),
                    origin="lower",
                    extent=(-1, 1, -1, 1),
                    vmin=vmin,
                    vmax=vmax,
                    cmap="viridis",
                )
                axes[i, j].set_title(f"{target}: {title}", fontsize=8)
        else:
            xx = np.linspace(-1, 1, 401, dtype=np.float32)[:, None]
            y = np.asarray(f(jnp.asarray(xx)))
            axes[i, 0].plot(xx[:, 0], y, "k")
            axes[i, 0].set_title(f"{target}: target", fontsize=8)
            for j, a in enumerate(acts, start=1):
                axes[i, j].plot(xx[:, 0], y, "k", lw=0.8, alpha=0.5)
                axes[i, j].plot(xx[:, 0], predict(fitted[(target, a)], xx)[:, 0], "C1")
                axes[i, j].set_title(f"{target}: {a}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_activations(act_models, targets, path) -> None:
    z = jnp.linspace(-4, 4, 801)
    fig, axes = plt.subplots(1, len(targets), figsize=(3.2 * len(targets), 3), squeeze=False)
    for i, target in enumerate(targets):
        ax = axes[0, i]
        ax.plot(z, jax.nn.gelu(z, approximate=False), "k--", lw=0.8, label="GELU")
        for (t, name), act in act_models.items():
            if t == target:
                ax.plot(z, np.asarray(act(z)), label=f"{name} (seed 0)")
        ax.axvspan(-3, 3, color="0.9", zorder=-1)
        ax.set_title(f"learned activations: {target}", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
