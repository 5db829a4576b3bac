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


def _runs(noise_gain, clean_gain=0.0, seeds=4):
    """Hand-made runs: LA = base + noise_gain (+ a seed-dependent jitter) on noise."""
    rng = np.random.default_rng(0)
    runs = []
    for s in range(seeds):
        base = 0.8 + 0.05 * rng.standard_normal()
        jitter = 0.002 * (s - 1.5)
        for act in exp.ACTIVATIONS:
            la = act.startswith("LA-")
            noise = base + (noise_gain + jitter if la else 0.0)
            runs.append(
                {
                    "model": "m",
                    "activation": act,
                    "seed": s,
                    "train_accuracy": 1.0,
                    "clean_accuracy": 0.95 + (clean_gain if la else 0.0),
                    "family_accuracy": {"noise": noise, "contrast": 0.3},
                    "mean_corruption_accuracy": noise,
                    "relative_drop": 0.1,
                    "gate_fluctuation": [0.3, 0.2 if la else 0.25],
                    "corruption_accuracy": {"gaussian_noise": [noise] * 5, "contrast": [0.3] * 5},
                }
            )
    return runs


def test_summary_paired_differences_and_verdicts():
    s = exp.summarize(_runs(0.02), "m", list(exp.ACTIVATIONS))
    d = s["pairs"]["LA-SiLU - SiLU"]["family"]["noise"]
    # differences 0.02 + 0.002 * (s - 1.5): mean 0.02, sd 0.002 * sqrt(5/3)
    assert d["mean"] == pytest.approx(0.02)
    assert d["std"] == pytest.approx(0.002 * np.sqrt(5 / 3))
    assert s["pairs"]["LA-HardSiLU - HardSiLU"]["gate_fluctuation"][1]["mean"] == pytest.approx(
        -0.05
    )
    assert exp.verdict(s)["verdict"] == "supported"
    assert (
        exp.verdict(exp.summarize(_runs(-0.02), "m", list(exp.ACTIVATIONS)))["verdict"]
        == "not supported"
    )
    # 0 +- 0.41 pp: excludes an effect of 0.5 pp -> not supported
    assert (
        exp.verdict(exp.summarize(_runs(0.0), "m", list(exp.ACTIVATIONS)))["verdict"]
        == "not supported"
    )
    # a wide interval straddling 0 and 0.5 pp -> inconclusive
    wide = _runs(0.003)
    for r in wide:
        if r["activation"] == "LA-SiLU" and r["seed"] == 0:
            r["family_accuracy"]["noise"] -= 0.03
    v = exp.verdict(exp.summarize(wide, "m", list(exp.ACTIVATIONS)))
    assert v["per_pair"]["LA-SiLU - SiLU"] == "inconclusive"
    assert v["verdict"] == "inconclusive"  # the pairs disagree
    text = exp.tables(s, "m")
    assert "LA-SiLU - SiLU" in text and "(the paper: 30)" in text


@pytest.mark.slow
def test_tiny_run_end_to_end(tmp_path):
    out = exp.main(
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
    rec = json.loads((d / "layeract_robustness.json").read_text())
    assert rec["verdict"]["smallcnn"]["verdict"] in ("supported", "not supported", "inconclusive")
    assert set(rec["summary"]["smallcnn"]["pairs"]) == {"LA-SiLU - SiLU"}
    assert rec["paper_seeds"] == 30 and rec["seeds"] == 2
    assert (d / "layeract_robustness.png").stat().st_size > 0
    fam = out["summary"]["smallcnn"]["activations"]["SiLU"]["family_accuracy"]
    assert set(fam) == {"noise", "contrast"}
