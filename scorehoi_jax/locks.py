"""One writer per folder: `prepare` and `train` refuse a folder another run is writing.

The lock is ``flock`` on ``FOLDER/.scorehoi.lock``, a file that also records
the owner's PID and command for the message. The kernel releases a flock when
its owner dies, however it dies, so the lock of a killed run never blocks the
next one (a left-over lock file is just a file). The descriptor is not
inherited by spawned worker processes (Python opens files non-inheritable), so
the lock lives exactly as long as the run's main process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys

from scorehoi_jax.errors import ScoreHOIError

LOCK_FILE = ".scorehoi.lock"
_HELD: dict[str, int] = {}  # Lock files held by this process -> nesting depth (re-entrant).


class FolderInUse(ScoreHOIError):
  """Another live run holds the folder's lock."""


def _owner(path: str) -> str:
  try:
    with open(path) as f:
      pid, _, what = f.read().strip().partition(" ")
    return f"`{what or 'scorehoi'}` (PID {int(pid)})"
  except (OSError, ValueError):
    return "another scorehoi run"


@contextlib.contextmanager
def folder_lock(folder: str, what: str):
  """Hold ``folder``'s lock for the block (creating the folder), or raise FolderInUse at once.

  what: the command, for the other run's message (e.g. "scorehoi train").
  """
  folder = os.path.abspath(os.path.expanduser(folder))
  path = os.path.join(folder, LOCK_FILE)
  if path in _HELD:  # The same run locking again (prepare_synthetic -> tfds_common.prepare).
    _HELD[path] += 1
    try:
      yield path
    finally:
      _HELD[path] -= 1
    return
  try:
    os.makedirs(folder, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  except OSError as e:
    raise ScoreHOIError(f"{folder}: cannot write here ({e.strerror}).") from None
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError as e:
    os.close(fd)
    if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
      raise FolderInUse(f"{folder}: in use by {_owner(path)}, which is still running; wait for it to finish "
                        "or stop it (a killed run's lock is released automatically).") from None
    print(f"warning: {folder}: file locks are not supported here ({e.strerror}); "
          "make sure no other run writes to this folder.", file=sys.stderr)
    fd = None
  if fd is not None:
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {what}\n".encode())
  _HELD[path] = 1
  try:
    yield path
  finally:
    del _HELD[path]
    if fd is not None:
      os.close(fd)  # Releases the flock; the file stays (unlinking it would race a waiting opener).
