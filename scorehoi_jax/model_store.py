"""Trained models for inference: save, load, check against the networks.

A model folder (written by ``save_model``; ``scorehoi export``, i.e.
train/export.py, makes one from a stage-2 run) holds:

  model.json      format version, the training config (network sizes, image size), provenance,
                  and the sha256 of variables.npz (checked on load: a corrupted download or disk
                  is named as such, not as an unreadable archive or, worse, silently wrong weights)
  variables.npz   flat "net/params/backbone/…" keys; floating weights stored in bfloat16
                  (as uint16 bit patterns: .npz has no bfloat16), BatchNorm statistics in float32

bfloat16 halves the size with no visible effect on the predictions (the
networks run in float32 after loading; the export test bounds the change).
``load_model()`` without a path loads the default model shipped in
``scorehoi_jax/assets/model`` (no network access, ever).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import zipfile

import ml_collections
import ml_dtypes
from flax import traverse_util
import numpy as np

from scorehoi_jax.errors import ScoreHOIError

FORMAT = 1
_CONFIG_FILE = "model.json"
_VARIABLES_FILE = "variables.npz"


class ModelError(ScoreHOIError):
  """A model folder is missing, unreadable, or does not fit the networks its config describes."""


@dataclasses.dataclass(frozen=True)
class TrainedModel:
  """The inference variables and the training config that sized the networks.

  variables: {"net": {"params", "batch_stats"}, "point_encoder": {"params"},
  "denoiser": {"params"}} as nested dicts of float32 NumPy arrays.
  """
  config: ml_collections.ConfigDict
  variables: dict
  path: str
  info: dict


def default_model_path() -> str:
  return os.path.join(os.path.dirname(__file__), "assets", "model")


def _flatten(tree) -> dict:
  """{"a": {"b": leaf}} -> {"a/b": leaf} (the keys of variables.npz)."""
  return traverse_util.flatten_dict(tree, sep="/")


def _unflatten(flat: dict) -> dict:
  return traverse_util.unflatten_dict(flat, sep="/")


def save_model(variables: dict, config: dict, out_dir: str, *, dtype: str = "bfloat16", info: dict | None = None,
               overwrite: bool = True) -> str:
  """Write ``variables`` ({"net", "point_encoder", "denoiser"}) and the training ``config`` as a model folder.

  dtype 'bfloat16' stores floating weights as bfloat16 (BatchNorm statistics stay float32).
  """
  from scorehoi_jax.outputs import atomic_output_dir
  if dtype not in ("bfloat16", "float32"):
    raise ValueError(f"save_model: dtype must be 'bfloat16' or 'float32', got {dtype!r}.")
  stored, dtypes = {}, {}
  for k, v in _flatten(variables).items():
    v = np.asarray(v)
    if "batch_stats" in k.split("/") or dtype == "float32" or not np.issubdtype(v.dtype, np.floating):
      stored[k] = v
    else:
      stored[k] = v.astype(ml_dtypes.bfloat16).view(np.uint16)
      dtypes[k] = "bfloat16"
  meta = {"format": FORMAT, "config": dict(config), "stored_dtypes": dtypes, **(info or {})}
  with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
    np.savez(os.path.join(tmp, _VARIABLES_FILE), **stored)
    meta["sha256"] = {_VARIABLES_FILE: file_sha256(os.path.join(tmp, _VARIABLES_FILE))}
    with open(os.path.join(tmp, _CONFIG_FILE), "w") as f:
      json.dump(meta, f, indent=1, default=str)
  return out_dir


def file_sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _verify_checksums(path: str, info: dict, cfg_path: str):
  """Compare each listed file with its sha256 in model.json (folders without checksums load as before)."""
  sums = info.get("sha256") or {}
  if not isinstance(sums, dict):
    raise ModelError(f"{cfg_path}: malformed 'sha256' entry (expected {{file: hex digest}}).")
  for name, want in sums.items():
    p = os.path.join(path, name)
    if not os.path.isfile(p):
      raise ModelError(f"{p}: missing (listed in {_CONFIG_FILE}).")
    if file_sha256(p) != str(want).lower():
      raise ModelError(f"{p}: corrupted (its sha256 differs from the one in {_CONFIG_FILE}); "
                       "copy or download the model folder again.")


def _read_info(cfg_path: str) -> dict:
  """model.json's contents, checked to be this package's format (ModelError otherwise)."""
  try:
    with open(cfg_path, encoding="utf-8") as f:
      info = json.load(f)
  except FileNotFoundError:
    raise ModelError(f"{cfg_path}: missing; not a model folder.") from None
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ModelError(f"{cfg_path}: malformed JSON ({e}).") from None
  if not isinstance(info, dict) or info.get("format") != FORMAT or "config" not in info:
    raise ModelError(f"{cfg_path}: not a scorehoi_jax model (format "
                     f"{info.get('format') if isinstance(info, dict) else None!r}, expected {FORMAT}).")
  return info


def load_model(path: str | None = None) -> TrainedModel:
  """A model folder written by ``save_model`` / ``scorehoi export`` (default: the shipped model)."""
  path = path or default_model_path()
  cfg_path, var_path = os.path.join(path, _CONFIG_FILE), os.path.join(path, _VARIABLES_FILE)
  if not os.path.isdir(path):
    raise ModelError(f"{path}: model folder not found.")
  for p in (cfg_path, var_path):
    if not os.path.isfile(p):
      raise ModelError(f"{p}: missing; a model folder holds {_CONFIG_FILE} and {_VARIABLES_FILE} "
                       "(write one with `scorehoi export`).")
  info = _read_info(cfg_path)
  _verify_checksums(path, info, cfg_path)
  bf16 = info.get("stored_dtypes", {})
  flat = {}
  try:
    with np.load(var_path) as z:
      for k in z.files:
        v = z[k]  # Each access decompresses the array from the archive: read it once.
        if bf16.get(k) == "bfloat16":
          v = v.view(ml_dtypes.bfloat16)
        flat[k] = v.astype(np.float32) if k in bf16 or np.issubdtype(v.dtype, np.floating) else v
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise ModelError(f"{var_path}: cannot read the weights ({e}).") from None
  return TrainedModel(ml_collections.ConfigDict(info["config"]), _unflatten(flat), path, info)


def update_info(path: str, config: dict | None = None, **info) -> str:
  """Merge ``config`` into model.json's training config and ``info`` into its top level; returns its path.

  For facts learned after training (calibrated thresholds, …). The weights and their checksum are not
  touched. Written to a temporary file and renamed, so a failure never leaves half a model.json.
  """
  cfg_path = os.path.join(path, _CONFIG_FILE)
  meta = _read_info(cfg_path)
  meta["config"].update(config or {})
  meta.update(info)
  tmp = cfg_path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(meta, f, indent=1, default=str)
  os.replace(tmp, cfg_path)
  return cfg_path


def check_variables(expected, got, where: str):
  """Raise ModelError naming the first missing/extra/mis-shaped leaf (expected: shapes from eval_shape)."""
  exp = _flatten(expected)
  have = _flatten(got)
  for k, s in exp.items():
    if k not in have:
      raise ModelError(f"{where}: the weights lack {k} (shape {tuple(s.shape)}); the checkpoint does not match "
                       "the config's networks.")
    if tuple(have[k].shape) != tuple(s.shape):
      raise ModelError(f"{where}: {k} has shape {tuple(have[k].shape)} but the config's network expects "
                       f"{tuple(s.shape)}; the checkpoint does not match the config.")
  extra = sorted(set(have) - set(exp))
  if extra:
    raise ModelError(f"{where}: unexpected weights {extra[:3]}{'…' if len(extra) > 3 else ''}; the checkpoint "
                     "does not match the config's networks.")
