"""The tables a GPU/TPU user asks for, on whatever device JAX sees, in one process.

Prints the device, JAX/jaxlib versions and ``/proc/loadavg``, then (every number a median of
interleaved rounds, so that drifting load hits all alike; ratios within the same process):

1. **activations**: ``x -> (f(x), vjp(g))`` (cotangents w.r.t. ``x`` and the activation's
   parameters, which are passed as arguments so that XLA cannot fold them) of each actfx
   activation against its XLA baseline: LayerAct vs LayerNorm (over H, W, C, no affine) +
   SiLU/HardSiLU, MMeLU and NeLU vs ReLU, DiTAC vs GELU (erf, what DiTAC is at theta = 0),
   Top-K vs a ``lax.top_k`` mask over the same pools;
2. **ResNet train step**: images/s of the jit-compiled train step of
   :mod:`benchmarks.train_throughput` (fwd + bwd + SGD momentum, BatchNorm in train mode)
   per activation, and the ratio to ReLU (median over rounds of the per-round ratio, IQR);
3. **Top-K exact vs approx**: both methods and the ``lax.top_k`` mask at k = 0.1 and 0.5,
   with the recall of ``method="approx"`` (share of the exact top-k it keeps);
4. **CPAB**: points/s of ``actfx.cpab.transform`` (nc = 10), forward and forward + gradient.

Defaults are sized for a GPU/TPU (about 3-5 min there, compiles included); ``--quick`` runs
tiny sizes (CPU smoke test, seconds to a minute; the numbers mean little).

    python -m benchmarks.accelerator                 # on a GPU/TPU machine
    python -m benchmarks.accelerator --quick         # smoke run anywhere
    python -m benchmarks.accelerator --dtype bfloat16 --only act,resnet --out acc.json
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

import actfx
import actfx.nn
from actfx.cpab import Tessellation
from benchmarks.timing import interleaved_medians
from benchmarks.train_throughput import build, time_steps

SECTIONS = ("act", "resnet", "topk", "cpab")


def proc_loadavg() -> str:
    """The line of ``/proc/loadavg`` (1/5/15-min load, running/total tasks, last pid)."""
    try:
        with open("/proc/loadavg") as f:
            return f.read().strip()
    except OSError:  # not Linux
        try:
            return " ".join(f"{v:.2f}" for v in os.getloadavg())
        except (OSError, AttributeError):
            return "n/a"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def layer_norm(x, eps: float = 1e-5):
    """LayerNorm over every axis but the batch, without scale/shift (LayerAct's baseline)."""
    axes = tuple(range(1, x.ndim))
    mu = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.var(x, axis=axes, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + eps)


def lax_topk_mask(x, k: float):
    """Top-K over each (n, c) pool of an NHWC ``x`` by ``|x|``, via ``lax.top_k``: the XLA
    baseline of ``actfx.topk(x, k)`` (ties at the threshold are all kept)."""
    n, h, w, c = x.shape
    m = actfx.topk_num_kept(k, (h, w))
    a = jnp.abs(x).transpose(0, 3, 1, 2).reshape(n, c, h * w)
    kth = jax.lax.top_k(a, m)[0][..., -1]
    return jnp.where(jnp.abs(x) >= kth[:, None, None, :], x, 0)


def fwd_bwd(f: Callable, *params) -> Callable:
    """``(x, g) -> (f(x, *params), cotangents of x and params)``, jit-compiled, with the
    parameters passed as arguments (not compile-time constants)."""

    def run(x, g, params):
        y, vjp = jax.vjp(f, x, *params)
        return y, vjp(g.astype(y.dtype))  # y may be promoted (bfloat16 x, float32 params)

    jitted = jax.jit(run)
    return lambda x, g: jitted(x, g, params)


def _rows(times: dict[str, float], pairs: dict[str, str]) -> list[dict]:
    return [
        {
            "name": name,
            "ms": 1e3 * times[name],
            "baseline": base,
            "baseline_ms": 1e3 * times[base],
            "ratio": times[name] / times[base],
        }
        for name, base in pairs.items()
    ]


def _print_rows(rows: list[dict]) -> None:
    w = max(len(r["name"]) for r in rows)
    wb = max(len(r["baseline"]) for r in rows)
    print(f"  {'':<{w}s} {'ms':>9s}   {'baseline':<{wb}s} {'ms':>9s} {'ratio':>7s}")
    for r in rows:
        print(
            f"  {r['name']:<{w}s} {r['ms']:9.3f}   {r['baseline']:<{wb}s} "
            f"{r['baseline_ms']:9.3f} {r['ratio']:6.2f}x"
        )


def bench_activations(shape, dtype, rounds: int, repeats: int) -> list[dict]:
    kx, kg = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, shape, dtype)
    g = jax.random.normal(kg, shape, dtype)
    c = shape[-1]
    tess = Tessellation(10)
    theta = 0.3 * jax.random.normal(jax.random.key(1), (tess.theta_dim,), jnp.float32)
    mm = (jnp.full((c,), 0.5), jnp.ones((c,)), jnp.zeros((c,)))
    lam = jnp.full((c,), 0.5)
    fns = {
        "ReLU": fwd_bwd(jax.nn.relu),
        "GELU": fwd_bwd(lambda v: jax.nn.gelu(v, approximate=False)),
        "LayerNorm+SiLU": fwd_bwd(lambda v: jax.nn.silu(layer_norm(v))),
        "LayerNorm+HardSiLU": fwd_bwd(lambda v: jax.nn.hard_silu(layer_norm(v))),
        "lax.top_k k=0.1": fwd_bwd(lambda v: lax_topk_mask(v, 0.1)),
        "LA-SiLU": fwd_bwd(actfx.layeract_silu),
        "LA-SiLU (xla)": fwd_bwd(lambda v: actfx.layeract_silu(v, implementation="xla")),
        "LA-HardSiLU": fwd_bwd(actfx.layeract_hardsilu),
        "MMeLU": fwd_bwd(actfx.mmelu, *mm),
        "NeLU (channels)": fwd_bwd(actfx.nelu, lam),
        "DiTAC exact": fwd_bwd(lambda v, t: actfx.ditac(v, t, tess, method="exact"), theta),
        "DiTAC table": fwd_bwd(lambda v, t: actfx.ditac(v, t, tess, method="table"), theta),
        "Top-K k=0.1 exact": fwd_bwd(lambda v: actfx.topk(v, 0.1)),
        "Top-K k=0.1 approx": fwd_bwd(lambda v: actfx.topk(v, 0.1, method="approx")),
    }
    t = interleaved_medians(fns, x, g, rounds=rounds, repeats=repeats)
    pairs = {
        "LA-SiLU": "LayerNorm+SiLU",
        "LA-SiLU (xla)": "LayerNorm+SiLU",
        "LA-HardSiLU": "LayerNorm+HardSiLU",
        "MMeLU": "ReLU",
        "NeLU (channels)": "ReLU",
        "DiTAC exact": "GELU",
        "DiTAC table": "GELU",
        "Top-K k=0.1 exact": "lax.top_k k=0.1",
        "Top-K k=0.1 approx": "lax.top_k k=0.1",
        "GELU": "ReLU",
        "LayerNorm+SiLU": "ReLU",
        "lax.top_k k=0.1": "ReLU",
    }
    rows = _rows(t, pairs)
    print(f"\n[1] activations, fwd+bwd, shape {tuple(shape)} {jnp.dtype(dtype).name}")
    _print_rows(rows)
    return rows


RESNET_ACTS: dict[str, tuple[object, float | None]] = {
    "relu": (lambda: jax.nn.relu, None),
    "gelu": (lambda: jax.nn.gelu, None),
    "la_silu": (lambda: actfx.nn.LayerAct("silu"), None),
    "la_hardsilu": (lambda: actfx.nn.LayerAct("hardsilu"), None),
    "mmelu": (actfx.nn.MMeLU, None),
    "ditac": (actfx.nn.DiTAC, None),  # per channel, the module's default method
    "relu+topk0.1": (lambda: jax.nn.relu, 0.1),
}


def bench_resnet(acts, *, depth, batch, size, steps, repeats, dtype) -> list[dict]:
    runs = []
    for name in acts:
        factory, topk = RESNET_ACTS[name]
        run = build(
            name, depth=depth, batch=batch, size=size, dtype=dtype, topk=topk, factory=factory
        )
        run["name"] = name
        runs.append(run)
    for r in range(repeats):  # round robin, each round starting one activation later
        for i in range(len(runs)):
            time_steps(runs[(r + i) % len(runs)], steps)
    base = runs[0]
    rows = []
    for run in runs:
        med = statistics.median(run["times"])
        ratios = sorted(b / t for b, t in zip(base["times"], run["times"]))
        q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
        rows.append(
            {
                "activation": run["name"],
                "images_per_s": batch * steps / med,
                "ms_per_step": 1e3 * med / steps,
                "ratio_vs_" + base["name"]: statistics.median(ratios),
                "ratio_iqr": [q[0], q[2]],
                "compile_s": run["compile_s"],
                "loss_finite": bool(np.isfinite(float(run["metrics"]["loss"]))),
            }
        )
    print(
        f"\n[2] ResNet-{depth} train step, batch {batch}, {size}x{size}x3, "
        f"{jnp.dtype(dtype).name}; median of {repeats} x {steps} steps"
    )
    key = "ratio_vs_" + base["name"]
    print(
        f"  {'activation':<14s}{'images/s':>11s}{'ms/step':>10s}{'vs ' + base['name']:>9s}"
        f"{'ratio IQR':>14s}{'compile s':>11s}"
    )
    for r in rows:
        lo, hi = r["ratio_iqr"]
        print(
            f"  {r['activation']:<14s}{r['images_per_s']:>11.1f}{r['ms_per_step']:>10.2f}"
            f"{r[key]:>9.3f}{f'{lo:.2f}-{hi:.2f}':>14s}{r['compile_s']:>11.1f}"
        )
    return rows


def bench_topk(shape, dtype, rounds: int, repeats: int) -> list[dict]:
    kx, kg = jax.random.split(jax.random.key(2))
    x = jax.random.normal(kx, shape, dtype)
    g = jax.random.normal(kg, shape, dtype)
    fns, pairs, rows_extra = {}, {}, {}
    for k in (0.1, 0.5):
        ex, ap, lx = f"exact k={k}", f"approx k={k}", f"lax.top_k k={k}"
        fns[lx] = fwd_bwd(lambda v, k=k: lax_topk_mask(v, k))
        fns[ex] = fwd_bwd(lambda v, k=k: actfx.topk(v, k))
        fns[ap] = fwd_bwd(lambda v, k=k: actfx.topk(v, k, method="approx"))
        pairs.update({ex: lx, ap: ex})
        kept_exact = np.asarray(jax.jit(lambda v, k=k: actfx.topk(v, k))(x) != 0)
        kept_approx = np.asarray(jax.jit(lambda v, k=k: actfx.topk(v, k, method="approx"))(x) != 0)
        rows_extra[ap] = float((kept_exact & kept_approx).sum() / max(kept_exact.sum(), 1))
    t = interleaved_medians(fns, x, g, rounds=rounds, repeats=repeats)
    rows = _rows(t, pairs)
    for r in rows:
        if r["name"] in rows_extra:
            r["recall"] = rows_extra[r["name"]]
    print(f"\n[3] Top-K exact vs approx, fwd+bwd, shape {tuple(shape)} {jnp.dtype(dtype).name}")
    _print_rows(rows)
    print(
        "  recall of approx (share of the exact top-k kept): "
        + ", ".join(f"{n.split()[-1]}: {v:.3f}" for n, v in rows_extra.items())
    )
    return rows


def bench_cpab(n: int, rounds: int, repeats: int) -> list[dict]:
    tess = Tessellation(10, zero_boundary=True, basis="qr")
    rng = np.random.default_rng(0)
    theta = jnp.asarray(rng.standard_normal(tess.theta_dim), jnp.float32)
    x = jnp.asarray(rng.uniform(0.0, 1.0, n), jnp.float32)
    g = jnp.asarray(rng.standard_normal(n), jnp.float32)
    fwd = jax.jit(lambda x, th: actfx.cpab.transform(x, th, tess))
    both = jax.jit(
        jax.value_and_grad(
            lambda th, x, g: jnp.sum(g * actfx.cpab.transform(x, th, tess)), argnums=(0, 1)
        )
    )
    t = interleaved_medians(
        {"forward": lambda: fwd(x, theta), "forward+grad (theta, x)": lambda: both(theta, x, g)},
        rounds=rounds,
        repeats=repeats,
    )
    rows = [{"name": k, "ms": 1e3 * v, "points_per_s": n / v} for k, v in t.items()]
    print(f"\n[4] CPAB transform, {n} points, nc = 10, float32")
    for r in rows:
        print(f"  {r['name']:<24s} {r['ms']:9.3f} ms {r['points_per_s']:12.3e} points/s")
    return rows


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"sections among {SECTIONS}")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--shape", type=int, nargs=4, default=None, help="NHWC (128 32 32 64)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (7)")
    p.add_argument("--acts", default=",".join(RESNET_ACTS), help="ResNet activations")
    p.add_argument("--depth", type=int, default=None, help="ResNet depth (20)")
    p.add_argument("--batch", type=int, default=None, help="ResNet batch (128)")
    p.add_argument("--size", type=int, default=None, help="ResNet image side (32)")
    p.add_argument("--steps", type=int, default=None, help="steps per round (10)")
    p.add_argument("--repeats", type=int, default=None, help="ResNet rounds (5)")
    p.add_argument("--cpab-n", type=int, default=None, help="CPAB points (2**22)")
    p.add_argument("--out", default=None, help="also write the numbers here (JSON)")
    a = p.parse_args(argv)
    q = a.quick
    shape = tuple(a.shape or ((2, 8, 8, 16) if q else (128, 32, 32, 64)))
    rounds = a.rounds or (3 if q else 7)
    repeats_fn = 2 if q else 5
    depth = a.depth or (8 if q else 20)
    batch = a.batch or (2 if q else 128)
    size = a.size or (8 if q else 32)
    steps = a.steps or (1 if q else 10)
    repeats = a.repeats or (3 if q else 5)
    cpab_n = a.cpab_n or (4096 if q else 2**22)
    dtype = jnp.bfloat16 if a.dtype == "bfloat16" else jnp.float32
    only = [s.strip() for s in a.only.split(",") if s.strip()]
    acts = [s.strip() for s in a.acts.split(",") if s.strip()]
    if bad := [s for s in only if s not in SECTIONS]:
        p.error(f"--only: unknown section(s) {bad}; choose from {SECTIONS}")
    if bad := [s for s in acts if s not in RESNET_ACTS]:
        p.error(f"--acts: unknown activation(s) {bad}; choose from {list(RESNET_ACTS)}")

    t_start = time.perf_counter()
    devs = jax.devices()
    native_ok, native_detail = actfx.layeract_native_status()
    env = {
        "device": f"{len(devs)} x {devs[0].platform} ({devs[0].device_kind})",
        "jax": jax.__version__,
        "jaxlib": _version("jaxlib"),
        "actfx": actfx.__version__,
        "python": platform.python_version(),
        "loadavg_before": proc_loadavg(),
        "layeract_cpu_kernel": native_ok and jax.default_backend() == "cpu",
    }
    print(
        f"actfx {env['actfx']} on {env['device']}; jax {env['jax']}, jaxlib {env['jaxlib']}, "
        f"python {env['python']}"
    )
    print(f"/proc/loadavg: {env['loadavg_before']}")
    print(
        "LayerAct path: "
        + (
            "compiled CPU kernel (default on CPU float32)"
            if env["layeract_cpu_kernel"]
            else f"XLA ({native_detail if not native_ok else 'not a CPU backend'})"
        )
    )
    record: dict = {"env": env, "quick": q, "dtype": a.dtype}
    if "act" in only:
        record["activations"] = bench_activations(shape, dtype, rounds, repeats_fn)
    if "resnet" in only:
        record["resnet"] = bench_resnet(
            acts, depth=depth, batch=batch, size=size, steps=steps, repeats=repeats, dtype=dtype
        )
    if "topk" in only:
        record["topk"] = bench_topk(shape, dtype, rounds, repeats_fn)
    if "cpab" in only:
        record["cpab"] = bench_cpab(cpab_n, rounds, repeats_fn)
    env["loadavg_after"] = proc_loadavg()
    env["seconds"] = time.perf_counter() - t_start
    print(f"\n/proc/loadavg after: {env['loadavg_after']}; total {env['seconds']:.1f} s")
    if a.out:
        from actfx.train import write_json

        write_json(a.out, record)
        print(f"wrote {a.out}")
    return record


if __name__ == "__main__":
    main()
