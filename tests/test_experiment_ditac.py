"""experiments.ditac_regression's verdict rule (every branch, on synthetic per-seed MSEs), its
convergence gate, the record it writes, and ditac_classification's ``--out`` meaning."""

import json
import math

import numpy as np
import pytest

from experiments import _claims
from experiments import ditac_regression as R

CONV = [True] * 5


def _res(ditac, **base):
    """``{act: {"test_mse", "converged"}}`` with every run converged unless given."""
    out = {"DiTAC": {"test_mse": ditac, "converged": CONV[: len(ditac)]}}
    for name, v in base.items():
        mse, conv = v if isinstance(v, tuple) else (v, CONV[: len(v)])
        out[name] = {"test_mse": mse, "converged": conv}
    return out


D = [0.010, 0.012, 0.008, 0.011, 0.009]
BIG = [0.05, 0.06, 0.04, 0.055, 0.045]  # ~5x DiTAC's MSE: log ratio ~1.6 >> log 1.25
SAME = [0.0101, 0.0121, 0.0081, 0.0111, 0.0091]  # ~1 % above: far below log 1.25
NOISY = [0.05, 0.002, 0.04, 0.003, 0.02]  # straddles 0


@pytest.mark.parametrize(
    "base, paper, mmelu",
    [
        (dict(ReLU=BIG, GELU=BIG, PReLU=BIG, MMeLU=BIG), "supported", "supported"),
        (dict(ReLU=BIG, GELU=BIG, PReLU=SAME, MMeLU=SAME), "not supported", "not supported"),
        (dict(ReLU=BIG, GELU=NOISY, PReLU=BIG, MMeLU=NOISY), "inconclusive", "inconclusive"),
        (
            dict(ReLU=BIG, GELU=BIG, PReLU=(BIG, [True, True, False, True, True]), MMeLU=BIG),
            "inconclusive: not converged",
            "supported",
        ),
    ],
)
def test_analyse_branches(base, paper, mmelu):
    claims = R.analyse(_res(D, **base))
    assert claims["vs_paper_baselines"]["verdict"] == paper
    assert claims["vs_mmelu"]["verdict"] == mmelu
    assert set(claims["vs_paper_baselines"]["comparisons"]) == {"ReLU", "GELU", "PReLU"}
    # the effect is the paired log ratio baseline / DiTAC, seed by seed
    relu = claims["vs_paper_baselines"]["comparisons"]["ReLU"]
    np.testing.assert_allclose(relu["effects"], np.log(np.asarray(BIG) / np.asarray(D)))
    # Bonferroni over all four baselines, for both claims
    assert relu["confidence"] == pytest.approx(1 - 0.05 / 4)
    assert claims["vs_mmelu"]["comparisons"]["MMeLU"]["confidence"] == pytest.approx(1 - 0.05 / 4)
    assert claims["vs_paper_baselines"]["rule"]["family"] == list(R.BASELINES)


def test_analyse_a_ditac_run_that_failed_the_gate_gates_every_comparison():
    res = _res(D, ReLU=BIG, GELU=BIG, PReLU=BIG, MMeLU=BIG)
    res["DiTAC"]["converged"] = [True, True, True, True, False]
    claims = R.analyse(res)
    for c in claims.values():
        assert c["verdict"] == "inconclusive: not converged"


def test_analyse_without_the_arms_has_no_claim():
    assert R.analyse({"ReLU": {"test_mse": BIG, "converged": CONV}}) == {}
    assert R.analyse({"DiTAC": {"test_mse": D, "converged": CONV}}) == {}
    only = R.analyse(_res(D, MMeLU=BIG))
    assert set(only) == {"vs_mmelu"}


def test_gate_learned_or_stopped():
    steps = list(range(1000, 11000, 1000))
    var = 0.124
    flat = [0.121] * 10  # stuck at the target's variance, not moving: converged (GELU)
    escaping = [0.121] * 6 + [0.11, 0.10, 0.09, 0.08]  # caught mid-way off the plateau
    learned = [0.1 / (1 + i) for i in range(10)]  # still falling but far below the variance
    g = R.converged_run(steps, flat, var)
    assert g["converged"] is True and g["learned"] is False and abs(g["drop"]) < 1e-12
    g = R.converged_run(steps, escaping, var)
    assert g["converged"] is False and g["drop"] > R.GATE_DROP
    g = R.converged_run(steps, learned, var)
    assert g["converged"] is True and g["learned"] is True and g["drop"] > R.GATE_DROP
    with pytest.raises(ValueError, match="held-out"):
        R.converged_run([1000], [0.1], var)
    with pytest.raises(ValueError, match="variance"):
        R.converged_run(steps, flat, 0.0)


def test_confirm_refuses_a_changed_configuration():
    for argv in (
        ["--confirm", "--seeds", "3"],
        ["--confirm", "--targets", "abs1d"],
        ["--confirm", "--acts", "DiTAC", "ReLU"],
    ):
        with pytest.raises(SystemExit):
            R.parse_args(argv)
    assert R.parse_args(["--confirm"]).n_seeds == R.CONFIRM_SEEDS >= 5
    assert R.parse_args([]).n_seeds == R.QUICK_SEEDS
    assert R.parse_args([]).targets == [R.PRIMARY]


@pytest.mark.slow
def test_regression_experiment_writes_the_record_and_the_verdict(tmp_path, monkeypatch, capsys):
    """A toy --confirm run: the record is _claims' schema with the verdicts of the primary
    target, results.json under <out>/ditac_regression/, the VERDICT lines, and the committed
    verdict file (redirected to tmp_path)."""
    monkeypatch.setattr(R, "STEPS", 30)
    monkeypatch.setattr(R, "CONFIRM_SEEDS", 2)
    monkeypatch.setattr(_claims, "VERDICTS_DIR", tmp_path / "verdicts")
    rec = R.main(["--confirm", "--targets", "sines2d", "abs1d", "--out", str(tmp_path)])
    assert rec["schema"] == _claims.SCHEMA and rec["mode"] == "confirm"
    assert rec["seeds"] == [0, 1]
    assert set(rec["claims"]) == {"vs_paper_baselines", "vs_mmelu"}
    for c in rec["claims"].values():
        assert c["verdict"] in _claims.VERDICTS
    res = rec["per_seed"]["sines2d"]
    assert res["ReLU"]["params"] <= res["DiTAC"]["params"]
    assert len(res["DiTAC"]["converged"]) == 2
    effects = rec["claims"]["vs_paper_baselines"]["comparisons"]["ReLU"]["effects"]
    np.testing.assert_allclose(
        effects, np.log(np.asarray(res["ReLU"]["test_mse"]) / res["DiTAC"]["test_mse"])
    )
    saved = json.loads((tmp_path / "ditac_regression" / "results.json").read_text())
    assert saved["claims"]["vs_mmelu"]["verdict"] == rec["claims"]["vs_mmelu"]["verdict"]
    committed = json.loads((tmp_path / "verdicts" / "ditac_regression.json").read_text())
    assert committed["claims"].keys() == rec["claims"].keys()
    assert (tmp_path / "ditac_regression" / "fits.png").exists()
    text = capsys.readouterr().out
    assert "VERDICT ditac_regression/vs_paper_baselines:" in text
    assert "VERDICT ditac_regression/vs_mmelu:" in text
    assert all(math.isfinite(v) for v in res["DiTAC"]["test_mse"])


@pytest.mark.slow
def test_classification_experiment_learns_and_counts_parameters(tmp_path):
    """Two epochs on the digits: the DiTAC net has exactly 9 more parameters per activation
    layer than the ReLU net (one nc = 10 theta per layer, SmallCNN has 2), both learn far
    above chance (0.1; measured 0.58-0.75 over seeds 0-1, 2026-12-01), and results.json
    holds the returned numbers under <out>/ditac_classification/ (--out is the results root)."""
    from actfx.cpab import Tessellation
    from experiments import ditac_classification

    rec = ditac_classification.main(
        ["--epochs", "2", "--seeds", "1", "--acts", "DiTAC", "ReLU", "--out", str(tmp_path)]
    )
    res = rec["results"]
    assert res["DiTAC"]["params"] - res["ReLU"]["params"] == 2 * Tessellation(10).theta_dim
    for name in ("DiTAC", "ReLU"):
        (acc,) = res[name]["final_test_acc"]
        assert acc > 0.4, (name, acc)
        assert res[name]["runs"][0]["test_acc"][-1] == acc
    saved = json.loads((tmp_path / "ditac_classification" / "results.json").read_text())
    assert saved["results"]["DiTAC"]["final_test_acc"] == res["DiTAC"]["final_test_acc"]
    assert (tmp_path / "ditac_classification" / "curves.png").exists()
