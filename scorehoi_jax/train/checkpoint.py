"""Checkpoints with Orbax: save, resume from the work dir, keep the best.

A checkpoint holds the train state pytree (params, optimiser state, EMA, step,
RNG: whatever the state carries) and a JSON item with the config and the
metrics at that step, and optionally the input iterator's state (grain's
Orbax handler: one JSON file per process). ``latest_step`` drives automatic resume; retention keeps
the ``max_to_keep`` newest in ``directory`` and, when a validation metric is
named, the best one by that metric in ``directory + "-best"``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import tempfile
import time

import jax
import numpy as np
import orbax.checkpoint as ocp

from scorehoi_jax.errors import ScoreHOIError


class CheckpointError(ScoreHOIError):
  """A checkpoint folder is missing, corrupt, or does not match the model."""


# TensorStore/OCDBT status codes and messages of a file that is shorter than its index says
# (a save killed mid-write, a partial copy) or missing.
_UNREADABLE = re.compile(r"OUT_OF_RANGE|DATA_LOSS|NOT_FOUND|[Bb]yte range|truncat|Unexpected end", re.S)


_LOOP_CLOSED = re.compile(r"Traceback \(most recent call last\):\n(?:[ \t].*\n)*?.*call_soon_threadsafe.*\n"
                          r"(?:[ \t].*\n)*RuntimeError: Event loop is closed\n?")


@contextlib.contextmanager
def _without_closed_loop_noise():
  """Pass fd 2 through, less the 'Event loop is closed' tracebacks of a failed restore.

  When one read of an Orbax restore fails, TensorStore's other reads still in flight call back
  into Orbax's event loop after it has closed and print those tracebacks from C++ straight to
  fd 2 (past sys.stderr), after our one-line message. Capture fd 2 meanwhile, drop them, replay
  the rest.
  """
  try:
    cap = tempfile.TemporaryFile()
  except OSError:  # Nowhere to capture to: let the noise through rather than fail the restore.
    yield
    return
  sys.stderr.flush()
  saved = os.dup(2)
  with cap:
    os.dup2(cap.fileno(), 2)
    failed = False
    try:
      yield
    except BaseException:
      failed = True
      raise
    finally:
      if failed:
        _settle(cap)
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      cap.seek(0)
      text = _LOOP_CLOSED.sub("", cap.read().decode(errors="replace"))
      if text:
        sys.stderr.write(text)
        sys.stderr.flush()


def _settle(cap, quiet: float = 0.3, limit: float = 3.0):
  """Wait for the stray callbacks of a failed restore: until one 'Event loop is closed' traceback has
  reached ``cap`` and nothing more for ``quiet`` seconds, or ``limit`` seconds. They usually come within
  milliseconds, but a loaded machine delayed them past a fixed 0.3 s wait and one leaked to the user."""
  start = last_change = time.monotonic()
  size = -1
  while time.monotonic() - start < limit:
    now, new_size = time.monotonic(), os.fstat(cap.fileno()).st_size
    if new_size != size:
      size, last_change = new_size, now
    elif now - last_change >= quiet:
      # pread: fd 2 shares this file's offset, so moving it would misplace a write still to come.
      if _LOOP_CLOSED.search(os.pread(cap.fileno(), size, 0).decode(errors="replace")):
        return
    time.sleep(0.05)


def _drop_unretrieved(record: logging.LogRecord) -> bool:
  return not str(record.msg).startswith("Task exception was never retrieved")


def _restore_error(e: Exception, step_dir: str, step: int, older: list[int], what: str, hint: str):
  """One line for a failed restore: a damaged step folder names itself and what to do, without
  TensorStore's chain of driver messages."""
  text = str(e)
  if isinstance(e, (json.JSONDecodeError, FileNotFoundError, EOFError)) or _UNREADABLE.search(text):
    files = re.findall(r'local file "([^"]+)"', text)
    where = f" ({os.path.relpath(files[-1], step_dir)} is truncated or unreadable)" if files else ""
    then = (f"delete that folder to resume from step {max(older)}, the newest older checkpoint" if older else
            "no older checkpoint exists: delete that folder (or the whole run) to start over")
    return CheckpointError(f"{step_dir}: checkpoint of step {step} is incomplete or corrupt{where}; {then}.")
  msg = text.splitlines()[0] if text else type(e).__name__
  return CheckpointError(f"{step_dir}: {what} ({type(e).__name__}: {msg[:200]}).{hint}")


class Checkpoints:
  """Thin wrapper over ``ocp.CheckpointManager`` with the project's conventions."""

  def __init__(self, directory: str, max_to_keep: int = 3, best_metric: str | None = None,
               best_mode: str = "min", async_save: bool = False):
    self.directory = os.path.abspath(os.path.expanduser(directory))
    self.best_metric = best_metric

    def manager(path, keep, best_fn):
      options = ocp.CheckpointManagerOptions(
          max_to_keep=keep, create=True, best_fn=best_fn, best_mode=best_mode,
          keep_checkpoints_without_metrics=False, enable_async_checkpointing=async_save,
          cleanup_tmp_directories=True)  # A killed save leaves a tmp folder; resume ignores it.
      return ocp.CheckpointManager(path, options=options, item_names=("state", "meta", "data"))

    # Two managers, as Orbax's retention is either newest-N or best-N: the
    # newest ones for resuming, and (with a metric) the best one for release.
    self._manager = manager(self.directory, max_to_keep, None)
    self._best = None
    if best_metric:
      self._best = manager(self.directory + "-best", 1, lambda m: float(m[best_metric]))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def best_step(self) -> int | None:
    return self._best.best_step() if self._best is not None else self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state, meta: dict | None = None, metrics: dict | None = None, data=None):
    """``data``: a grain iterator whose position is saved with the state (see ``restore_data``)."""
    meta = dict(meta or {})
    if metrics is not None:
      meta["metrics"] = {k: float(v) for k, v in metrics.items()}
    items = {}
    if data is not None:
      import grain.checkpoint  # Registers grain's Orbax handler; only training needs it.
      items["data"] = grain.checkpoint.CheckpointSave(data)
    args = lambda: ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta), **items)
    self._manager.save(step, args=args())
    if self._best is not None and metrics is not None and self.best_metric in metrics:
      self._best.save(step, args=args(), metrics={self.best_metric: float(metrics[self.best_metric])})
    self.wait()

  def wait(self):
    self._manager.wait_until_finished()
    if self._best is not None:
      self._best.wait_until_finished()

  def restore(self, target, step: int | None = None, best: bool = False):
    """Restore into the structure/shardings of ``target``; returns (state, meta).

    step=None: the newest checkpoint (or the best one with best=True).
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    return self._restore(ocp.args.StandardRestore(abstract), step, best,
                         "cannot restore checkpoint", " Is it corrupt, or from a different model/config?")

  def restore_data(self, iterator, step: int | None = None):
    """Move a grain iterator to the position saved with checkpoint ``step`` (default: the newest)."""
    step = self.latest_step() if step is None else step
    path = os.path.join(self.directory, str(step))
    if step is None or not os.path.isdir(os.path.join(path, "data")):
      raise CheckpointError(f"{path}: holds no input-pipeline state, so the example stream cannot be resumed "
                            "exactly (checkpoint from an older version?). Start a fresh work dir.")
    import grain.checkpoint
    try:
      self._manager.restore(step, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(iterator)))
    except Exception as e:  # A state of another pipeline (other workers, batch size) fails inside grain.
      raise CheckpointError(f"{path}/data: cannot restore the input-pipeline state ({type(e).__name__}: "
                            f"{str(e).splitlines()[0][:300] if str(e) else ''}). Was the data config changed?") from None
    return iterator

  def restore_raw(self, step: int | None = None, best: bool = False):
    """(state as nested dicts of NumPy arrays, meta) without a target structure.

    For export and inspection: no model needs to be built. step=None: the
    newest checkpoint (or the best one with best=True).
    """
    state, meta = self._restore(ocp.args.StandardRestore(), step, best, "cannot read checkpoint", "")
    return jax.tree.map(np.asarray, state), meta

  def _restore(self, state_args, step: int | None, best: bool, what: str, hint: str):
    manager = self._best if best and self._best is not None else self._manager
    if step is None:
      step = self.best_step() if best else self.latest_step()
    if step is None:
      raise CheckpointError(f"{self.directory}: no checkpoint found.")
    try:
      with _without_closed_loop_noise():
        out = manager.restore(step, args=ocp.args.Composite(state=state_args, meta=ocp.args.JsonRestore()))
    except Exception as e:  # Orbax raises many types; the user needs the path and the gist.
      # The failed read's sibling futures are collected later, and asyncio logs each one ("Task exception
      # was never retrieved") with TensorStore's whole spec: the error below already says it all.
      logging.getLogger("asyncio").addFilter(_drop_unretrieved)
      raise _restore_error(e, os.path.join(str(manager.directory), str(step)), step,
                           [s for s in manager.all_steps() if s < step], what, hint) from None
    return out["state"], out["meta"]

  def close(self):
    self._manager.close()
    if self._best is not None:
      self._best.close()
