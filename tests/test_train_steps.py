"""Stage-1 and stage-2 train steps: they learn, EMA is exact, and 2 devices = 1 device."""

import os
import pickle
import subprocess
import sys
import shutil
import tempfile
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scorehoi_jax import body as body_lib
from scorehoi_jax.diffusion.schedule import cosine_schedule
from scorehoi_jax.geometry.rotations import axis_angle_to_matrix
from scorehoi_jax.models.contact_former import ContactFormer
from scorehoi_jax.models.denoiser import Denoiser
from scorehoi_jax.models.hoi_net import HOINet
from scorehoi_jax.models.mesh_refiner import MeshRefiner
from scorehoi_jax.models.point_encoder import PointEncoder
from scorehoi_jax.models.regressor import Regressor
from scorehoi_jax.models.resnet import ResNet
from scorehoi_jax.train import losses, steps

pytestmark = pytest.mark.usefixtures("fast_compile")

_NUM_STEPS = 3  # Steps compared between 1 and 2 devices.


def tiny_batch(bs: int = 4, size: int = 32, seed: int = 0) -> dict:
  """A batch in the example spec at tiny sizes (431 human contact labels, 64 object points)."""
  rng = np.random.default_rng(seed)
  rot = lambda aa: np.asarray(axis_angle_to_matrix(jnp.asarray(aa.astype(np.float32))))
  return dict(
      image=rng.uniform(size=(bs, size, size, 5)).astype(np.float32),
      pose=rot(rng.normal(0, 0.2, (bs, 52, 3))), betas=rng.normal(size=(bs, 10)).astype(np.float32),
      obj_rot=rot(rng.normal(0, 1, (bs, 3))), obj_trans=rng.normal(0, 0.3, (bs, 3)).astype(np.float32),
      cam_trans=np.tile(np.array([0, 0, 3.0], np.float32), (bs, 1)),
      focal=np.full((bs, 2), 60.0, np.float32), princpt=np.full((bs, 2), (size - 1) / 2, np.float32),
      object_template=rng.normal(0, 0.2, (bs, 64, 3)).astype(np.float32), object_id=np.zeros(bs, np.int32),
      human_contact=(rng.uniform(size=(bs, 431)) < 0.1).astype(np.float32),
      object_contact=(rng.uniform(size=(bs, 64)) < 0.2).astype(np.float32),
      object_floor_contact=(rng.uniform(size=(bs, 64)) < 0.2).astype(np.float32),
      valid=np.array([1.0] * (bs - 1) + [0.0], np.float32))  # Last example is padding.


def tiny_setups():
  """Stage-1 and stage-2 setups at test sizes (also imported by the 2-device subprocess).

  Adam's ε = 1e-4: parameters with a (near-)zero true gradient would otherwise turn
  rounding differences between 1 and 2 devices into full-size, opposite steps.
  """
  model = body_lib.from_arrays(body_lib.random_smplh_arrays(0, num_vertices=600, num_faces=1000, num_betas=10))
  sub = body_lib.subset_body_model(model, body_lib.guidance_vertex_indices(model, 431))
  net = HOINet(ResNet(18, width=8, stages=(1, 1)), Regressor(reduce_dim=4, hidden_dim=32),
               ContactFormer(dim=16, num_layers=1, num_heads=2), MeshRefiner(dim=16, num_layers=1, num_heads=2))
  enc = PointEncoder(num_centers=(16, 4), num_neighbors=(8, 4), sa_widths=((16,), (32,)), fp_widths=((32,), (16,)),
                     global_widths=(32,), token_dim=16, num_categories=5)
  s1 = steps.Stage1Setup(net, enc, steps.adam(1e-3, eps=1e-4), sub, losses.knn_edges(np.asarray(sub.v_template)))
  den = Denoiser(model_dim=32, hidden_dim=64, num_blocks=1, time_dim=16, betas_model_dim=8, betas_hidden_dim=16,
                 num_betas_blocks=1, betas_time_dim=8, token_dim=16, attn_dim=16, num_heads=2)
  s2 = steps.Stage2Setup(den, net, enc, steps.adam(1e-3, b1=0.9, eps=1e-4), cosine_schedule(), ema_decay=0.9)
  return s1, s2


def run_steps(step_fn, state, batch, n, stage2: bool):
  """n steps on one fixed batch; stage 2 draws t and ε from the same key each step (a fixed objective)."""
  losses_ = []
  for i in range(n):
    state, m = step_fn(state, batch, jax.random.key(7 if stage2 else i))
    losses_.append(float(m["loss"]))
  return state, losses_


@pytest.fixture(scope="module")
def trained():
  """Builds, initialises and runs both stages once; the tests below read the results.

  While this process compiles the 1-device steps, a subprocess with 2 fake CPU
  devices runs the same steps from the same initial states (started first so
  the two compiles overlap).
  """
  old = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)  # Tiny nets: compile time dominates.
  tmp = None
  try:
    s1, s2 = tiny_setups()
    batch = tiny_batch()
    st1 = jax.jit(lambda r, b: steps.stage1_init(s1, r, b))(jax.random.key(0), batch)
    st2 = jax.jit(lambda r, b, v, e: steps.stage2_init(s2, r, b, v, e))(
        jax.random.key(1), batch, {"params": st1.params, "batch_stats": st1.batch_stats}, st1.frozen)
    tmp = tempfile.mkdtemp(prefix="scorehoi_steps_")
    with open(os.path.join(tmp, "in.pkl"), "wb") as f:
      pickle.dump(jax.device_get({"st1": st1, "st2": st2, "batch": batch}), f)
    proc = _start_two_device_run(tmp)
    step1 = jax.jit(steps.make_stage1_step(s1))
    step2 = jax.jit(steps.make_stage2_step(s2))
    st1_3, l1 = run_steps(step1, st1, batch, _NUM_STEPS, False)
    st1_n, l1b = run_steps(step1, st1_3, batch, 5, False)
    st2_1, l2a = run_steps(step2, st2, batch, 1, True)
    st2_3, l2b = run_steps(step2, st2_1, batch, _NUM_STEPS - 1, True)
    st2_n, l2c = run_steps(step2, st2_3, batch, 5, True)
    out, err = proc.communicate(timeout=600)
    two = None
    if proc.returncode == 0:
      with open(os.path.join(tmp, "out.pkl"), "rb") as f:
        two = pickle.load(f)
    yield dict(s1=s1, s2=s2, st1=st1, st2=st2, st2_1=st2_1, st1_3=st1_3, st2_3=st2_3,
               loss1=l1 + l1b, loss2=l2a + l2b + l2c, two=two, two_log=(out + err)[-3000:])
  finally:
    jax.config.update("jax_disable_most_optimizations", old)
    if tmp:
      shutil.rmtree(tmp, ignore_errors=True)


def _start_two_device_run(tmp):
  script = textwrap.dedent(f"""
      import pickle, sys
      import jax
      jax.config.update("jax_disable_most_optimizations", True)
      sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
      import test_train_steps as T
      from scorehoi_jax.train import sharding, steps
      assert jax.device_count() == 2, jax.devices()
      d = pickle.load(open({os.path.join(tmp, "in.pkl")!r}, "rb"))
      s1, s2 = T.tiny_setups()
      mesh = sharding.make_mesh()
      repl, data = sharding.replicated(mesh), sharding.data_sharded(mesh)
      batch = sharding.shard_batch(d["batch"], mesh)
      out = {{}}
      for name, make, stage2 in (("st1", steps.make_stage1_step(s1), False), ("st2", steps.make_stage2_step(s2), True)):
        fn = jax.jit(make, in_shardings=(repl, data, repl), out_shardings=(repl, repl))
        state, losses = T.run_steps(fn, sharding.replicate(d[name], mesh), batch, {_NUM_STEPS}, stage2)
        out[name] = (jax.device_get(state.params), losses)
      pickle.dump(out, open({os.path.join(tmp, "out.pkl")!r}, "wb"))
      """)
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
  return subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)


def test_stage1_step_lowers_the_loss(trained):
  l = trained["loss1"]
  assert all(np.isfinite(l))
  assert l[-1] < 0.85 * l[0], l


def test_stage2_step_lowers_the_loss(trained):
  l = trained["loss2"]
  assert all(np.isfinite(l))
  assert l[-1] < 0.7 * l[0], l


def test_stage2_ema_is_the_exponential_average(trained):
  st0, st1 = trained["st2"], trained["st2_1"]
  d = trained["s2"].ema_decay
  want = jax.tree.map(lambda e, p: d * e + (1 - d) * p, st0.ema_params, st1.params)
  for a, b in zip(jax.tree.leaves(st1.ema_params), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  assert int(st1.step) == 1


def test_stage1_frozen_point_encoder_does_not_move(trained):
  # The point-encoder variables are carried, never optimised: identical after training steps,
  # while the optimised parameters did move.
  st0, st = trained["st1"], trained["st1_3"]
  assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(st.params), jax.tree.leaves(st0.params)))
  for a, b in zip(jax.tree.leaves(st.frozen), jax.tree.leaves(st0.frozen)):
    np.testing.assert_array_equal(a, b)


def test_two_devices_match_one(trained):
  two = trained["two"]
  assert two is not None, trained["two_log"]
  for name, state, ref_losses in (("st1", trained["st1_3"], trained["loss1"][:_NUM_STEPS]),
                                  ("st2", trained["st2_3"], trained["loss2"][:_NUM_STEPS])):
    params2, losses2 = two[name]
    np.testing.assert_allclose(losses2, ref_losses, rtol=1e-4, atol=1e-6)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(params2), jax.tree.leaves(state.params)):
      np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4, err_msg=f"{name} {jax.tree_util.keystr(path)}")
