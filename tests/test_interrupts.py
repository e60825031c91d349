"""Killed and concurrent runs (issue 15): real SIGKILLs of `scorehoi` subprocesses.

Each test starts the command in its own session, waits for a known moment
(worker processes started, a temporary folder created, a lock taken), sends
SIGKILL and checks what the next run sees. A process group is killed as a
whole at the end whatever happens, so a failing test leaves no processes.
"""

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from scorehoi_jax import demo
from cli_capture import run_cli as _cli  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = demo.examples_dir()




def _env():
  return dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), JAX_PLATFORMS="cpu")


@contextlib.contextmanager
def _started(args, log):
  """A subprocess in its own session; on exit its whole group (and any listed stragglers) is killed."""
  with open(log, "w") as fh:
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=_env(), stdout=fh, stderr=subprocess.STDOUT,
                            start_new_session=True)
  stragglers: list[int] = []
  try:
    yield proc, stragglers
  finally:
    for pid in [proc.pid] + stragglers:
      with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL) if pid == proc.pid else os.kill(pid, signal.SIGKILL)
    proc.wait()


def _wait_for(cond, timeout, what, proc=None, log=None):
  t0 = time.monotonic()
  while time.monotonic() - t0 < timeout:
    value = cond()
    if value:
      return value
    if proc is not None and proc.poll() is not None:
      pytest.fail(f"the command exited ({proc.returncode}) before {what}:\n{open(log).read()[-2000:]}")
    time.sleep(0.05)
  pytest.fail(f"timed out waiting for {what}" + (f":\n{open(log).read()[-2000:]}" if log else ""))


def _alive(pid):
  """Running (not gone, not a zombie awaiting its reaper)."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"
  except (OSError, IndexError):
    return False


def _workers_of(pid):
  """PIDs of multiprocessing workers whose parent is ``pid``."""
  found = []
  for d in os.listdir("/proc"):
    if not d.isdigit():
      continue
    try:
      with open(f"/proc/{d}/stat") as f:
        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
      with open(f"/proc/{d}/cmdline", "rb") as f:
        cmd = f.read()
    except (OSError, IndexError, ValueError):
      continue
    if ppid == pid and b"spawn_main" in cmd:
      found.append(int(d))
  return found


# ------------------------------------------------------------------------------------------------
# 4. prepare: workers die with their parent; a second prepare on the same folder is refused.
# ------------------------------------------------------------------------------------------------

@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process table from /proc")
def test_killed_prepare_takes_its_workers_and_its_lock_with_it(tmp_path):
  out = tmp_path / "ds"
  # 180 train frames = 3 shards of 64: each worker is busy for minutes, far longer than the test waits.
  args = ["-m", "scorehoi_jax.cli", "prepare", "synthetic", "--out", str(out), "--num", "200", "--workers", "2",
          "--resolution", "32"]
  with _started(args, tmp_path / "first.log") as (proc, stragglers):
    workers = _wait_for(lambda: (w := _workers_of(proc.pid)) and len(w) == 2 and w, 240, "two workers",
                        proc, tmp_path / "first.log")
    stragglers += workers
    # While it runs, a second prepare on the same folder is refused at once, with the first one's PID.
    second = subprocess.run([sys.executable, *args], cwd=ROOT, env=_env(), capture_output=True, text=True,
                            timeout=120, start_new_session=True)
    lines = second.stderr.strip().splitlines()
    assert second.returncode == 2 and len(lines) == 1, second.stderr[-2000:]
    assert "in use by" in lines[0] and f"PID {proc.pid}" in lines[0] and str(out) in lines[0]
    time.sleep(1.0)  # Let the workers get into their first shard.
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    t0 = time.monotonic()
    while any(_alive(w) for w in workers) and time.monotonic() - t0 < 15:
      time.sleep(0.1)
    assert not [w for w in workers if _alive(w)], "workers outlived their killed parent"
  # The killed run's lock does not block: the next run gets past it (to the dataset check).
  code, _, stderr = _cli(["prepare", "synthetic", "--out", str(out), "--num", "3", "--resolution", "32"])
  assert code == 2 and "describes a different dataset" in stderr, stderr


def test_second_train_on_a_workdir_is_refused_until_the_first_is_killed(tmp_path):
  work = tmp_path / "run"
  holder = textwrap.dedent(f"""
      import time
      from scorehoi_jax.locks import folder_lock
      with folder_lock({str(work)!r}, "scorehoi train"):
        print("locked", flush=True)
        time.sleep(600)
  """)
  with _started(["-c", holder], tmp_path / "holder.log") as (proc, _):
    _wait_for(lambda: "locked" in open(tmp_path / "holder.log").read(), 120, "the lock", proc, tmp_path / "holder.log")
    code, _, stderr = _cli(["train", "--config", "tiny", "--workdir", str(work), "--config.data.dir=/nonexistent"])
    assert code == 2 and "in use by `scorehoi train`" in stderr and f"PID {proc.pid}" in stderr, stderr
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
  code, _, stderr = _cli(["train", "--config", "tiny", "--workdir", str(work), "--config.data.dir=/nonexistent"])
  assert code == 2 and "in use" not in stderr and "nonexistent" in stderr, stderr


# ------------------------------------------------------------------------------------------------
# 6. reconstruct: temporary folders of killed runs are cleaned up; --overwrite never loses the old result.
# ------------------------------------------------------------------------------------------------

def _rec(out, *extra):
  return ["reconstruct", "--image", os.path.join(EXAMPLES, "hold_ball.jpg"),
          "--human-mask", os.path.join(EXAMPLES, "hold_ball_human.png"),
          "--object-mask", os.path.join(EXAMPLES, "hold_ball_object.png"), "--object", "basketball",
          "--out", str(out), "--quiet", *extra]


def test_killed_reconstruct_leaves_nothing_that_a_later_run_does_not_clean(tmp_path):
  parent = tmp_path / "results"
  parent.mkdir()
  live = parent / f".scorehoi-{os.getpid()}-new-abc"  # A live run's folder (this process): never touched.
  live.mkdir()
  with _started(["-m", "scorehoi_jax.cli", *_rec(parent / "a")], tmp_path / "rec.log") as (proc, _):
    tmp = _wait_for(lambda: [n for n in os.listdir(parent) if n.startswith(f".scorehoi-{proc.pid}-")], 240,
                    "the temporary folder", proc, tmp_path / "rec.log")
    os.kill(proc.pid, signal.SIGKILL)  # Mid-run: compiling or writing.
    proc.wait()
  assert (parent / tmp[0]).exists() and not (parent / "a").exists()
  # The next run in the same folder removes it (here a run that then stops at a missing model).
  code, _, stderr = _cli(_rec(parent / "b", "--checkpoint", str(tmp_path / "never_loaded")))
  assert code == 2 and "model folder not found" in stderr, stderr
  assert sorted(os.listdir(parent)) == [live.name]


def test_kill_during_overwrite_keeps_the_old_result(tmp_path):
  parent = tmp_path / "results"
  (parent / "res").mkdir(parents=True)
  (parent / "res" / "old.txt").write_text("old")
  # SIGKILL exactly between replacing steps: at the rename of the new result into place.
  script = textwrap.dedent(f"""
      import os, signal
      from scorehoi_jax import outputs
      def killed(*args):
        os.kill(os.getpid(), signal.SIGKILL)
      os.replace = killed
      with outputs.atomic_output_dir({str(parent / "res")!r}, overwrite=True) as tmp:
        open(os.path.join(tmp, "new.txt"), "w").write("new")
  """)
  with _started(["-c", script], tmp_path / "kill.log") as (proc, _):
    assert proc.wait(timeout=120) == -signal.SIGKILL, open(tmp_path / "kill.log").read()
  # The next reconstruct into the folder finds the old result in place (restored if it had been moved aside).
  code, _, stderr = _cli(_rec(parent / "res", "--overwrite", "--checkpoint", str(tmp_path / "never_loaded")))
  assert code == 2 and "model folder not found" in stderr, stderr
  assert (parent / "res" / "old.txt").read_text() == "old"
  assert sorted(os.listdir(parent)) == ["res"]


# ------------------------------------------------------------------------------------------------
# 8. Training: a resumed run logs each step once; a truncated checkpoint names the folder to delete.
# ------------------------------------------------------------------------------------------------

def test_resume_after_kill_logs_each_step_once(tmp_path):
  sys.path.insert(0, os.path.dirname(__file__))
  import test_train_loop as t
  from scorehoi_jax.train import loop
  cfg = dict(log_every=1, checkpoint_every=4, progress=False)
  # Killed while fetching the batch of step 7: steps 0-6 are logged, the last checkpoint is step 3.
  script = textwrap.dedent(f"""
      import os, signal, sys
      sys.path.insert(0, {os.path.dirname(__file__)!r})
      import test_train_loop as t
      from scorehoi_jax.train import loop
      def batches(start):
        for step, b in enumerate(t._batches(start), start):
          if step == 7:
            os.kill(os.getpid(), signal.SIGKILL)
          yield b
      loop.run(sys.argv[1], loop.LoopConfig(total_steps=10, **{cfg!r}), init_state=t._init, train_step=t._step,
               batches=batches)
  """)
  with _started(["-c", script, str(tmp_path / "b")], tmp_path / "train.log") as (proc, _):
    assert proc.wait(timeout=300) == -signal.SIGKILL, open(tmp_path / "train.log").read()
  assert [r["step"] for r in loop.read_metrics(str(tmp_path / "b"))] == list(range(7))
  loop.run(str(tmp_path / "b"), loop.LoopConfig(total_steps=10, **cfg), init_state=t._init, train_step=t._step,
           batches=t._batches)
  loop.run(str(tmp_path / "a"), loop.LoopConfig(total_steps=10, **cfg), init_state=t._init, train_step=t._step,
           batches=t._batches)
  resumed, full = loop.read_metrics(str(tmp_path / "b")), loop.read_metrics(str(tmp_path / "a"))
  assert [r["step"] for r in resumed] == list(range(10))
  np.testing.assert_allclose([r["loss"] for r in resumed], [r["loss"] for r in full], rtol=1e-6)


def _stage2_run(path, steps):
  import jax.numpy as jnp
  from scorehoi_jax.train.checkpoint import Checkpoints
  ck = Checkpoints(str(path / "checkpoints"))
  state = {"ema_params": {"w": jnp.arange(600, dtype=jnp.float32)},
           "frozen": {"net": {"params": {"k": jnp.ones(300)}}, "point_encoder": {"params": {"b": jnp.ones(3)}}}}
  for s in steps:
    ck.save(s, state, meta={"step": s, "stage": 2, "config": {}})
  ck.close()


def _truncate_step(step_dir):
  for root, _, files in os.walk(step_dir / "state"):
    for f in files:
      if os.sep + "d" + os.sep in os.path.join(root, f) + os.sep or root.endswith(os.sep + "d"):
        p = os.path.join(root, f)
        with open(p, "r+b") as fh:
          fh.truncate(os.path.getsize(p) // 2)


@pytest.mark.parametrize("steps", [(1, 2), (2,)])
def test_truncated_checkpoint_names_the_step_folder_to_delete(tmp_path, steps):
  run = tmp_path / "run"
  _stage2_run(run, steps)
  _truncate_step(run / "checkpoints" / "2")
  res = subprocess.run([sys.executable, "-m", "scorehoi_jax.cli", "export", "--run", str(run), "--out",
                        str(tmp_path / "model")], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
  lines = res.stderr.strip().splitlines()
  assert res.returncode == 2 and len(lines) == 1, res.stderr
  assert f"{run}/checkpoints/2: checkpoint of step 2 is incomplete or corrupt" in lines[0]
  assert ("resume from step 1" in lines[0]) == (steps == (1, 2)), lines[0]
  assert ("no older checkpoint" in lines[0]) == (steps == (2,)), lines[0]
  assert not (tmp_path / "model").exists()
