"""Timing helpers for benchmarks: compiled fwd+bwd of an activation, median wall time,
interleaved rounds, the machine's load, and the printed table of times and ratios."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import jax
import numpy as np


def fwd_bwd(f: Callable) -> Callable:
    """``jit`` of ``(x, g) -> (f(x), vjp(g))``: one forward and one backward pass."""

    def run(x, g):
        y, vjp = jax.vjp(f, x)
        return y, vjp(g)[0]

    return jax.jit(run)


def median_time(
    fn: Callable,
    *args,
    repeats: int = 20,
    warmup: int = 2,
    min_time: float = 0.0,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Median seconds of ``fn(*args)`` (outputs blocked on), after ``warmup`` calls.

    Compilation happens in the warm-up calls and is excluded. With ``min_time`` the
    number of repeats grows until at least that many seconds were measured. ``clock``:
    wall time by default; ``time.process_time`` measures the CPU seconds of all the
    process's threads (less sensitive to other jobs on a shared machine).
    """
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    times: list[float] = []
    while len(times) < repeats or sum(times) < min_time:
        t0 = clock()
        jax.block_until_ready(fn(*args))
        times.append(clock() - t0)
    return float(np.median(times))


def interleaved_medians(
    fns: dict[str, Callable],
    *args,
    rounds: int = 7,
    repeats: int = 5,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Median seconds of each function, measured in interleaved rounds.

    Interleaving (A B C A B C ...) makes the ratios robust to slow drifts in machine load,
    which matter more than the absolute times on a shared machine.
    """
    for fn in fns.values():
        jax.block_until_ready(fn(*args))
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(median_time(fn, *args, repeats=repeats, warmup=0, clock=clock))
    return {k: float(np.median(v)) for k, v in samples.items()}


def load_average() -> str:
    """``"load average a / b / c (n CPUs)"``: the 1/5/15-minute load, for the tables."""
    try:
        a, b, c = os.getloadavg()
    except OSError:  # pragma: no cover - not on every platform
        return "load average n/a"
    return f"load average {a:.2f} / {b:.2f} / {c:.2f} ({os.cpu_count()} CPUs)"


def print_times(header: str, times: dict[str, float]) -> None:
    """Print median times (ms) under ``header``, one indented row per function."""
    print(header)
    width = max(map(len, times))
    for name, sec in times.items():
        print(f"  {name:<{width}s} {sec * 1e3:9.2f} ms")


def print_times_and_ratios(
    header: str, times: dict[str, float], ratios: dict[str, float], targets: str
) -> None:
    """Print a benchmark's median times (ms) under ``header``, then its ratios and targets."""
    print_times(header, times)
    print(f"ratios ({targets})")
    width = max(map(len, ratios))
    for name, r in ratios.items():
        print(f"  {name:<{width}s} {r:6.2f}x")


def report(what: str, times: dict[str, float], ratios: dict[str, float], targets: str) -> dict:
    """Print ``times`` and ``ratios`` (:func:`print_times_and_ratios`) under the header
    ``"<what>, backend <b> (<device kind>), median of interleaved rounds; <load>"``, and
    return ``{"times_s": times, "ratios": ratios}``, what the benchmarks' ``main`` returns."""
    header = (
        f"{what}, backend {jax.default_backend()} ({jax.devices()[0].device_kind}), "
        f"median of interleaved rounds; {load_average()}"
    )
    print_times_and_ratios(header, times, ratios, targets)
    return {"times_s": times, "ratios": ratios}
