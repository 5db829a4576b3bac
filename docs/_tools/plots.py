"""Figures for the user guide, computed with actfx when the site is built (`make docs`).

Each function draws one PNG into `out_dir` and returns its file name. They run on CPU in a
few seconds together; nothing is downloaded.
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import actfx

GRID = jnp.linspace(-4.0, 4.0, 401)


def _elementwise_derivative(f, x):
    """d f(x)_i / d x_i for an elementwise f, by one VJP with ones."""
    return jax.grad(lambda v: f(v).sum())(x)


def _save(fig, out_dir: pathlib.Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out_dir / name, dpi=110)
    plt.close(fig)
    return name


def layeract(out_dir):
    """LA-SiLU / LA-HardSiLU of one layer whose inputs are the grid scaled by s and shifted
    by m: the gate sees the *layer-normalised* input, the output keeps the raw scale."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.4), sharex="col")
    for col, kind in enumerate(("silu", "hardsilu")):
        for s, m in ((1.0, 0.0), (2.0, 0.0), (1.0, 1.5)):
            x = s * GRID + m
            # one sample: statistics over the feature axis (the whole grid)
            f = lambda v, kind=kind: actfx.layeract(v[None], kind=kind)[0]
            jac = jax.jacfwd(f)(x)
            axes[0, col].plot(x, f(x), label=f"layer scale {s:g}, mean {m:g}")
            axes[1, col].plot(x, jnp.diag(jac), label=f"scale {s:g}, mean {m:g}")
        ref = jax.nn.silu if kind == "silu" else jax.nn.hard_silu
        axes[0, col].plot(GRID, ref(GRID), "k:", lw=1, label=f"{kind} (element-wise)")
        axes[0, col].set_title(f"LA-{'SiLU' if kind == 'silu' else 'HardSiLU'}: output")
        axes[1, col].set_title(r"diagonal of the Jacobian $\partial y_i / \partial x_i$")
        axes[1, col].set_xlabel("input $x_i$")
        axes[0, col].legend(fontsize=8)
    return _save(fig, out_dir, "layeract_curves.png")


def topk(out_dir):
    """A smooth random feature map (one channel) before and after spatial Top-K."""
    key = jax.random.key(3)
    noise = jax.random.normal(key, (1, 48, 48, 1))
    kernel = jnp.outer(jnp.hanning(9), jnp.hanning(9))[:, :, None, None]
    fmap = jax.lax.conv_general_dilated(
        noise, kernel / kernel.sum(), (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    fmap = jax.nn.relu(fmap * 4.0 + 0.1)
    ks = (0.3, 0.1, 0.03)
    fig, axes = plt.subplots(1, 1 + len(ks), figsize=(3.2 * (1 + len(ks)), 3.7))
    vmax = float(fmap.max())
    axes[0].imshow(fmap[0, :, :, 0], cmap="magma", vmin=0, vmax=vmax)
    axes[0].set_title("feature map (after ReLU)", fontsize=9)
    for ax, k in zip(axes[1:], ks):
        kept = actfx.topk(fmap, k)
        n = int((kept != 0).sum())
        ax.imshow(kept[0, :, :, 0], cmap="magma", vmin=0, vmax=vmax)
        ax.set_title(f"topk(x, k={k:g}): {n} of {fmap.size} kept", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return _save(fig, out_dir, "topk_feature_map.png")


def nelu(out_dir):
    """NeLU on a 2-D code x = (x1, x2): the output as a vector field over a heat map of the
    self-normalised threshold t = lam * ||x - z||."""
    g = jnp.linspace(-2.0, 2.0, 121)
    x1, x2 = jnp.meshgrid(g, g)
    pts = jnp.stack([x1.ravel(), x2.ravel()], -1)
    lams = (0.3, 0.6)
    fig, axes = plt.subplots(1, len(lams) + 1, figsize=(4.2 * (len(lams) + 1), 3.9))
    for ax, lam in zip(axes, lams):
        z = actfx.nelu(pts, lam)
        t = lam * jnp.linalg.norm(pts - z, axis=-1)
        im = ax.imshow(t.reshape(x1.shape), origin="lower", extent=(-2, 2, -2, 2), cmap="viridis")
        fig.colorbar(im, ax=ax, shrink=0.8, label="threshold t")
        sub = slice(None, None, 10)
        zz = z.reshape(x1.shape + (2,))
        ax.quiver(
            x1[sub, sub],
            x2[sub, sub],
            zz[sub, sub, 0],
            zz[sub, sub, 1],
            color="w",
            angles="xy",
            scale_units="xy",
            scale=2.5,
        )
        ax.set_title(f"nelu(x, lam={lam:g}): arrows = z")
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
    # a slice: the threshold on x1 depends on the rest of the code (here x2)
    ax = axes[-1]
    for x2v in (0.0, -0.5, -1.5):
        line = jnp.stack([GRID / 2, jnp.full_like(GRID, x2v)], -1)
        ax.plot(GRID / 2, actfx.nelu(line, 0.6)[:, 0], label=f"x2 = {x2v:g}")
    ax.plot(GRID / 2, jax.nn.relu(GRID / 2), "k:", lw=1, label="relu(x1)")
    ax.set_title("z1 along x1 (lam = 0.6)")
    ax.set_xlabel("$x_1$")
    ax.legend(fontsize=8)
    return _save(fig, out_dir, "nelu_2d.png")


def ditac(out_dir):
    """DiTAC for several draws of theta from the CPA prior (two length scales), its derivative,
    and the underlying CPAB transforms of [0, 1]."""
    tess = actfx.cpab.Tessellation(10)
    x = jnp.linspace(-2.0, 3.0, 501)
    u = jnp.linspace(0.0, 1.0, 201)
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.4))
    for row, ls in enumerate((0.1, 0.5)):
        thetas = actfx.cpab.sample_theta(jax.random.key(row), tess, 5, length_scale=ls)
        for i, th in enumerate(thetas):
            f = lambda v, th=th: actfx.ditac(v, th, tess)
            axes[row, 0].plot(x, f(x), lw=1.2, label=f"draw {i}")
            axes[row, 1].plot(x, _elementwise_derivative(f, x), lw=1.2)
            axes[row, 2].plot(u, actfx.cpab.transform(u, th, tess), lw=1.2)
        axes[row, 0].plot(x, jax.nn.gelu(x, approximate=False), "k:", lw=1, label="GELU")
        axes[row, 0].axvspan(-0.5, 2.0, color="0.92", zorder=-1)
        axes[row, 0].set_title(f"ditac(x, theta), theta ~ prior (length scale {ls:g})")
        axes[row, 1].set_title("derivative d/dx")
        axes[row, 2].set_title(r"CPAB transform $T_\theta$ of [0, 1]")
        axes[row, 0].legend(fontsize=7, ncol=2)
    for ax in axes[1]:
        ax.set_xlabel("x")
    return _save(fig, out_dir, "ditac_prior_draws.png")


def mmelu(out_dir):
    """MMeLU f(x) = (1 - c) relu(x) + c max(lam - |x - gamma|, 0) and its derivative."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for c, lam, gamma in ((0.0, 1.0, 0.0), (0.5, 1.0, 0.0), (0.8, 0.5, -1.0), (0.3, 2.0, 1.0)):
        f = lambda v, c=c, lam=lam, gamma=gamma: actfx.mmelu(v, c, lam, gamma)
        label = f"c={c:g}, lam={lam:g}, gamma={gamma:g}"
        axes[0].plot(GRID, f(GRID), label=label)
        axes[1].plot(GRID, _elementwise_derivative(f, GRID), label=label)
    axes[0].set_title("mmelu(x, c, lam, gamma)")
    axes[1].set_title("derivative d/dx")
    for ax in axes:
        ax.set_xlabel("x")
    axes[0].legend(fontsize=8)
    return _save(fig, out_dir, "mmelu_curves.png")


ALL = (layeract, topk, nelu, ditac, mmelu)
FILES = (
    "layeract_curves.png",
    "topk_feature_map.png",
    "nelu_2d.png",
    "ditac_prior_draws.png",
    "mmelu_curves.png",
)


def make_all(out_dir) -> list[str]:
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [f(out_dir) for f in ALL]


if __name__ == "__main__":
    import sys

    print(make_all(sys.argv[1] if len(sys.argv) > 1 else "site-plots"))
