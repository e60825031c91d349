"""`scorehoi train` end to end on a tiny synthetic dataset: both stages, resume, errors."""

import json
import os

import numpy as np
import pytest

from scorehoi_jax import cli
from scorehoi_jax.config import load_config
from scorehoi_jax.data.synthetic_hoi import prepare_synthetic
from scorehoi_jax.errors import ScoreHOIError
from scorehoi_jax.train import loop
from scorehoi_jax.train.run import train_and_evaluate

pytestmark = pytest.mark.usefixtures("fast_compile")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("data"))
  prepare_synthetic(out, num=4, seed=1, resolution=64, workers=1, test_fraction=0.25, progress=False)
  return out


@pytest.fixture(scope="module")
def stage0_dir(data_dir, tmp_path_factory):
  work = str(tmp_path_factory.mktemp("s0"))
  assert cli.main(["train", "--config", "tiny:stage0", "--workdir", work,
                   f"--config.data.dir={data_dir}"]) == 0
  return work


@pytest.fixture(scope="module")
def stage1_dir(data_dir, stage0_dir, tmp_path_factory):
  work = str(tmp_path_factory.mktemp("s1"))
  assert cli.main(["train", "--config", "tiny", "--workdir", work, f"--config.data.dir={data_dir}",
                   f"--config.point_encoder_checkpoint={stage0_dir}"]) == 0
  return work


def test_point_encoder_pretraining_feeds_stage1(stage0_dir, stage1_dir, data_dir):
  train = [r for r in loop.read_metrics(stage0_dir) if "loss" in r]
  assert len(train) == 3 and all(np.isfinite(r["ce"]) for r in train)
  # Stage 1 froze exactly the pre-trained encoder.
  import jax
  from scorehoi_jax.train import run
  cfg = load_config("tiny", [f"--config.data.dir={data_dir}",
                             f"--config.point_encoder_checkpoint={stage0_dir}"])
  net, enc = run.build_networks(cfg)
  batch0 = run._first_batch(cfg)
  enc_vars = run._encoder_variables(cfg, enc, batch0)
  s1 = run.restore_stage1(load_config("tiny:stage2", [f"--config.data.dir={data_dir}",
                                                      f"--config.stage1_workdir={stage1_dir}"]),
                          net, enc, batch0)
  for a, b in zip(jax.tree.leaves(enc_vars), jax.tree.leaves(s1.frozen)):
    np.testing.assert_array_equal(a, b)


def test_stage1_trains_logs_and_checkpoints(stage1_dir):
  recs = loop.read_metrics(stage1_dir)
  train = [r for r in recs if "loss" in r]
  assert [r["step"] for r in train] == [0, 1, 2]
  assert all(np.isfinite(r["loss"]) for r in train)
  val = [r for r in recs if "val/loss" in r]  # Validated at the end, with the field's metrics too.
  assert val and all(np.isfinite(val[-1][k]) for k in ("val/cd_human_cm", "val/cd_object_cm", "val/contact_f1"))
  assert os.path.exists(os.path.join(stage1_dir, "curves.png"))
  with open(os.path.join(stage1_dir, "config.json")) as f:
    assert json.load(f)["stage"] == 1


def test_stage1_resumes_from_its_checkpoint(stage1_dir, data_dir):
  cfg = load_config("tiny", [f"--config.data.dir={data_dir}", "--config.steps=4"])
  _, records = train_and_evaluate(cfg, stage1_dir)
  assert [r["step"] for r in records if "loss" in r] == [3]  # Only the new step ran.


@pytest.fixture(scope="module")
def stage2_dir(stage1_dir, data_dir, tmp_path_factory):
  work = str(tmp_path_factory.mktemp("s2"))
  assert cli.main(["train", "--config", "tiny:stage2", "--workdir", work,
                   f"--config.data.dir={data_dir}", f"--config.stage1_workdir={stage1_dir}"]) == 0
  return work


def test_stage2_trains_on_frozen_stage1(stage2_dir):
  train = [r for r in loop.read_metrics(stage2_dir) if "loss" in r]
  assert len(train) == 3 and all(np.isfinite(r["loss"]) for r in train)


def test_exported_model_reproduces_the_stage1_forward(stage1_dir, stage2_dir, data_dir, tmp_path):
  """export → load → Reconstructor without diffusion = stage 1's own HOINet forward (regressor, CRFormer)."""
  import dataclasses

  import jax

  from scorehoi_jax.data.tfds_common import data_source, decode_record
  from scorehoi_jax.diffusion.xpack import default_betas_stats, pack_x
  from scorehoi_jax.model_store import load_model
  from scorehoi_jax.objects import get_object, stack_geometries
  from scorehoi_jax.diffusion.sampler import settings_from_config
  from scorehoi_jax.diffusion.xpack import orthonormalize_x
  from scorehoi_jax.reconstruct import Reconstructor, default_refine_config
  from scorehoi_jax.train import losses, run, steps

  model_dir = str(tmp_path / "model")
  assert cli.main(["export", "--run", stage2_dir, "--out", model_dir, "--dtype", "float32"]) == 0
  model = load_model(model_dir)
  cfg = load_config("tiny:stage2", [f"--config.data.dir={data_dir}",
                                    f"--config.stage1_workdir={stage1_dir}"])
  net, enc = run.build_networks(cfg)
  batch = run._first_batch(cfg)  # Records 0, 1 of train, unaugmented.
  s1 = run.restore_stage1(cfg, net, enc, batch)
  sub = run.guidance_body(cfg)
  setup = steps.Stage1Setup(net, enc, steps.adam(), sub, losses.knn_edges(np.asarray(sub.v_template)))
  ref, _ = setup.forward(s1.params, s1.batch_stats, s1.frozen, batch, train=False)

  rcfg = default_refine_config()
  rec = Reconstructor(model, rcfg, settings=dataclasses.replace(settings_from_config(rcfg), use_diffusion=False))
  src = data_source(data_dir, "synthetic_hoi", "train")
  recs = [decode_record(src[i]) for i in range(2)]
  objects = stack_geometries([get_object(r["object_name"], seed=int(r["object_seed"]), sdf_resolution=16).geometry()
                              for r in recs])
  out = jax.device_get(rec(batch, objects))
  # The refinement starts from the rotations the regressor's 6D decode to (orthonormal 6D, xpack.orthonormalize_x).
  x_ref = orthonormalize_x(pack_x(ref["pose6d"], ref["obj_rot6d"], ref["obj_trans"], ref["betas"],
                                  default_betas_stats()))
  np.testing.assert_allclose(out.x_regressor, x_ref, atol=1e-5)
  np.testing.assert_array_equal(out.x_refined, out.x_regressor)
  np.testing.assert_allclose(out.cam_trans, ref["cam_trans"], atol=1e-5)
  np.testing.assert_allclose(out.final_human_points, ref["refined_human_points"], atol=1e-4)
  np.testing.assert_allclose(out.final_obj_rotmat, ref["refined_obj_rotmat"], atol=1e-4)
  np.testing.assert_allclose(out.contacts[0], ref["p_h"], atol=1e-5)


@pytest.fixture(scope="module")
def exported_dir(stage2_dir, tmp_path_factory):
  out = str(tmp_path_factory.mktemp("export") / "model")
  assert cli.main(["export", "--run", stage2_dir, "--out", out, "--dtype", "float32"]) == 0
  return out


def test_stage2_from_a_model_folder_retrains_only_the_denoiser(exported_dir, data_dir, tmp_path):
  """Table 3's w/o c_I row as a retrain of a shipped model: the model folder's HOINet and point encoder
  are frozen exactly as stored, and the new denoiser has no image-condition weights."""
  from flax import traverse_util

  from scorehoi_jax.model_store import load_model, update_info
  from scorehoi_jax.train.checkpoint import Checkpoints

  thresholds = {"human": 0.7, "object": 0.4, "floor": 0.6}  # The frozen ContactFormer's calibration carries over.
  update_info(exported_dir, config={"contact_thresholds": thresholds})
  work = str(tmp_path / "s2_no_ci")
  assert cli.main(["train", "--config", "tiny:stage2", "--workdir", work, f"--config.data.dir={data_dir}",
                   f"--config.stage1_workdir={exported_dir}", "--config.model.denoiser.use_image_cond=False"]) == 0
  state, meta = Checkpoints(os.path.join(work, "checkpoints")).restore_raw()
  assert meta["stage"] == 2 and meta["config"]["contact_thresholds"] == thresholds
  model = load_model(exported_dir)
  for part in ("net", "point_encoder"):
    want = traverse_util.flatten_dict(model.variables[part])
    got = traverse_util.flatten_dict(state["frozen"][part])
    assert set(got) == set(want)
    for k in want:
      np.testing.assert_array_equal(got[k], want[k], err_msg="/".join(k))
  keys = lambda tree: {"/".join(k) for k in traverse_util.flatten_dict(tree)}
  assert any("image" in k for k in keys(model.variables["denoiser"]["params"]))
  assert not any("image" in k for k in keys(state["ema_params"]))


def test_stage2_from_a_model_folder_of_other_sizes_is_a_clear_error(exported_dir, data_dir, tmp_path):
  cfg = load_config("tiny:stage2", [f"--config.data.dir={data_dir}", f"--config.stage1_workdir={exported_dir}",
                                    "--config.model.regressor.hidden_dim=24"])
  with pytest.raises(ScoreHOIError, match=r"model.*net/params/.*expects"):
    train_and_evaluate(cfg, str(tmp_path / "s2"))
  assert not os.path.isdir(os.path.join(tmp_path, "s2", "checkpoints"))


def test_stage2_without_stage1_is_a_clear_error(data_dir, tmp_path):
  cfg = load_config("tiny:stage2", [f"--config.data.dir={data_dir}"])
  with pytest.raises(ScoreHOIError, match="stage1_workdir"):
    train_and_evaluate(cfg, str(tmp_path / "s2"))


def test_cli_rejects_unknown_override(capsys):
  assert cli.main(["train", "--config", "tiny", "--workdir", "/tmp/x", "--config.nope=1"]) == 2
  assert "no config field 'nope'" in capsys.readouterr().err


def test_point_chamfer_after_procrustes_matches_reference():
  from scipy.spatial import cKDTree
  from scipy.spatial.transform import Rotation

  from scorehoi_jax.train.run import _point_cd_cm
  rng = np.random.default_rng(0)
  h, o = rng.normal(size=(431, 3)) * 0.3, rng.normal(size=(64, 3)) * 0.1 + 0.4
  r = Rotation.random(random_state=1).as_matrix()
  sim = lambda x: 1.3 * x @ r.T + [0.2, -0.1, 2.0]
  np.testing.assert_allclose(_point_cd_cm(sim(h), sim(o), h, o), (0.0, 0.0), atol=1e-3)  # Similarity removed.
  noisy = h + rng.normal(size=h.shape) * 0.01
  # Noise this small barely moves the joint fit: compare with a plain two-way NN reference.
  ref = 100 * (cKDTree(h).query(noisy)[0].mean() + cKDTree(noisy).query(h)[0].mean())
  assert abs(_point_cd_cm(noisy, o, h, o)[0] - ref) < 0.1 * ref
