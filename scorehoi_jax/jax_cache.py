"""The persistent JAX compilation cache of the command-line tools.

``scorehoi reconstruct``, ``evaluate`` and ``demo`` store their compiled XLA
programs on disk, so a second run skips most of the compile (the first
reconstruct of a session spends ~20 s compiling on a 2-core CPU). Where:

  $SCOREHOI_CACHE_DIR             if set (the value "0", "off" or "" disables the cache), else
  $XDG_CACHE_HOME/scorehoi_jax/jax_cache, else
  ~/.cache/scorehoi_jax/jax_cache

Clearing it is safe at any time: delete the folder (``rm -rf ~/.cache/scorehoi_jax``);
the next run compiles again and refills it. Entries are keyed by JAX/XLA's own
fingerprint of the program, the backend and the JAX version, so a stale entry
is never used for a changed program.
"""

from __future__ import annotations

import os

_DISABLED = ("", "0", "off", "none", "false")


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
  return path


HELP = ("compiled programs are cached in $SCOREHOI_CACHE_DIR, else $XDG_CACHE_HOME/scorehoi_jax/jax_cache, else "
        "~/.cache/scorehoi_jax/jax_cache (SCOREHOI_CACHE_DIR=off disables it; delete the folder to clear it)")
