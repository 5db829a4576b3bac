"""experiments.nelu_pivotal: the statistics (pivotality ratio, exact-t interval, clipped log
ratio, convergence rule), both verdict rules on synthetic per-seed studies (every branch), and
the record a toy run writes."""

import json
import math

import numpy as np
import pytest

from experiments import _claims
from experiments import nelu_pivotal as E

TRAINS = [0.05, 0.1, 0.2]
TESTS = [0.05, 0.1, 0.2, 0.5]
ORACLES = [0.05, 0.1, 0.2, 0.5]
N = 4


def _study(nelu_param, relu_param, *, nelu_mse_factor=1.0, unconverged=None, jitter=0.01):
    """A fake study dict of ``run_synthetic``'s shape.

    ``nelu_param(s)`` / ``relu_param(s)``: the learned parameter at sigma_train ``s`` (times
    ``1 + jitter * noise`` per seed); the per-sigma ReLU's test MSE is ``s_test**2``, NeLU@0.1's
    is ``nelu_mse_factor`` times it (times a 1 % seed jitter); ``unconverged``: a run key whose
    seed 0 failed the convergence rule.
    """
    rng = np.random.default_rng(0)
    st = {"sigma_trains": TRAINS, "sigma_tests": TESTS, "params": {}, "mse": {}, "converged": {}}
    base = np.asarray(TESTS) ** 2
    for dec in E.DECODERS:
        for act, fn, sig in (("nelu", nelu_param, TRAINS), ("relu", relu_param, ORACLES)):
            for s in sig:
                k = E._curve_key(act, dec, s)
                st["params"][k] = [
                    {"weighted": fn(s) * (1 + jitter * rng.normal())} for _ in range(N)
                ]
                st["converged"][k] = [True] * N
                fac = nelu_mse_factor if act == "nelu" else 1.0
                st["mse"][k] = [
                    (fac * base * (1 + 0.01 * rng.normal(size=base.size))).tolist()
                    for _ in range(N)
                ]
    if unconverged:
        st["converged"][unconverged][0] = False
    return st


def _verdicts(study):
    claims = E.analyse(study, 0.1, images=False)["claims"]
    return {k: c["verdict"] for k, c in claims.items()}


def test_pivotal_and_match_supported():
    v = _verdicts(_study(lambda s: 1.6, lambda s: s))
    assert v == {"pivotal": "supported", "match_free": "supported", "match_pinv": "supported"}


def test_pivotal_not_supported_when_lam_tracks_sigma_like_relu():
    v = _verdicts(_study(lambda s: 10 * s, lambda s: s, nelu_mse_factor=1.5))
    assert v["pivotal"] == "not supported"
    # NeLU 50 % worse than the per-sigma ReLU at every sigma_test
    assert v["match_free"] == v["match_pinv"] == "not supported"


def test_inconclusive_when_the_seeds_disagree():
    v = _verdicts(_study(lambda s: 1.6 * s**0.6, lambda s: s, jitter=0.5))
    assert v["pivotal"] == "inconclusive"


@pytest.mark.parametrize(
    "key, claims",
    [
        ("relu/pinv@0.05", {"pivotal", "match_pinv"}),  # used by both
        ("relu/free@0.5", {"match_free"}),  # an oracle only
        ("nelu/free@0.2", {"pivotal"}),  # a sigma_train that is not the main one
    ],
)
def test_an_unconverged_run_gates_exactly_the_claims_that_use_it(key, claims):
    v = _verdicts(_study(lambda s: 1.6, lambda s: s, unconverged=key))
    for cid, verdict in v.items():
        expected = "inconclusive: not converged" if cid in claims else "supported"
        assert verdict == expected, (cid, verdict)


def test_one_seed_headlines_show_the_unbounded_interval():
    st = _study(lambda s: 1.6, lambda s: s)
    for k in ("params", "mse", "converged"):
        st[k] = {key: v[:1] for key, v in st[k].items()}
    claims = E.analyse(st, 0.1, images=False)["claims"]
    for c in claims.values():
        assert c["verdict"] == "inconclusive"
        assert "[0, inf]" in c["headline"], c["headline"]


def test_match_measure_and_bonferroni():
    out = E.analyse(_study(lambda s: 1.6, lambda s: s, nelu_mse_factor=1.05), 0.1, images=False)
    comps = out["claims"]["match_free"]["comparisons"]
    assert set(comps) == {f"sigma_test={s:g}" for s in ORACLES}
    for c in comps.values():
        # log(1.1 MSE_ReLU / MSE_NeLU) ~ log(1.1 / 1.05)
        assert c["mean"] == pytest.approx(math.log(1.1 / 1.05), abs=0.02)
        assert c["confidence"] == pytest.approx(1 - 0.05 / len(ORACLES))
    piv = out["claims"]["pivotal"]["comparisons"]
    assert set(piv) == set(E.DECODERS)
    assert piv["free"]["confidence"] == pytest.approx(1 - 0.05 / 2)


def test_statistics_and_convergence_rule():
    from scipy import stats

    assert E.pivotality_ratio([1.0, 2.0, 4.0], [1.0, 2.0, 4.0]) == pytest.approx(1.0)
    assert E.pivotality_ratio([2.0, 2.0, 2.0], [0.05, 0.1, 0.2]) == 0.0
    # a negative mean parameter (a ReLU bias can go negative) spreads by |mean|
    assert E.pivotality_ratio([-1.0, -2.0, -4.0], [1.0, 2.0, 4.0]) == pytest.approx(1.0)
    assert E.pivotality_ratio([-1.0, 0.0, 1.0], [1.0, 2.0, 4.0]) == math.inf
    # p = sigma^0.5: spread ratio strictly between 0 and 1
    assert 0.3 < E.pivotality_ratio(np.sqrt([0.05, 0.1, 0.2]), [0.05, 0.1, 0.2]) < 0.7
    # the exact t quantile at every seed count (the old table fell back to 1.96 from 11 seeds)
    for n in (3, 11, 30):
        v = np.arange(n, dtype=float)
        m, lo, hi = E._interval(v)
        half = stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n)
        assert lo == pytest.approx(m - half, rel=1e-12) and hi == pytest.approx(m + half)
    assert E.log_r_ratio(1.0, 0.0) == pytest.approx(math.log(1.0 / E.R_CLIP[0]))
    assert E.log_r_ratio(math.inf, 1.0) == pytest.approx(math.log(E.R_CLIP[1]))
    assert E.convergence([10, 20, 30, 40], [1.0, 0.5, 0.4, 0.39])["converged"] is False
    assert E.convergence([10, 20, 30, 40], [1.0, 0.40, 0.395, 0.39])["converged"] is True


def test_confirm_refuses_a_changed_configuration():
    for argv in (["--confirm", "--seeds", "3"], ["--confirm", "--study", "images"]):
        with pytest.raises(SystemExit):
            E.parse_args(argv)
    a = E.parse_args(["--confirm"])
    assert (a.seeds, a.study, a.syn_steps) == (E.CONFIRM["seeds"], "both", E.CONFIRM["syn_steps"])
    assert E.parse_args([]).study == "images"


def test_experiment_test_crop_is_covered_by_strided_patches():
    """Every pixel of a test image must be covered, or fold_patches leaves it at 0."""
    from actfx._src.data.denoising import extract_patches, fold_patches

    img = np.random.default_rng(0).uniform(size=(160, 149)).astype(np.float32)
    for stride in (1, 2, 3, 5):
        t = E._fit_stride(img, 8, stride)
        back = fold_patches(extract_patches(t, 8, stride), t.shape, 8, stride)
        np.testing.assert_allclose(back, t, atol=1e-6)
        assert t.shape[0] > 160 - stride - 1 and t.shape[1] > 149 - stride - 1


@pytest.mark.slow
def test_experiment_smoke(tmp_path, monkeypatch, capsys):
    """A toy --confirm run end to end: the _claims record with six claims (two studies x
    pivotal/match_free/match_pinv), results.json and the plots under <out>/nelu_pivotal/,
    the VERDICT lines, and the committed verdict file (redirected to tmp_path)."""
    monkeypatch.setattr(E, "CONFIRM", {**E.CONFIRM, "seeds": 2, "syn_steps": 20, "img_steps": 20})
    monkeypatch.setattr(_claims, "VERDICTS_DIR", tmp_path / "verdicts")
    rec = E.main(
        ["--confirm", "--sigma-trains", "0.1", "0.2", "--oracle-sigmas", "0.1", "0.2"]
        + ["--sigma-tests", "0.1", "0.2", "--image-sigma-trains", "25", "50"]
        + ["--image-sigma-tests", "25", "50", "--num-patches", "512", "--test-crop", "32"]
        + ["--train-size", "1024", "--test-size", "256", "--out", str(tmp_path)]
    )
    out = tmp_path / "nelu_pivotal"
    assert {"results.json", "synthetic.png", "images.png"} <= {p.name for p in out.iterdir()}
    assert rec["schema"] == _claims.SCHEMA and rec["mode"] == "confirm" and rec["seeds"] == [0, 1]
    syn = rec["per_seed"]["synthetic"]
    assert set(syn["mse"]) == {
        f"{a}/{d}@{s:g}" for a in ("nelu", "relu") for d in ("free", "pinv") for s in (0.1, 0.2)
    }
    assert len(syn["params"]["nelu/pinv@0.2"]) == 2
    assert all(np.isfinite(v).all() for r in rec["per_seed"]["images"]["psnr"].values() for v in r)
    ids = {
        f"{k}/{c}" for k in ("synthetic", "images") for c in ("pivotal", "match_free", "match_pinv")
    }
    assert set(rec["claims"]) == ids
    for c in rec["claims"].values():
        assert c["verdict"] in _claims.VERDICTS
        # a comparison's seeds are gated by the runs' own convergence flags
        for comp in c["comparisons"].values():
            if not all(comp["converged"]):
                assert c["verdict"] == "inconclusive: not converged"
    saved = json.loads((out / "results.json").read_text())
    assert saved["claims"].keys() == rec["claims"].keys()
    committed = json.loads((tmp_path / "verdicts" / "nelu_pivotal.json").read_text())
    assert (
        committed["claims"]["images/pivotal"]["verdict"]
        == rec["claims"]["images/pivotal"]["verdict"]
    )
    text = capsys.readouterr().out
    assert sum(line.startswith("VERDICT nelu_pivotal/") for line in text.splitlines()) == 6
