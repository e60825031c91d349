"""`scorehoi reconstruct` inputs beyond one object: CONTHO's obj_name/<stem>.json, manifests, --princpt;
`scorehoi evaluate --objects DIR`. Through the CLI, with the tiny random model."""

import csv
import json
import os
import shutil
import sys

import numpy as np
import pytest
import trimesh

from scorehoi_jax import demo
from scorehoi_jax.evaluation import evaluator

sys.path.insert(0, os.path.dirname(__file__))
from cli_capture import run_cli as _cli  # noqa: E402

pytestmark = pytest.mark.usefixtures("fast_compile")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "refine_paper:runlocal"
EXAMPLES = demo.examples_dir()
OBJECTS = {"lift_box": "boxmedium", "hold_ball": "basketball"}




@pytest.fixture(scope="module")
def contho(tmp_path_factory):
  """CONTHO's demo layout: img/, mask_h/, mask_o/, obj_name/<stem>.json."""
  root = tmp_path_factory.mktemp("contho")
  for sub in ("img", "mask_h", "mask_o", "obj_name"):
    os.makedirs(root / sub)
  for s, obj in OBJECTS.items():
    shutil.copy(os.path.join(EXAMPLES, f"{s}.jpg"), root / "img" / f"{s}.jpg")
    shutil.copy(os.path.join(EXAMPLES, f"{s}_human.png"), root / "mask_h" / f"{s}.png")
    shutil.copy(os.path.join(EXAMPLES, f"{s}_object.png"), root / "mask_o" / f"{s}.png")
    (root / "obj_name" / f"{s}.json").write_text(json.dumps({"obj_name": [obj]}))
  return root


def _params(folder):
  return dict(np.load(os.path.join(folder, "params.npz")))


def test_folder_mode_reads_each_frames_object_from_obj_name(contho, tiny, tmp_path):
  out = tmp_path / "out"
  code, _, err = _cli(["reconstruct", "--image", str(contho / "img"), "--human-mask", str(contho / "mask_h"),
                       "--object-mask", str(contho / "mask_o"), "--out", str(out), "--quiet", "--batch", "4",
                       "--config", CONFIG, "--checkpoint", tiny])
  assert code == 0, err
  for stem, obj in OBJECTS.items():
    assert str(_params(out / stem)["object_name"]) == obj


def test_missing_obj_name_json_is_one_clear_line(contho, tmp_path):
  bad = tmp_path / "c"
  shutil.copytree(contho, bad)
  os.remove(bad / "obj_name" / "hold_ball.json")
  code, _, err = _cli(["reconstruct", "--image", str(bad / "img"), "--human-mask", str(bad / "mask_h"),
                       "--object-mask", str(bad / "mask_o"), "--out", str(tmp_path / "o"), "--checkpoint",
                       str(tmp_path / "never_loaded")])
  assert code == 2 and len(err.strip().splitlines()) == 1 and "hold_ball.json" in err, err
  assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_manifest_gives_per_frame_object_focal_and_princpt(contho, tiny, tmp_path, kind):
  rows = [dict(image="img/lift_box.jpg", human_mask="mask_h/lift_box.png", object_mask="mask_o/lift_box.png",
               object="boxmedium", object_seed=100000, focal=[300.0, 310.0], princpt=[120.0, 131.5]),
          dict(image="img/hold_ball.jpg", human_mask="mask_h/hold_ball.png", object_mask="mask_o/hold_ball.png",
               object="ball.obj", focal=[250.0], princpt=None)]
  trimesh.creation.icosphere(2, 0.12).export(contho / "ball.obj")
  path = contho / f"frames_{kind}.{kind}"
  if kind == "json":
    path.write_text(json.dumps(rows))
  else:
    with open(path, "w", newline="") as f:
      w = csv.DictWriter(f, fieldnames=list(rows[0]))
      w.writeheader()
      for r in rows:
        w.writerow({k: (" ".join(map(str, v)) if isinstance(v, list) else ("" if v is None else v))
                    for k, v in r.items()})
  out = tmp_path / "out"
  code, _, err = _cli(["reconstruct", "--manifest", str(path), "--out", str(out), "--quiet", "--batch", "4",
                       "--config", CONFIG, "--checkpoint", tiny])
  assert code == 0, err
  a, b = _params(out / "lift_box"), _params(out / "hold_ball")
  assert str(a["object_name"]) == "boxmedium" and int(a["object_seed"]) == 100000
  np.testing.assert_allclose(a["focal"], [300.0, 310.0])
  np.testing.assert_allclose(a["princpt"], [120.0, 131.5])
  assert str(b["object_name"]).endswith("ball.obj")
  np.testing.assert_allclose(b["focal"], [250.0, 250.0])
  w, h = b["image_size"]
  np.testing.assert_allclose(b["princpt"], [(w - 1) / 2, (h - 1) / 2], atol=0.51)  # Default: the centre.


def test_princpt_flag_sets_the_camera(contho, tiny, tmp_path):
  out = tmp_path / "out"
  code, _, err = _cli(["reconstruct", "--image", str(contho / "img" / "hold_ball.jpg"), "--human-mask",
                       str(contho / "mask_h" / "hold_ball.png"), "--object-mask", str(contho / "mask_o" / "hold_ball.png"),
                       "--object", "basketball", "--princpt", "100", "140.5", "--out", str(out), "--quiet",
                       "--config", CONFIG, "--checkpoint", tiny])
  assert code == 0, err
  np.testing.assert_allclose(_params(out)["princpt"], [100.0, 140.5])


def test_bad_manifest_is_one_clear_line(tmp_path):
  path = tmp_path / "m.csv"
  path.write_text("image,human_mask,object_mask\na.jpg,b.png,c.png\n")
  code, _, err = _cli(["reconstruct", "--manifest", str(path), "--out", str(tmp_path / "o"), "--checkpoint",
                       str(tmp_path / "never_loaded")])
  assert code == 2 and len(err.strip().splitlines()) == 1 and "lacks object" in err, err


def test_objects_dir_provider_reads_info_json_and_mesh_files(tmp_path):
  box = trimesh.creation.box((0.4, 0.3, 0.2))
  os.makedirs(tmp_path / "meshes" / "stool")
  box.export(tmp_path / "meshes" / "boxy.obj")
  trimesh.creation.icosphere(1, 0.2).export(tmp_path / "meshes" / "stool" / "stool.ply")
  (tmp_path / "meshes" / "_info.json").write_text(json.dumps({"chairwood": {"path": "boxy.obj"}}))
  provider = evaluator.objects_from_dir(str(tmp_path / "meshes"))
  np.testing.assert_allclose(np.ptp(provider("chairwood", 3).vertices, 0), [0.4, 0.3, 0.2], atol=1e-6)
  np.testing.assert_allclose(np.ptp(provider("boxy", None).vertices, 0), [0.4, 0.3, 0.2], atol=1e-6)
  assert np.ptp(provider("stool", None).vertices, 0).max() == pytest.approx(0.4, abs=1e-3)
  with pytest.raises(KeyError, match="no mesh for object 'yogaball'"):
    provider("yogaball", None)


def test_evaluate_real_dataset_needs_objects(tmp_path):
  os.makedirs(tmp_path / "data")
  code, _, err = _cli(["evaluate", "--dataset", "behave", "--data", str(tmp_path / "data"), "--out",
                       str(tmp_path / "o")])
  assert code == 2 and "--objects DIR" in err and len(err.strip().splitlines()) == 1, err
