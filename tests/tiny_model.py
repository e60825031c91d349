"""A tiny random model folder in the model_store format, for tests of inference code.

The variables are shaped by the networks of scorehoi_jax/configs/tiny.py (reconstruct's
``abstract_variables``: eval_shape, no compile) and filled with small random
numbers; normalisation scales are 1 and BatchNorm statistics are (0, 1), so
every stage gives finite, input-dependent output. Not a useful model.
"""

from __future__ import annotations

import json
import os

import numpy as np


def write_tiny_model(path: str, seed: int = 0, config_arg: str | None = None) -> str:
  from scorehoi_jax import model_store
  from scorehoi_jax.config import load_config
  from scorehoi_jax.models.build import build_networks
  from scorehoi_jax.reconstruct import abstract_variables, make_bodies

  cfg = load_config("tiny" + (f":{config_arg}" if config_arg else ""))
  shapes = abstract_variables(build_networks(cfg.model), int(cfg.data.image_size), make_bodies().guidance)
  rng = np.random.default_rng(seed)
  flat = {}
  for key, s in model_store._flatten(shapes).items():
    leaf = key.split("/")[-1]
    if leaf in ("scale", "var"):
      flat[key] = np.ones(s.shape, np.float32)
    elif leaf in ("bias", "mean"):
      flat[key] = np.zeros(s.shape, np.float32)
    else:
      flat[key] = (rng.normal(size=s.shape) * 0.05).astype(s.dtype)
  os.makedirs(path, exist_ok=True)
  np.savez(os.path.join(path, "variables.npz"), **flat)
  with open(os.path.join(path, "model.json"), "w") as f:
    json.dump({"format": model_store.FORMAT, "config": cfg.to_dict(), "stored_dtypes": {}, "source": "tests",
               "step": 0}, f, default=str)
  return path
