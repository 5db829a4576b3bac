"""experiments/topk_shape_bias: the sparsifiers and controls keep what they claim, the
backbone's receptive field covers the image, the verdict rule on hand-made records, and a
tiny end-to-end run."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments import topk_shape_bias as exp


def test_topk_random_and_revert_keep_the_right_entries():
    x = jax.random.uniform(jax.random.key(42), (3, 8, 8, 5)) + 0.1  # all positive, distinct
    k, m = 0.1, 6  # int(0.1 * 64) = 6
    apply = nnx.jit(lambda m, x: m(x))
    top = apply(exp.sparsifiers("topk", k, 1, seed=0)[0], x)
    rnd = apply(exp.sparsifiers("random", k, 1, seed=0)[0], x)
    rev = apply(exp.sparsifiers("revert", k, 1, seed=0)[0], x)
    count = lambda a: np.asarray((a != 0).sum(axis=(1, 2)))
    assert np.all(count(top) == m) and np.all(count(rnd) == m) and np.all(count(rev) == 64 - m)
    np.testing.assert_allclose(top + rev, x)  # revert = the complement
    # kept entries are x itself; Top-K keeps the largest, random-K does not
    assert np.all((np.asarray(rnd) == 0) | (np.asarray(rnd) == np.asarray(x)))
    assert float(jnp.sum(top)) > float(jnp.sum(rnd))
    # random positions do not depend on the activations; another seed moves them
    rnd2 = apply(exp.sparsifiers("random", k, 1, seed=0)[0], x * 2 + 1)
    np.testing.assert_array_equal(np.asarray(rnd2) != 0, np.asarray(rnd) != 0)
    rnd3 = apply(exp.sparsifiers("random", k, 1, seed=1)[0], x)
    assert not np.array_equal(np.asarray(rnd3) != 0, np.asarray(rnd) != 0)
    with pytest.raises(ValueError, match="mode"):
        exp.sparsifiers("dropout", k, 1, seed=0)


@pytest.mark.slow
def test_backbone_receptive_field_covers_the_object_and_features_are_shared():
    cfg = exp.Config(size=32, widths=(8, 8, 8), num_classes=3)
    model = exp.TwoHead(cfg, rngs=nnx.Rngs(0))
    assert exp.feature_dim(cfg) == 4 * 4 * 8
    # the last-stage features at one position (all channels) see pixels >= 20 px apart
    # (receptive field 36 px >= the 32 px image)
    x = jax.random.uniform(jax.random.key(1), (1, 32, 32, 1))
    at = (1 * 4 + 1) * 8 + np.arange(8)  # position (1, 1), flattened (h, w, c)
    g = jax.jit(jax.grad(lambda x: model.backbone(x)[0, at].sum()))(x)
    nz = np.argwhere(np.asarray(g[0, :, :, 0]) != 0)
    assert np.ptp(nz[:, 0]) >= 20 and np.ptp(nz[:, 1]) >= 20
    # the evaluation module wraps the same backbone: dense features unchanged
    f = exp.Features(model.backbone)
    dense = nnx.jit(lambda m, x: m(x))(f, x)
    np.testing.assert_allclose(dense, nnx.jit(lambda m, x: m.backbone(x))(model, x))
    sp = exp.Features(model.backbone, exp.sparsifiers("topk", 0.05, 3, seed=0))
    assert not np.allclose(nnx.jit(lambda m, x: m(x))(sp, x), dense)
    s, t = nnx.jit(lambda m, x: m(x))(model, x)
    assert s.shape == t.shape == (1, 3)


def _records(topk_shape, topk_bias, rand_bias, seeds=3):
    recs = []
    for s in range(seeds):
        j = 0.005 * (s - 1)
        recs.append(
            {
                "setting": "dense",
                "k": 1.0,
                "seed": s,
                "shape_rate": 0.30 + j,
                "shape_bias": 0.40 + j,
            }
        )
        for mode, rate, bias in (
            ("topk", topk_shape, topk_bias),
            ("random", 0.25, rand_bias),
            ("revert", 0.2, 0.3),
        ):
            recs.append(
                {
                    "setting": mode,
                    "k": 0.1,
                    "seed": s,
                    "shape_rate": rate + 2 * j,
                    "shape_bias": bias + 2 * j,
                }
            )
    return {"config": {"ks": [0.1]}, "records": recs}


def test_verdict_rule():
    v = exp.verdict(_records(0.40, 0.65, 0.45))
    assert v["verdict"] == "supported"
    d = v["per_k"]["0.1"]
    assert d["shape_rate_vs_dense"]["mean"] == pytest.approx(0.10)
    assert d["bias_vs_random"]["mean"] == pytest.approx(0.20)
    assert d["bias_vs_revert"]["mean"] == pytest.approx(0.35)
    # bias rises beyond random-K but the shape decisions fall: texture collapse only
    assert exp.verdict(_records(0.20, 0.65, 0.45))["verdict"] == "not supported"
    # shape decisions rise but Top-K's bias is no better than random-K's
    assert exp.verdict(_records(0.40, 0.50, 0.48))["verdict"] == "not supported"
    # gain 0.1 +- noise: interval straddles 0.1 -> inconclusive
    r = _records(0.40, 0.45, 0.45)
    topk = [x for x in r["records"] if x["setting"] == "topk"]
    for rec, gain in zip(topk, (0.25, 0.0, 0.1)):  # mean 0.117, 95 % CI ~[-0.19, +0.43]
        rec["shape_bias"] = 0.45 + 2 * 0.005 * (rec["seed"] - 1) + gain
    assert exp.verdict(r)["verdict"] == "inconclusive"


@pytest.mark.slow
def test_tiny_run_end_to_end(tmp_path):
    cfg = exp.Config(
        seeds=2,
        size=16,
        num_classes=3,
        num_pretext=96,
        num_pretext_val=24,
        num_readout=48,
        num_test=12,
        conflicts_per_pair=2,
        widths=(4, 8),
        epochs=1,
        batch_size=32,
        readout_epochs=1,
        ks=(0.25,),
    )
    result = exp.run(cfg)
    settings = sorted({(r["setting"], r["k"]) for r in result["records"]})
    assert settings == [("dense", 1.0), ("random", 0.25), ("revert", 0.25), ("topk", 0.25)]
    for r in result["records"]:
        assert math.isclose(r["shape_rate"] + r["texture_rate"] + r["other_rate"], 1.0)
        if r["shape_rate"] + r["texture_rate"] > 0:
            assert r["shape_bias"] == pytest.approx(
                r["shape_rate"] / (r["shape_rate"] + r["texture_rate"])
            )
    header, rows, summary = exp.summarize(result)
    assert len(rows) == 4 and len(header) == len(rows[0])
    assert exp.verdict(result)["verdict"] in ("supported", "not supported", "inconclusive")
    assert result["kept_per_stage"] == {"0.25": [16, 4]}
    exp.plot(result, summary, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0
    assert all(0 <= b["test_shape_accuracy"] <= 1 for b in result["backbones"])
