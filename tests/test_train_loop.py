"""The generic training loop: resume equivalence, multi-device equivalence, errors."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from scorehoi_jax.train import loop
from scorehoi_jax.train.checkpoint import CheckpointError, Checkpoints

_TX = optax.adam(0.2)
_W_TRUE = np.array([1.5, -2.0, 0.5], np.float32)


def _init(rng):
  params = {"w": jax.random.normal(rng, (3,)) * 0.0}
  return {"params": params, "opt": _TX.init(params), "step": jnp.zeros((), jnp.int32)}


def _step(state, batch, rng):
  noise = jax.random.normal(rng, batch["y"].shape) * 0.01  # Uses the per-step key.

  def loss_fn(p):
    return jnp.mean((batch["x"] @ p["w"] - batch["y"] - noise) ** 2)

  loss, g = jax.value_and_grad(loss_fn)(state["params"])
  upd, opt = _TX.update(g, state["opt"], state["params"])
  return {"params": optax.apply_updates(state["params"], upd), "opt": opt, "step": state["step"] + 1}, {"loss": loss}


def _batches(start):
  step = start
  while True:
    rng = np.random.default_rng(step)  # Batch k depends only on k: resumable.
    x = rng.normal(size=(8, 3)).astype(np.float32)
    yield {"x": x, "y": (x @ _W_TRUE).astype(np.float32)}
    step += 1


def _tb_scalars(folder, tag):
  """Values of one scalar tag from TFRecord-framed event files (length, crc, data, crc)."""
  import struct

  from tensorboardX.proto import event_pb2
  values = []
  for name in sorted(os.listdir(folder)):
    data = (folder / name).read_bytes()
    pos = 0
    while pos < len(data):
      (n,) = struct.unpack("<Q", data[pos:pos + 8])
      event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + n])
      pos += 12 + n + 4
      values += [v.simple_value for v in event.summary.value if v.tag == tag]
  return values


def _cfg(total, **kw):
  return loop.LoopConfig(total_steps=total, log_every=1, checkpoint_every=2, progress=False, **kw)


def test_loss_decreases_and_metrics_logged(tmp_path):
  _, recs = loop.run(str(tmp_path), _cfg(20), init_state=_init, train_step=_step, batches=_batches)
  losses = [r["loss"] for r in recs if "loss" in r]
  assert losses[-1] < 0.2 * losses[0]
  assert len(loop.read_metrics(str(tmp_path))) == len(recs)
  # The same scalars reach TensorBoard's event files (read back record by record).
  assert _tb_scalars(tmp_path / "tb", "loss") == pytest.approx(losses, rel=1e-6)
  loop.plot_metrics(str(tmp_path), str(tmp_path / "curves.png"))
  assert os.path.getsize(tmp_path / "curves.png") > 1000


def test_kill_and_resume_gives_identical_losses(tmp_path):
  full, recs_full = loop.run(str(tmp_path / "a"), _cfg(8), init_state=_init, train_step=_step, batches=_batches)
  # "Killed" after step 5 (the last checkpoint is at step 5), then restarted.
  loop.run(str(tmp_path / "b"), _cfg(6), init_state=_init, train_step=_step, batches=_batches)
  resumed, recs_b = loop.run(str(tmp_path / "b"), _cfg(8), init_state=_init, train_step=_step, batches=_batches)
  assert [r["step"] for r in recs_b] == [6, 7]
  full_losses = {r["step"]: r["loss"] for r in recs_full}
  for r in recs_b:
    assert r["loss"] == pytest.approx(full_losses[r["step"]], rel=1e-6)
  np.testing.assert_allclose(resumed["params"]["w"], full["params"]["w"], rtol=1e-6)
  assert int(resumed["step"]) == 8


def test_best_checkpoint_retained(tmp_path):
  vals = iter([3.0, 1.0, 2.0, 4.0, 5.0])
  cfg = loop.LoopConfig(total_steps=10, log_every=5, checkpoint_every=100, eval_every=2, max_to_keep=1,
                        best_metric="val/err", progress=False)
  loop.run(str(tmp_path), cfg, init_state=_init, train_step=_step, batches=_batches,
           eval_fn=lambda s: {"err": next(vals)})
  ck = Checkpoints(str(tmp_path / "checkpoints"), max_to_keep=1, best_metric="val/err")
  assert ck.best_step() == 3  # The second validation (after step 3) had the lowest error.
  assert 9 in ck.all_steps()  # The newest is kept for resuming.


def test_non_finite_loss_names_the_step(tmp_path):
  def bad_step(state, batch, rng):
    new, m = _step(state, batch, rng)
    return new, {"loss": jnp.where(state["step"] >= 3, jnp.nan, m["loss"])}

  with pytest.raises(loop.TrainingDiverged, match="at step 3"):
    loop.run(str(tmp_path), _cfg(10), init_state=_init, train_step=bad_step, batches=_batches)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
  loop.run(str(tmp_path), _cfg(2), init_state=_init, train_step=_step, batches=_batches)
  ckdir = tmp_path / "checkpoints" / "1" / "state"
  for root, _, files in os.walk(ckdir):
    for f in files:
      p = os.path.join(root, f)
      with open(p, "wb") as fh:
        fh.write(b"garbage")
  with pytest.raises(CheckpointError, match="checkpoints/1"):
    Checkpoints(str(tmp_path / "checkpoints")).restore(_init(jax.random.key(0)))


def test_two_fake_devices_match_one_device(tmp_path):
  """Same global batch on 2 CPU devices gives the same parameters as on 1."""
  script = textwrap.dedent(f"""
      import sys, numpy as np, jax
      sys.path.insert(0, {os.path.dirname(__file__)!r})
      import test_train_loop as t
      from scorehoi_jax.train import loop
      assert jax.device_count() == 2
      s, _ = loop.run(sys.argv[1], t._cfg(4), init_state=t._init, train_step=t._step, batches=t._batches)
      np.save(sys.argv[1] + "/w.npy", np.asarray(s["params"]["w"]))
  """)
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
  subprocess.run([sys.executable, "-c", script, str(tmp_path / "two")], check=True, env=env)
  one, _ = loop.run(str(tmp_path / "one"), _cfg(4), init_state=_init, train_step=_step, batches=_batches)
  np.testing.assert_allclose(np.load(tmp_path / "two" / "w.npy"), one["params"]["w"], rtol=1e-5, atol=1e-6)


def test_distributed_initialisation_follows_the_launcher(monkeypatch):
  """Explicit coordinator settings reach jax.distributed; one host without a launcher stays local."""
  from scorehoi_jax.train import sharding
  calls = []
  monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
  for k in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "SLURM_NTASKS"):
    monkeypatch.delenv(k, raising=False)
  sharding.maybe_initialize_distributed()
  monkeypatch.setenv("SLURM_NTASKS", "1")
  sharding.maybe_initialize_distributed()
  assert calls == []
  monkeypatch.setenv("SLURM_NTASKS", "8")
  sharding.maybe_initialize_distributed()
  assert calls == [{}]  # SLURM: jax.distributed detects everything itself.
  monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "host0:1234")
  monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
  monkeypatch.setenv("JAX_PROCESS_ID", "2")
  sharding.maybe_initialize_distributed()
  assert calls[-1] == {"num_processes": 4, "process_id": 2}
