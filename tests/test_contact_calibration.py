"""Calibrated contact-mask thresholds: per-head thresholds everywhere a mask is made, the calibration's
choice against an independent sort-based F1, and the thresholds' trip through a model folder."""

import dataclasses
import json
import os

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from scorehoi_jax.config import load_config
from scorehoi_jax.data.synthetic_hoi import prepare_synthetic
from scorehoi_jax.diffusion.refine import RefineSettings, mask_stats, masks_from_probs
from scorehoi_jax.diffusion.sampler import mask_threshold_from_config, settings_from_config
from scorehoi_jax.evaluation import calibration as C
from scorehoi_jax.evaluation.evaluator import mask_counts
from scorehoi_jax.model_store import ModelError, load_model, update_info
from tiny_model import write_tiny_model

pytestmark = pytest.mark.usefixtures("fast_compile")


def _f1_by_sorting(probs, labels, grid):
  """F1 of [p > t] for each t, from the descending sort and cumulative true positives: F1 = 2TP/(|pred|+|pos|)."""
  p, y = np.ravel(probs), np.ravel(labels) > 0.5
  order = np.argsort(-p, kind="stable")
  ps, tp = p[order], np.cumsum(y[order])
  out = []
  for t in grid:
    k = int(np.sum(ps > t))  # The top k are predicted on.
    out.append(2.0 * (tp[k - 1] if k else 0) / (k + y.sum()))
  return np.asarray(out)


def test_best_threshold_matches_sort_based_reference():
  rng = np.random.default_rng(3)
  labels = (rng.random((200, 60)) < 0.1).astype(np.float32)
  # Scores as a balanced-BCE model gives them: positives' odds scaled up, so most sit above 0.5.
  logit = rng.normal(size=labels.shape) + 2.5 * labels + 1.2
  probs = 1 / (1 + np.exp(-logit))
  ref = _f1_by_sorting(probs, labels, C.GRID)
  got = C.best_threshold(probs, labels)
  assert got["threshold"] == pytest.approx(C.GRID[int(np.argmax(ref))])
  assert got["f1"] == pytest.approx(ref.max(), abs=1e-9)
  assert got["f1_at_0.5"] == pytest.approx(_f1_by_sorting(probs, labels, [0.5])[0], abs=1e-9)
  assert got["threshold"] > 0.5  # The shifted scores need a higher cut than 0.5 ...
  assert got["f1"] > got["f1_at_0.5"] + 0.02  # ... and gain from it.
  assert got["on_per_frame"] == pytest.approx(float((probs > got["threshold"]).sum()) / 200)
  none = C.best_threshold(probs, np.zeros_like(labels))  # Nothing to calibrate on: 0.5 stays.
  assert none["threshold"] == 0.5


def test_every_mask_uses_its_heads_threshold():
  s = RefineSettings(mask_threshold=(0.5, 0.7, 0.55))
  probs = tuple(jnp.full((2, 3, 5), 0.6) for _ in range(3))  # [R, B, N] per head.
  masks = masks_from_probs(probs, s)
  assert [float(m.mean()) for m in masks] == [1.0, 0.0, 1.0]
  on, flipped = mask_stats(probs, s)
  assert [int(o[0, 0]) for o in on] == [5, 0, 5]
  assert all(int(f.sum()) == 0 for f in flipped)
  counts = mask_counts(probs, valid=3, threshold=(0.5, 0.7, 0.55))
  np.testing.assert_array_equal(counts["human_on"], [15, 15])
  np.testing.assert_array_equal(counts["object_on"], [0, 0])
  one = masks_from_probs(probs, RefineSettings(mask_threshold=0.65))  # A single float: every head.
  assert [float(m.mean()) for m in one] == [0.0, 0.0, 0.0]


def test_threshold_config_values():
  model_cfg = ml_collections.ConfigDict({"contact_thresholds": {"human": 0.87, "object": 0.53, "floor": 0.92}})
  assert mask_threshold_from_config("model", model_cfg) == (0.87, 0.53, 0.92)
  assert mask_threshold_from_config("model", ml_collections.ConfigDict({})) == 0.5  # Uncalibrated model.
  assert mask_threshold_from_config([0.6, 0.7, 0.8]) == (0.6, 0.7, 0.8)
  with pytest.raises(ValueError, match="mask_threshold"):
    mask_threshold_from_config("auto")
  with pytest.raises(ValueError, match="mask_threshold"):
    RefineSettings(mask_threshold=(0.5, 0.6))
  cfg = load_config("refine_paper")
  assert cfg.refine.mask_threshold == "model"
  assert settings_from_config(cfg, model_cfg).mask_threshold == (0.87, 0.53, 0.92)


def test_calibrate_and_store_with_the_model(tmp_path):
  data = str(tmp_path / "data")
  prepare_synthetic(data, num=2, seed=5, resolution=64, workers=1, test_fraction=0.99, progress=False)
  path = write_tiny_model(str(tmp_path / "model"))
  model = load_model(path)
  probs = C.contact_probabilities(model, data, "test", batch_size=4, progress=False)
  from scorehoi_jax.data.tfds_common import data_source, decode_record
  src = data_source(data, "synthetic_hoi", "test")
  for head, key in (("human", "human_contact"), ("object", "object_contact"), ("floor", "object_floor_contact")):
    p, y = probs[head]
    want = np.stack([np.asarray(decode_record(src[i])[key]) for i in range(len(src))])
    np.testing.assert_array_equal(y, want)  # The labels of the frames, in order, padding dropped.
    assert p.shape == want.shape and np.all((p >= 0) & (p <= 1))
  result = {h: C.best_threshold(*probs[h]) for h in C.HEADS}
  result.update(frames=len(src), split="test")
  C.write_thresholds(path, result)
  with open(os.path.join(path, "model.json")) as f:
    meta = json.load(f)
  assert meta["contact_calibration"]["frames"] == len(src)
  again = load_model(path)  # Still a valid model folder (model.json is not checksummed, the weights are).
  from scorehoi_jax.reconstruct import Reconstructor
  rec = Reconstructor(again, load_config("refine_paper"), program_cache=None)
  assert rec.settings.mask_threshold == tuple(result[h]["threshold"] for h in C.HEADS)
  # Weights that do not fit the config are named, with the model's folder, before any compile.
  net = model.variables["net"]
  dropped = sorted(net["params"])[0]
  broken = dataclasses.replace(model, variables={**model.variables, "net": {
      **net, "params": {k: v for k, v in net["params"].items() if k != dropped}}})
  with pytest.raises(ModelError, match=f"{path}.*lack net/params/{dropped}"):
    C.contact_probabilities(broken, data, "test", batch_size=4, progress=False)
  with open(os.path.join(path, "model.json"), "w") as f:
    f.write("{broken")
  with pytest.raises(ModelError, match="malformed JSON"):
    update_info(path, {"contact_thresholds": {}})
  assert open(os.path.join(path, "model.json")).read() == "{broken"  # Nothing half-written.
