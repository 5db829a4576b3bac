"""experiments/layeract_robustness: corrupted sets are shared and deterministic; a tiny
end-to-end run writes the table, JSON and plot (slow)."""

import json

import jax
import numpy as np
import pytest
from flax import nnx

from actfx.data import corrupt
from actfx.nn.models import MLP
from experiments import layeract_robustness as exp


class Flatten(nnx.Module):
    def __init__(self, model):
        self.model = model

    def __call__(self, x):
        return self.model(x.reshape(x.shape[0], -1))


def test_corrupted_sets_are_deterministic_and_cached():
    x = np.random.default_rng(0).random((6, 8, 8, 1)).astype(np.float32)
    y = np.arange(6, dtype=np.int32)
    sets = exp.CorruptedSets(["gaussian_noise", "contrast"], x, y)
    assert list(sets) == [(n, s) for n in ("gaussian_noise", "contrast") for s in range(1, 6)]
    a, ya = sets.get("gaussian_noise", 3)
    b, _ = exp.CorruptedSets(["gaussian_noise"], x, y).get("gaussian_noise", 3)
    np.testing.assert_array_equal(a, b)  # same images for every network
    np.testing.assert_array_equal(ya, y)
    assert ("gaussian_noise", 3) in sets.cache
    np.testing.assert_allclose(sets.get("contrast", 2)[0], corrupt(x, "contrast", 2, seed=0))


def test_accuracy_and_summary_numbers():
    x = np.random.default_rng(1).random((10, 4, 4, 1)).astype(np.float32)
    model = Flatten(MLP(16, 3, hidden=(8,), rngs=nnx.Rngs(0)))
    logits = np.asarray(model(x))
    y = np.argmax(logits, -1).astype(np.int32)
    y[:3] = (y[:3] + 1) % 3  # exactly 3 wrong
    assert exp.accuracy(model, x, y, batch_size=4) == pytest.approx(0.7)
    sets = exp.CorruptedSets(["contrast"], x, y)
    rec = exp.evaluate_robustness(model, x, y, sets, batch_size=4)
    accs = rec["corruption_accuracy"]["contrast"]
    assert len(accs) == 5 and rec["mean_corruption_accuracy"] == pytest.approx(np.mean(accs))
    assert rec["relative_drop"] == pytest.approx((0.7 - np.mean(accs)) / 0.7)


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path):
    summary = exp.main(["--seeds", "1", "--steps", "3", "--eval-size", "20",
                        "--corruptions", "contrast", "gaussian_noise",
                        "--only", "ReLU", "LA-SiLU", "--out", str(tmp_path)])
    out = tmp_path / "layeract_robustness"
    rec = json.loads((out / "layeract_robustness.json").read_text())
    assert set(rec["summary"]["smallcnn"]) == {"ReLU", "LA-SiLU"}
    assert (out / "layeract_robustness.png").stat().st_size > 0
    assert set(summary["smallcnn"]["LA-SiLU"]["per_corruption"]) == {"contrast", "gaussian_noise"}
    assert jax.default_backend() == rec["backend"]
