"""The planted PReLU teacher shared by the Bayes tests: y = prelu(x; slope 0.3) + noise 0.1."""

import numpy as np

from actfx.bayes import SparseMLP

rng = np.random.default_rng(0)
XP = rng.uniform(-3, 3, size=(60, 1)).astype("float32")
YP = (np.maximum(XP[:, 0], 0) + 0.3 * np.minimum(XP[:, 0], 0) + 0.1 * rng.normal(size=60)).astype(
    "float32"
)
PRELU = SparseMLP((1, 1, 1), activation="prelu", prior="normal", likelihood="normal")
