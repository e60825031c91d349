"""Shared test fixtures."""

import gc
import os

import jax
import pytest

# The CLI's persistent compilation cache (scorehoi_jax/jax_cache.py) stays out of the tests (and the user's home).
os.environ.setdefault("SCOREHOI_CACHE_DIR", "off")


@pytest.fixture(scope="module", autouse=True)
def _release_compiled_programs():
  """Drop every compiled program when a test module ends. XLA:CPU maps each kernel of each executable into
  memory; one process running the whole suite kept thousands of executables and crashed in a late compile
  (SIGSEGV in backend_compile_and_load, twice at ~80 % of the suite, in different tests)."""
  yield
  jax.clear_caches()
  gc.collect()
  if os.environ.get("SCOREHOI_TEST_MAPS"):  # Diagnosis: memory mappings of this process after each module.
    with open("/proc/self/maps") as f, open(os.environ["SCOREHOI_TEST_MAPS"], "a") as out:
      out.write(f"{sum(1 for _ in f)}\n")


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
