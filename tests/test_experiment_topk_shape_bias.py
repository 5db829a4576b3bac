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


def _result(topk_rate, topk_bias, rand_bias, seeds=5, ks=(0.1,), head=0.9, jitters=None):
    """Hand-made records: dense shape rate 0.30 / bias 0.20; at every k Top-K, random-K and
    revert with the given values plus a per-seed jitter (paired differences vary by
    ``jitters[s]``, default 0.01 * (s - mean))."""
    if jitters is None:
        jitters = [0.01 * (s - (seeds - 1) / 2) for s in range(seeds)]
    recs, bbs = [], []
    for s in range(seeds):
        j, common = jitters[s], 0.02 * ((s * 7) % 5)
        bbs.append({"seed": s, "test_shape_accuracy": head, "test_texture_accuracy": head})
        recs.append(
            {
                "setting": "dense",
                "k": 1.0,
                "seed": s,
                "shape_rate": 0.30 + common,
                "texture_rate": 0.6,
                "shape_bias": 0.20 + common,
                "clean_accuracy": 0.99,
            }
        )
        for k in ks:
            for mode, rate, bias in (
                ("topk", topk_rate, topk_bias),
                ("random", 0.25, rand_bias),
                ("revert", 0.2, 0.1),
            ):
                jj = j if mode == "topk" else 0.0
                recs.append(
                    {
                        "setting": mode,
                        "k": k,
                        "seed": s,
                        "shape_rate": rate + common + jj,
                        "texture_rate": 0.3,
                        "shape_bias": bias + common + jj,
                        "clean_accuracy": 0.9,
                    }
                )
    return {"config": {"ks": list(ks)}, "records": recs, "backbones": bbs}


def test_rules_declared_with_bonferroni_over_k():
    for r in exp.RULES.values():
        assert r.correction == "bonferroni" and r.combine == "any" and r.interval == "t"
        assert r.convergence
    assert exp.RULES["bias_vs_random"].min_effect == 0.1
    assert exp.RULES["shape_decisions"].min_effect == 0.03
    assert exp.Config().readout_shape_agreement < 1 / 2  # texture is the better cue


def test_claims_supported_and_not_supported():
    c = exp.claims(_result(0.40, 0.45, 0.25))
    a, b = c["bias_vs_random"], c["shape_decisions"]
    assert a["verdict"] == "supported" and b["verdict"] == "supported"
    assert a["comparisons"]["k=10%"]["mean"] == pytest.approx(0.20)
    assert b["comparisons"]["k=10%"]["mean"] == pytest.approx(0.10)
    assert "dense shape bias 0.240" in a["headline"]
    # the bias rises beyond random-K but the shape decisions fall: texture collapse only
    c = exp.claims(_result(0.20, 0.45, 0.25))
    assert c["bias_vs_random"]["verdict"] == "supported"
    assert c["shape_decisions"]["verdict"] == "not supported"
    # no better than random-K (interval below 0.1)
    c = exp.claims(_result(0.40, 0.27, 0.25))
    assert c["bias_vs_random"]["verdict"] == "not supported"


def test_bonferroni_over_k_and_combine_any():
    # 5 seeds, gain 0.13 with sd ~0.03: 95 % interval above 0 with one k; with four k the
    # 98.75 % interval still excludes 0 (t 4.31 * 0.0114 = 0.049) but reaches below 0.1
    jit = [0.03, -0.03, 0.02, -0.02, 0.0]
    one = exp.claims(_result(0.4, 0.38, 0.25, jitters=jit))["bias_vs_random"]
    four = exp.claims(_result(0.4, 0.38, 0.25, ks=(0.5, 0.2, 0.1, 0.05), jitters=jit))
    c1, c4 = one["comparisons"]["k=10%"], four["bias_vs_random"]["comparisons"]["k=10%"]
    assert c1["confidence"] == pytest.approx(0.95)
    assert c4["confidence"] == pytest.approx(1 - 0.05 / 4)
    assert c4["high"] - c4["low"] > c1["high"] - c1["low"]
    assert four["bias_vs_random"]["verdict"] == "supported"  # mean 0.13 >= 0.1, low > 0
    # one supported k among inconclusive ones -> supported ("any")
    r = _result(0.4, 0.38, 0.25, ks=(0.5, 0.1), jitters=jit)
    for rec in r["records"]:
        if rec["setting"] == "topk" and rec["k"] == 0.5:
            rec["shape_bias"] += 0.3 * (-1) ** rec["seed"]  # wide: inconclusive
    c = exp.claims(r)["bias_vs_random"]
    assert c["comparisons"]["k=50%"]["verdict"] == "inconclusive"
    assert c["verdict"] == "supported"


def test_convergence_gate():
    c = exp.claims(_result(0.40, 0.45, 0.25, head=0.5))
    assert {v["verdict"] for v in c.values()} == {"inconclusive: not converged"}
    r = _result(0.40, 0.45, 0.25)
    r["records"][0]["clean_accuracy"] = 0.5  # seed 0's dense network
    assert exp.claims(r)["bias_vs_random"]["verdict"] == "inconclusive: not converged"
    r = _result(0.40, 0.45, 0.25)
    r["records"][1]["shape_bias"] = float("nan")  # seed 0 Top-K: no shape/texture decision
    assert exp.claims(r)["bias_vs_random"]["verdict"] == "inconclusive: not converged"
    assert exp.seed_converged(_result(0.4, 0.45, 0.25)) == dict.fromkeys(range(5), True)


def test_readout_data_is_texture_biased(monkeypatch):
    seen = {}

    def fake_render(shape, texture, **kw):
        seen["shape"], seen["texture"] = np.asarray(shape), np.asarray(texture)
        return np.zeros((len(shape), 4, 4, 1), np.float32)

    monkeypatch.setattr(exp, "render_images", fake_render)
    cfg = exp.Config(num_classes=8, readout_shape_agreement=0.2)
    x, y = exp.readout_data(cfg, 4000, stream=12)
    np.testing.assert_array_equal(seen["texture"], y)  # texture always names the class
    agree = np.mean(seen["shape"] == y)
    assert abs(agree - 0.2) < 0.03  # binomial sd 0.006
    assert np.all((seen["shape"] >= 0) & (seen["shape"] < 8))
    assert np.bincount(y).tolist() == [500] * 8
    # the other shapes are spread over every wrong class
    wrong = seen["shape"][seen["shape"] != y] - y[seen["shape"] != y]
    assert len(np.unique(wrong % 8)) == 7
    with pytest.raises(ValueError, match="readout_shape_agreement"):
        exp.readout_data(exp.Config(readout_shape_agreement=1.5), 10, stream=12)


@pytest.mark.slow
def test_tiny_run_end_to_end(tmp_path):
    import json

    from experiments import _claims, verdicts

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
    assert result["kept_per_stage"] == {"0.25": [16, 4]}
    rec = json.loads(json.dumps(exp.make_record(result, mode="quick")))
    assert _claims.RECORD_KEYS <= set(rec) and rec["schema"] == _claims.SCHEMA
    assert set(rec["claims"]) == {"bias_vs_random", "shape_decisions"}
    for c in rec["claims"].values():
        assert c["verdict"] in _claims.VERDICTS and set(c["comparisons"]) == {"k=25%"}
    assert rec["seeds"] == [0, 1] and len(rec["per_seed"]["topk@0.25"]["shape_bias"]) == 2
    assert "shape bias" in verdicts.render([rec])
    exp.plot(result, rec["summary"], tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0
    assert all(0 <= b["test_shape_accuracy"] <= 1 for b in result["backbones"])
