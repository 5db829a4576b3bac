"""Training throughput (images/s) of ResNet-20 with each activation, ratio vs ReLU.

Times the jit-compiled train step that :func:`actfx.train.fit` uses (forward, backward,
SGD+momentum update, BatchNorm in training mode) on a fixed device-resident batch of
CIFAR-shaped images, so the numbers measure the model and activation, not the input
pipeline. Every activation is compiled and warmed up first (excluded); then ``--repeats``
rounds time ``--steps`` steps of each activation in turn (round robin, so a change in
machine load affects all alike), ``block_until_ready`` at the end. Reported: images/s of the
median round, and the ratio to ReLU as the median over rounds of the per-round ratio (each
activation's round against ReLU's round of the same pass, so slow load drift cancels); the
per-round ratios' interquartile range shows how noisy the machine was.

    python -m benchmarks.train_throughput             # quick CPU config
    python -m benchmarks.train_throughput --full      # GPU/TPU: batch 128, more repeats
    python -m benchmarks.train_throughput --acts relu,la_silu --dtype bfloat16

Writes ``results/benchmarks/train_throughput.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import actfx.nn
from actfx.nn.models import ResNet
from actfx.train import make_optimizer, make_train_step, write_json

ACTIVATIONS = {
    "relu": lambda: jax.nn.relu,
    "silu": lambda: jax.nn.silu,
    "la_silu": lambda: actfx.nn.LayerAct("silu"),
    "la_hardsilu": lambda: actfx.nn.LayerAct("hardsilu"),
    # the pure-XLA LayerAct (implementation=None uses the compiled kernel on CPU float32)
    "la_silu_xla": lambda: actfx.nn.LayerAct("silu", implementation="xla"),
    "la_hardsilu_xla": lambda: actfx.nn.LayerAct("hardsilu", implementation="xla"),
    "mmelu": lambda: actfx.nn.MMeLU(),
}


def build(act: str, *, depth: int, batch: int, size: int, dtype, topk=None, factory=None) -> dict:
    """Compile and warm up the train step of ResNet-``depth`` with activation ``act``
    (a key of :data:`ACTIVATIONS`, or any label when ``factory``, the model's ``act``, is
    given)."""
    model = ResNet(
        depth,
        act=ACTIVATIONS[act] if factory is None else factory,
        num_classes=10,
        in_channels=3,
        dtype=dtype,
        topk=topk,
        rngs=nnx.Rngs(0),
    )
    opt = nnx.Optimizer(model, make_optimizer("sgd", 0.1), wrt=nnx.Param)
    graphdef, state = nnx.split((model, opt))
    step = jax.jit(make_train_step(graphdef), donate_argnums=0)
    kx, ky = jax.random.split(jax.random.key(0))
    x = jax.random.uniform(kx, (batch, size, size, 3), jnp.float32)
    y = jax.random.randint(ky, (batch,), 0, 10)
    t0 = time.perf_counter()
    state, m = step(state, x, y, jax.random.key(1))
    jax.block_until_ready(m)
    return {
        "name": act if topk is None else f"{act}+topk{topk}",
        "step": step,
        "state": state,
        "x": x,
        "y": y,
        "compile_s": time.perf_counter() - t0,
        "times": [],
        "metrics": m,
    }


def time_steps(run: dict, steps: int) -> None:
    """Run ``steps`` train steps of ``run`` and append the wall time (blocking at the end)."""
    key = jax.random.key(1)
    state = run["state"]
    t0 = time.perf_counter()
    for _ in range(steps):
        state, m = run["step"](state, run["x"], run["y"], key)
    jax.block_until_ready((state, m))
    run["times"].append(time.perf_counter() - t0)
    run["state"], run["metrics"] = state, m


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--full", action="store_true", help="accelerator config: batch 128, 20 steps x 10"
    )
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--size", type=int, default=32, help="image side (CIFAR: 32)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--acts", default="relu,silu,la_silu,la_hardsilu,la_silu_xla,mmelu")
    p.add_argument("--topk", type=float, default=None, help="also time ReLU + Top-K after stage 3")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--out", default="results/benchmarks/train_throughput.json")
    a = p.parse_args(argv)
    batch = a.batch or (128 if a.full else 32)
    steps = a.steps or (20 if a.full else 3)
    repeats = a.repeats or (10 if a.full else 5)
    dtype = jnp.bfloat16 if a.dtype == "bfloat16" else jnp.float32
    acts = [s.strip() for s in a.acts.split(",") if s.strip()]
    unknown = [s for s in acts if s not in ACTIVATIONS]
    if unknown:
        p.error(f"unknown activation(s) {unknown}; choose from {sorted(ACTIVATIONS)}")
    dev = jax.devices()[0]
    load_before = os.getloadavg()
    print(
        f"ResNet-{a.depth} train step, batch {batch}, {a.size}x{a.size}x3, {a.dtype}, "
        f"{len(jax.devices())} x {dev.platform} ({dev.device_kind}); "
        f"median of {repeats} x {steps} steps; "
        f"load average {' / '.join(f'{v:.2f}' for v in load_before)}"
    )
    specs = [(act, None) for act in acts] + ([("relu", a.topk)] if a.topk else [])
    runs = [
        build(act, depth=a.depth, batch=batch, size=a.size, dtype=dtype, topk=k) for act, k in specs
    ]
    # interleave the repeats (round robin) so drifting machine load hits every activation alike
    # (each round starts one activation later, so none always runs right after another)
    for r in range(repeats):
        for i in range(len(runs)):
            time_steps(runs[(r + i) % len(runs)], steps)
    rows = []
    base_run = next((r for r in runs if r["name"] == "relu"), runs[0])
    for run in runs:
        med = statistics.median(run["times"])
        ratios = sorted(b / t for b, t in zip(base_run["times"], run["times"]))
        q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
        rows.append(
            {
                "activation": run["name"],
                "images_per_s": batch * steps / med,
                "ms_per_step": 1000 * med / steps,
                "ratio_vs_relu": statistics.median(ratios),
                "ratio_iqr": [q[0], q[2]],
                "compile_s": run["compile_s"],
                "loss_finite": bool(np.isfinite(float(run["metrics"]["loss"]))),
            }
        )
    print(
        f"{'activation':<16}{'images/s':>12}{'ms/step':>10}{'vs ' + base_run['name']:>9}"
        f"{'ratio IQR':>15}{'compile s':>11}"
    )
    for r in rows:
        lo, hi = r["ratio_iqr"]
        print(
            f"{r['activation']:<16}{r['images_per_s']:>12.1f}{r['ms_per_step']:>10.1f}"
            f"{r['ratio_vs_relu']:>9.3f}{f'{lo:.3f}-{hi:.3f}':>15}{r['compile_s']:>11.1f}"
        )
    load = os.getloadavg()
    print(f"load average after: {' / '.join(f'{v:.2f}' for v in load)}")
    record = {
        "device": f"{dev.platform}:{dev.device_kind}",
        "num_devices": len(jax.devices()),
        "depth": a.depth,
        "batch": batch,
        "size": a.size,
        "dtype": a.dtype,
        "steps": steps,
        "repeats": repeats,
        "rows": rows,
        "baseline": base_run["name"],
        "load_before": list(load_before),
        "load_after": list(load),
    }
    write_json(a.out, record)
    print(f"wrote {a.out}")
    return record


if __name__ == "__main__":
    main()
