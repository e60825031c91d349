"""Shared test fixtures."""

import jax
import pytest


@pytest.fixture(scope="module")
def fast_compile():
  """Skip XLA's slow optimisation passes: these tests check values, not speed,
  and at test sizes compile time dominates. Opt in per module with
  ``pytestmark = pytest.mark.usefixtures("fast_compile")``."""
  prev = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", prev)
