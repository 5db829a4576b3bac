"""Shared pytest fixtures and hypothesis profiles for actfx.

Hypothesis profiles (``HYPOTHESIS_PROFILE=<name> pytest ...``):

* ``ci`` (default): ``derandomize=True`` (each property draws the same examples on every
  run and machine), no example database (no replay of examples stored by earlier runs),
  ``deadline=None`` (first calls compile). Tests keep their own small ``max_examples``.
* ``random``: the same but randomized, for shaking out new cases:
  ``HYPOTHESIS_PROFILE=random pytest --hypothesis-seed=3 tests/test_robustness_core.py``
  (with ``derandomize=True`` hypothesis ignores ``--hypothesis-seed``).
* ``deep``: randomized, ``max_examples=300`` for properties that do not set their own.
  The deep ``@pytest.mark.slow`` properties (``make test-all``) are randomized under any
  profile and set their own large ``max_examples``.

Scheduling (``make test``: ``pytest -n auto --dist loadfile --no-loadscope-reorder``): each
test file runs whole on one xdist worker, so its module-scoped fixtures and the XLA programs
its tests share compile once (with ``--dist load`` both workers compiled most of them:
~15 % more CPU). The files below, the most expensive ones, are collected first (longest
first: the last files handed out are short, so the two workers finish together); the rest
keep their order.
"""

import os

# XLA compiles dominate this suite's CPU time (small arrays, hundreds of programs): the tests
# ask JAX to skip most backend optimisation work (``jax_disable_most_optimizations``: XLA's
# CPU code generation at -O0 without LLVM's expensive passes; no fast-math either way, the
# results are the same). Measured with -n 0: test_topk 127 -> 78 CPU s; with -O0 alone the
# MCMC tests of test_bayes_proximal_hmc 44 -> 31 s (their run time did not grow). Set in the
# environment so that the tests' subprocesses inherit it (the multi-device ones replace
# XLA_FLAGS, not this). ``ACTFX_TEST_FULL_OPT=1`` keeps JAX's default.
_FULL_OPT = os.environ.get("ACTFX_TEST_FULL_OPT") == "1"
if not _FULL_OPT:
    os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

# XLA's legacy CPU fusion emitters compile about twice as fast as the default MLIR ones
# (backend compile of a LayerAct/NeLU grad+Hessian mix: 2.61 -> 1.15 s; test_ditac.py 123 ->
# 61 CPU s). Compiles are two thirds of this suite's CPU time (a fresh-clone run: 663 of
# 1044 in-process CPU s). Every test passes under both emitters except one bitwise property
# that depends on the emitter (DiTAC at theta = 0 equals the same program's GELU, 1 ulp off
# at a few points, test_ditac.py): it is checked bitwise under ``ACTFX_TEST_FULL_OPT=1``
# (``make test-all``, XLA's default emitters) and to 2 ulp here. Appended to
# XLA_FLAGS so the tests' subprocesses inherit it (the multi-device ones replace XLA_FLAGS).
LEGACY_EMITTERS = "--xla_cpu_use_fusion_emitters=false"
if not _FULL_OPT:
    _flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_use_fusion_emitters" not in _flags:
        os.environ["XLA_FLAGS"] = f"{_flags} {LEGACY_EMITTERS}".strip()

# One XLA compilation cache for the whole session, shared by every process of the run: the
# xdist workers and the multi-device subprocesses inherit this environment. Both workers
# compile many identical programs (the same small ops, the same NumPyro model pieces); with
# the cache the second one reads the first one's executable. Measured on 4 Bayes test files
# with -n 2, starting from an empty cache: 124.8 -> 110.2 CPU s. The cache starts empty and
# is deleted at the end (a run measures what a clean clone pays); set
# ACTFX_TEST_JAX_CACHE=<dir> to keep one across runs, =0 to run without. No size limit: a
# limit turns on JAX's file lock and eviction scan (6 of the 14.6 CPU s saved above went
# to it). Unlocked, a reader that meets a half-written entry fails zlib's length and
# checksum test, warns and compiles (jax's _cache_read catches it): never a wrong program.
_OWN_JAX_CACHE = None
if os.environ.get("ACTFX_TEST_JAX_CACHE") != "0":
    if not os.environ.get("ACTFX_TEST_JAX_CACHE"):
        import tempfile

        _OWN_JAX_CACHE = tempfile.mkdtemp(prefix="actfx-test-xla-cache-")
        os.environ["ACTFX_TEST_JAX_CACHE"] = _OWN_JAX_CACHE
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ["ACTFX_TEST_JAX_CACHE"]
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import jax
import pytest
from hypothesis import settings

if not _FULL_OPT:
    jax.config.update("jax_disable_most_optimizations", True)

settings.register_profile("ci", derandomize=True, database=None, deadline=None)
settings.register_profile("random", derandomize=False, database=None, deadline=None)
settings.register_profile("deep", derandomize=False, database=None, deadline=None, max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# Measured CPU seconds (-n 0 and the --durations of full runs, round 3), most expensive
# first; stale entries only cost balance, never correctness. A big file missing here is
# handed out last and one worker runs it alone at the end (test_bayes_tempering.py, ~150 s,
# was).
EXPENSIVE_FIRST = [
    "tests/test_layeract_native.py",
    "tests/test_topk.py",
    "tests/test_cpab_transform.py",
    "tests/test_bayes_tempering.py",
    "tests/test_ditac.py",
    "tests/test_layeract.py",
    "tests/test_bayes_notebook.py",
    "tests/test_docs.py",
    "tests/test_corruptions.py",
    "tests/test_pivotal_ae.py",
    "tests/test_bayes_model.py",
    "tests/test_bayes_inference.py",
    "tests/test_nelu.py",
    "tests/test_robustness_core.py",
    "tests/test_export_lowering.py",
    "tests/test_train_reliability.py",
    "tests/test_nn_activations.py",
    "tests/test_bayes_edges.py",
    "tests/test_sharding_matrix.py",
    "tests/test_train_sharding.py",
    "tests/test_readme_scale_out.py",
    "tests/test_bayes_proximal_hmc.py",
    "actfx/_src/bayes/inference.py",
    "tests/test_train_ditac.py",
    "tests/test_notebooks.py",
    "tests/test_train_api.py",
    "tests/test_models.py",
]


def pytest_unconfigure(config):
    """The process that made the session's compilation cache deletes it (the controller
    with xdist, the only process without)."""
    if _OWN_JAX_CACHE is not None and not hasattr(config, "workerinput"):
        import shutil

        shutil.rmtree(_OWN_JAX_CACHE, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """Expensive files first (a stable sort: the order inside each file is kept)."""
    rank = {path: i for i, path in enumerate(EXPENSIVE_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


@pytest.fixture
def x64():
    """Run the test body with 64-bit floats enabled."""
    with jax.enable_x64(True):
        yield
