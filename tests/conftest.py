"""Shared test fixtures."""

import os

import jax
import pytest

# The CLI's persistent compilation cache (scorehoi_jax/jax_cache.py) stays out of the tests (and the user's home).
os.environ.setdefault("SCOREHOI_CACHE_DIR", "off")


@pytest.fixture(scope="module")
def fast_compile():
  """Skip XLA's slow optimisation passes: these tests check values, not speed,
  and at test sizes compile time dominates. Opt in per module with
  ``pytestmark = pytest.mark.usefixtures("fast_compile")``."""
  prev = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", prev)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  """A tiny random model folder (tests/tiny_model.py), one per test module."""
  from tiny_model import write_tiny_model
  return write_tiny_model(str(tmp_path_factory.mktemp("model") / "tiny"))
