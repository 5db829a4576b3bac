"""Shared pytest fixtures for actfx."""

import jax
import pytest


@pytest.fixture
def x64():
    """Run the test body with 64-bit floats enabled."""
    with jax.enable_x64(True):
        yield
