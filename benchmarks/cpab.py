"""CPAB transform speed and accuracy vs difw, measured in the same process.

Times ``actfx.cpab.transform`` (closed form, knot-table algorithm, analytic derivative) on
``--n`` points (default 1e6), ``nc = 10``, zero boundary, qr basis, one theta, on the
default JAX backend, for

* forward: ``T = transform(x, theta)``;
* forward+backward: ``value_and_grad`` of ``sum(g * T)`` w.r.t. theta;

against difw's compiled (C++ extension) PyTorch backend doing the same (``closed_form``;
``sum(g * T).backward()``), median of interleaved rounds, ratio = ours / difw (< 1: we are
faster). difw is the optional ``compare`` extra; without it only our times are printed.

Accuracy: max |ours - difw numpy backend| in float64 with the same B (difw's numpy backend
is the usual oracle; its compiled backend is used for speed only: on this machine it
returns wrong values, also reported), plus our max error vs the exact (40-digit) values in
``tests/data/cpab_reference.npz``.

    python -m benchmarks.cpab [--n 1000000] [--nc 10] [--rounds 5] [--scale 1.0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from actfx.cpab import Tessellation, transform
from benchmarks.timing import interleaved_medians, load_average, print_times

REF = Path(__file__).resolve().parents[1] / "tests" / "data" / "cpab_reference.npz"


def _load_difw():
    try:
        np.alltrue = np.all  # difw uses np.alltrue, removed in NumPy 2
        import difw
        import torch  # noqa: F401
    except Exception as e:  # pragma: no cover - optional extra
        return None, f"{type(e).__name__}: {e}"
    return difw, None


def _reference_errors() -> float:
    d = np.load(REF)
    worst = 0.0
    with jax.enable_x64(True):
        for i in range(int(d["configs"])):
            tess = Tessellation(
                int(d[f"c{i}_nc"]), zero_boundary=bool(d[f"c{i}_zero_boundary"]), basis=d[f"c{i}_B"]
            )
            T = np.asarray(transform(d["x"], d[f"c{i}_theta"], tess))
            worst = max(worst, float(np.abs(T - d[f"c{i}_T"]).max()))
    return worst


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=1_000_000, help="number of points")
    p.add_argument("--nc", type=int, default=10, help="number of cells")
    p.add_argument("--scale", type=float, default=1.0, help="theta ~ scale * N(0, I)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=str, default=None, help="also write the numbers here")
    args = p.parse_args(argv)

    tess = Tessellation(args.nc, zero_boundary=True, basis="qr")
    rng = np.random.default_rng(0)
    theta_np = (args.scale * rng.standard_normal(tess.theta_dim)).astype(np.float32)
    x_np = rng.uniform(0.0, 1.0, args.n).astype(np.float32)
    g_np = rng.standard_normal(args.n).astype(np.float32)
    x, g, theta = jnp.asarray(x_np), jnp.asarray(g_np), jnp.asarray(theta_np)

    fwd = jax.jit(lambda th: transform(x, th, tess))
    fwd_bwd = jax.jit(jax.value_and_grad(lambda th: jnp.sum(g * transform(x, th, tess))))
    fns = {"actfx fwd": lambda: fwd(theta), "actfx fwd+bwd": lambda: fwd_bwd(theta)}

    difw, why = _load_difw()
    out = {"n": args.n, "nc": args.nc, "scale": args.scale, "backend": jax.default_backend()}
    if difw is not None:
        import torch

        cp = difw.Cpab(args.nc, backend="pytorch", device="cpu", zero_boundary=True, basis="qr")
        cp.params.B = torch.from_numpy(np.ascontiguousarray(tess.B, np.float32))  # same B
        xt, gt = torch.from_numpy(x_np), torch.from_numpy(g_np)[None]
        tt = torch.from_numpy(theta_np)[None]

        def difw_fwd():
            with torch.no_grad():
                return cp.transform_grid(xt, tt, method="closed_form")

        def difw_fwd_bwd():
            th = tt.clone().requires_grad_(True)
            loss = (gt * cp.transform_grid(xt, th, method="closed_form")).sum()
            loss.backward()
            return th.grad

        fns["difw fwd"] = difw_fwd
        fns["difw fwd+bwd"] = difw_fwd_bwd
        out["torch_threads"] = torch.get_num_threads()
    t = interleaved_medians(fns, rounds=args.rounds, repeats=args.repeats)
    out["times_ms"] = {k: v * 1e3 for k, v in t.items()}
    out["load_average"] = load_average()

    print_times(
        f"CPAB transform, {args.n} points, nc={args.nc}, float32, theta ~ {args.scale} "
        f"N(0, I), JAX backend {jax.default_backend()}, median of {args.rounds} "
        f"interleaved rounds; {out['load_average']}",
        t,
    )
    if difw is not None:
        out["ratio_fwd"] = t["actfx fwd"] / t["difw fwd"]
        out["ratio_fwd_bwd"] = t["actfx fwd+bwd"] / t["difw fwd+bwd"]
        print(f"  ratio actfx/difw(compiled CPU) forward:          {out['ratio_fwd']:.2f}")
        print(f"  ratio actfx/difw(compiled CPU) forward+backward: {out['ratio_fwd_bwd']:.2f}")

        # Accuracy, float64, same B, 10^4 points.
        xs = np.linspace(0.0, 1.0, 10_001)
        th64 = theta_np.astype(np.float64)
        cn = difw.Cpab(args.nc, backend="numpy", device="cpu", zero_boundary=True, basis="qr")
        cn.params.B = np.asarray(tess.B)
        ref_np = cn.transform_grid(xs, th64[None], method="closed_form")[0]
        with jax.enable_x64(True):
            ours = np.asarray(transform(xs, th64, tess))
        comp = cp.transform_grid(
            torch.from_numpy(xs.astype(np.float32)),
            torch.from_numpy(theta_np)[None],
            method="closed_form",
        )[0].numpy()
        out["max_abs_err_vs_difw_numpy_f64"] = float(np.abs(ours - ref_np).max())
        out["difw_compiled_vs_difw_numpy"] = float(np.abs(comp - ref_np).max())
        print(
            "  max |actfx f64 - difw numpy| (same B, 1e4 pts):  "
            f"{out['max_abs_err_vs_difw_numpy_f64']:.2e}"
        )
        print(
            "  max |difw compiled f32 - difw numpy| (speed only): "
            f"{out['difw_compiled_vs_difw_numpy']:.2e}"
        )
    else:
        print(f"  difw not available ({why}); install the 'compare' extra for the comparison")
    out["max_abs_err_vs_exact_reference_f64"] = _reference_errors()
    print(
        "  max |actfx f64 - exact| over the 8 reference configs: "
        f"{out['max_abs_err_vs_exact_reference_f64']:.2e}"
    )
    if args.json:
        from actfx.train import write_json  # (imports Flax: only when asked)

        write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
