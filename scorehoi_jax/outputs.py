"""Writing result folders atomically: all files appear together or none do, even across a kill.

A result is written into a hidden temporary folder next to it and renamed into
place when complete. The temporary names carry the writer's PID,

  .scorehoi-<pid>-new-<random>   the result being written
  .scorehoi-<pid>-old-<name>     with overwrite: the previous result <name>, moved aside

so a run killed with SIGKILL (no Python cleanup runs) leaves folders that a
later run can recognise as stale (their PID is dead) and clean up: an "old"
folder whose result is missing is moved back (the kill came between moving
the old result aside and renaming the new one in), everything else is
deleted. A folder of a live PID is never touched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile

from scorehoi_jax.errors import ScoreHOIError

_PREFIX = ".scorehoi-"
_STALE = re.compile(r"^\.scorehoi-(\d+)-(new|old)-(.+)$")


class OutputError(ScoreHOIError):
  """An output folder that cannot be written (permissions, a file in the way, a full disk)."""


def pid_alive(pid: int) -> bool:
  """Whether a process with this PID exists (a zombie counts as dead)."""
  if pid <= 0:
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # Someone else's process.
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"
  except (OSError, IndexError):
    return True


def clean_stale(parent: str) -> list[str]:
  """Remove (or restore) the temporary folders in ``parent`` left by killed runs; returns what was done."""
  done = []
  try:
    names = os.listdir(parent)
  except OSError:
    return done
  for name in sorted(names, key=lambda n: "-old-" not in n):  # Restore old results before deleting.
    m = _STALE.match(name)
    if not m or pid_alive(int(m.group(1))):
      continue
    path = os.path.join(parent, name)
    target = os.path.join(parent, m.group(3))
    try:
      if m.group(2) == "old" and not os.path.lexists(target):
        os.rename(path, target)
        done.append(f"restored {target}")
      else:
        shutil.rmtree(path)
        done.append(f"removed {path}")
    except OSError:
      pass  # Not ours to fight over (permissions); it stays hidden.
  return done


def _describe(e: OSError) -> str:
  reason = {errno.ENOTDIR: "a file is in the way, not a folder", errno.EACCES: "permission denied",
            errno.EPERM: "permission denied", errno.EROFS: "read-only file system",
            errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded"}.get(e.errno)
  return reason or e.strerror or type(e).__name__


def check_output(path: str, overwrite: bool = False) -> str:
  """Refuse an output folder that exists (unless ``overwrite``) or cannot be written, before any work.

  Also cleans up stale temporary folders of killed runs next to it. Returns the absolute path.
  """
  path = os.path.abspath(os.path.expanduser(path))
  if os.path.exists(path) and not overwrite:
    raise OutputError(f"{path}: output folder exists (pass --overwrite to replace it).")
  if os.path.exists(path) and not os.path.isdir(path):
    raise OutputError(f"{path}: exists and is not a folder.")
  ancestor = os.path.dirname(path)
  while not os.path.exists(ancestor):
    ancestor = os.path.dirname(ancestor)
  if not os.path.isdir(ancestor):
    raise OutputError(f"{path}: cannot create the output folder: {ancestor} is a file, not a folder.")
  if not os.access(ancestor, os.W_OK | os.X_OK):
    raise OutputError(f"{path}: cannot write the output folder: {ancestor} is not writable.")
  if os.path.isdir(os.path.dirname(path)):
    clean_stale(os.path.dirname(path))
  return path


@contextlib.contextmanager
def atomic_output_dir(path: str, overwrite: bool = False):
  """Yield a temporary folder next to ``path``; rename it to ``path`` on success.

  On an exception the temporary folder is removed, so a failed run never
  leaves a half-written result behind; after a kill, the next run's
  ``check_output`` removes it. An existing ``path`` is refused unless
  ``overwrite``: then it is moved aside, the new result renamed in, and only
  then the old one deleted, so no kill loses both. Errors writing into the
  folder (permissions, full disk) become one OutputError naming it.
  """
  path = check_output(path, overwrite)
  parent = os.path.dirname(path)
  try:
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-new-", dir=parent)
  except OSError as e:
    raise OutputError(f"{path}: cannot create the output folder ({_describe(e)}).") from None
  try:
    yield tmp
  except BaseException as e:
    shutil.rmtree(tmp, ignore_errors=True)
    if isinstance(e, OSError) and str(getattr(e, "filename", "") or "").startswith(tmp):
      raise OutputError(f"{path}: cannot write the output ({_describe(e)}).") from None
    raise
  aside = None
  try:
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a result folder is an ordinary folder.
    if os.path.lexists(path):
      aside = os.path.join(parent, f"{_PREFIX}{os.getpid()}-old-{os.path.basename(path)}")
      os.rename(path, aside)
    os.replace(tmp, path)
  except OSError as e:
    if aside is not None and not os.path.lexists(path):
      os.rename(aside, path)  # Put the old result back: a failed swap must not lose it.
    shutil.rmtree(tmp, ignore_errors=True)
    raise OutputError(f"{path}: cannot replace the output folder ({_describe(e)}).") from None
  if aside is not None:
    shutil.rmtree(aside, ignore_errors=True)
