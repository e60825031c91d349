"""Grain input: global shuffle, per-example determinism, process shares, workers, exact kill-and-resume."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from scorehoi_jax.data import loader
from scorehoi_jax.data import pipeline as pl
from scorehoi_jax.train import loop
from scorehoi_jax.train.checkpoint import CheckpointError

N = 7


def _records(n=N):
  """Tiny frames: a random image, a box 'human' and a box 'object' at record-specific places."""
  rng = np.random.default_rng(0)
  recs = []
  for i in range(n):
    hm, om = np.zeros((40, 48), np.uint8), np.zeros((40, 48), np.uint8)
    hm[5 + i:25 + i, 4:20] = 1
    om[10:30, 22 + i:40] = 1
    recs.append({"frame_id": f"f{i}", "image": rng.integers(0, 256, (40, 48, 3), dtype=np.uint8), "human_mask": hm,
                 "object_mask": om, "focal": np.array([50.0, 52.0]), "princpt": np.array([23.5, 19.5]),
                 "object_id": i})
  return recs


def _identity(record):  # Records are already decoded; module-level so worker processes can unpickle it.
  return record


CFG = pl.PipelineConfig(size=16, augment=True)


def test_positions_shuffle_globally_each_epoch():
  pos = loader.positions(N, seed=3)
  pairs = [pos[j] for j in range(3 * N)]
  assert [e for e, _ in pairs] == [j // N for j in range(3 * N)]
  epochs = [[i for e, i in pairs if e == k] for k in range(3)]
  for order in epochs:
    assert sorted(order) == list(range(N))  # Every record once per epoch...
  assert epochs[0] != epochs[1] and epochs[0] != list(range(N))  # ...in a fresh order each epoch.
  assert [loader.positions(N, seed=3)[j] for j in range(3 * N)] == pairs  # A function of the seed only.
  assert [loader.positions(N, seed=4)[j] for j in range(N)] != pairs[:N]
  assert [loader.positions(N, 3, shuffle=False)[j][1] for j in range(N + 2)] == list(range(N)) + [0, 1]


def test_examples_depend_only_on_seed_epoch_and_record():
  recs = _records()
  ex = loader.examples(recs, CFG, seed=5, decode=_identity)
  pos = loader.positions(N, seed=5)
  for j in (0, 3, N + 2):
    epoch, i = pos[j]
    want = pl.make_example(recs[i], CFG, pl.example_rng(5, epoch, i))[0]
    np.testing.assert_array_equal(ex[j]["image"], want["image"])
    assert ex[j]["object_id"] == i


def test_process_shares_make_up_the_global_batch():
  recs = _records()
  stream = loader.examples(recs, CFG, seed=1, decode=_identity)
  whole = loader.host_batches(stream, 4, 0, 1)
  halves = [loader.host_batches(stream, 4, p, 2) for p in range(2)]
  for k in range(3):  # Global batch k: the same examples, split between the processes.
    ids = sorted(np.concatenate([h[k]["object_id"] for h in halves]).tolist())
    assert ids == sorted(whole[k]["object_id"].tolist())
    assert halves[0][k]["image"].shape == (2, 16, 16, 5)
  with pytest.raises(Exception, match="not divisible by the 3 processes"):
    loader.host_batches(stream, 4, 0, 3)


def test_eval_batches_in_order_padded_and_unaugmented():
  recs = _records()
  out = list(loader.eval_batches(recs, CFG, 3, num=5, decode=_identity))
  assert len(out) == 2 and out[1]["image"].shape == (3, 16, 16, 5)
  np.testing.assert_array_equal(out[1]["valid"], [1, 1, 0])
  np.testing.assert_array_equal(np.concatenate([b["object_id"] for b in out])[:5], np.arange(5))
  plain = pl.make_example(recs[4], pl.PipelineConfig(size=16))[0]
  np.testing.assert_array_equal(out[1]["image"][1], plain["image"])


_TX = optax.sgd(0.1)


def _init(rng):
  params = {"w": jnp.zeros((5,))}
  return {"params": params, "opt": _TX.init(params)}


def _step(state, batch, rng):
  """A regression on each example's mean channel values: the loss sees every pixel of the batch."""
  feats = batch["image"].mean((1, 2))

  def loss_fn(p):
    return jnp.mean((feats @ p["w"] - batch["object_id"] / N) ** 2) + 0.01 * jax.random.normal(rng, ())

  loss, g = jax.value_and_grad(loss_fn)(state["params"])
  upd, opt = _TX.update(g, state["opt"], state["params"])
  return {"params": optax.apply_updates(state["params"], upd), "opt": opt}, {"loss": loss}


def _cfg(total):
  return loop.LoopConfig(total_steps=total, log_every=1, checkpoint_every=3, progress=False)


@pytest.mark.parametrize("workers", [0, 2])
def test_kill_and_resume_continues_the_exact_example_stream(tmp_path, workers):
  """The reference run reads in this process; the killed and resumed runs through worker processes
  (interleaved: worker w makes batches w, w + 2, ...) see exactly the same batches."""
  recs = _records()
  # 4 examples per step over 7 records: epochs end mid-batch, so a wrong resume position shows.
  data = lambda w: loader.train_batches(recs, CFG, 4, seed=9, workers=w, decode=_identity)
  full, recs_full = loop.run(str(tmp_path / "a"), _cfg(8), init_state=_init, train_step=_step, batches=data(0))
  loop.run(str(tmp_path / "b"), _cfg(6), init_state=_init, train_step=_step, batches=data(workers))  # Killed.
  resumed, recs_b = loop.run(str(tmp_path / "b"), _cfg(8), init_state=_init, train_step=_step,
                             batches=data(workers))
  assert [r["step"] for r in recs_b] == [6, 7]
  full_losses = {r["step"]: r["loss"] for r in recs_full}
  for r in recs_b:
    assert r["loss"] == pytest.approx(full_losses[r["step"]], rel=1e-6)
  np.testing.assert_allclose(resumed["params"]["w"], full["params"]["w"], rtol=1e-6)


def test_resume_without_saved_input_state_is_a_clear_error(tmp_path):
  recs = _records()
  step_batches = lambda start: iter(loader.host_batches(loader.examples(recs, CFG, decode=_identity), 2, 0, 1)[start:])
  loop.run(str(tmp_path), _cfg(3), init_state=_init, train_step=_step, batches=step_batches)
  with pytest.raises(CheckpointError, match="no input-pipeline state"):
    loop.run(str(tmp_path), _cfg(5), init_state=_init, train_step=_step,
             batches=loader.train_batches(recs, CFG, 2, decode=_identity))
