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
