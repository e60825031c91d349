"""Contact-mask thresholds calibrated on training frames, stored with the model.

Why: the released code makes CDIR's hard masks as M = [p > 0.5] from a ContactFormer trained with
plain BCE. Ours is trained with a class-balanced BCE (positives weighted by n_neg / n_pos, ≈ 10 for
the human head), because plain BCE learned "never in contact". Weighting the positives scales the
predicted odds by that weight, so 0.5 no longer means "more likely than not": on the capture test
split the shipped model marked 86.5 of 431 human and 20.4 of 64 object points per frame against
label rates of 39.3 and 8.5, and L_ho pulled wrong pairs together. A threshold per head, chosen
where the masks agree best with the labels (F1 over every entry), undoes the shift without a retrain.

The probabilities are ContactFormer's at the regressor's estimate, which is what CDIR's first round
sees; the frames are training frames (the thresholds are part of the model, never tuned on test).
"""

from __future__ import annotations

import jax
import numpy as np

from scorehoi_jax.diffusion.refine import CONTACT_HEADS
from scorehoi_jax.evaluation.metrics import f1_score

HEADS = CONTACT_HEADS
_LABELS = {"human": "human_contact", "object": "object_contact", "floor": "object_floor_contact"}
_PROBS = {"human": "p_h", "object": "p_o", "floor": "p_of"}
GRID = np.round(np.arange(0.05, 0.995, 0.01), 2)  # Candidate thresholds.


def mask_f1(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
  """Precision, recall and F1 of M = [p > threshold] against binary labels, over every entry."""
  pred, lab = np.asarray(probs) > threshold, np.asarray(labels) > 0.5
  tp = float(np.sum(pred & lab))
  p = tp / max(float(pred.sum()), 1.0)
  r = tp / max(float(lab.sum()), 1.0)
  return {"precision": p, "recall": r, "f1": f1_score(p, r)}


def best_threshold(probs: np.ndarray, labels: np.ndarray, grid=GRID) -> dict:
  """The grid threshold with the highest mask F1 (ties: the lowest), with its scores and mask sizes.

  probs, labels: [F, n] per frame. Returns {"threshold", "f1", "precision", "recall", "on_per_frame",
  "labels_per_frame", "f1_at_0.5", "on_at_0.5"}. A head with no positive label keeps 0.5 (nothing to calibrate on).
  """
  probs, labels = np.asarray(probs, np.float64), np.asarray(labels, np.float64)
  frames = max(len(probs), 1)
  base = {"labels_per_frame": float((labels > 0.5).sum()) / frames, "f1_at_0.5": mask_f1(probs, labels, 0.5)["f1"],
          "on_at_0.5": float((probs > 0.5).sum()) / frames}
  if not (labels > 0.5).any():
    return dict(base, threshold=0.5, on_per_frame=float((probs > 0.5).sum()) / frames, **mask_f1(probs, labels, 0.5))
  scores = [mask_f1(probs, labels, float(t)) for t in grid]
  i = int(np.argmax([s["f1"] for s in scores]))  # argmax takes the first (lowest) of equal maxima.
  t = float(grid[i])
  return dict(base, threshold=t, on_per_frame=float((probs > t).sum()) / frames, **scores[i])


def contact_probabilities(model, data_dir: str, split: str = "train", *, dataset: str = "synthetic_hoi",
                          limit: int | None = 480, batch_size: int = 32, progress: bool = True) -> dict:
  """ContactFormer's probabilities at the regressor's estimate, and the labels, on a split.

  Returns {head: (probs [F, n], labels [F, n])} for head in HEADS.
  """
  from tqdm import tqdm
  from scorehoi_jax.data.pipeline import PipelineConfig, make_example, stack
  from scorehoi_jax.data.tfds_common import data_source, decode_record
  from scorehoi_jax.models.build import build_networks
  from scorehoi_jax.model_store import check_variables
  from scorehoi_jax.reconstruct import abstract_variables, make_bodies

  src = data_source(data_dir, dataset, split)
  n = len(src) if limit is None else min(int(limit), len(src))
  nets = build_networks(model.config.model)
  guidance = make_bodies(model.config.get("body_model") or None).guidance
  size = int(model.config.data.image_size)
  # A model whose weights do not fit its config is named here, not by a shape error deep in Flax.
  check_variables(abstract_variables(nets, size, guidance, model.config.model.get("image_cond", "pooled")),
                  model.variables, model.path)
  variables = jax.device_put(model.variables)
  cfg = PipelineConfig(size=size)

  @jax.jit
  def forward(v, image, template, focal, princpt):
    geo = nets.point_encoder.apply(v["point_encoder"], template)
    geo = {"global": geo["global"], "tokens": geo["tokens"]}
    out = nets.net.apply(v["net"], image, template, focal, princpt, geo, guidance, train=False)
    return {k: out[k] for k in _PROBS.values()}

  got = {h: ([], []) for h in HEADS}
  bar = tqdm(total=n, desc=f"contacts ({split})", unit="frame", disable=not progress)
  for start in range(0, n, batch_size):
    exs = [make_example(decode_record(src[i]), cfg)[0] for i in range(start, min(n, start + batch_size))]
    valid = len(exs)
    batch = stack(exs, batch_size)  # One shape: the last batch is padded, not recompiled.
    out = jax.device_get(forward(variables, batch["image"], batch["object_template"], batch["focal"],
                                 batch["princpt"]))
    for h in HEADS:
      got[h][0].append(np.asarray(out[_PROBS[h]])[:valid])
      got[h][1].append(np.asarray(batch[_LABELS[h]])[:valid])
    bar.update(valid)
  bar.close()
  return {h: (np.concatenate(p), np.concatenate(y)) for h, (p, y) in got.items()}


def calibrate(model, data_dir: str, split: str = "train", **kw) -> dict:
  """{head: best_threshold(...)} for every head, plus "frames" and "split"."""
  probs = contact_probabilities(model, data_dir, split, **kw)
  out = {h: best_threshold(*probs[h]) for h in HEADS}
  out.update(frames=int(len(probs["human"][0])), split=split)
  return out


def thresholds_of(model_config) -> tuple[float, float, float] | None:
  """The (human, object, floor) thresholds stored with a model (model.json config.contact_thresholds), or None."""
  t = model_config.get("contact_thresholds") if hasattr(model_config, "get") else None
  return None if not t else tuple(float(t[h]) for h in HEADS)


def write_thresholds(model_dir: str, result: dict) -> str:
  """Store calibrate()'s thresholds in model_dir/model.json (config.contact_thresholds, with provenance).

  Written to a temporary file and renamed, so a failure never leaves half a model.json.
  """
  from scorehoi_jax.model_store import update_info
  return update_info(
      model_dir, {"contact_thresholds": {h: result[h]["threshold"] for h in HEADS}},
      contact_calibration={"split": result["split"], "frames": result["frames"], "rule": "max mask F1 over every entry",
                           **{h: {k: round(float(v), 4) for k, v in result[h].items()} for h in HEADS}})
