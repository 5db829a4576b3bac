"""The README's "Claims: measured verdicts" table and the docs' verdict page, generated.

Every row comes from a committed record ``experiments/verdicts/<name>.json`` written by
``python -m experiments.<name> --confirm`` (schema: :mod:`experiments._claims`), or, until the
powered run has been made, by the quick default (marked as such in the row); nothing in the
table is typed by hand. ``python -m experiments.verdicts`` rewrites the block between the
``<!-- verdicts:start -->`` and ``<!-- verdicts:end -->`` markers of README.md and
docs/experiments.md; ``--check`` exits 1 when either file differs from the records (a default
test runs it).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERDICTS_DIR = ROOT / "experiments" / "verdicts"
TARGETS = (ROOT / "README.md", ROOT / "docs" / "experiments.md")
START, END = "<!-- verdicts:start -->", "<!-- verdicts:end -->"


def load_records(directory: Path = VERDICTS_DIR) -> list[dict]:
    """Every record under ``directory``, sorted by name."""
    recs = []
    for p in sorted(directory.glob("*.json")):
        with open(p) as f:
            rec = json.load(f)
        if "claims" not in rec or "name" not in rec:
            raise ValueError(f"{p}: not a claim record (no 'name'/'claims')")
        recs.append(rec)
    return recs


def _num(x) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "∞"
    return f"{x:+.3g}"


def _interval_text(claim: dict) -> str:
    parts = []
    for setting, c in claim.get("comparisons", {}).items():
        low = c.get("low")
        high = c.get("high")
        parts.append(
            f"{setting}: {_num(c.get('mean'))} [{_num(low)}, {_num(high)}] ({c.get('verdict')})"
        )
    return "; ".join(parts)


def render(records: list[dict]) -> str:
    """The Markdown block (table + per-experiment regime notes) for ``records``."""
    if not records:
        return "_No committed verdict records yet (`experiments/verdicts/` is empty)._"
    lines = [
        "| claim | command | verdict | measure, smallest effect "
        "| per-setting mean [interval] | seeds | wall time |",
        "|---|---|---|---|---|---|---|",
    ]
    notes = []
    for rec in records:
        name = rec["name"]
        seeds = len(rec.get("seeds", []))
        wall = rec.get("wall_time_s")
        wall_s = f"{wall / 60:.0f} min" if isinstance(wall, (int, float)) else "?"
        for cid, c in rec["claims"].items():
            rule = c.get("rule", {})
            head = c.get("headline", "")
            verdict = f"**{c['verdict']}**" + (f" — {head}" if head else "")
            mode = rec.get("mode", "?")
            flag = " --confirm" if mode == "confirm" else ""
            if mode != "confirm":
                verdict += f" _({mode} run, not the powered --confirm)_"
            lines.append(
                f"| {rule.get('claim', cid)} (`{cid}`) | `python -m experiments.{name}{flag}` | "
                f"{verdict} | {rule.get('measure', '')}, δ = {_num(rule.get('min_effect'))} | "
                f"{_interval_text(c)} | {seeds} | {wall_s} |"
            )
        commit = str(rec.get("git_commit", "?"))[:12]
        notes.append(
            f"- **{name}** ({rec.get('mode', '?')}, commit `{commit}`): {rec.get('regime', '')}"
        )
    return "\n".join(lines) + "\n\nRegime tested, per experiment:\n\n" + "\n".join(notes)


def _replace_block(text: str, block: str, path: Path) -> str:
    if START not in text or END not in text:
        raise ValueError(f"{path}: missing the {START} / {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block}\n{END}{tail}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if README/docs differ from the records"
    )
    args = parser.parse_args(argv)
    block = render(load_records())
    stale = []
    for path in TARGETS:
        text = path.read_text()
        new = _replace_block(text, block, path)
        if new != text:
            stale.append(path)
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print(
            "out of date with experiments/verdicts/*.json: "
            + ", ".join(str(p.relative_to(ROOT)) for p in stale)
            + " (run `python -m experiments.verdicts`)",
            file=sys.stderr,
        )
        return 1
    print("up to date" if not stale else "rewrote " + ", ".join(str(p) for p in stale))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
