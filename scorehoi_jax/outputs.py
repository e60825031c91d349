"""Writing result folders atomically: all files appear together or none do."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

from scorehoi_jax.errors import ScoreHOIError


@contextlib.contextmanager
def atomic_output_dir(path: str, overwrite: bool = False):
  """Yield a temporary folder next to ``path``; rename it to ``path`` on success.

  On any exception the temporary folder is removed, so a failed run never
  leaves a half-written result behind. An existing ``path`` is refused unless
  ``overwrite`` (then it is replaced only after the new result is complete).
  """
  path = os.path.abspath(os.path.expanduser(path))
  if os.path.exists(path) and not overwrite:
    raise ScoreHOIError(f"{path}: output folder exists (pass --overwrite to replace it).")
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".scorehoi-", dir=parent)
  try:
    yield tmp
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  os.chmod(tmp, 0o755)  # mkdtemp makes it private; a result folder is an ordinary folder.
  if os.path.exists(path):
    shutil.rmtree(path)
  os.replace(tmp, path)
