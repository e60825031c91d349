"""Trained models for inference: export from a stage-2 run, load, check against the networks.

A stage-2 checkpoint already carries everything inference needs: the frozen
stage-1 HOINet (``frozen.net``), the frozen point encoder
(``frozen.point_encoder``) and the denoiser's EMA weights. ``export_model``
writes them as one small folder:

  model.json      format version, the training config (network sizes, image size), provenance
  variables.npz   flat "net/params/backbone/…" keys; floating weights stored in bfloat16
                  (as uint16 bit patterns: .npz has no bfloat16), BatchNorm statistics in float32

bfloat16 halves the size with no visible effect on the predictions (the
networks run in float32 after loading; the export test bounds the change).
``load_model()`` without a path loads the default model shipped in
``scorehoi_jax/assets/model`` (no network access, ever).
"""

from __future__ import annotations

import dataclasses
import json
import os

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


def _stage2_state(run_dir: str, step: int | None):
  from scorehoi_jax.train.checkpoint import Checkpoints
  ck_dir = os.path.join(run_dir, "checkpoints")
  if not os.path.isdir(ck_dir):
    raise ModelError(f"{run_dir}: not a training run (no checkpoints/ folder).")
  state, meta = Checkpoints(ck_dir).restore_raw(step)
  if meta.get("stage") != 2 or "ema_params" not in state:
    raise ModelError(f"{run_dir}: a stage-{meta.get('stage')} run; export needs the stage-2 run "
                     "(it holds the frozen stage-1 network, the point encoder and the denoiser).")
  return state, meta


def export_model(stage2_run: str, out_dir: str, *, step: int | None = None, dtype: str = "bfloat16",
                 notes: dict | None = None) -> str:
  """Write the inference folder from a stage-2 run (newest checkpoint unless ``step``)."""
  state, meta = _stage2_state(stage2_run, step)
  variables = {"net": state["frozen"]["net"], "point_encoder": state["frozen"]["point_encoder"],
               "denoiser": {"params": state["ema_params"]}}
  info = {"source": os.path.abspath(stage2_run), "step": int(meta.get("step", -1)), "notes": notes or {}}
  return save_model(variables, meta["config"], out_dir, dtype=dtype, info=info)


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
    with open(os.path.join(tmp, _CONFIG_FILE), "w") as f:
      json.dump(meta, f, indent=1, default=str)
  return out_dir


def load_model(path: str | None = None) -> TrainedModel:
  """A model folder written by ``export_model`` (default: the shipped model)."""
  path = path or default_model_path()
  cfg_path, var_path = os.path.join(path, _CONFIG_FILE), os.path.join(path, _VARIABLES_FILE)
  if not os.path.isdir(path):
    raise ModelError(f"{path}: model folder not found.")
  for p in (cfg_path, var_path):
    if not os.path.isfile(p):
      raise ModelError(f"{p}: missing; a model folder holds {_CONFIG_FILE} and {_VARIABLES_FILE} "
                       "(write one with `scorehoi export`).")
  try:
    with open(cfg_path) as f:
      info = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ModelError(f"{cfg_path}: malformed JSON ({e}).") from None
  if info.get("format") != FORMAT or "config" not in info:
    raise ModelError(f"{cfg_path}: not a scorehoi_jax model (format {info.get('format')!r}, expected {FORMAT}).")
  bf16 = info.get("stored_dtypes", {})
  flat = {}
  try:
    with np.load(var_path) as z:
      for k in z.files:
        v = z[k]  # Each access decompresses the array from the archive: read it once.
        if bf16.get(k) == "bfloat16":
          v = v.view(ml_dtypes.bfloat16)
        flat[k] = v.astype(np.float32) if k in bf16 or np.issubdtype(v.dtype, np.floating) else v
  except (OSError, ValueError, EOFError) as e:
    raise ModelError(f"{var_path}: cannot read the weights ({e}).") from None
  return TrainedModel(ml_collections.ConfigDict(info["config"]), _unflatten(flat), path, info)


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
