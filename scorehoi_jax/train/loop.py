"""The training loop shared by both stages: shard, step, log, validate, checkpoint, resume.

The loop knows nothing about ScoreHOI: it drives any pure
``train_step(state, batch, rng) -> (state, metrics)`` over a batch source that
resumes exactly, so that a run killed at step k and resumed from its
checkpoint sees the batches and RNG keys an uninterrupted run would
(per-step keys are ``fold_in(seed, step)``). The source is either a function
of the start step (stateless) or a Grain dataset, whose iterator state is
checkpointed with the train state and restored on resume.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any, Callable, Iterable, Iterator

import jax
import numpy as np

from scorehoi_jax.errors import ScoreHOIError
from scorehoi_jax.train import sharding
from scorehoi_jax.train.checkpoint import Checkpoints


class TrainingDiverged(ScoreHOIError):
  """The loss became NaN or infinite; the message names the step."""


@dataclasses.dataclass(frozen=True)
class LoopConfig:
  total_steps: int
  seed: int = 0
  log_every: int = 10
  checkpoint_every: int = 100
  eval_every: int = 0  # 0: validate only at the end.
  max_to_keep: int = 3
  best_metric: str | None = None  # e.g. "val/cd_human"; kept in addition to the newest.
  best_mode: str = "min"
  progress: bool = True


def _host_metrics(metrics) -> dict[str, float]:
  return {k: float(np.asarray(v)) for k, v in jax.device_get(metrics).items()}


class _Writer:
  """metrics.jsonl (always) and TensorBoard event files under workdir/tb (tensorboardX)."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, "metrics.jsonl")
    from tensorboardX import SummaryWriter
    self.tb = SummaryWriter(os.path.join(workdir, "tb"))

  def write(self, record: dict):
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")
    for k, v in record.items():
      if k != "step":
        self.tb.add_scalar(k, v, record["step"])

  def close(self):
    self.tb.close()


def _truncate_metrics(workdir: str, start: int):
  """Drop metrics.jsonl rows of steps >= ``start``: a killed run logged them after its last
  checkpoint, and the resumed run logs them again (identically, as it redoes those steps)."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return
  with open(path) as f:
    lines = f.readlines()
  keep = []
  for line in lines:
    try:
      if json.loads(line).get("step", -1) < start:
        keep.append(line if line.endswith("\n") else line + "\n")
    except json.JSONDecodeError:
      pass  # A row cut short by the kill.
  if len(keep) != len(lines):
    with open(path + ".tmp", "w") as f:
      f.writelines(keep)
    os.replace(path + ".tmp", path)


def run(workdir: str, cfg: LoopConfig, *, init_state: Callable[[jax.Array], Any],
        train_step: Callable, batches: Callable[[int], Iterator[dict]] | Iterable[dict],
        eval_fn: Callable[[Any], dict] | None = None, meta: dict | None = None,
        mesh=None) -> tuple[Any, list[dict]]:
  """Train to ``cfg.total_steps`` in ``workdir``, resuming if a checkpoint is there.

  Args:
    init_state: rng -> initial state pytree (used for shapes when resuming).
    train_step: pure (state, batch, rng) -> (state, metrics dict with "loss").
    batches: host numpy batches: a grain dataset (its iterator's state is saved in each
      checkpoint and restored on resume), or start_step -> iterator for steps start_step, ...
    eval_fn: state -> dict of validation metrics (host floats), prefixed "val/".
    meta: JSON-serialisable run description (config) stored with each checkpoint.
  Returns:
    (final state, list of logged records).
  """
  os.makedirs(workdir, exist_ok=True)
  mesh = mesh or sharding.make_mesh()
  repl, data = sharding.replicated(mesh), sharding.data_sharded(mesh)
  base_rng = jax.random.key(cfg.seed)
  state = sharding.replicate(init_state(jax.random.fold_in(base_rng, -1 % 2**31)), mesh)
  ckpts = Checkpoints(os.path.join(workdir, "checkpoints"), max_to_keep=cfg.max_to_keep,
                      best_metric=cfg.best_metric, best_mode=cfg.best_mode)
  start = 0
  if ckpts.latest_step() is not None:
    state, saved_meta = ckpts.restore(state)
    state = sharding.replicate(state, mesh)
    start = int(saved_meta["step"]) + 1
    print(f"resuming from {ckpts.directory}/{saved_meta['step']} (step {start} of {cfg.total_steps})")
  _truncate_metrics(workdir, start)
  writer = _Writer(workdir)

  step_fn = jax.jit(train_step, in_shardings=(repl, data, repl), out_shardings=(repl, repl),
                    donate_argnums=(0,))
  records: list[dict] = []
  bar = None
  if cfg.progress and start < cfg.total_steps:
    from tqdm.auto import tqdm
    bar = tqdm(total=cfg.total_steps, initial=start, desc="train", unit="step", dynamic_ncols=True)

  stateful = not callable(batches)
  if stateful:  # A grain dataset: the iterator's position is part of the checkpoint.
    it = iter(batches)
    if start:
      ckpts.restore_data(it)
  else:
    it = batches(start)

  def save(step, val_metrics=None):
    ckpts.save(step, state, meta=dict(meta or {}, step=step), metrics=val_metrics, data=it if stateful else None)

  t_last, n_examples = time.perf_counter(), 0
  val = None
  for step in range(start, cfg.total_steps):
    batch = next(it)
    n_examples += len(jax.tree.leaves(batch)[0])
    if step == start:  # Every global batch is split over all devices of the data mesh.
      sharding.check_batch_size(len(jax.tree.leaves(batch)[0]) * jax.process_count(), mesh)
    state, metrics = step_fn(state, sharding.shard_batch(batch, mesh), jax.random.fold_in(base_rng, step))
    loss = float(metrics["loss"])  # One scalar per step: the divergence check needs it anyway.
    if not math.isfinite(loss):
      raise TrainingDiverged(f"{workdir}: loss became {loss} at step {step}; last good checkpoint: "
                             f"{ckpts.latest_step()}. Lower the learning rate or check the data.")
    last = step == cfg.total_steps - 1
    if step % cfg.log_every == 0 or last:
      now = time.perf_counter()
      rec = dict(step=step, **_host_metrics(metrics), examples_per_s=n_examples / max(now - t_last, 1e-9))
      t_last, n_examples = now, 0
      records.append(rec)
      writer.write(rec)
      if bar is not None:
        bar.set_postfix(loss=f"{loss:.4g}", ex_s=f"{rec['examples_per_s']:.1f}")
    val = None
    if eval_fn is not None and ((cfg.eval_every and (step + 1) % cfg.eval_every == 0) or last):
      val = {f"val/{k}": float(v) for k, v in eval_fn(state).items()}
      rec = dict(step=step, **val)
      records.append(rec)
      writer.write(rec)
    if (step + 1) % cfg.checkpoint_every == 0 or last or val is not None:
      save(step, val)
    if bar is not None:
      bar.update(1)
  if bar is not None:
    bar.close()
  if hasattr(it, "close"):
    it.close()  # Stops grain's worker processes now rather than at garbage collection.
  writer.close()
  ckpts.close()
  return state, records


def read_metrics(workdir: str) -> list[dict]:
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def plot_metrics(workdir: str, out_png: str, keys: tuple[str, ...] | None = None):
  """Loss and validation curves from metrics.jsonl, one panel per key."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  recs = read_metrics(workdir)
  keys = keys or tuple(sorted({k for r in recs for k in r if k not in ("step", "examples_per_s")}))
  cols = min(len(keys), 6)
  rows = -(-len(keys) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
  for ax in axes.flat[len(keys):]:
    ax.axis("off")
  for ax, k in zip(axes.flat, keys):
    pts = [(r["step"], r[k]) for r in recs if k in r]
    if pts:
      ax.plot(*zip(*pts), marker="." if k.startswith("val/") else None)
    ax.set_title(k, fontsize=9)
    ax.set_xlabel("step")
    if k == "loss" or k.endswith("loss"):
      ax.set_yscale("log")
  fig.tight_layout()
  fig.savefig(out_png, dpi=100)
  plt.close(fig)
