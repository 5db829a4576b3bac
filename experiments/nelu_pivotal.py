"""Noise invariance of the pivotal (NeLU) auto-encoder vs a ReLU + bias auto-encoder.

Two studies (spec: nelu.md):

1. **synthetic** - signals ``y = A s`` with ``s`` k-sparse (signed, |s_i| in [1, 2]) in a
   random orthonormal dictionary ``A``; a dense one-layer auto-encoder is trained on
   ``y + sigma_train * noise`` (MSE to the clean ``y``) for several ``sigma_train``.
   Reported: test MSE vs ``sigma_test`` for models trained at the main ``sigma_train``
   (also a NeLU AE whose activation is the ``"unrolled"`` proximal-gradient solver instead
   of the exact one), and the learned NeLU ``lam`` / ReLU bias ``b`` as ``sigma_train``
   varies.
2. **images** - a convolutional auto-encoder trained on random 40x40 patches of the
   grayscale photos bundled with scikit-image (``actfx.data.denoising.OFFLINE_TRAIN``) at
   ``sigma_train = 25/255``, tested on camera / astronaut / coins / moon
   (``OFFLINE_TEST``): PSNR for ``sigma_test`` in {5, 10, 15, 25, 35, 50}/255.
   ``--data-dir DIR`` trains on ``DIR/BSD400/*.png`` and tests on ``DIR/BSD68/*.png``.

Both activations are two-sided by default (soft-thresholding: NeLU's square-root-lasso
prox vs the lasso prox ``sign(x) relu(|x| - b)``); ``--one-sided`` uses the ReLU forms.
A ReLU + bias auto-encoder trained from a random start collapses to ``b ~ 0`` (a linear
map) in this short training, so by default training has two phases of ``--syn-steps`` /
``--img-steps`` each (fresh AdamW, cosine decay): phase 1 trains the NeLU model; the ReLU
model is then *warm-started* from it (same ``W``, ``D``; ``b`` = the NeLU threshold
averaged over training data) and both models train phase 2 separately. Both end with the
same number of steps and the same starting transform, which isolates the effect of the
activation. ``--relu-init random`` trains the ReLU model from scratch instead.

    python -m experiments.nelu_pivotal            # quick CPU run (a few minutes)
    python -m experiments.nelu_pivotal --full     # accelerator: longer training, full images
    python -m experiments.nelu_pivotal --full --data-dir /data/bsd   # BSD400 -> BSD68

Writes ``results/nelu_pivotal/{results.json, synthetic.png, images.png}``.
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from actfx.data.denoising import (
    OFFLINE_TEST,
    OFFLINE_TRAIN,
    extract_patches,
    fold_patches,
    load_bsd,
    load_offline_images,
    psnr,
    random_patches,
)
from actfx.nn import ConvPivotalAE, PivotalAE
from experiments.reporting import format_table, mean_std, results_dir, save_json

IMAGE_SIGMAS = (5, 10, 15, 25, 35, 50)  # / 255


# ----------------------------------------------------------------------------- training


_RUNNERS: dict = {}


def _runner(graphdef, sample_batch, chunk: int):
    """Jitted ``chunk`` AdamW steps (a ``lax.scan``), cached per model structure + sampler."""
    cache_key = (graphdef, sample_batch, chunk)
    if cache_key not in _RUNNERS:

        def one_step(carry, _):
            state, key, sigma = carry
            key, sub = jax.random.split(key)
            clean, noisy = sample_batch(sub, sigma)
            model, opt = nnx.merge(graphdef, state)
            loss, grads = nnx.value_and_grad(
                lambda m: jnp.mean((m(noisy) - clean) ** 2))(model)
            opt.update(model, grads)
            return (nnx.state((model, opt)), key, sigma), loss

        @jax.jit
        def run(state, key, sigma):
            (state, key, _), losses = jax.lax.scan(one_step, (state, key, sigma), None, chunk)
            return state, key, losses[-1]

        _RUNNERS[cache_key] = run
    return _RUNNERS[cache_key]


@functools.lru_cache(maxsize=None)
def _adamw(lr: float, steps: int) -> optax.GradientTransformation:
    return optax.adamw(optax.cosine_decay_schedule(lr, steps), weight_decay=1e-4)


def _fit(model, sample_batch, sigma: float, steps: int, lr: float, seed: int, desc: str,
         chunk: int = 50) -> float:
    """AdamW (cosine decay) on the MSE to the clean signal, in place; returns the last loss.

    ``sample_batch(key, sigma) -> (clean, noisy)`` is a pure JAX function; steps run in
    jitted chunks of ``chunk`` (compiled once per model structure and sampler).
    """
    opt = nnx.Optimizer(model, _adamw(lr, steps), wrt=nnx.Param)
    graphdef, state = nnx.split((model, opt))
    run = _runner(graphdef, sample_batch, chunk)
    key, loss = jax.random.key(seed), jnp.nan
    for _ in tqdm(range(max(1, steps // chunk)), desc=desc, leave=False, mininterval=2.0):
        state, key, loss = run(state, key, jnp.float32(sigma))
    nnx.update((model, opt), state)
    return float(loss)


def _warm_start_relu(relu, nelu, clean, noisy):
    """Copy ``W``, ``D`` from a trained NeLU model; ``b`` = its mean threshold on ``noisy``."""
    relu.encoder.kernel[...] = nelu.encoder.kernel[...]
    relu.decoder.kernel[...] = nelu.decoder.kernel[...]
    x = nelu.encoder(noisy - jnp.mean(noisy, axis=tuple(range(1, noisy.ndim)), keepdims=True)
                     if nelu.remove_mean else noisy)
    z = nelu.act(x)
    t = jnp.where(z != 0, jnp.abs(x) - jnp.abs(z), jnp.nan)  # = lam * r on the active set
    b = jnp.nanmean(t)
    relu.act.bias[...] = jnp.full(relu.act.bias.shape, jnp.where(jnp.isfinite(b), b, 0.1))


def _bias_of(model) -> float:
    return float(jnp.mean(model.act.bias[...]))


# ----------------------------------------------------------------------------- synthetic


def synthetic_sampler(dim: int, sparsity: int, seed: int):
    """``(key, n, sigma) -> (clean, noisy)`` for k-sparse signals in an orthonormal basis."""
    basis = jnp.asarray(np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))[0],
                        jnp.float32)

    def sample(key, n, sigma):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        idx = jnp.argsort(jax.random.uniform(k1, (n, dim)), axis=-1)[:, :sparsity]
        mag = jax.random.uniform(k2, (n, sparsity), minval=1.0, maxval=2.0)
        mag = mag * jax.random.rademacher(k3, (n, sparsity), dtype=jnp.float32)
        s = jnp.zeros((n, dim)).at[jnp.arange(n)[:, None], idx].set(mag)
        clean = s @ basis.T
        return clean, clean + sigma * jax.random.normal(k4, clean.shape)

    return sample


@functools.lru_cache(maxsize=None)
def _synthetic_batch(dim: int, sparsity: int, batch: int):
    sample = synthetic_sampler(dim, sparsity, seed=1234)
    return lambda key, sigma: sample(key, batch, sigma)


def run_synthetic(args) -> dict:
    sample = synthetic_sampler(args.dim, args.sparsity, seed=1234)  # same basis as training
    test_clean, _ = sample(jax.random.key(10_000), args.test_size, 0.0)
    noise = jax.random.normal(jax.random.key(10_001), test_clean.shape)
    two_sided = not args.one_sided
    out = {"mse": {}, "params": {}}
    predict = nnx.jit(lambda m, y: m(y))
    for sigma_train in args.sigma_trains:
        for seed in range(args.seeds):
            batch = _synthetic_batch(args.dim, args.sparsity, args.batch)
            models = {}
            nelu = PivotalAE(args.dim, args.atoms, activation="nelu", two_sided=two_sided,
                             lam_init=2.0, rngs=nnx.Rngs(seed))
            _fit(nelu, batch, sigma_train, args.syn_steps, args.lr, seed, f"syn nelu s={sigma_train} #{seed}")
            models["nelu"] = nelu
            relu = PivotalAE(args.dim, args.atoms, activation="relu", two_sided=two_sided,
                             bias_init=2.0 * sigma_train, rngs=nnx.Rngs(seed))
            if args.relu_init == "nelu":
                c, nz = sample(jax.random.key(seed + 77), 2048, sigma_train)
                _warm_start_relu(relu, nelu, c, nz)
                # Same second phase for NeLU, so both models get the same training.
                _fit(nelu, batch, sigma_train, args.syn_steps, args.lr, seed + 2,
                     f"syn nelu phase 2 s={sigma_train} #{seed}")
            _fit(relu, batch, sigma_train, args.syn_steps, args.lr, seed + 1,
                 f"syn relu s={sigma_train} #{seed}")
            models["relu"] = relu
            if args.unrolled_iters and sigma_train == args.sigma_train_main:
                unrolled = PivotalAE(args.dim, args.atoms, activation="nelu", two_sided=two_sided,
                                     lam_init=2.0, method="unrolled", iters=args.unrolled_iters,
                                     rngs=nnx.Rngs(seed))
                for phase in range(2 if args.relu_init == "nelu" else 1):
                    _fit(unrolled, batch, sigma_train, args.syn_steps, args.lr, seed + 2 * phase,
                         f"syn nelu unrolled #{seed}")
                models[f"nelu unrolled({args.unrolled_iters})"] = unrolled
            out["params"].setdefault(str(sigma_train), {"nelu_lam": [], "relu_bias": []})
            out["params"][str(sigma_train)]["nelu_lam"].append(float(nelu.act.lam))
            out["params"][str(sigma_train)]["relu_bias"].append(_bias_of(relu))
            if sigma_train != args.sigma_train_main:
                continue
            for name, m in models.items():
                rec = out["mse"].setdefault(name, {str(s): [] for s in args.sigma_tests})
                for s in args.sigma_tests:
                    est = predict(m, test_clean + s * noise)
                    rec[str(s)].append(float(jnp.mean((est - test_clean) ** 2)))
    out["mse"]["noisy input"] = {str(s): [float(jnp.mean((s * noise) ** 2))]
                                 for s in args.sigma_tests}
    return out


# ----------------------------------------------------------------------------- images


def _center_crop(img: np.ndarray, size: int | None) -> np.ndarray:
    if size is None:
        return img
    h, w = img.shape
    s = min(size, h, w)
    r, c = (h - s) // 2, (w - s) // 2
    return img[r:r + s, c:c + s]


def run_images(args) -> dict:
    if args.data_dir:
        train_imgs, test_imgs = load_bsd(args.data_dir)
        test_names = [f"BSD68[{i}]" for i in range(len(test_imgs))]
    else:
        train_imgs, test_imgs = load_offline_images(OFFLINE_TRAIN), load_offline_images(OFFLINE_TEST)
        test_names = list(OFFLINE_TEST)
    test_imgs = [_center_crop(im, args.test_crop) for im in test_imgs]
    size = args.patch if args.image_model == "conv" else args.dense_patch
    pool = jnp.asarray(random_patches(train_imgs, size, args.num_patches,
                                      np.random.default_rng(0)))
    pool = pool[..., None] if args.image_model == "conv" else pool.reshape(len(pool), -1)
    sigma_train = args.image_sigma_train / 255.0
    two_sided = not args.one_sided
    image_batch = args.image_batch if args.image_model == "conv" else args.batch

    def batch(key, sigma):
        k1, k2 = jax.random.split(key)
        clean = pool[jax.random.randint(k1, (image_batch,), 0, pool.shape[0])]
        return clean, clean + sigma * jax.random.normal(k2, clean.shape)

    def build(activation, seed):
        kw = dict(activation=activation, two_sided=two_sided, lam_init=2.0,
                  bias_init=2 * sigma_train, rngs=nnx.Rngs(seed))
        if args.image_model == "conv":
            return ConvPivotalAE(1, args.features, kernel_size=args.kernel, **kw)
        return PivotalAE(size * size, args.atoms_img, remove_mean=True, **kw)

    @nnx.jit
    def denoise(m, noisy):
        if args.image_model == "conv":
            return m(noisy[None, ..., None])[0, ..., 0]
        patches = extract_patches(noisy, size, args.stride)
        return fold_patches(m(patches), noisy.shape, size, args.stride)

    out = {"psnr": {}, "test_images": test_names, "params": {"nelu_lam": [], "relu_bias": []},
           "model": args.image_model}
    for seed in range(args.seeds):
        nelu = build("nelu", seed)
        _fit(nelu, batch, sigma_train, args.img_steps, args.lr, seed, f"img nelu #{seed}")
        relu = build("relu", seed)
        if args.relu_init == "nelu":
            c, nz = batch(jax.random.key(seed + 77), sigma_train)
            _warm_start_relu(relu, nelu, c, nz)
            _fit(nelu, batch, sigma_train, args.img_steps, args.lr, seed + 2, f"img nelu phase 2 #{seed}")
        _fit(relu, batch, sigma_train, args.img_steps, args.lr, seed + 1, f"img relu #{seed}")
        out["params"]["nelu_lam"].append(float(nelu.act.lam))
        out["params"]["relu_bias"].append(_bias_of(relu))
        for name, m in (("nelu", nelu), ("relu", relu), ("noisy input", None)):
            rec = out["psnr"].setdefault(name, {str(s): [] for s in IMAGE_SIGMAS})
            for s in IMAGE_SIGMAS:
                vals = []
                for i, img in enumerate(test_imgs):
                    key = jax.random.fold_in(jax.random.key(50_000 + seed), 1000 * s + i)
                    noisy = img + (s / 255.0) * np.asarray(jax.random.normal(key, img.shape))
                    est = noisy if m is None else np.asarray(denoise(m, jnp.asarray(noisy)))
                    vals.append(psnr(img, est))
                rec[str(s)].append(float(np.mean(vals)))
    return out


# ----------------------------------------------------------------------------- report


def _plot(res: dict, args, path_syn, path_img) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "synthetic" in res:
        syn = res["synthetic"]
        fig, ax = plt.subplots(1, 2, figsize=(10, 4))
        for name, rec in syn["mse"].items():
            s = np.array([float(k) for k in rec])
            v = [np.asarray(x) for x in rec.values()]
            ax[0].errorbar(s, [x.mean() for x in v], yerr=[x.std() for x in v], marker="o",
                           label=name, ls="--" if name == "noisy input" else "-")
        ax[0].axvline(args.sigma_train_main, color="gray", ls=":", label="sigma_train")
        ax[0].set(xscale="log", yscale="log", xlabel="sigma_test", ylabel="test MSE",
                  title="synthetic sparse signals")
        ax[0].set_xticks(s, [f"{v:g}" for v in s], minor=False)
        ax[0].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax[0].legend()
        st = np.array([float(k) for k in syn["params"]])
        for key, lab in (("nelu_lam", "NeLU lam (RMS units)"), ("relu_bias", "ReLU bias b")):
            v = [np.asarray(p[key]) for p in syn["params"].values()]
            ax[1].errorbar(st, [x.mean() for x in v], yerr=[x.std() for x in v], marker="o",
                           label=lab)
        ax[1].set(xlabel="sigma_train", ylabel="learned value", xscale="log", yscale="log",
                  title="learned threshold parameter")
        ax[1].set_xticks(st, [f"{v:g}" for v in st], minor=False)
        ax[1].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax[1].legend()
        fig.tight_layout()
        fig.savefig(path_syn, dpi=120)
        plt.close(fig)
    if "images" in res:
        img = res["images"]
        fig, ax = plt.subplots(figsize=(5, 4))
        for name, rec in img["psnr"].items():
            s = np.array([int(k) for k in rec])
            v = [np.asarray(x) for x in rec.values()]
            ax.errorbar(s, [x.mean() for x in v], yerr=[x.std() for x in v], marker="o",
                        label=name, ls="--" if name == "noisy input" else "-")
        ax.axvline(args.image_sigma_train, color="gray", ls=":", label="sigma_train")
        ax.set(xlabel="sigma_test (x 1/255)", ylabel="PSNR (dB)", title="image denoising")
        ax.legend()
        fig.tight_layout()
        fig.savefig(path_img, dpi=120)
        plt.close(fig)


def _tables(res: dict, args) -> str:
    parts = []
    if "synthetic" in res:
        syn = res["synthetic"]
        rows = [[name] + [mean_std(rec[str(s)], "{:.5f}") for s in args.sigma_tests]
                for name, rec in syn["mse"].items()]
        if "nelu" in syn["mse"] and "relu" in syn["mse"]:  # > 1: NeLU better
            rows.append(["MSE ratio relu/nelu"] + [
                f"{np.mean(syn['mse']['relu'][str(s)]) / np.mean(syn['mse']['nelu'][str(s)]):.2f}"
                for s in args.sigma_tests])
        parts.append(f"Synthetic: test MSE (trained at sigma_train={args.sigma_train_main}, "
                     f"{args.seeds} seeds)\n"
                     + format_table(["model"] + [f"s={s}" for s in args.sigma_tests], rows))
        prow = [[st, mean_std(p["nelu_lam"], "{:.3f}"), mean_std(p["relu_bias"], "{:.4f}")]
                for st, p in syn["params"].items()]
        parts.append("Synthetic: learned parameters vs sigma_train\n"
                     + format_table(["sigma_train", "NeLU lam", "ReLU bias b"], prow))
    if "images" in res:
        img = res["images"]
        rows = [[name] + [mean_std(rec[str(s)], "{:.2f}") for s in IMAGE_SIGMAS]
                for name, rec in img["psnr"].items()]
        # > 0: NeLU better.
        rows.append(["PSNR gain nelu-relu"] + [
            f"{np.mean(img['psnr']['nelu'][str(s)]) - np.mean(img['psnr']['relu'][str(s)]):+.2f}"
            for s in IMAGE_SIGMAS])
        parts.append(f"Images: mean PSNR (dB) over {len(img['test_images'])} test images, "
                     f"trained at {args.image_sigma_train}/255, {args.seeds} seeds\n"
                     + format_table(["model"] + [f"{s}/255" for s in IMAGE_SIGMAS], rows)
                     + f"\nlearned NeLU lam: {mean_std(img['params']['nelu_lam'], '{:.3f}')}, "
                     f"ReLU bias: {mean_std(img['params']['relu_bias'], '{:.4f}')}")
    return "\n\n".join(parts)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--full", action="store_true", help="accelerator config: longer, bigger")
    p.add_argument("--study", choices=("both", "synthetic", "images"), default="both")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--one-sided", action="store_true", help="ReLU forms instead of soft-thresholding")
    p.add_argument("--relu-init", choices=("nelu", "random"), default="nelu",
                   help="warm-start the ReLU AE from the trained NeLU AE, or train from scratch")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--data-dir", default=None, help="folder with BSD400/ and BSD68/ PNG images")
    p.add_argument("--out", default="nelu_pivotal", help="results/<out>/")
    g = p.add_argument_group("synthetic")
    g.add_argument("--dim", type=int, default=64)
    g.add_argument("--sparsity", type=int, default=4)
    g.add_argument("--syn-steps", type=int, default=None, help="steps per phase; default 500 (quick) / 5000 (full)")
    g.add_argument("--batch", type=int, default=256)
    g.add_argument("--test-size", type=int, default=4000)
    g.add_argument("--sigma-trains", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    g.add_argument("--sigma-train-main", type=float, default=0.1)
    g.add_argument("--unrolled-iters", type=int, default=10,
                   help="also train a NeLU AE with method='unrolled' (this many proximal-"
                        "gradient steps) at the main sigma_train; 0 = off")
    g.add_argument("--sigma-tests", type=float, nargs="+",
                   default=[0.02, 0.05, 0.1, 0.2, 0.3, 0.5])
    g = p.add_argument_group("images")
    g.add_argument("--image-sigma-train", type=float, default=25.0, help="x 1/255")
    g.add_argument("--image-model", choices=("dense", "conv"), default="dense",
                   help="dense AE on 8x8 patches (averaged back) or convolutional AE")
    g.add_argument("--dense-patch", type=int, default=8)
    g.add_argument("--atoms-img", type=int, default=None, help="dense code size; default 2 * patch^2")
    g.add_argument("--stride", type=int, default=None, help="patch stride at test; 2 (quick) / 1 (full)")
    g.add_argument("--features", type=int, default=None, help="default 24 (quick) / 64 (full)")
    g.add_argument("--kernel", type=int, default=7)
    g.add_argument("--patch", type=int, default=40, help="conv training patch size")
    g.add_argument("--num-patches", type=int, default=20000)
    g.add_argument("--image-batch", type=int, default=16, help="conv batch (dense uses --batch)")
    g.add_argument("--img-steps", type=int, default=None, help="steps per phase; default 500 (quick) / 5000 (full)")
    g.add_argument("--test-crop", type=int, default=None,
                   help="centre crop of test images; default 192 (quick) / none (full)")
    args = p.parse_args(argv)
    full = args.full
    args.syn_steps = args.syn_steps or (5000 if full else 500)
    args.img_steps = args.img_steps or (5000 if full else 500)
    args.features = args.features or (64 if full else 24)
    if args.test_crop is None and not full:
        args.test_crop = 192
    args.atoms = args.dim
    args.atoms_img = args.atoms_img or 2 * args.dense_patch**2
    args.stride = args.stride or (1 if full else 2)
    if args.sigma_train_main not in args.sigma_trains:
        args.sigma_trains = sorted({*args.sigma_trains, args.sigma_train_main})
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    t0 = time.time()
    res: dict = {"config": vars(args).copy()}
    if args.study in ("both", "synthetic"):
        res["synthetic"] = run_synthetic(args)
    if args.study in ("both", "images"):
        res["images"] = run_images(args)
    res["seconds"] = time.time() - t0
    out = results_dir(args.out)
    text = _tables(res, args)
    print(text)
    print(f"\n({res['seconds']:.0f} s)")
    res["tables"] = text
    _plot(res, args, out / "synthetic.png", out / "images.png")
    save_json(out / "results.json", res)
    print(f"wrote {out}/results.json, synthetic.png, images.png")
    return res


if __name__ == "__main__":
    main()
