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
"""

import os

import jax
import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, deadline=None)
settings.register_profile("random", derandomize=False, database=None, deadline=None)
settings.register_profile("deep", derandomize=False, database=None, deadline=None, max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def x64():
    """Run the test body with 64-bit floats enabled."""
    with jax.enable_x64(True):
        yield
