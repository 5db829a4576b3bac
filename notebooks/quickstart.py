# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
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
# # actfx quickstart
#
# 1. call a functional activation on an array (`jit`, `vmap`, `grad` all work);
# 2. drop an NNX activation module into a reference model through an activation *factory*;
# 3. train a small CNN on the offline 8x8 digits with a few activations and compare.

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
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import actfx
import actfx.nn
from actfx.data import load_digits
from actfx.nn.models import SmallCNN
from actfx.train import TrainConfig, evaluate, fit

QUICK = os.environ.get("ACTFX_NOTEBOOK_QUICK", "0") == "1"

# %% [markdown]
# ## 1. Functional activations

# %%
x = jax.random.normal(jax.random.key(0), (2, 4, 4, 3))
y = actfx.layeract_silu(x)  # statistics over every axis but the batch axis
print("LA-SiLU:", y.shape, y.dtype)
print("Top-K keeps", int((actfx.topk(x, 0.25) != 0).sum()), "of", x.size, "entries")
g = jax.grad(lambda v: actfx.layeract_silu(v).sum())(x)
print("gradient finite:", bool(jnp.all(jnp.isfinite(g))))

# %% [markdown]
# ## 2. Modules in a model: `act` is a factory, called once per activation site

# %%
model = SmallCNN(act=lambda: actfx.nn.LayerAct("hardsilu"), num_classes=10,
                 rngs=nnx.Rngs(0))
print(model(jnp.ones((5, 8, 8, 1))).shape)

# %% [markdown]
# ## 3. Train on digits and compare activations

# %%
data = load_digits(seed=0)
factories = {
    "ReLU": lambda: jax.nn.relu,
    "SiLU": lambda: jax.nn.silu,
    "LA-SiLU": lambda: actfx.nn.LayerAct("silu"),
    "LA-HardSiLU": lambda: actfx.nn.LayerAct("hardsilu"),
}
if QUICK:  # the tests' tiny configuration
    factories = {"LA-SiLU": factories["LA-SiLU"]}
cfg = TrainConfig(
    steps=10 if QUICK else None,
    epochs=15,
    batch_size=64,
    optimizer="adamw",
    learning_rate=3e-3,
    weight_decay=1e-4,
    schedule="cosine",
    progress=not QUICK,
)
histories = {}
for name, act in factories.items():
    m = SmallCNN(act=act, num_classes=10, widths=(16, 32) if QUICK else (32, 64),
                 rngs=nnx.Rngs(0))
    r = fit(m, data, config=cfg)
    histories[name] = r.history
    print(f"{name:12s} test accuracy {evaluate(m, (data.x_test, data.y_test))['accuracy']:.4f}")

# %%
import matplotlib.pyplot as plt

for name, h in histories.items():
    plt.plot([e["epoch"] for e in h], [e["test_accuracy"] for e in h], marker="o", label=name)
plt.xlabel("epoch")
plt.ylabel("test accuracy")
plt.legend()
plt.title("SmallCNN on digits")
plt.show()
