r"""The claim harness: one way for every claim experiment to turn paired runs into a verdict.

A claim experiment is a test that can fail. Before the run it declares a :class:`Rule`: the
measure (signed so that a positive value is the paper's direction), the smallest effect of
interest :math:`\delta`, the interval (Student-t with the exact quantile, or a percentile
bootstrap where the per-seed values are skewed, e.g. log-ratios of MSE), the confidence, the
multiplicity correction when one claim is tested at several settings (k values, noise
levels), and how the settings combine ("any" or "all"). After the run, :func:`decide` turns
the per-seed values of each comparison into an interval and a verdict:

* **supported** — the interval lies above 0 *and* the mean paired effect is at least
  :math:`\delta` (an interval that excludes 0 but lies wholly below :math:`\delta` is a real
  but negligible effect: *not supported*);
* **not supported** — the whole interval lies below :math:`\delta` (the effect, if any, is
  smaller than the smallest effect of interest, or has the other sign);
* **inconclusive** — anything else (the interval straddles :math:`\delta`, or 0 and
  :math:`\delta`): more seeds would decide it;
* **inconclusive: not converged** — a run failed its convergence gate (declared with the
  rule); the verdict is never computed from unconverged runs.

With several comparisons (``correction="bonferroni"``) each interval is at confidence
:math:`1 - (1 - c)/m`; ``combine="any"`` calls the claim supported when at least one
setting is supported and not supported when every setting is; ``combine="all"`` needs every
setting supported and is refuted by any not supported one. A setting whose runs did not
converge decides nothing either way: it cannot undo a supported setting under ``"any"`` (that
interval already carries the correction for all ``m`` settings) nor a not supported one under
``"all"``; the claim is "inconclusive: not converged" only when the converged settings leave
the verdict open (changed in round 3, before the ``bayes_sparse --confirm`` run: until then
one unconverged setting blocked every verdict; no other committed record changed).

:func:`seeds_for_power` gives the seed count that reaches a target power for a guessed effect
and paired SD (written into each experiment's docstring as the ``--confirm`` size), and
:func:`record` builds the one results schema every experiment writes (claim, rule, config,
seeds, per-seed values, intervals, verdict, git commit, machine, load, wall time).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from actfx.metrics import paired_difference

VERDICTS = ("supported", "not supported", "inconclusive", "inconclusive: not converged")
SCHEMA = "actfx.claim/1"
# the keys of every record :func:`record` writes (experiments may add more)
RECORD_KEYS = frozenset(
    {"schema", "name", "mode", "regime", "claims", "config", "seeds", "per_seed"}
    | {"git_commit", "machine", "load", "wall_time_s", "date"}
)


@dataclasses.dataclass(frozen=True)
class Rule:
    """A verdict rule, declared before the run.

    Attributes:
      claim: the claim in one sentence, as the paper makes it.
      measure: what one per-seed value is, with its unit and sign (positive = the claim's
        direction), e.g. ``"noise accuracy, LA-SiLU - SiLU (pp)"``.
      min_effect: the smallest effect of interest, in the measure's unit (> 0).
      interval: ``"t"`` (Student-t over seeds, exact quantile) or ``"bootstrap"``
        (percentile bootstrap of the mean; use it for skewed values such as log-ratios).
      confidence: the family-wise coverage, e.g. 0.95.
      correction: ``"none"`` or ``"bonferroni"`` (over the comparisons of one claim).
      combine: ``"any"`` or ``"all"`` settings must be supported (see the module docstring).
      convergence: the convergence gate in words (what makes a run count as converged).
    """

    claim: str
    measure: str
    min_effect: float
    interval: Literal["t", "bootstrap"] = "t"
    confidence: float = 0.95
    correction: Literal["none", "bonferroni"] = "none"
    combine: Literal["any", "all"] = "any"
    convergence: str = ""

    def __post_init__(self):
        if not (isinstance(self.min_effect, (int, float)) and self.min_effect > 0):
            raise ValueError(f"min_effect must be a positive number, got {self.min_effect!r}")
        if self.interval not in ("t", "bootstrap"):
            raise ValueError(f"interval must be 't' or 'bootstrap', got {self.interval!r}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence!r}")
        if self.correction not in ("none", "bonferroni"):
            raise ValueError(f"correction must be 'none' or 'bonferroni', got {self.correction!r}")
        if self.combine not in ("any", "all"):
            raise ValueError(f"combine must be 'any' or 'all', got {self.combine!r}")

    def per_comparison_confidence(self, m: int) -> float:
        """The confidence of each of ``m`` intervals (Bonferroni: ``1 - (1 - c)/m``)."""
        if self.correction == "bonferroni" and m > 1:
            return 1.0 - (1.0 - self.confidence) / m
        return self.confidence

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _classify(low: float, mean: float, high: float, min_effect: float) -> str:
    if low > 0 and mean >= min_effect:
        return "supported"
    if high < min_effect:
        return "not supported"
    return "inconclusive"


def compare(
    effects: Sequence[float] | np.ndarray,
    rule: Rule,
    *,
    m: int = 1,
    converged: Sequence[bool] | np.ndarray | None = None,
    seed: int = 0,
) -> dict:
    """One comparison: the interval of the mean per-seed effect and its verdict.

    Args:
      effects: ``(n,)`` per-seed paired effects, signed so that positive is the claim's
        direction (e.g. ``treatment - control`` or ``log(control_mse / treatment_mse)``).
      rule: the declared :class:`Rule`.
      m: the number of comparisons this claim makes (for the correction).
      converged: ``(n,)`` booleans, one per seed (both runs of the pair converged);
        ``None`` means every run passed the gate.
      seed: the bootstrap's seed.

    Returns:
      ``{"mean", "low", "high", "std", "n", "confidence", "interval", "verdict",
      "effects", "converged"}``.

    Example:
      >>> r = Rule(claim="A beats B", measure="acc A - B (pp)", min_effect=0.5)
      >>> compare([1.0, 1.2, 0.9, 1.1], r)["verdict"]
      'supported'
      >>> compare([0.1, 0.12, 0.09, 0.11], r)["verdict"]
      'not supported'
      >>> compare([1.0, -1.0, 2.0, -0.5], r)["verdict"]
      'inconclusive'
      >>> compare([1.0, 1.2, 0.9, 1.1], r, converged=[1, 1, 0, 1])["verdict"]
      'inconclusive: not converged'
    """
    e = np.asarray(effects, dtype=float).reshape(-1)
    if e.size == 0:
        raise ValueError("effects must hold at least one per-seed value")
    if not np.all(np.isfinite(e)):
        raise ValueError(f"effects must be finite, got {e.tolist()}")
    if not isinstance(m, int) or m < 1:
        raise ValueError(f"m must be a positive int, got {m!r}")
    conv = np.ones(e.size, bool) if converged is None else np.asarray(converged, bool).reshape(-1)
    if conv.shape != e.shape:
        raise ValueError(f"converged must have one entry per seed ({e.size}), got {conv.shape}")
    conf = rule.per_comparison_confidence(m)
    if e.size >= 2:
        d = paired_difference(e, np.zeros_like(e), confidence=conf, method=rule.interval, seed=seed)
        low, high, std = d.low, d.high, d.std
    else:
        low, high, std = -math.inf, math.inf, 0.0
    mean = float(e.mean())
    verdict = (
        "inconclusive: not converged"
        if not conv.all()
        else _classify(low, mean, high, rule.min_effect)
    )
    return {
        "mean": mean,
        "low": float(low),
        "high": float(high),
        "std": float(std),
        "n": int(e.size),
        "confidence": conf,
        "interval": rule.interval,
        "verdict": verdict,
        "effects": e.tolist(),
        "converged": conv.tolist(),
    }


def combine(verdicts: Sequence[str], how: Literal["any", "all"]) -> str:
    """The claim's verdict from its comparisons' verdicts (see the module docstring).

    Example:
      >>> combine(["supported", "inconclusive"], "any")
      'supported'
      >>> combine(["supported", "not supported"], "all")
      'not supported'
      >>> combine(["not supported", "inconclusive: not converged"], "any")
      'inconclusive: not converged'
      >>> combine(["supported", "inconclusive: not converged"], "any")
      'supported'
    """
    vs = list(verdicts)
    if not vs:
        raise ValueError("verdicts must not be empty")
    bad = [v for v in vs if v not in VERDICTS]
    if bad:
        raise ValueError(f"unknown verdicts {bad}; expected one of {VERDICTS}")
    if how not in ("any", "all"):
        raise ValueError(f"how must be 'any' or 'all', got {how!r}")
    open_ = "inconclusive: not converged" if "inconclusive: not converged" in vs else "inconclusive"
    if how == "any":
        if "supported" in vs:
            return "supported"
        if all(v == "not supported" for v in vs):
            return "not supported"
        return open_
    if "not supported" in vs:
        return "not supported"
    if all(v == "supported" for v in vs):
        return "supported"
    return open_


def decide(
    comparisons: Mapping[str, Sequence[float] | np.ndarray],
    rule: Rule,
    *,
    converged: Mapping[str, Sequence[bool]] | None = None,
) -> dict:
    """Every comparison of one claim and the claim's verdict.

    Args:
      comparisons: ``{setting: per-seed effects}`` (e.g. one entry per k or per σ).
      rule: the declared :class:`Rule` (its correction counts ``len(comparisons)``).
      converged: ``{setting: per-seed booleans}``; missing settings count as converged.

    Returns:
      ``{"verdict", "comparisons": {setting: compare(...)}, "rule": rule.to_dict()}``.

    Example:
      >>> r = Rule(claim="c", measure="m", min_effect=0.1, correction="bonferroni")
      >>> out = decide({"k=0.5": [0.3, 0.35, 0.32], "k=0.1": [0.0, 0.01, -0.01]}, r)
      >>> out["verdict"], out["comparisons"]["k=0.1"]["verdict"]
      ('supported', 'not supported')
    """
    if not comparisons:
        raise ValueError("comparisons must not be empty")
    m = len(comparisons)
    conv = dict(converged or {})
    unknown = set(conv) - set(comparisons)
    if unknown:
        raise ValueError(f"converged names settings that are not compared: {sorted(unknown)}")
    out = {
        name: compare(vals, rule, m=m, converged=conv.get(name))
        for name, vals in comparisons.items()
    }
    return {
        "verdict": combine([c["verdict"] for c in out.values()], rule.combine),
        "comparisons": out,
        "rule": rule.to_dict(),
    }


def seeds_for_power(
    effect: float,
    sd: float,
    rule: Rule,
    *,
    m: int = 1,
    power: float = 0.8,
    max_seeds: int = 200,
) -> int:
    r"""The smallest seed count whose t-interval excludes 0 with probability ``power``.

    For a true mean paired effect ``effect`` and per-seed SD ``sd``, the interval's lower end
    exceeds 0 with probability :math:`\approx \Phi(\text{effect}\sqrt n/\text{sd} - t_{1-a/2,
    n-1})` (normal approximation of the noncentral t), with ``a`` the per-comparison error
    after the rule's correction over ``m`` comparisons.

    Example:
      >>> r = Rule(claim="c", measure="m", min_effect=0.5)
      >>> seeds_for_power(0.8, 0.48, r)  # LayerAct's HardSiLU pair (audit: 6-8 seeds)
      5
    """
    from scipy import stats

    if not (effect > 0 and sd > 0):
        raise ValueError(f"effect and sd must be positive, got {effect!r}, {sd!r}")
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power!r}")
    alpha = 1.0 - rule.per_comparison_confidence(m)
    for n in range(2, max_seeds + 1):
        t = float(stats.t.ppf(1 - alpha / 2, df=n - 1))
        if float(stats.norm.cdf(effect * math.sqrt(n) / sd - t)) >= power:
            return n
    return max_seeds


def git_commit() -> str:
    """The checkout's commit (with ``+dirty`` if the tree has changes), or ``"unknown"``."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha or "unknown") + ("+dirty" if dirty else "")


#: The commit of the code this process imported (read once, at import): a long run records
#: the code it ran, not a commit made in the checkout while it ran.
RUN_COMMIT = git_commit()


def machine() -> dict:
    """What ran it: platform, processor, core count, JAX version and devices."""
    import jax

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "devices": [str(d.device_kind) for d in jax.devices()],
    }


def load_average() -> list[float] | None:
    """The 1/5/15-minute load averages, or ``None`` where the OS has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def record(
    *,
    name: str,
    claims: Mapping[str, Mapping[str, Any]],
    config: Mapping[str, Any],
    seeds: Sequence[int],
    per_seed: Mapping[str, Any],
    wall_time_s: float,
    mode: str,
    regime: str,
    load_start: list[float] | None = None,
) -> dict:
    """The one results record every claim experiment writes.

    Args:
      name: the experiment (``"layeract_robustness"``).
      claims: ``{claim id: decide(...) output, optionally with a "headline" string}``.
      config: the experiment's configuration (JSON-able).
      seeds: the paired seeds.
      per_seed: raw per-seed values by arm/metric (JSON-able).
      wall_time_s: the run's wall time.
      mode: ``"quick"``, ``"confirm"`` or ``"full"``.
      regime: the regime tested and how it differs from the paper's (scale, data, model).
      load_start: the load average when the run started (:func:`load_average`).
    """
    for cid, c in claims.items():
        if c.get("verdict") not in VERDICTS:
            raise ValueError(f"claim {cid!r} has no valid verdict: {c.get('verdict')!r}")
    return {
        "schema": SCHEMA,
        "name": name,
        "mode": mode,
        "regime": regime,
        "claims": {k: dict(v) for k, v in claims.items()},
        "config": dict(config),
        "seeds": [int(s) for s in seeds],
        "per_seed": dict(per_seed),
        "git_commit": RUN_COMMIT,
        "machine": machine(),
        "load": {"start": load_start, "end": load_average()},
        "wall_time_s": float(wall_time_s),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def verdict_line(name: str, claim_id: str, claim: Mapping[str, Any]) -> str:
    """``VERDICT <name>/<claim>: <verdict> — <headline>`` (one line, printed by each run)."""
    head = claim.get("headline", "")
    return f"VERDICT {name}/{claim_id}: {claim['verdict']}" + (f" — {head}" if head else "")


def add_common_args(parser) -> None:
    """``--seeds``, ``--confirm``, ``--out`` with one meaning in every experiment.

    ``--out`` is the results *root*: the run writes ``<out>/<name>/``. ``--confirm`` runs the
    powered configuration of the experiment's docstring and also writes
    ``experiments/verdicts/<name>.json``.
    """
    parser.add_argument(
        "--out", default="results", help="results root: writes <out>/<name>/ (default: results)"
    )
    parser.add_argument(
        "--confirm",
        action="store_true",
        help="the powered run (seed count from the docstring's power estimate); writes "
        "experiments/verdicts/<name>.json",
    )


VERDICTS_DIR = Path(__file__).resolve().parent / "verdicts"


def write_verdict_record(name: str, rec: Mapping[str, Any]) -> Path:
    """Write a ``--confirm`` record to ``experiments/verdicts/<name>.json``."""
    from experiments.reporting import save_json

    VERDICTS_DIR.mkdir(exist_ok=True)
    return save_json(VERDICTS_DIR / f"{name}.json", dict(rec))
