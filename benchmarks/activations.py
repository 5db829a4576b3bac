"""Forward+backward cost of LayerAct and Top-K against their baselines, as ratios.

On a (128, 32, 32, 64) float32 NHWC tensor under ``jit`` (one process, interleaved
rounds, median), time ``x -> (f(x), vjp(g))`` for

* LA-SiLU vs LayerNorm (over H, W, C; no affine) followed by SiLU, and vs plain SiLU;
* LA-HardSiLU vs LayerNorm followed by HardSiLU;
* Top-K (k = 0.1 and 0.5; exact and approx) vs ReLU.

    python -m benchmarks.activations [--shape 128 32 32 64] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp

import actfx
from benchmarks.timing import fwd_bwd, interleaved_medians, print_times_and_ratios


def layer_norm(x, eps: float = 1e-5):
    """LayerNorm over every axis but the batch, without scale/shift (the baseline)."""
    axes = tuple(range(1, x.ndim))
    mu = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.var(x, axis=axes, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + eps)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--shape", type=int, nargs=4, default=(128, 32, 32, 64))
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args(argv)
    kx, kg = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, tuple(args.shape), jnp.float32)
    g = jax.random.normal(kg, tuple(args.shape), jnp.float32)
    fns = {
        "SiLU": fwd_bwd(jax.nn.silu),
        "LayerNorm+SiLU": fwd_bwd(lambda v: jax.nn.silu(layer_norm(v))),
        "LA-SiLU": fwd_bwd(actfx.layeract_silu),
        "LayerNorm+HardSiLU": fwd_bwd(lambda v: jax.nn.hard_silu(layer_norm(v))),
        "LA-HardSiLU": fwd_bwd(actfx.layeract_hardsilu),
        "ReLU": fwd_bwd(jax.nn.relu),
        "Top-K k=0.1 exact": fwd_bwd(lambda v: actfx.topk(v, 0.1)),
        "Top-K k=0.5 exact": fwd_bwd(lambda v: actfx.topk(v, 0.5)),
        "Top-K k=0.1 approx": fwd_bwd(lambda v: actfx.topk(v, 0.1, method="approx")),
    }
    t = interleaved_medians(fns, x, g, rounds=args.rounds)
    ratios = {
        "LA-SiLU / (LayerNorm+SiLU)": t["LA-SiLU"] / t["LayerNorm+SiLU"],
        "LA-SiLU / SiLU": t["LA-SiLU"] / t["SiLU"],
        "LA-HardSiLU / (LayerNorm+HardSiLU)": t["LA-HardSiLU"] / t["LayerNorm+HardSiLU"],
        "Top-K(0.1, exact) / ReLU": t["Top-K k=0.1 exact"] / t["ReLU"],
        "Top-K(0.5, exact) / ReLU": t["Top-K k=0.5 exact"] / t["ReLU"],
        "Top-K(0.1, approx) / ReLU": t["Top-K k=0.1 approx"] / t["ReLU"],
    }
    print_times_and_ratios(
        f"fwd+bwd, shape {tuple(args.shape)} float32, backend {jax.default_backend()} "
        f"({jax.devices()[0].device_kind}), median of interleaved rounds; "
        f"load average {' / '.join(f'{v:.2f}' for v in os.getloadavg())}",
        t,
        ratios,
        "targets on CPU: LA-SiLU <= 1.05x LayerNorm+SiLU; Top-K k=0.1 <= 5x ReLU",
    )
    return {"times_s": t, "ratios": ratios}


if __name__ == "__main__":
    main()
