"""Warm start of `scorehoi reconstruct`: traced programs and parameter shapes kept on disk (export_cache.py).

A Reconstructor with a ``program_cache`` folder runs its reconstruct function
through a jax.export program stored there; a second Reconstructor (a new
process, in effect) loads it instead of tracing. Traces are counted by
wrapping ``refine`` (looked up when the Reconstructor builds its function):
each Python trace of the reconstruct function calls it once.
"""

import dataclasses
import glob
import os
import shutil

import jax
import numpy as np
import pytest

from scorehoi_jax import demo, export_cache, jax_cache
from scorehoi_jax import reconstruct as reconstruct_lib
from scorehoi_jax.config import load_config
from scorehoi_jax.data import pipeline
from scorehoi_jax.model_store import ModelError, load_model
from scorehoi_jax.objects import stack_geometries
from scorehoi_jax.reconstruct import Reconstructor
from scorehoi_jax.reconstruct_io import load_frame, resolve_object

pytestmark = pytest.mark.usefixtures("fast_compile")


@pytest.fixture(scope="module")
def problem(tiny):
  """(model, refine config, batch of 1 and of 2 examples, their object geometries)."""
  model, cfg = load_model(tiny), load_config("refine_paper:runlocal")
  size = int(model.config.data.image_size)
  examples, geoms = [], []
  for frame in demo.example_frames()[:2]:
    obj = resolve_object(frame.object, frame.object_seed)
    examples.append(load_frame(frame, size, obj.template)[0])
    geoms.append(obj.geometry(host=True))
  return (model, cfg, pipeline.stack(examples[:1]), stack_geometries(geoms[:1]), pipeline.stack(examples),
          stack_geometries(geoms))


@pytest.fixture
def traces(monkeypatch):
  """A list that grows by one per Python trace of the reconstruct function."""
  calls, refine = [], reconstruct_lib.refine

  def counted(*args, **kwargs):
    calls.append(1)
    return refine(*args, **kwargs)

  monkeypatch.setattr(reconstruct_lib, "refine", counted)
  return calls


def _leaves(stages):
  return [np.asarray(x) for x in jax.tree.leaves(stages)]


def _assert_close(a, b, atol=1e-5):
  la, lb = _leaves(a), _leaves(b)
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    np.testing.assert_allclose(x, y, atol=atol, rtol=1e-5)


def _programs(folder):
  return sorted(glob.glob(os.path.join(folder, "reconstruct-*.jaxexport")))


@pytest.fixture(scope="module")
def filled(problem, tmp_path_factory):
  """A cache folder filled by one Reconstructor call on the batch of 1, and that call's outputs."""
  model, cfg, batch, geom, _, _ = problem
  folder = str(tmp_path_factory.mktemp("filled"))
  out = Reconstructor(model, cfg, program_cache=folder)(batch, geom)
  assert len(_programs(folder)) == 1 and len(glob.glob(os.path.join(folder, "variables-*.json"))) == 1
  return folder, out


def _copy(folder, tmp_path):
  dst = str(tmp_path / "cache")
  shutil.copytree(folder, dst)
  return dst


def test_a_second_reconstructor_loads_the_stored_program_instead_of_tracing(problem, filled, traces, tmp_path,
                                                                            monkeypatch):
  model, cfg, batch, geom, _, _ = problem
  folder = _copy(filled[0], tmp_path)
  # The stored parameter shapes replace eval_shape of the networks' init.
  monkeypatch.setattr(reconstruct_lib, "abstract_variables", lambda *a: pytest.fail("eval_shape ran again"))
  rec = Reconstructor(model, cfg, program_cache=folder)
  out = rec(batch, geom)
  assert not traces, "the stored program was traced again"
  assert rec.program.last == "disk"
  _assert_close(filled[1], out, atol=0)  # The very same program.
  # The traced path (plain jit, no cache) gives the same results.
  plain = rec._fn(*rec.arguments(rec.inputs(batch), geom))
  assert len(traces) == 1
  _assert_close(out, plain)


def test_guidance_weights_are_arguments_of_the_stored_program(problem, filled, traces, tmp_path):
  """A sweep over weight values shares one program: no trace, no new file, different results."""
  model, cfg, batch, geom, _, _ = problem
  folder = _copy(filled[0], tmp_path)
  rec = Reconstructor(model, cfg, program_cache=folder)
  other = rec(batch, geom, dataclasses.replace(rec.weights, rho=np.float32(4.0) * rec.weights.rho))
  assert not traces and len(_programs(folder)) == 1 and rec.program.last == "disk"
  assert not np.allclose(np.asarray(filled[1].x_refined), np.asarray(other.x_refined))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_corrupt_entry_is_not_loaded(problem, filled, tmp_path, damage):
  """Reading a damaged file gives no program (the caller traces), never an error."""
  model, cfg, batch, geom, _, _ = problem
  folder = _copy(filled[0], tmp_path)
  rec = Reconstructor(model, cfg, program_cache=folder)
  leaves = jax.tree.leaves(rec.arguments(rec.inputs(batch), geom))
  (path,) = _programs(folder)
  key = os.path.basename(path)[len("reconstruct-"):-len(".jaxexport")]
  assert rec.program._load(key, len(leaves)) is not None  # pylint: disable=protected-access
  assert rec.program._load(key, len(leaves) + 1) is None  # pylint: disable=protected-access
  data = open(path, "rb").read()
  with open(path, "wb") as f:
    f.write({"garbage": b"not a program" * 100, "truncated": data[:len(data) // 2], "empty": b""}[damage])
  assert rec.program._load(key, len(leaves)) is None  # pylint: disable=protected-access


def test_a_corrupt_entry_is_traced_again_and_rewritten(problem, filled, traces, tmp_path):
  model, cfg, batch, geom, _, _ = problem
  folder = _copy(filled[0], tmp_path)
  (path,) = _programs(folder)
  data = open(path, "rb").read()
  with open(path, "wb") as f:
    f.write(data[:len(data) // 2])
  for name in glob.glob(os.path.join(folder, "variables-*.json")):
    with open(name, "w") as f:
      f.write("{broken")
  rec = Reconstructor(model, cfg, program_cache=folder)
  out = rec(batch, geom)
  assert len(traces) == 1 and rec.program.last == "traced"
  _assert_close(filled[1], out, atol=0)
  leaves = jax.tree.leaves(rec.arguments(rec.inputs(batch), geom))
  key = os.path.basename(path)[len("reconstruct-"):-len(".jaxexport")]
  assert rec.program._load(key, len(leaves)) is not None  # Rewritten.  # pylint: disable=protected-access
  assert len(open(glob.glob(os.path.join(folder, "variables-*.json"))[0]).read()) > 100


def test_other_shapes_or_settings_do_not_reuse_an_entry(problem, filled, traces, tmp_path):
  model, cfg, batch, geom, batch2, geom2 = problem
  folder = _copy(filled[0], tmp_path)
  one = filled[1]
  rec = Reconstructor(model, cfg, program_cache=folder)
  two = rec(batch2, geom2)  # Batch 2: a new key.
  assert len(traces) == 1 and len(_programs(folder)) == 2 and rec.program.last == "traced"
  # Rows are independent: the first example's result is the same in either batch (as test_reconstruct checks).
  np.testing.assert_allclose(np.asarray(two.x_refined)[:1], np.asarray(one.x_refined), atol=2e-3)
  # Other settings, another image condition or another package source: other keys.
  fewer = dataclasses.replace(rec.settings, num_rounds=rec.settings.num_rounds + 1)
  assert Reconstructor(model, cfg, settings=fewer, program_cache=folder).program.key != rec.program.key
  leaves, treedef = jax.tree.flatten((batch,))
  key = export_cache.entry_key("reconstruct", rec.program.key, treedef, leaves)
  assert export_cache.entry_key("reconstruct", {**rec.program.key, "image_cond": "tokens"}, treedef, leaves) != key
  export_cache.package_fingerprint.cache_clear()
  try:
    with pytest.MonkeyPatch.context() as m:
      m.setattr(export_cache, "package_fingerprint", lambda: "an edited package")
      assert export_cache.entry_key("reconstruct", rec.program.key, treedef, leaves) != key
  finally:
    export_cache.package_fingerprint.cache_clear()


def test_a_checkpoint_not_matching_the_stored_shapes_is_still_an_error(problem, tmp_path):
  model, cfg, *_ = problem
  Reconstructor(model, cfg, program_cache=str(tmp_path))  # Stores the shapes.
  variables = jax.tree.map(lambda x: x, model.variables)
  variables["denoiser"]["params"] = dict(variables["denoiser"]["params"])
  variables["denoiser"]["params"].pop(sorted(variables["denoiser"]["params"])[0])
  with pytest.raises(ModelError, match="lack"):
    Reconstructor(dataclasses.replace(model, variables=variables), cfg, program_cache=str(tmp_path))


def test_the_cli_cache_folder_holds_the_programs(tmp_path, monkeypatch):
  monkeypatch.setattr(jax_cache, "_enabled", None)
  assert jax_cache.program_dir() is None  # Library use (and the tests) trace in-process.
  monkeypatch.setenv("SCOREHOI_CACHE_DIR", str(tmp_path / "c"))
  monkeypatch.setattr(jax.config, "update", lambda *a: None)  # Leave this process's compile cache alone.
  assert jax_cache.enable() == str(tmp_path / "c")
  assert jax_cache.program_dir() == str(tmp_path / "c" / "programs")
  assert "traced programs" in jax_cache.HELP
