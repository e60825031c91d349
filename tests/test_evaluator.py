"""The batched evaluator: metric assembly against NumPy/SciPy, padding, stages, the CLI.

A tiny random model (tests/tiny_model.py: scorehoi_jax/configs/tiny.py sizes, random weights,
model_store format) and two synthetic 64-px test frames; the refine
config is refine_paper.py:runlocal (N = 2 rounds).
"""

import dataclasses
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial import cKDTree

from scorehoi_jax import cli
from scorehoi_jax.config import load_config
from scorehoi_jax.data.synthetic_hoi import prepare_synthetic
from scorehoi_jax.evaluation import evaluator, metrics
from scorehoi_jax.geometry.rotations import axis_angle_to_matrix
from scorehoi_jax.model_store import load_model
from scorehoi_jax.reconstruct import full_vertices, make_bodies

sys.path.insert(0, os.path.dirname(__file__))
from tiny_model import write_tiny_model  # noqa: E402  (tests/ helper shared with test_reconstruct)

pytestmark = pytest.mark.usefixtures("fast_compile")

SAMPLES = 400  # Chamfer samples: small, the protocol does not depend on the count.
RUNLOCAL = "refine_paper:runlocal"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("evdata"))
  prepare_synthetic(out, num=2, seed=5, resolution=64, workers=1, test_fraction=0.99, progress=False)
  return out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  return write_tiny_model(str(tmp_path_factory.mktemp("model")))


@pytest.fixture(scope="module")
def padded_result(data_dir, model_dir):
  """Two frames in a batch of 3: one padding row."""
  return evaluator.evaluate(load_model(model_dir), data_dir, "test", ["full"], batch_size=3,
                            refine_config=load_config(RUNLOCAL), num_samples=SAMPLES, progress=False)


def _umeyama(src, dst):
  """NumPy similarity (s, R, t) with s R src + t ≈ dst (Umeyama 1991), float64."""
  mu_s, mu_d = src.mean(0), dst.mean(0)
  x, y = src - mu_s, dst - mu_d
  u, sing, vt = np.linalg.svd(y.T @ x / len(src))
  d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt))])
  r = u @ d @ vt
  s = np.trace(np.diag(sing) @ d) / np.mean(np.sum(x * x, 1))
  return s, r, mu_d - s * r @ mu_s


def _reference_chamfer(pred_h, gt_h, pred_o, gt_o, pred_os, gt_os, hs: metrics.FixedSamples):
  """NumPy/SciPy: joint Procrustes on the real vertices, the same sample sets, KD-tree nearest neighbours."""
  s, r, t = _umeyama(np.concatenate([pred_h, pred_o]), np.concatenate([gt_h, gt_o]))
  sim = lambda p: s * p @ r.T + t
  rep = lambda v, f, b: np.einsum("sk,skd->sd", b, v[hs.faces[f]])
  out = []
  for ps, gs in ((rep(sim(pred_h), hs.pred_face, hs.pred_bary), rep(gt_h, hs.gt_face, hs.gt_bary)),
                 (sim(pred_os), gt_os)):
    d_pg, _ = cKDTree(gs).query(ps)
    d_gp, _ = cKDTree(ps).query(gs)
    out.append(100 * (d_pg.mean() + d_gp.mean()))
  return out


def test_hoi_chamfer_matches_numpy_reference_with_padded_object():
  bodies = make_bodies()
  rng = np.random.default_rng(0)
  rot = axis_angle_to_matrix(jnp.asarray(rng.normal(size=(2, 52, 3)) * 0.3, jnp.float32))
  verts = np.asarray(full_vertices(bodies, rot, jnp.zeros((2, 10))), np.float64)
  rest = np.asarray(full_vertices(bodies, jnp.broadcast_to(jnp.eye(3), (1, 52, 3, 3)), jnp.zeros((1, 10)))[0])
  hs = metrics.fixed_samples(rest, np.asarray(bodies.full.faces), SAMPLES)
  obj = rng.uniform(-0.2, 0.2, (50, 3)) + [0.3, 0.0, 0.4]
  r_o = np.asarray(axis_angle_to_matrix(jnp.asarray([0.3, -0.2, 0.5])), np.float64)
  # Prediction: a different pose, the object moved, then a global similarity that Procrustes must undo.
  s, r_g, t_g = 1.1, np.asarray(axis_angle_to_matrix(jnp.asarray([0.1, 0.8, -0.2])), np.float64), np.array([.3, -.1, 2.])
  sim = lambda p: s * p @ r_g.T + t_g
  pred_h, gt_h = sim(verts[1]), verts[0]
  pred_o, gt_o = sim(obj @ r_o.T + [0.05, 0.0, 0.0]), obj
  pred_os, gt_os = sim(obj[:30] @ r_o.T + 0.05), obj[20:]
  # Padded object arrays: garbage rows with weight 0 must not move the alignment.
  pad = lambda p: np.concatenate([p, np.full((7, 3), 5.0)], 0)
  w = np.r_[np.ones(50), np.zeros(7)]
  fn = jax.jit(metrics.make_hoi_chamfer(hs))
  got = fn(*(jnp.asarray(a, jnp.float32) for a in (pred_h, gt_h, pad(pred_o), pad(gt_o), w, pred_os, gt_os)))
  want = _reference_chamfer(pred_h, gt_h, pred_o, gt_o, pred_os, gt_os, hs)
  np.testing.assert_allclose([got["cd_human"], got["cd_object"]], want, rtol=2e-3, atol=2e-3)
  # Identical meshes and identical sample sets: exactly the same points, CD 0, F-score 1.
  hs0 = metrics.FixedSamples(hs.faces, hs.gt_face, hs.gt_bary, hs.gt_face, hs.gt_bary)
  same = jax.jit(metrics.make_hoi_chamfer(hs0))(*(jnp.asarray(a, jnp.float32) for a in
                                                 (gt_h, gt_h, gt_o, gt_o, np.ones(50), gt_os, gt_os)))
  assert float(same["cd_human"]) < 1e-2 and float(same["cd_object"]) < 1e-2
  assert float(same["fscore_human"]) == 1.0


def test_ground_truth_row_scores_gt_exactly(padded_result, data_dir):
  gt = padded_result["ground_truth"]
  # GT contacts come from the GT meshes by the same rule: the GT row scores F1 = 1 on every full-mesh vertex.
  assert padded_result["contact"] == "full"
  assert gt["contact_f1"] == pytest.approx(1.0, abs=1e-6)
  assert gt["contact_num_recall"] == 2
  # Penetration of the GT: the generator rejects frames deeper than 1 cm.
  assert 0.0 <= gt["pen_depth_cm"] < 1.0
  # CD of GT vs GT = the sampling floor of two independent sample sets; the NumPy reference on fresh
  # samples (metrics.reconstruction_metrics) has the same expectation.
  from scorehoi_jax.data.pipeline import PipelineConfig, make_example
  from scorehoi_jax.data.tfds_common import data_source, decode_record
  from scorehoi_jax.objects import get_object
  bodies = make_bodies()
  src = data_source(data_dir, "synthetic_hoi", "test")
  floors = []
  for i in range(2):
    rec = decode_record(src[i])
    ex = make_example(rec, PipelineConfig(size=32))[0]
    h = np.asarray(full_vertices(bodies, jnp.asarray(ex["pose"])[None], jnp.asarray(ex["betas"])[None])[0])
    o = get_object(rec["object_name"], seed=int(rec["object_seed"]))
    ov = o.vertices @ ex["obj_rot"].T + ex["obj_trans"]
    floors.append([np.mean([metrics.reconstruction_metrics(h, ov, h, ov, np.asarray(bodies.full.faces), o.faces,
                                                           SAMPLES, seed)[k] for seed in (0, 2, 4)])
                   for k in ("cd_human", "cd_object")])
  floors = np.mean(floors, 0)
  np.testing.assert_allclose([gt["cd_human"], gt["cd_object"]], floors, rtol=0.25)


def test_stages_and_padding_invariance(padded_result, data_dir, model_dir, tmp_path):
  full = padded_result["methods"]["full"]["stages"]
  assert list(full) == ["regressor", "round_1", "round_2", "refined", "final"]
  for m in padded_result["methods"].values():
    for stage in m["stages"].values():
      assert all(np.isfinite(stage[k]) for k in ("cd_human", "cd_object", "pen_depth_cm"))
  # Same frames without padding (batch 2), through the CLI, with the cheaper regressor-only method: its
  # regressor stage is the same estimate as the full method's, so the means must not change.
  out = str(tmp_path / "ev")
  argv = ["evaluate", "--checkpoint", model_dir, "--data", data_dir, "--methods", "regressor", "--batch", "2",
          "--samples", str(SAMPLES), "--config", RUNLOCAL, "--out", out]
  assert cli.main(argv) == 0
  with open(os.path.join(out, "metrics.json")) as f:
    unpadded = json.load(f)["methods"]["regressor"]["stages"]
  assert list(unpadded) == ["regressor", "refined", "final"]
  for k in ("cd_human", "cd_object", "fscore_human", "contact_precision", "contact_recall", "pen_depth_cm",
            "pen_frac", "loss_total"):
    a, b = full["regressor"][k], unpadded["regressor"][k]
    assert (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b, rel=1e-3, abs=1e-5), (k, a, b)
    assert unpadded["refined"][k] == unpadded["regressor"][k] or np.isnan(a)
  assert os.path.exists(os.path.join(out, "metrics.md"))
  assert cli.main(argv) == 2  # Existing output folder refused.


def test_cli_bad_inputs(capsys, tmp_path, model_dir, data_dir):
  out = str(tmp_path / "x")
  assert cli.main(["evaluate", "--data", str(tmp_path / "nope"), "--out", out]) == 2
  assert "data folder not found" in capsys.readouterr().err
  assert cli.main(["evaluate", "--data", data_dir, "--split", "val", "--checkpoint", model_dir, "--out", out]) == 2
  assert "split 'val' not found" in capsys.readouterr().err
  assert cli.main(["evaluate", "--data", data_dir, "--methods", "full,bogus", "--checkpoint", model_dir,
                   "--out", out]) == 2
  assert "unknown method 'bogus'" in capsys.readouterr().err
  assert not os.path.exists(out)


def test_mask_counts_against_hand_count():
  # 2 rounds, 3 frames (the last is padding), 4 human entries, 2 object entries.
  p_h = np.array([[[0.9, 0.1, 0.6, 0.0], [0.2, 0.2, 0.2, 0.2], [1, 1, 1, 1]],
                  [[0.9, 0.7, 0.4, 0.0], [0.2, 0.8, 0.2, 0.2], [0, 0, 0, 0]]])
  p_o = np.array([[[0.1, 0.9], [0.6, 0.6], [1, 1]], [[0.1, 0.9], [0.6, 0.4], [0, 0]]])
  c = evaluator.mask_counts((p_h, p_o, p_o), valid=2)
  # Round 1: human on = 2 + 0; round 2: 2 + 1, flips: entries 1 and 2 of frame 0, entry 1 of frame 1.
  np.testing.assert_array_equal(c["human_on"], [2, 3])
  np.testing.assert_array_equal(c["human_flipped"], [0, 3])
  np.testing.assert_array_equal(c["object_on"], [3, 2])
  np.testing.assert_array_equal(c["object_flipped"], [0, 1])


def test_per_frame_values_weights_override_and_masks(data_dir, model_dir):
  """per_frame=True returns each frame's values (their mean is the stage's mean), an extra method's own
  GuidanceWeights are used (not the config's), and refining methods report CDIR's mask counts."""
  from scorehoi_jax.diffusion.sampler import settings_from_config, weights_from_config
  from scorehoi_jax.sweep import summarize
  cfg = load_config(RUNLOCAL)
  w = weights_from_config(cfg)
  strong = dataclasses.replace(w, lambda_pt=w.lambda_pt * 100.0, lambda_ho=w.lambda_ho * 100.0)
  extra = {"strong": (settings_from_config(cfg), None, strong)}
  res = evaluator.evaluate(load_model(model_dir), data_dir, "test", ["full", "strong"], batch_size=3,
                           refine_config=cfg, num_samples=SAMPLES, progress=False, extra_methods=extra,
                           per_frame=True)
  full, strong_m = res["methods"]["full"], res["methods"]["strong"]
  for stage, fr in full["frames"].items():
    assert len(fr["cd_human"]) == res["num_frames"] == 2
    for k in ("cd_human", "cd_object", "pen_depth_cm"):
      assert np.mean(fr[k]) == pytest.approx(full["stages"][stage][k], rel=1e-6), (stage, k)
    s = summarize(fr, resamples=50)
    assert s["contact_f1"]["mean"] == pytest.approx(full["stages"][stage]["contact_f1"], abs=1e-9)
  # Same static settings, other weights: the refined losses must differ (the override reached the program).
  a, b = full["stages"]["refined"]["loss_total"], strong_m["stages"]["refined"]["loss_total"]
  assert a != pytest.approx(b, rel=1e-4)
  assert full["stages"]["regressor"]["cd_human"] == pytest.approx(strong_m["stages"]["regressor"]["cd_human"])
  assert len(full["masks"]["human_on"]) == 2 and full["masks"]["human_flipped"][0] == 0


def test_host_search_matches_device_search(padded_result, data_dir, model_dir):
  """The scorer's nearest neighbours on the host (SciPy KD-trees) give the device search's values."""
  host = evaluator.evaluate(load_model(model_dir), data_dir, "test", ["full"], batch_size=3,
                            refine_config=load_config(RUNLOCAL), num_samples=SAMPLES, progress=False,
                            search="host")
  device = evaluator.evaluate(load_model(model_dir), data_dir, "test", ["full"], batch_size=3,
                              refine_config=load_config(RUNLOCAL), num_samples=SAMPLES, progress=False,
                              search="device")
  for stage, dev in device["methods"]["full"]["stages"].items():
    got = host["methods"]["full"]["stages"][stage]
    for k in ("cd_human", "cd_object", "fscore_human", "fscore_object", "contact_precision", "contact_recall",
              "pen_depth_cm"):
      assert got[k] == pytest.approx(dev[k], rel=1e-4, abs=1e-5), (stage, k)


def test_later_methods_reuse_the_regressor_and_ground_truth_searches(data_dir, model_dir, monkeypatch):
  """With the host search, a second method skips the searches of the stages the first already scored (the
  regressor's, the same estimate, and the GT's) and reports the very values a run of it alone gives;
  ``stages`` limits what is searched and reported."""
  cfg, model = load_config(RUNLOCAL), load_model(model_dir)
  kw = dict(batch_size=3, refine_config=cfg, num_samples=SAMPLES, progress=False, search="host", per_frame=True)
  alone = evaluator.evaluate(model, data_dir, "test", ["no_guidance"], **kw)
  skips, frame = [], evaluator._host_frame  # pylint: disable=protected-access

  def recording(*args, **kwargs):
    skips.append(kwargs["skip"])
    return frame(*args, **kwargs)

  monkeypatch.setattr(evaluator, "_host_frame", recording)
  both = evaluator.evaluate(model, data_dir, "test", ["full", "no_guidance"], **kw)
  n_st = len(evaluator.stage_names(cfg.refine.num_rounds))
  frames = kw["batch_size"]  # Searches per method: every row of the one (padded) batch.
  assert skips[:frames] == [frozenset()] * frames  # The first method searches every stage...
  assert skips[frames:] == [frozenset({0, n_st - 1})] * frames  # ...the second neither the regressor nor GT.
  got, want = both["methods"]["no_guidance"], alone["methods"]["no_guidance"]
  for stage in want["stages"]:
    for k in ("cd_human", "cd_object", "fscore_human", "contact_precision", "contact_recall", "contact_f1"):
      assert got["stages"][stage][k] == pytest.approx(want["stages"][stage][k], rel=1e-6, abs=1e-9), (stage, k)
    np.testing.assert_allclose(got["frames"][stage]["cd_object"], want["frames"][stage]["cd_object"], rtol=1e-6)
  assert both["ground_truth"]["cd_human"] == pytest.approx(alone["ground_truth"]["cd_human"])
  skips.clear()
  one = evaluator.evaluate(model, data_dir, "test", ["full"], stages=("refined",), **kw)
  assert set(one["methods"]["full"]["stages"]) == {f"round_{i + 1}" for i in range(cfg.refine.num_rounds)} | {"refined"}
  assert skips == [frozenset({0, n_st - 2})] * frames  # 'regressor' and 'final' are not searched.
  assert one["methods"]["full"]["stages"]["refined"]["cd_human"] == pytest.approx(
      both["methods"]["full"]["stages"]["refined"]["cd_human"], rel=1e-6)
  with pytest.raises(evaluator.EvaluationError, match="stages"):
    evaluator.evaluate(model, data_dir, "test", ["full"], stages=("refind",), **kw)
