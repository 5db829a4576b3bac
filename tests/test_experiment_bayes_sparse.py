"""experiments/bayes_sparse.py's three verdict rules on synthetic per-seed rows (no sampling):
every branch (supported / not supported / inconclusive / not converged), the pairing with the
normal-prior baseline by seed, and the headline naming the prior that earned a claim."""

import numpy as np
import pytest

from experiments.bayes_sparse import RULES, verdicts

N = 8  # seeds


def _rows(f1, cov_y, cov_g, converged=True, seeds=range(N)):
    """One prior's rows: each metric a scalar (every seed) or a per-seed list."""
    out = []
    for i, s in enumerate(seeds):
        pick = lambda v: v[i] if isinstance(v, (list, tuple, np.ndarray)) else v
        out.append(
            {
                "seed": s,
                "f1": pick(f1),
                "coverage_y": pick(cov_y),
                "coverage_g_grid": pick(cov_g),
                "converged": bool(pick(converged)),
            }
        )
    return out


JITTER = np.linspace(-0.01, 0.01, N)  # small per-seed spread: tight intervals


def test_rules_are_declared_with_the_gate_and_any():
    for claim in ("sparse", "calibrated", "activation recovered"):
        r = RULES[claim]
        assert r.combine == "any" and r.correction == "bonferroni" and "R-hat" in r.convergence


def test_every_claim_supported_and_headline_names_the_prior():
    rows = {
        "soft_laplace": _rows(0.95 + JITTER, 0.90 + JITTER / 2, 1.0 - JITTER**2),
        "horseshoe": _rows(0.5 + JITTER, 0.70 + JITTER, 0.5 + JITTER),
        "normal": _rows(0.55 + JITTER, 0.90, 1.0),
    }
    out = verdicts(rows)
    assert out["sparse"]["verdict"] == "supported"
    assert out["sparse"]["comparisons"]["soft_laplace - normal"]["verdict"] == "supported"
    assert out["sparse"]["comparisons"]["horseshoe - normal"]["verdict"] == "not supported"
    assert out["sparse"]["headline"].startswith("earned by soft_laplace - normal;")
    for claim in ("calibrated", "activation recovered"):
        assert out[claim]["verdict"] == "supported", claim
        assert out[claim]["comparisons"]["horseshoe"]["verdict"] == "not supported"
        assert out[claim]["headline"].startswith("earned by soft_laplace;")
    # the normal prior is the baseline, never a candidate for calibration/activation claims
    assert set(out["calibrated"]["comparisons"]) == {"soft_laplace", "horseshoe"}


def test_every_claim_not_supported():
    rows = {
        "soft_laplace": _rows(0.60 + JITTER, 0.70 + JITTER, 0.70 + JITTER),
        "horseshoe": _rows(0.62 + JITTER, 0.72 + JITTER, 0.65 + JITTER),
        "normal": _rows(0.60 + JITTER, 0.9, 1.0),
    }
    out = verdicts(rows)
    for claim in ("sparse", "calibrated", "activation recovered"):
        assert out[claim]["verdict"] == "not supported", claim
        assert not out[claim]["headline"].startswith("earned by")


def test_inconclusive_when_the_seeds_disagree():
    even = np.arange(N) % 2 == 0
    swing = np.where(even, 0.6, -0.4)  # mean +0.1, huge spread
    rows = {
        # coverage off by 0 or 0.1: the measure 0.06 or -0.04, mean 0.01 +- 0.045
        "soft_laplace": _rows(0.5 + swing, np.where(even, 0.9, 1.0), np.where(even, 1.0, 0.6)),
        "normal": _rows(0.5, 0.9, 1.0),
    }
    out = verdicts(rows)
    for claim in ("sparse", "calibrated", "activation recovered"):
        assert out[claim]["verdict"] == "inconclusive", claim


def test_an_unconverged_baseline_seed_gates_the_paired_comparison():
    conv = [True] * N
    conv[3] = False  # the normal prior's seed 3 did not converge
    rows = {
        "soft_laplace": _rows(0.95 + JITTER, 0.9, 1.0),
        "normal": _rows(0.55 + JITTER, 0.9, 1.0, converged=conv),
    }
    out = verdicts(rows)
    c = out["sparse"]["comparisons"]["soft_laplace - normal"]
    assert c["verdict"] == "inconclusive: not converged" and c["converged"][3] is False
    assert out["sparse"]["verdict"] == "inconclusive: not converged"
    # the other claims do not use the baseline's runs: they stand
    assert out["calibrated"]["verdict"] == "supported"


def test_an_unconverged_prior_decides_nothing_either_way():
    conv = [True] * N
    conv[0] = False
    good = _rows(0.95 + JITTER, 0.90 + JITTER / 2, 1.0)
    rows = {
        "soft_laplace": good,
        "horseshoe": _rows(0.95 + JITTER, 0.90, 1.0, converged=conv),
        "normal": _rows(0.55 + JITTER, 0.9, 1.0),
    }
    out = verdicts(rows)
    # horseshoe is not converged, soft_laplace earns every claim on its own
    for claim in ("sparse", "calibrated", "activation recovered"):
        comps = out[claim]["comparisons"]
        hs = next(k for k in comps if k.startswith("horseshoe"))
        assert comps[hs]["verdict"] == "inconclusive: not converged", claim
        assert out[claim]["verdict"] == "supported", claim
    # when the converged prior does not earn it, the claim stays open (not converged)
    rows["soft_laplace"] = _rows(0.60 + JITTER, 0.70 + JITTER, 0.70 + JITTER)
    out = verdicts(rows)
    for claim in ("sparse", "calibrated", "activation recovered"):
        assert out[claim]["verdict"] == "inconclusive: not converged", claim


def test_pairs_by_seed_not_by_position():
    rows = {
        "soft_laplace": _rows([0.9, 0.9, 0.9, 0.9], 0.9, 1.0, seeds=[0, 1, 2, 3]),
        # the baseline's rows in another order and one extra seed: paired by seed
        "normal": _rows([0.5, 0.8, 0.7, 0.6, 0.1], 0.9, 1.0, seeds=[3, 0, 1, 2, 9]),
    }
    out = verdicts(rows)
    effects = out["sparse"]["comparisons"]["soft_laplace - normal"]["effects"]
    np.testing.assert_allclose(effects, [0.1, 0.2, 0.3, 0.4])


@pytest.mark.parametrize("cov_y, expected", [(0.90, 0.06), (0.85, 0.01), (0.97, -0.01)])
def test_calibration_measure(cov_y, expected):
    rows = {"soft_laplace": _rows(1.0, [cov_y, cov_y], 1.0, seeds=[0, 1])}
    out = verdicts(rows)
    np.testing.assert_allclose(out["calibrated"]["comparisons"]["soft_laplace"]["mean"], expected)
