"""Forward+backward cost of DiTAC (exact and lookup-table modes) against GELU, as ratios.

On a (128, 32, 32, 64) float32 NHWC tensor under ``jit`` (one process, interleaved rounds,
median), time ``x -> (f(x), vjp(g))`` for ``jax.nn.gelu(approximate=False)`` (the function
DiTAC reduces to at theta = 0) and ``jax.nn.gelu`` (tanh approximation, jax's default), and
for DiTAC (nc = 10, [a, b] = [-0.5, 2], one theta per layer) in both modes, once with the
cotangent w.r.t. ``x`` only and once w.r.t. ``x`` and ``theta`` (what training needs).

    python -m benchmarks.ditac [--shape 128 32 32 64] [--rounds 7] [--nc 10]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

import actfx
from actfx.cpab import Tessellation
from benchmarks.timing import fwd_bwd, interleaved_medians, report


def fwd_bwd_theta(f, theta):
    """``jit`` of ``(x, g) -> (f(x, theta), d/dx, d/dtheta)`` of ``<f, g>``."""

    def run(x, g):
        y, vjp = jax.vjp(f, x, theta)
        return (y, *vjp(g))

    return jax.jit(run)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--shape", type=int, nargs=4, default=(128, 32, 32, 64))
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--nc", type=int, default=10)
    args = p.parse_args(argv)
    kx, kg, kt = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, tuple(args.shape), jnp.float32)
    g = jax.random.normal(kg, tuple(args.shape), jnp.float32)
    tess = Tessellation(args.nc)
    theta = jax.random.normal(kt, (tess.theta_dim,), jnp.float32)

    def ditac(mode):
        return lambda v, t=theta: actfx.ditac(v, t, tess, method=mode)

    fns = {
        "GELU (erf)": fwd_bwd(lambda v: jax.nn.gelu(v, approximate=False)),
        "GELU (tanh)": fwd_bwd(jax.nn.gelu),
        "DiTAC table, dx": fwd_bwd(ditac("table")),
        "DiTAC table, dx+dtheta": fwd_bwd_theta(
            lambda v, t: actfx.ditac(v, t, tess, method="table"), theta
        ),
        "DiTAC exact, dx": fwd_bwd(ditac("exact")),
        "DiTAC exact, dx+dtheta": fwd_bwd_theta(
            lambda v, t: actfx.ditac(v, t, tess, method="exact"), theta
        ),
    }
    t = interleaved_medians(fns, x, g, rounds=args.rounds)
    base = t["GELU (erf)"]
    ratios = {f"{k} / GELU (erf)": v / base for k, v in t.items() if k.startswith("DiTAC")}
    ratios["GELU (tanh) / GELU (erf)"] = t["GELU (tanh)"] / base
    return report(
        f"fwd+bwd, shape {tuple(args.shape)} float32, nc={args.nc}",
        t,
        ratios,
        "target on CPU: DiTAC table mode <= 3x GELU",
    )


if __name__ == "__main__":
    main()
