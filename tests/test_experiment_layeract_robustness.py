"""experiments/layeract_robustness: shared deterministic corrupted sets, paired
initialisation, gates that match the activations, the paired summary and verdict rule
on hand-made runs, and a tiny end-to-end run."""

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


def test_accuracy_families_and_contrast_kept_apart():
    x = np.random.default_rng(1).random((10, 4, 4, 1)).astype(np.float32)
    model = Flatten(MLP(16, 3, hidden=(8,), rngs=nnx.Rngs(0)))
    y = np.argmax(np.asarray(model(x)), -1).astype(np.int32)
    y[:3] = (y[:3] + 1) % 3  # exactly 3 wrong
    assert exp.accuracy(model, x, y, batch_size=4) == pytest.approx(0.7)
    sets = exp.CorruptedSets(["contrast", "gaussian_noise"], x, y)
    rec = exp.evaluate_robustness(model, x, y, sets, batch_size=4)
    noise = rec["corruption_accuracy"]["gaussian_noise"]
    assert rec["family_accuracy"]["noise"] == pytest.approx(np.mean(noise))
    assert rec["family_accuracy"]["contrast"] == pytest.approx(
        np.mean(rec["corruption_accuracy"]["contrast"])
    )
    assert rec["mean_corruption_accuracy"] == pytest.approx(np.mean(noise))  # no contrast
    assert rec["relative_drop"] == pytest.approx((0.7 - np.mean(noise)) / 0.7)
    # the verdict's measure: Gaussian (+ impulse, absent here) only, contrast never
    assert rec["primary_noise_accuracy"] == pytest.approx(np.mean(noise))
    assert rec["primary_relative_drop"] == pytest.approx((0.7 - np.mean(noise)) / 0.7)
    assert rec["corruption_mean"]["contrast"] == pytest.approx(
        np.mean(rec["corruption_accuracy"]["contrast"])
    )


def test_pairs_share_initial_weights_and_gates_match_activations():
    params = {}
    for name in exp.ACTIVATIONS:
        m = exp.build_model("smallcnn", name, 10, 1, seed=3)
        params[name] = jax.tree.leaves(nnx.state(m, nnx.Param))
    for name, leaves in params.items():
        for a, b in zip(leaves, params["ReLU"]):
            np.testing.assert_array_equal(a, b, err_msg=name)
    other = jax.tree.leaves(
        nnx.state(exp.build_model("smallcnn", "ReLU", 10, 1, seed=4), nnx.Param)
    )
    assert not np.array_equal(other[0], params["ReLU"][0])
    x = jax.random.normal(jax.random.key(0), (3, 5, 5, 4)) * 2
    for name, act in exp.ACTIVATIONS.items():  # a = x * gate(x), the "activation scale"
        np.testing.assert_allclose(
            act.make()(x), x * act.gate(x), rtol=1e-5, atol=1e-6, err_msg=name
        )


def test_gate_fluctuation_zero_for_identical_inputs_and_grows_with_noise():
    m = exp.build_model("smallcnn", "LA-SiLU", 10, 1, seed=0)
    x = np.random.default_rng(0).random((8, 12, 12, 1)).astype(np.float32)
    f0 = exp.gate_fluctuation(m, "LA-SiLU", x, [x], batch_size=4)
    assert f0.shape == (4,) and np.all(f0 < 1e-6)  # float round-off only
    small = x + 0.01 * np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
    big = x + 0.3 * np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
    fs = exp.gate_fluctuation(m, "LA-SiLU", x, [small], batch_size=8)
    fb = exp.gate_fluctuation(m, "LA-SiLU", x, [big], batch_size=8)
    assert np.all(fs > 1e-4) and np.all(fb > fs)
    # the trained model is not changed: its probes do not record
    assert all(not p.recording for p in exp._probes(m))


def _run(act, seed, clean, noise, shot=None, train=1.0, loss=0.05):
    """One hand-made run record: ``noise`` is the Gaussian and impulse accuracy (every
    severity), ``shot`` the shot/speckle accuracy (default: clean)."""
    shot = clean if shot is None else shot
    per = {
        "gaussian_noise": [noise] * 5,
        "impulse_noise": [noise] * 5,
        "shot_noise": [shot] * 5,
        "speckle_noise": [shot] * 5,
        "contrast": [0.3] * 5,
    }
    return {
        "model": "smallcnn",
        "activation": act,
        "seed": seed,
        "train_accuracy": train,
        "final_train": {"train_loss": loss},
        "clean_accuracy": clean,
        "corruption_accuracy": per,
        "corruption_mean": {c: float(np.mean(v)) for c, v in per.items()},
        "family_accuracy": {"noise": (2 * noise + 2 * shot) / 4, "contrast": 0.3},
        "mean_corruption_accuracy": (2 * noise + 2 * shot) / 4,
        "relative_drop": 0.1,
        "primary_noise_accuracy": noise,
        "primary_relative_drop": 1 - noise / clean,
        "gate_fluctuation": [0.3, 0.25 if act.startswith("LA-") else 0.3],
    }


def _runs(silu_gain, hard_gain, seeds=6, la_clean=0.0, **kw):
    """Both pairs: each LA run's relative drop is its twin's minus ``gain`` (fractions) plus
    a seed-dependent jitter of +-0.1 pp; ``la_clean`` shifts LA's clean accuracy *and* its
    noise accuracy by the same relative amount (no change in the relative drop)."""
    runs = []
    rng = np.random.default_rng(0)
    for s in range(seeds):
        clean = 0.95 + 0.01 * rng.standard_normal()
        drop = 0.12 + 0.02 * rng.standard_normal()
        jitter = 0.001 * (s - (seeds - 1) / 2)
        for base, la, gain in (
            ("SiLU", "LA-SiLU", silu_gain),
            ("HardSiLU", "LA-HardSiLU", hard_gain),
        ):
            runs.append(_run(base, s, clean, clean * (1 - drop), **kw))
            c = clean + la_clean
            runs.append(_run(la, s, c, c * (1 - (drop - gain - jitter)), **kw))
    return runs


def _claims_of(runs, **kw):
    names = list(exp.QUICK_ACTIVATIONS)
    s = exp.summarize(runs, "smallcnn", names, **kw)
    return s, exp.claims(runs, "smallcnn", s, **kw)


def test_rule_is_declared_per_pair_with_the_minimum_effect():
    assert set(exp.RULES) == {"LA-SiLU vs SiLU", "LA-HardSiLU vs HardSiLU"}
    for r in exp.RULES.values():
        assert r.min_effect == exp.MIN_EFFECT_PP == 0.5
        assert r.interval == "t" and r.confidence == 0.95 and r.convergence
        assert "Gaussian" in r.measure and "relative" in r.measure
    assert exp.PRIMARY == ("gaussian_noise", "impulse_noise")
    assert not set(exp.PRIMARY) & set(exp.APART)


def test_per_pair_verdicts_are_separate_claims():
    # SiLU pair: a 2 pp smaller relative drop; HardSiLU pair: exactly none
    s, c = _claims_of(_runs(0.02, 0.0))
    a, b = c["LA-SiLU vs SiLU"], c["LA-HardSiLU vs HardSiLU"]
    assert a["verdict"] == "supported" and b["verdict"] == "not supported"
    d = a["comparisons"]["gaussian+impulse"]
    assert d["mean"] == pytest.approx(2.0)  # pp; the jitter averages to 0
    assert d["std"] == pytest.approx(0.1 * np.std(np.arange(6) - 2.5, ddof=1))
    assert "relative drop +2.00 pp" in a["headline"] and "shot" in a["headline"]
    assert exp.summarize(_runs(0.02, 0.0), "smallcnn", ["SiLU", "LA-SiLU"])["pairs"].keys() == {
        "LA-SiLU - SiLU"
    }
    assert s["pairs"]["LA-HardSiLU - HardSiLU"]["gate_fluctuation"][1]["mean"] == pytest.approx(
        -0.05
    )


def test_supported_needs_the_minimum_effect_and_inconclusive_branch():
    # a real but negligible effect (0.2 pp +- 0.04): interval above 0, wholly below 0.5
    _, c = _claims_of(_runs(0.002, 0.002))
    d = c["LA-SiLU vs SiLU"]["comparisons"]["gaussian+impulse"]
    assert d["low"] > 0 and d["high"] < 0.5
    assert c["LA-SiLU vs SiLU"]["verdict"] == "not supported"
    # a wide interval straddling 0 and 0.5 pp -> inconclusive
    runs = _runs(0.003, 0.003)
    for r in runs:
        if r["activation"] == "LA-SiLU" and r["seed"] == 0:
            r["primary_relative_drop"] -= 0.05
    assert _claims_of(runs)[1]["LA-SiLU vs SiLU"]["verdict"] == "inconclusive"


def test_clean_accuracy_gap_is_not_credited():
    # LA's clean and noise accuracies are both 2 pp higher relative (same relative drop):
    # the absolute noise accuracy differs by ~1.7 pp, the measure by nothing
    s, c = _claims_of(_runs(0.0, 0.0, la_clean=0.02))
    assert s["pairs"]["LA-SiLU - SiLU"]["family"]["noise"]["mean"] > 0.008
    assert abs(c["LA-SiLU vs SiLU"]["comparisons"]["gaussian+impulse"]["mean"]) < 0.05
    assert c["LA-SiLU vs SiLU"]["verdict"] == "not supported"


def test_shot_speckle_contrast_stay_out_of_the_measure():
    a = _claims_of(_runs(0.02, 0.0))[1]
    runs = _runs(0.02, 0.0)
    for r in runs:
        if r["activation"] == "SiLU":  # SiLU far worse under shot/speckle/contrast
            for n in ("shot_noise", "speckle_noise", "contrast"):
                r["corruption_accuracy"][n] = [0.1] * 5
                r["corruption_mean"][n] = 0.1
    b = _claims_of(runs)[1]
    for cid in a:
        assert a[cid]["comparisons"] == b[cid]["comparisons"]
    assert "shot +" in b["LA-SiLU vs SiLU"]["headline"]


def test_convergence_gate():
    runs = _runs(0.02, 0.02)
    runs[0]["train_accuracy"] = 0.9  # SiLU seed 0 under-trained
    _, c = _claims_of(runs)
    assert c["LA-SiLU vs SiLU"]["verdict"] == "inconclusive: not converged"
    assert c["LA-HardSiLU vs HardSiLU"]["verdict"] == "supported"
    assert not exp.converged({**runs[2], "final_train": {"train_loss": float("nan")}})
    assert exp.converged(runs[2]) and not exp.converged(runs[2], min_train_acc=1.01)
    # a lower declared gate lets the run count
    _, c = _claims_of(runs, min_train_acc=0.85)
    assert c["LA-SiLU vs SiLU"]["verdict"] == "supported"


def test_tables_render():
    s, _ = _claims_of(_runs(0.02, 0.0))
    text = exp.tables(s, "smallcnn")
    assert "LA-SiLU - SiLU" in text and "(the paper: 30)" in text and "converged" in text


@pytest.mark.slow
def test_tiny_run_end_to_end_writes_a_claim_record(tmp_path):
    from experiments import _claims, verdicts

    rec = exp.main(
        [
            "--seeds",
            "2",
            "--steps",
            "2",
            "--eval-size",
            "16",
            "--fluct-size",
            "4",
            "--corruptions",
            "gaussian_noise",
            "contrast",
            "--only",
            "SiLU",
            "LA-SiLU",
            "--out",
            str(tmp_path),
        ]
    )
    d = tmp_path / "layeract_robustness"
    saved = json.loads((d / "layeract_robustness.json").read_text())
    assert _claims.RECORD_KEYS <= set(saved) and saved["schema"] == _claims.SCHEMA
    assert saved["name"] == "layeract_robustness" and saved["mode"] == "quick"
    assert saved["seeds"] == [0, 1] and set(saved["claims"]) == {"LA-SiLU vs SiLU"}
    c = saved["claims"]["LA-SiLU vs SiLU"]
    # 2 optimiser steps do not reach the gate
    assert c["verdict"] == "inconclusive: not converged"
    assert c["rule"]["min_effect"] == 0.5 and c["comparisons"]["gaussian+impulse"]["n"] == 2
    assert set(saved["per_seed"]["smallcnn"]) == {"SiLU", "LA-SiLU"}
    assert (d / "layeract_robustness.png").stat().st_size > 0
    assert "LA-SiLU loses less" in verdicts.render([saved])
    assert rec["claims"].keys() == saved["claims"].keys()
