"""The claim harness (experiments/_claims.py): every branch of the verdict rule on synthetic
per-seed values, the correction, the power estimate, the record schema, and that the README's
verdict table equals the committed records."""

import json
import math
import re

import numpy as np
import pytest

from experiments import _claims, verdicts
from experiments._claims import Rule, combine, compare, decide, seeds_for_power

RULE = Rule(claim="A beats B", measure="A - B (pp)", min_effect=0.5)


@pytest.mark.parametrize(
    "effects, converged, expected",
    [
        ([1.0, 1.2, 0.9, 1.1, 1.05], None, "supported"),
        # excludes 0 but wholly below the smallest effect: real but negligible
        ([0.10, 0.12, 0.09, 0.11], None, "not supported"),
        # the other sign
        ([-1.0, -1.1, -0.9, -1.2], None, "not supported"),
        # straddles 0 and the smallest effect
        ([1.0, -1.0, 2.0, -0.5], None, "inconclusive"),
        # above 0, mean below the smallest effect, upper end above it
        ([0.3, 0.5, 0.2, 0.6, 0.4], None, "inconclusive"),
        # a clear effect from a run that did not converge is never a pass
        ([1.0, 1.2, 0.9, 1.1], [True, True, False, True], "inconclusive: not converged"),
        ([-1.0, -1.2, -0.9, -1.1], [True, False, True, True], "inconclusive: not converged"),
        # one seed: the interval is unbounded
        ([3.0], None, "inconclusive"),
    ],
)
def test_compare_branches(effects, converged, expected):
    assert compare(effects, RULE, converged=converged)["verdict"] == expected


def test_compare_interval_is_exact_t():
    from scipy import stats

    e = np.array([0.2, 0.9, 0.4, 0.7, 0.5, 0.1, 0.8, 0.3, 0.6, 0.45, 0.55])  # 11 seeds
    out = compare(e, RULE)
    half = stats.t.ppf(0.975, df=10) * e.std(ddof=1) / math.sqrt(11)
    assert out["low"] == pytest.approx(e.mean() - half, rel=1e-12)
    assert out["high"] == pytest.approx(e.mean() + half, rel=1e-12)
    assert half > 1.96 * e.std(ddof=1) / math.sqrt(11)  # not the normal fallback


def test_bonferroni_widens_and_can_change_the_verdict():
    rule = Rule(claim="c", measure="m", min_effect=0.1, correction="bonferroni")
    e = [0.30, 0.12, 0.40, 0.22]
    one = compare(e, rule, m=1)
    four = compare(e, rule, m=4)
    assert four["confidence"] == pytest.approx(1 - 0.05 / 4)
    assert four["low"] < one["low"] and four["high"] > one["high"]
    assert one["verdict"] == "supported" and four["verdict"] == "inconclusive"


@pytest.mark.parametrize(
    "vs, how, expected",
    [
        (["supported", "inconclusive"], "any", "supported"),
        (["not supported", "not supported"], "any", "not supported"),
        (["not supported", "inconclusive"], "any", "inconclusive"),
        (["supported", "supported"], "all", "supported"),
        (["supported", "inconclusive"], "all", "inconclusive"),
        (["supported", "not supported"], "all", "not supported"),
        # an unconverged setting decides nothing: it neither undoes a supported setting under
        # "any" nor a not supported one under "all", and leaves an open verdict unconverged
        (["supported", "inconclusive: not converged"], "any", "supported"),
        (["not supported", "inconclusive: not converged"], "any", "inconclusive: not converged"),
        (["inconclusive", "inconclusive: not converged"], "any", "inconclusive: not converged"),
        (["supported", "inconclusive: not converged"], "all", "inconclusive: not converged"),
        (["not supported", "inconclusive: not converged"], "all", "not supported"),
        (["inconclusive: not converged"], "all", "inconclusive: not converged"),
    ],
)
def test_combine(vs, how, expected):
    assert combine(vs, how) == expected


def test_decide_applies_the_correction_over_settings():
    rule = Rule(claim="c", measure="m", min_effect=0.1, correction="bonferroni")
    e = [0.30, 0.12, 0.40, 0.22]
    alone = decide({"k": e}, rule)
    family = decide({"k": e, "k2": [0.0, 0.01, -0.01, 0.0], "k3": e, "k4": e}, rule)
    assert alone["verdict"] == "supported"
    assert family["comparisons"]["k"]["verdict"] == "inconclusive"
    assert family["verdict"] == "inconclusive"
    with pytest.raises(ValueError, match="converged"):
        decide({"k": e}, rule, converged={"other": [True] * 4})


def test_bootstrap_interval_for_log_ratios():
    rule = Rule(claim="c", measure="log MSE ratio", min_effect=0.1, interval="bootstrap")
    out = compare([1.3, 1.9, 2.3, 1.1, 1.6], rule)
    assert out["interval"] == "bootstrap" and out["verdict"] == "supported"
    assert 1.1 <= out["low"] < out["mean"] < out["high"] <= 2.3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"min_effect": 0}, "min_effect"),
        ({"min_effect": -1}, "min_effect"),
        ({"min_effect": 1, "interval": "z"}, "interval"),
        ({"min_effect": 1, "correction": "holm"}, "correction"),
        ({"min_effect": 1, "combine": "most"}, "combine"),
        ({"min_effect": 1, "confidence": 1.0}, "confidence"),
    ],
)
def test_rule_checks_its_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Rule(claim="c", measure="m", **kwargs)


def test_compare_checks_its_arguments():
    with pytest.raises(ValueError, match="finite"):
        compare([1.0, float("nan")], RULE)
    with pytest.raises(ValueError, match="converged"):
        compare([1.0, 2.0], RULE, converged=[True])
    with pytest.raises(ValueError, match="at least one"):
        compare([], RULE)


def test_power_estimate_matches_simulation():
    n = seeds_for_power(0.8, 0.48, RULE)
    rng = np.random.default_rng(0)
    hits = [compare(rng.normal(0.8, 0.48, n), RULE)["low"] > 0 for _ in range(400)]
    assert 0.7 <= np.mean(hits) <= 0.95
    bonf = Rule(claim="c", measure="m", min_effect=0.5, correction="bonferroni")
    assert seeds_for_power(0.8, 0.48, bonf, m=4) > n  # a correction costs seeds


def test_record_schema(tmp_path):
    claim = decide({"x": [1.0, 1.1, 0.9]}, RULE)
    rec = _claims.record(
        name="demo",
        claims={"c": claim},
        config={"steps": 3},
        seeds=[0, 1, 2],
        per_seed={"a": [1, 2, 3]},
        wall_time_s=1.5,
        mode="quick",
        regime="toy",
        load_start=_claims.load_average(),
    )
    assert set(rec) == _claims.RECORD_KEYS
    assert rec["load"]["end"] is not None and rec["wall_time_s"] == 1.5
    # the commit of the code the process imported, read once (not at the end of the run)
    assert rec["git_commit"] == _claims.RUN_COMMIT
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?|unknown", rec["git_commit"])
    with pytest.raises(ValueError, match="verdict"):
        _claims.record(
            name="d",
            claims={"c": {"verdict": "probably"}},
            config={},
            seeds=[],
            per_seed={},
            wall_time_s=0,
            mode="quick",
            regime="",
        )
    # the table renders a record
    (tmp_path / "demo.json").write_text(json.dumps(rec))
    table = verdicts.render(verdicts.load_records(tmp_path))
    assert "A beats B" in table and "supported" in table


def test_readme_verdict_table_equals_the_records():
    """The README's and docs' verdict tables are generated: they must equal the records."""
    assert verdicts.main(["--check"]) == 0
