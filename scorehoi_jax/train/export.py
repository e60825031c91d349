"""``scorehoi export``: a stage-2 training run -> a model folder for inference (model_store format).

A stage-2 checkpoint already carries everything inference needs: the frozen
stage-1 HOINet (``frozen.net``), the frozen point encoder
(``frozen.point_encoder``) and the denoiser's EMA weights. This lives on the
training side so that model_store (loaded by every inference command) never
imports the training code.
"""

from __future__ import annotations

import os

from scorehoi_jax.model_store import ModelError, save_model
from scorehoi_jax.train.checkpoint import Checkpoints


def _stage2_state(run_dir: str, step: int | None):
  ck_dir = os.path.join(run_dir, "checkpoints")
  if not os.path.isdir(ck_dir):
    raise ModelError(f"{run_dir}: not a training run (no checkpoints/ folder).")
  state, meta = Checkpoints(ck_dir).restore_raw(step)
  if meta.get("stage") != 2 or "ema_params" not in state:
    raise ModelError(f"{run_dir}: a stage-{meta.get('stage')} run; export needs the stage-2 run "
                     "(it holds the frozen stage-1 network, the point encoder and the denoiser).")
  return state, meta


def export_model(stage2_run: str, out_dir: str, *, step: int | None = None, dtype: str = "bfloat16",
                 notes: dict | None = None, overwrite: bool = True) -> str:
  """Write the inference folder from a stage-2 run (newest checkpoint unless ``step``)."""
  state, meta = _stage2_state(stage2_run, step)
  variables = {"net": state["frozen"]["net"], "point_encoder": state["frozen"]["point_encoder"],
               "denoiser": {"params": state["ema_params"]}}
  info = {"source": os.path.abspath(stage2_run), "step": int(meta.get("step", -1)), "notes": notes or {}}
  return save_model(variables, meta["config"], out_dir, dtype=dtype, info=info, overwrite=overwrite)
