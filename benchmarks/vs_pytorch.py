"""actfx against PyTorch implementations of the papers' algorithms, in one process.

What a user would run instead of actfx: our own PyTorch versions of the papers' algorithms
as they publish them, timed in the same process on the same data with the same number of
threads (``torch.set_num_threads(--threads)``; JAX's CPU client uses the same cores),
interleaved rounds (A B C A B C ...), median; ratio = actfx / PyTorch (< 1: actfx faster).

* ReLU, SiLU: ``torch.relu`` / ``torch.nn.functional.silu``.
* LA-SiLU: the LayerAct reference's layer statistics (unbiased variance, ``alpha``) with its
  hand-written LayerNorm-style backward ``dx = g s + dn - mean(dn) - mean(dn n) n``,
  ``dn = g x s'(n) / std``; against ``actfx.layeract_silu`` with the true gradient (default)
  and with ``grad="paper"`` (the same backward as the reference).
* Top-K: ``torch.topk`` of ``|x|`` per (n, c) over H*W, keep ``int(max(1, k*h*w))``, scatter
  a mask; against ``actfx.topk`` exact (the default method) for each ``--k`` and
  ``method="approx"`` at the first ``k`` (the same PyTorch time), with ReLU as the baseline
  row (``--topk-only``: just these rows).
* CPAB: :mod:`benchmarks.cpab` (difw's compiled CPU backend, when difw builds).
* A full ResNet-20 train step (forward, backward, SGD+momentum, BatchNorm in training mode):
  a small CIFAR ResNet-20 in PyTorch vs :mod:`benchmarks.train_throughput`'s actfx step, for
  ReLU, LA-SiLU and ReLU + Top-K after the last stage.

Tensors: JAX NHWC ``(N, H, W, C)``, PyTorch NCHW ``(N, C, H, W)``, the same numbers.
Needs the ``compare`` extra (``pip install 'actfx[compare]'``: torch, difw); without torch it
prints a message and exits 0. Every table is printed with ``os.getloadavg()``.

    python -m benchmarks.vs_pytorch [--shape 128 32 32 64] [--rounds 5] [--threads 2]
                                    [--topk-only] [--skip-train] [--skip-cpab] [--json out.json]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import actfx
from benchmarks.timing import load_average

TORCH_PIN = "2.13.0"


def load_torch():
    """``(torch, None)`` or ``(None, reason)`` when the ``compare`` extra is missing."""
    try:
        import torch
    except Exception as e:  # pragma: no cover - optional extra (any import failure)
        return None, f"{type(e).__name__}: {e}"
    return torch, None


def interleaved(fns: dict, rounds: int, repeats: int) -> dict[str, float]:
    """Median seconds per call of each zero-argument ``fn``, over interleaved rounds."""
    for fn in fns.values():  # warm-up: compilation, allocator, extension loading
        jax.block_until_ready(fn())
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                jax.block_until_ready(fn())
                ts.append(time.perf_counter() - t0)
            samples[name].append(float(np.median(ts)))
    return {k: float(np.median(v)) for k, v in samples.items()}


# --------------------------------------------------------------------------- PyTorch side


def torch_ops(torch, alpha: float = 1e-5):
    """The papers' algorithms in PyTorch: ``{name: f(x_nchw, k=None)}``."""
    F = torch.nn.functional

    class LASiLU(torch.autograd.Function):
        """LayerAct-SiLU with the reference code's LayerNorm-style backward."""

        @staticmethod
        def forward(ctx, x):
            dims = tuple(range(1, x.dim()))
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, keepdim=True, unbiased=True)
            std = torch.sqrt(var + alpha)
            n = (x - mean) / std
            s = torch.sigmoid(n)
            ctx.save_for_backward(x, n, s, std)
            return x * s

        @staticmethod
        def backward(ctx, g):
            x, n, s, std = ctx.saved_tensors
            dims = tuple(range(1, x.dim()))
            dn = g * x * (s * (1 - s)) / std
            return (
                g * s
                + dn
                - dn.mean(dim=dims, keepdim=True)
                - (dn * n).mean(dim=dims, keepdim=True) * n
            )

    def topk(x, k):
        n, c, h, w = x.shape
        m = int(max(1, k * h * w))
        flat = x.reshape(n, c, h * w)
        idx = torch.topk(flat.abs(), m, dim=-1, sorted=False).indices
        mask = torch.zeros_like(flat).scatter_(-1, idx, 1.0)
        return (flat * mask).reshape(n, c, h, w)

    return {"relu": torch.relu, "silu": F.silu, "la_silu": LASiLU.apply, "topk": topk}


def torch_resnet20(torch, act: str, topk: float | None = None, num_classes: int = 10):
    """CIFAR ResNet-20 (He et al.: 3 stages x 3 basic blocks, 16/32/64 channels, option-A
    shortcuts), BatchNorm before every activation, optional Top-K after the last stage."""
    nn = torch.nn
    ops = torch_ops(torch)

    class Act(nn.Module):
        def forward(self, x):
            return ops[act](x)

    class TopK(nn.Module):
        def forward(self, x):
            return ops["topk"](x, topk)

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.a1, self.a2 = Act(), Act()
            self.stride, self.pad = stride, cout - cin

        def forward(self, x):
            h = self.a1(self.b1(self.c1(x)))
            h = self.b2(self.c2(h))
            s = x
            if self.stride != 1 or self.pad:
                s = x[:, :, :: self.stride, :: self.stride]
                lo = self.pad // 2
                s = torch.nn.functional.pad(s, (0, 0, 0, 0, lo, self.pad - lo))
            return self.a2(h + s)

    class ResNet20(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(
                nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), Act()
            )
            layers, cin = [], 16
            for i, w in enumerate((16, 32, 64)):
                for j in range(3):
                    layers.append(Block(cin, w, 2 if (j == 0 and i > 0) else 1))
                    cin = w
            self.body = nn.Sequential(*layers)
            self.topk = TopK() if topk is not None else nn.Identity()
            self.fc = nn.Linear(64, num_classes)

        def forward(self, x):
            h = self.topk(self.body(self.stem(x)))
            return self.fc(h.mean(dim=(2, 3)))

    return ResNet20()


# --------------------------------------------------------------------------- tables


def print_table(title: str, rows: list[tuple[str, float, float]]) -> None:
    """``rows``: (name, actfx seconds, PyTorch seconds)."""
    print(f"\n{title}\n{load_average()}")
    print(f"| {'op':<36s} | {'actfx ms':>9s} | {'PyTorch ms':>10s} | {'actfx/PyTorch':>13s} |")
    print(f"|{'-' * 38}|{'-' * 11}|{'-' * 12}|{'-' * 15}|")
    for name, a, b in rows:
        print(f"| {name:<36s} | {a * 1e3:9.2f} | {b * 1e3:10.2f} | {a / b:12.2f}x |")


def bench_ops(torch, args) -> dict:
    shape = tuple(args.shape)
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal(shape, dtype=np.float32)
    g_np = rng.standard_normal(shape, dtype=np.float32)
    x, g = jnp.asarray(x_np), jnp.asarray(g_np)
    xt = torch.from_numpy(np.ascontiguousarray(x_np.transpose(0, 3, 1, 2)))
    gt = torch.from_numpy(np.ascontiguousarray(g_np.transpose(0, 3, 1, 2)))
    ops = torch_ops(torch)
    ks = tuple(args.k)

    jax_ops = {
        "ReLU": jax.nn.relu,
        "SiLU": jax.nn.silu,
        "LA-SiLU (true gradient)": actfx.layeract_silu,
        "LA-SiLU (grad='paper')": lambda v: actfx.layeract_silu(v, grad="paper"),
        # the pure-XLA path (what implementation=None ran before the compiled CPU kernel)
        "LA-SiLU (XLA, no kernel)": lambda v: actfx.layeract_silu(v, implementation="xla"),
    }
    th_ops = {
        "ReLU": ops["relu"],
        "SiLU": ops["silu"],
        "LA-SiLU (true gradient)": ops["la_silu"],
        "LA-SiLU (grad='paper')": ops["la_silu"],
        "LA-SiLU (XLA, no kernel)": ops["la_silu"],
    }
    if args.topk_only:
        jax_ops = {"ReLU": jax_ops["ReLU"]}
        th_ops = {"ReLU": th_ops["ReLU"]}
    for k in ks:
        jax_ops[f"Top-K k={k} exact"] = lambda v, k=k: actfx.topk(v, k)
        th_ops[f"Top-K k={k} exact"] = lambda v, k=k: ops["topk"](v, k)
    # approx_max_k against the same PyTorch reference (timed once, under the exact row)
    approx = f"Top-K k={ks[0]} approx"
    jax_ops[approx] = lambda v: actfx.topk(v, ks[0], method="approx")
    th_ops[approx] = th_ops[f"Top-K k={ks[0]} exact"]

    def jax_fwd(f):
        jf = jax.jit(f)
        return lambda: jf(x)

    def jax_fwd_bwd(f):
        def run(v, c):
            y, vjp = jax.vjp(f, v)
            return y, vjp(c)[0]

        jf = jax.jit(run)
        return lambda: jf(x, g)

    def th_fwd(f):
        def run():
            with torch.no_grad():
                return f(xt)

        return run

    def th_fwd_bwd(f):
        def run():
            v = xt.detach().requires_grad_(True)
            y = f(v)
            y.backward(gt)
            return v.grad

        return run

    fns = {}
    for name, f in jax_ops.items():
        fns[("fwd", "actfx", name)] = jax_fwd(f)
        fns[("fwd", "torch", name)] = th_fwd(th_ops[name])
        fns[("fwd+bwd", "actfx", name)] = jax_fwd_bwd(f)
        fns[("fwd+bwd", "torch", name)] = th_fwd_bwd(th_ops[name])
    # the paper's-backward row and the approx row reuse a PyTorch code timed once
    same = {approx: f"Top-K k={ks[0]} exact"}
    if not args.topk_only:
        same["LA-SiLU (grad='paper')"] = "LA-SiLU (true gradient)"
        same["LA-SiLU (XLA, no kernel)"] = "LA-SiLU (true gradient)"
    for mode in ("fwd", "fwd+bwd"):
        for name in same:
            del fns[(mode, "torch", name)]
    t = interleaved(fns, args.rounds, args.repeats)
    for mode in ("fwd", "fwd+bwd"):
        for name, ref in same.items():
            t[(mode, "torch", name)] = t[(mode, "torch", ref)]
    out = {}
    for mode in ("fwd", "fwd+bwd"):
        rows = [(n, t[(mode, "actfx", n)], t[(mode, "torch", n)]) for n in jax_ops]
        print_table(
            f"{mode}, JAX NHWC {shape} / PyTorch NCHW, float32, {args.threads} threads, "
            f"median of {args.rounds} interleaved rounds x {args.repeats}",
            rows,
        )
        out[mode] = {
            n: {"actfx_ms": a * 1e3, "torch_ms": b * 1e3, "ratio": a / b} for n, a, b in rows
        }
    tr = t[("fwd+bwd", "actfx", "ReLU")]
    print("\nTop-K fwd+bwd vs ReLU fwd+bwd (actfx; target <= 5x on CPU):")
    for name in [f"Top-K k={k} exact" for k in ks] + [approx]:
        r = t[("fwd+bwd", "actfx", name)] / tr
        print(f"  {name} / ReLU: {r:.2f}x")
        out[name.replace("Top-K k=", "topk_").replace(" ", "_") + "_over_relu"] = r
    for k in ks:  # the earlier key names
        out[f"topk_{k}_over_relu"] = out[f"topk_{k}_exact_over_relu"]
    return out


def bench_train(torch, args) -> dict:
    from benchmarks.train_throughput import build, time_steps

    batch, size, steps = args.batch, 32, args.steps
    rng = np.random.default_rng(0)
    x_np = rng.uniform(size=(batch, size, size, 3)).astype(np.float32)
    y_np = rng.integers(0, 10, batch)
    xt = torch.from_numpy(np.ascontiguousarray(x_np.transpose(0, 3, 1, 2)))
    yt = torch.from_numpy(y_np).long()
    specs = [
        ("ReLU", "relu", None),
        ("LA-SiLU", "la_silu", None),
        ("LA-SiLU (XLA, no kernel)", "la_silu_xla", None),
        (f"ReLU + Top-K {args.train_k}", "relu", args.train_k),
    ]
    fns = {}
    for label, act, k in specs:
        run = build(act, depth=20, batch=batch, size=size, dtype=jnp.float32, topk=k)
        run["x"], run["y"] = jnp.asarray(x_np), jnp.asarray(y_np)

        def jax_steps(run=run):
            run["times"].clear()
            time_steps(run, steps)
            return run["metrics"]

        fns[("actfx", label)] = jax_steps
        if act == "la_silu_xla":  # the same PyTorch model as the LA-SiLU row: timed once
            continue
        torch.manual_seed(0)
        model = torch_resnet20(torch, act, topk=k)
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def torch_steps(model=model, opt=opt):
            for _ in range(steps):
                opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.cross_entropy(model(xt), yt)
                loss.backward()
                opt.step()
            return loss.detach()

        fns[("torch", label)] = torch_steps
    t = interleaved(fns, args.train_rounds, 1)
    t[("torch", "LA-SiLU (XLA, no kernel)")] = t[("torch", "LA-SiLU")]
    rows = [
        (label, t[("actfx", label)] / steps, t[("torch", label)] / steps) for label, _, _ in specs
    ]
    print_table(
        f"ResNet-20 train step (fwd+bwd+SGD momentum, BatchNorm train mode), batch {batch}, "
        f"32x32x3, float32, {args.threads} threads; ms per step, median of {args.train_rounds} "
        f"interleaved rounds x {steps} steps",
        rows,
    )
    base_a, base_t = rows[0][1], rows[0][2]
    print(
        "images/s relative to ReLU:  "
        + ", ".join(f"{n}: actfx {base_a / a:.3f}, PyTorch {base_t / b:.3f}" for n, a, b in rows)
    )
    return {
        n: {
            "actfx_ms": a * 1e3,
            "torch_ms": b * 1e3,
            "ratio": a / b,
            "actfx_images_per_s": batch / a,
            "torch_images_per_s": batch / b,
        }
        for n, a, b in rows
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--shape", type=int, nargs=4, default=(128, 32, 32, 64), help="NHWC")
    p.add_argument("--k", type=float, nargs="+", default=(0.1, 0.5), help="Top-K fractions")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--batch", type=int, default=32, help="ResNet-20 train-step batch")
    p.add_argument("--steps", type=int, default=2, help="train steps per timed sample")
    p.add_argument("--train-rounds", type=int, default=5)
    p.add_argument("--train-k", type=float, default=0.1)
    p.add_argument(
        "--topk-only",
        action="store_true",
        help="time only ReLU and the Top-K rows (exact per --k, approx at the first k)",
    )
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--skip-cpab", action="store_true")
    p.add_argument("--json", default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    torch, why = load_torch()
    if torch is None:
        print(
            f"benchmarks.vs_pytorch: skipped, PyTorch is not installed ({why}); "
            f"install the 'compare' extra (torch=={TORCH_PIN} CPU wheel, difw) to run it"
        )
        return {"skipped": why}
    torch.set_num_threads(args.threads)
    dev = jax.devices()[0]
    print(
        f"actfx vs PyTorch {torch.__version__} ({torch.get_num_threads()} threads); "
        f"JAX {jax.__version__} "
        f"on {dev.platform} ({dev.device_kind}); {load_average()}"
    )
    out = {
        "torch": torch.__version__,
        "jax": jax.__version__,
        "threads": args.threads,
        "backend": jax.default_backend(),
        "ops": bench_ops(torch, args),
    }
    if not args.skip_cpab:
        from benchmarks import cpab

        print(f"\nCPAB (benchmarks.cpab: actfx vs difw's compiled CPU backend); {load_average()}")
        out["cpab"] = cpab.main(["--rounds", "3"])
    if not args.skip_train:
        out["train"] = bench_train(torch, args)
    out["load_average_end"] = load_average()
    if args.json:
        from actfx.train import write_json  # (imports Flax: only when asked)

        write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
