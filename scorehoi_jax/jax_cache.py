"""The persistent program cache of the command-line tools.

``scorehoi reconstruct``, ``evaluate`` and ``demo`` keep their compiled
programs on disk, so a second run skips most of the start-up (the first
reconstruct of a session spends ~20 s tracing and compiling on a 2-core CPU).
One folder holds everything:

  $SCOREHOI_CACHE_DIR             if set (the value "0", "off" or "" disables the cache), else
  $XDG_CACHE_HOME/scorehoi_jax/jax_cache, else
  ~/.cache/scorehoi_jax/jax_cache

What is stored there:
  <folder>/*-cache, *-atime          XLA executables (JAX's persistent compilation cache), keyed by
                                     JAX/XLA's own fingerprint of the program, the backend and the JAX version;
  <folder>/programs/*.jaxexport      traced and lowered programs (jax.export) of ``scorehoi reconstruct`` /
                                     ``demo``, so a warm run skips Python tracing (export_cache.py);
  <folder>/programs/*.json           the networks' parameter shapes a checkpoint is checked against.
Programs and shapes are keyed by the settings, the input shapes, the JAX version, the backend and a hash
of this package's source files, so a stale entry is never used for a changed program or an edited package;
an unreadable entry is rebuilt, never an error.

Clearing it is safe at any time: delete the folder (``rm -rf ~/.cache/scorehoi_jax/jax_cache``);
the next run traces and compiles again and refills it. (The object SDF grids live apart, in
$SCOREHOI_CACHE/sdf, objects/sdf_build.py.)
"""

from __future__ import annotations

import os

_DISABLED = ("", "0", "off", "none", "false")
_enabled: str | None = None  # The folder enable() turned on in this process.


def cache_dir() -> str | None:
  """The cache folder in use (None: disabled by SCOREHOI_CACHE_DIR)."""
  env = os.environ.get("SCOREHOI_CACHE_DIR")
  if env is not None:
    return None if env.strip().lower() in _DISABLED else os.path.abspath(os.path.expanduser(env))
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "scorehoi_jax", "jax_cache")


def enable() -> str | None:
  """Turn the persistent compilation cache on (idempotent); returns its folder or None.

  Every program is cached, however quick to compile or small: our CLI runs
  are dominated by many mid-sized compiles, which JAX's defaults (≥ 1 s) skip.
  """
  path = cache_dir()
  if path is None:
    return None
  import jax
  try:
    os.makedirs(path, exist_ok=True)
  except OSError:
    return None  # A read-only home: run uncached rather than fail.
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  global _enabled
  _enabled = path
  return path


def program_dir() -> str | None:
  """Where traced programs and parameter shapes are kept (export_cache.py), or None unless enable()
  turned the cache on in this process (library calls and tests trace as usual)."""
  return None if _enabled is None else os.path.join(_enabled, "programs")


HELP = ("compiled and traced programs are cached in $SCOREHOI_CACHE_DIR, else $XDG_CACHE_HOME/scorehoi_jax/jax_cache, else "
        "~/.cache/scorehoi_jax/jax_cache (SCOREHOI_CACHE_DIR=off disables it; delete the folder to clear it)")
