"""experiments/topk_shape_bias: a tiny end-to-end run gives a consistent table, JSON-able
numbers and a plot; Top-K insertion changes only the evaluated network's sparsity."""

import math

import jax
import numpy as np
from flax import nnx

from actfx.nn.models import SmallCNN
from experiments import topk_shape_bias as exp


def test_tiny_run_summary_and_plot(tmp_path):
    cfg = exp.Config(seeds=1, size=12, num_classes=3, num_train=64, num_test=9,
                     conflicts_per_pair=2, channels=(4, 8), epochs=1, batch_size=32,
                     ks=(0.25, 1.0), topk_blocks=(0, 1), train_ks=(), train_topk_blocks=(1,),
                     control=True)
    result = exp.run(cfg)
    settings = sorted((r["setting"], r["k"]) for r in result["records"])
    assert settings == [("control (shape only)", 1.0), ("dense", 1.0), ("inserted", 0.25)]
    for r in result["records"]:
        fr = r["shape_frac"] + r["texture_frac"] + r["other_frac"]
        assert math.isclose(fr, 1.0)
        if r["shape_frac"] + r["texture_frac"] > 0:
            assert math.isclose(r["shape_bias"], r["shape_frac"] / (r["shape_frac"] + r["texture_frac"]))
        assert 0.0 <= r["clean_accuracy"] <= 1.0
    header, rows, summary = exp.summarize(result)
    assert len(rows) == 3 and len(header) == len(rows[0])
    assert set(summary) == {"dense@1", "inserted@0.25", "control (shape only)@1"}
    exp.plot(result, summary, tmp_path / "p.png")
    # the control set keeps shapes and labels but redraws textures at random
    data = exp.synthetic_cue_conflict(num_classes=3, size=12, num_train=64, num_test=9,
                                      conflicts_per_pair=2, seed=0)
    ctrl = exp.shape_only_data(cfg, data)
    np.testing.assert_array_equal(ctrl.y_train, data.train.y_train)
    assert ctrl.x_train.shape == data.train.x_train.shape
    assert not np.array_equal(ctrl.x_train, data.train.x_train)
    assert (tmp_path / "p.png").stat().st_size > 0


def test_with_topk_toggles_sparsity_in_place():
    m = SmallCNN(act=lambda: jax.nn.relu, num_classes=3, in_channels=1, widths=(4, 8),
                 rngs=nnx.Rngs(0))
    x = np.random.default_rng(0).uniform(size=(5, 8, 8, 1)).astype(np.float32)
    m.eval()
    dense = m(x)
    exp.with_topk(m, 0.1, (0, 1))
    assert m.topk == 0.1 and m.topk_blocks == (0, 1)
    assert not np.allclose(m(x), dense)
    exp.with_topk(m, 1.0, (0, 1))   # k = 100 %: dense again
    assert m.topk is None
    np.testing.assert_array_equal(m(x), dense)
    np.testing.assert_array_equal(exp.predict(m, x, batch_size=2), np.argmax(dense, -1))
