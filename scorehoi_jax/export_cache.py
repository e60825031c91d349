"""Traced programs and parameter shapes kept on disk, so a warm CLI run skips Python tracing.

JAX's persistent compilation cache (jax_cache.py) stores XLA executables, but
finding one still needs the program traced and lowered: for ``scorehoi
reconstruct`` that Python tracing is most of a warm run. ``CachedProgram``
stores the traced and lowered program instead, with ``jax.export``
(StableHLO, ``Exported.serialize``), and a later process calls the
deserialised program; its compile is then a hit in the persistent cache.

Entries are files ``<folder>/<name>-<key>.jaxexport``. The key hashes:
  - the caller's ``key`` (for reconstruct: the model's network config, the
    refine settings, the input size; never the traced guidance weights, so a
    sweep over weights shares one program);
  - the arguments' pytree structure (static fields included) and every
    leaf's shape, dtype and weak type (so the batch size is in it);
  - the JAX version, the backend, the x64 and matmul-precision flags;
  - a hash of this package's source files: an edited package never runs a
    stale program.
A file that cannot be read, deserialised or called (corrupt, truncated, from
another JAX) is traced again and rewritten: never an error.

``cached_shapes`` does the same for a pytree of ShapeDtypeStructs (the
networks' parameter shapes a checkpoint is checked against), as JSON.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import os
import pickle
import tempfile
from typing import Any, Callable

import jax
import numpy as np

_FORMAT = 1
# Python traces of each program name in this process (tests count them).
TRACES: collections.Counter = collections.Counter()


@functools.lru_cache(maxsize=1)
def package_fingerprint() -> str:
  """sha256 of every .py file of scorehoi_jax (relative path + bytes)."""
  root = os.path.dirname(os.path.abspath(__file__))
  h = hashlib.sha256()
  for folder, dirs, files in os.walk(root):
    dirs[:] = sorted(d for d in dirs if d not in ("assets", "__pycache__"))
    for f in sorted(files):
      if f.endswith(".py"):
        path = os.path.join(folder, f)
        h.update(os.path.relpath(path, root).encode() + b"\0")
        with open(path, "rb") as fh:
          h.update(fh.read())
  return h.hexdigest()


def _environment() -> list:
  return [jax.__version__, jax.default_backend(), bool(jax.config.jax_enable_x64),
          str(jax.config.jax_default_matmul_precision), package_fingerprint(), _FORMAT]


def entry_key(name: str, key: Any, treedef=None, leaves=()) -> str:
  """The hex key of a program (or shapes record) ``name`` for ``key`` and these arguments."""
  parts = [name, key, str(treedef), [str(jax.typeof(x)) for x in leaves], _environment()]
  return hashlib.sha256(json.dumps(parts, default=repr, sort_keys=True).encode()).hexdigest()[:32]


def array_digest(*arrays) -> str:
  """sha256 of arrays' dtypes, shapes and bytes (constants a program closes over belong in its key)."""
  h = hashlib.sha256()
  for a in arrays:
    a = np.ascontiguousarray(a)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
  return h.hexdigest()


def _write_atomic(path: str, data: bytes) -> None:
  """Write via a temporary file and rename; a read-only or full disk only loses the entry."""
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
      with os.fdopen(fd, "wb") as f:
        f.write(data)
      os.replace(tmp, path)
    except BaseException:
      os.unlink(tmp)
      raise
  except OSError:
    pass


class CachedProgram:
  """``fn(*args)`` (a pure function of pytrees of arrays) through a jax.export program stored in ``folder``.

  Per distinct argument structure/shapes: the program is loaded from disk if
  present, else traced, exported, written and used; either way the call runs
  the same exported program (so a cold and a warm run give identical results).
  ``last`` says how the latest call got its program: "memory", "disk" or "traced".
  """

  def __init__(self, fn: Callable, folder: str, name: str, key: Any):
    self.fn, self.folder, self.name, self.key = fn, folder, name, key
    self._programs: dict[str, tuple[Callable, Any]] = {}
    self.last = None

  def path(self, key: str) -> str:
    return os.path.join(self.folder, f"{self.name}-{key}.jaxexport")

  def __call__(self, *args):
    leaves, treedef = jax.tree.flatten(args)
    if any(isinstance(x, jax.core.Tracer) for x in leaves):  # Inside a transformation: the plain function.
      return self.fn(*args)
    key = entry_key(self.name, self.key, treedef, leaves)
    if key in self._programs:
      self.last = "memory"
      call, out_tree = self._programs[key]
      return jax.tree.unflatten(out_tree, call(*leaves))
    loaded = self._load(key, len(leaves))
    if loaded is not None:
      try:
        out = loaded[0](*leaves)
      except Exception:  # pylint: disable=broad-except  # An entry JAX cannot run: trace instead.
        loaded = None
      else:
        self._programs[key], self.last = loaded, "disk"
        return jax.tree.unflatten(loaded[1], out)
    call, out_tree = self._programs[key] = self._export(key, treedef, leaves)
    self.last = "traced"
    return jax.tree.unflatten(out_tree, call(*leaves))

  def _load(self, key: str, num_leaves: int):
    try:
      with open(self.path(key), "rb") as f:
        entry = pickle.load(f)
      if entry.get("format") != _FORMAT or entry.get("key") != key:
        return None
      exported = jax.export.deserialize(bytearray(entry["exported"]))
      if len(exported.in_avals) != num_leaves:
        return None
      return jax.jit(exported.call), entry["out_tree"]
    except Exception:  # pylint: disable=broad-except  # Missing, truncated, corrupt, another version.
      return None

  def _export(self, key: str, treedef, leaves):
    box = []

    def flat(*flat_args):
      TRACES[self.name] += 1
      out_leaves, out_tree = jax.tree.flatten(self.fn(*jax.tree.unflatten(treedef, flat_args)))
      box.append(out_tree)
      return out_leaves

    exported = jax.export.export(jax.jit(flat))(*leaves)
    try:
      data = pickle.dumps({"format": _FORMAT, "key": key, "exported": bytes(exported.serialize()),
                           "out_tree": box[-1]})
    except Exception:  # pylint: disable=broad-except  # Unserialisable: still run it, just don't store it.
      data = None
    if data is not None:
      _write_atomic(self.path(key), data)
    return jax.jit(exported.call), box[-1]


def cached_shapes(folder: str | None, name: str, key: Any, compute: Callable[[], Any]) -> dict:
  """``compute()`` (a nested dict of ShapeDtypeStructs) as a flat {"a/b": ShapeDtypeStruct}, from
  ``folder/<name>-<key>.json`` when present (``folder`` None: always computed)."""
  from flax import traverse_util
  path = None if folder is None else os.path.join(folder, f"{name}-{entry_key(name, key)}.json")
  if path is not None:
    try:
      with open(path) as f:
        record = json.load(f)
      return {k: jax.ShapeDtypeStruct(tuple(s), np.dtype(d)) for k, (s, d) in record.items()}
    except Exception:  # pylint: disable=broad-except  # Missing or unreadable: compute it again.
      pass
  flat = traverse_util.flatten_dict(compute(), sep="/")
  if path is not None:
    record = {k: [list(v.shape), np.dtype(v.dtype).name] for k, v in flat.items()}
    _write_atomic(path, json.dumps(record, sort_keys=True).encode())
  return flat
