"""Real-dataset readers on tiny fixtures in the official on-disk formats, written here.

Each fixture: a random SMPL-H-layout model saved as SMPLH_NEUTRAL.npz, a box
object (.obj + _info.json with 64 keypoints), a few frames with masks and
CONTHO-style COCO annotations (BEHAVE, InterCap) or IMHD's ground-truth
pickles and calibration files. Builders write ArrayRecord files that are read
back with tfds.data_source; targets are checked against independent
computations (SciPy rotations, analytic point-to-box distances, trimesh).
"""

import json
import os
import pickle

import numpy as np
import pytest
import trimesh
from PIL import Image
from scipy.spatial.transform import Rotation

from scorehoi_jax.body import random_smplh_arrays
from scorehoi_jax.data import pipeline as pl
from scorehoi_jax.data.tfds_common import DatasetError, decode_record

tfds = pytest.importorskip("tensorflow_datasets")

W, H = 64, 48
BOX = np.array([0.5, 0.4, 0.3])  # Object extents (metres).


def _write_model(path):
  arrays = random_smplh_arrays(seed=1, num_vertices=600, num_faces=1200, with_posedirs=False)
  np.savez(path, **arrays)
  return arrays


def _write_object(folder, name="boxsmall"):
  os.makedirs(folder, exist_ok=True)
  box = trimesh.creation.box(BOX)
  box.export(os.path.join(folder, f"{name}.obj"))
  kps = np.random.default_rng(0).uniform(-0.5, 0.5, (64, 3)) * BOX  # Inside the box: any 64 points do.
  with open(os.path.join(folder, "_info.json"), "w") as f:
    json.dump({name: {"path": f"{name}.obj", "kps": kps.tolist()}}, f)
  return kps


def _image(seed):
  return np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)


def _mask(x0, x1):
  m = np.zeros((H, W), np.uint8)
  m[10:40, x0:x1] = 255
  return m


def _ann(i, image_id, rng, name="boxsmall"):
  return {"id": i, "image_id": image_id, "bbox": [0, 0, W, H],
          "smpl_param": {"pose": (rng.normal(size=156) * 0.2).tolist(), "shape": rng.normal(size=10).tolist(),
                         "trans": [0.0, 0.0, 0.0], "gender": "neutral"},
          "obj_param": {"pose": (rng.normal(size=3) * 0.5).tolist(), "trans": [0.25, 0.0, 3.0], "name": name},
          "h3d_keypoints": np.concatenate([[[0.0, 0.1, 3.0]], rng.normal(size=(72, 3))]).tolist(),
          "h_contacts": [0] * 431, "o_contacts": [0] * 64}


def _behave_fixture(root, masks_missing=(1,)):
  seq = os.path.join(root, "data", "BEHAVE", "sequences", "Date01_Sub01_boxsmall_hand")
  ann_dir = os.path.join(root, "data", "base_data", "annotations")
  os.makedirs(ann_dir)
  kps = _write_object(os.path.join(root, "data", "base_data", "object_models", "behave"))
  rng = np.random.default_rng(0)
  images, anns = {"train": [], "test": []}, {"train": [], "test": []}
  for i, split in enumerate(["train", "train", "test"]):
    d = os.path.join(seq, f"t{i:04d}.000")
    os.makedirs(d)
    Image.fromarray(_image(i)).save(os.path.join(d, "k1.color.jpg"), quality=95)
    if i not in masks_missing:
      Image.fromarray(_mask(5, 30)).save(os.path.join(d, "k1.person_mask.jpg"))
    Image.fromarray(_mask(28, 50)).save(os.path.join(d, "k1.obj_rend_mask.jpg"))
    cam = {"focal": [60.0, 61.0], "princpt": [31.5, 23.5]}
    if i == 2:
      cam.update(R=Rotation.from_rotvec([0.1, 0.2, -0.1]).as_matrix().tolist(), t=[0.01, 0.02, 0.03])
    images[split].append({"id": 100 + i, "file_name": f"Date01_Sub01_boxsmall_hand/t{i:04d}.000/k1.color.jpg",
                          "height": H, "width": W, "cam_param": cam})
    anns[split].append(_ann(i, 100 + i, rng))
  for split in images:
    with open(os.path.join(ann_dir, f"behave_{split}.json"), "w") as f:
      json.dump({"images": images[split], "annotations": anns[split]}, f)
  os.makedirs(os.path.join(root, "smplh"))
  arrays = _write_model(os.path.join(root, "smplh", "SMPLH_NEUTRAL.npz"))
  return {"kps": kps, "anns": anns, "images": images, "arrays": arrays, "seq_root": os.path.dirname(seq)}


def _box_distance(points_local):
  """Exact distance to the surface of the axis-aligned box (negative inside)."""
  q = np.abs(points_local) - BOX / 2
  outside = np.linalg.norm(np.maximum(q, 0), axis=-1)
  inside = np.minimum(q.max(-1), 0)
  return outside + inside


def _check_targets(rec, ann, cam, arrays, kps, name="boxsmall"):
  """Stored targets vs independent SciPy / analytic / trimesh computations."""
  r_c = np.asarray(cam.get("R", np.eye(3)))
  t_c = np.asarray(cam.get("t", np.zeros(3)))
  aa = np.asarray(ann["smpl_param"]["pose"]).reshape(52, 3)
  np.testing.assert_allclose(rec["pose"][0], r_c @ Rotation.from_rotvec(aa[0]).as_matrix(), atol=1e-5)
  np.testing.assert_allclose(rec["pose"][5], Rotation.from_rotvec(aa[5]).as_matrix(), atol=1e-5)
  # Hands: CONTHO's poses are offsets from the MANO mean (smplx flat_hand_mean=False).
  mean = np.concatenate([arrays["hands_meanl"], arrays["hands_meanr"]]).reshape(30, 3)
  np.testing.assert_allclose(rec["pose"][30], Rotation.from_rotvec(aa[30] + mean[8]).as_matrix(), atol=1e-5)
  np.testing.assert_allclose(rec["cam_trans"], ann["h3d_keypoints"][0], atol=1e-6)
  o_rot = r_c @ Rotation.from_rotvec(ann["obj_param"]["pose"]).as_matrix()
  np.testing.assert_allclose(rec["obj_rot"], o_rot, atol=1e-5)
  np.testing.assert_allclose(rec["obj_trans"], r_c @ np.asarray(ann["obj_param"]["trans"]) + t_c, atol=1e-5)
  np.testing.assert_allclose(rec["object_template"], kps, atol=1e-6)
  assert rec["object_name"] == name and rec["object_id"] == 0
  return o_rot


def _human_mesh(rec, arrays):
  """Posed vertices with the stored targets, via an independent NumPy LBS."""
  v = arrays["v_template"] + arrays["shapedirs"][..., :10] @ rec["betas"]
  j = arrays["J_regressor"] @ v
  parents = arrays["kintree_table"][0].astype(np.int64)
  g = [None] * 52
  for k in range(52):
    t = np.eye(4)
    t[:3, :3] = rec["pose"][k]
    t[:3, 3] = j[k] - (j[parents[k]] if k else 0)
    g[k] = t if k == 0 else g[parents[k]] @ t
  skin = np.stack([gk @ np.block([[np.eye(3), -j[k][:, None]], [np.zeros((1, 3)), 1]]) for k, gk in enumerate(g)])
  tv = np.einsum("vk,kij->vij", arrays["weights"], skin)
  posed = np.einsum("vij,vj->vi", tv[:, :3, :3], v) + tv[:, :3, 3]
  return posed - g[0][:3, 3] + rec["cam_trans"]


def _check_contacts(rec, arrays, o_rot, full_human_indices):
  human = _human_mesh(rec, arrays)
  d = _box_distance((human - rec["obj_trans"]) @ o_rot)
  np.testing.assert_array_equal(rec["human_contact"], (d < 0.05)[full_human_indices].astype(np.float32))
  tmpl = rec["object_template"] @ o_rot.T + rec["obj_trans"]
  mesh = trimesh.Trimesh(human, arrays["f"], process=False)
  _, dist, _ = trimesh.proximity.closest_point(mesh, tmpl)
  np.testing.assert_array_equal(rec["object_contact"], (dist < 0.05).astype(np.float32))
  assert 0 < rec["human_contact"].sum() < 431 or 0 < rec["object_contact"].sum() < 64


def test_behave_round_trip(tmp_path):
  from scorehoi_jax import body
  from scorehoi_jax.data import behave
  fx = _behave_fixture(str(tmp_path / "root"))
  out = str(tmp_path / "out")
  counts = behave.prepare_behave(str(tmp_path / "root"), str(tmp_path / "root" / "smplh"), out)
  assert counts["written"] == {"train": 1, "test": 1}
  assert counts["skipped"] == {"train/missing_mask": 1}
  src = tfds.data_source("behave", data_dir=out)
  assert len(src["train"]) == 1 and len(src["test"]) == 1
  model = body.load_body_model(str(tmp_path / "root" / "smplh" / "SMPLH_NEUTRAL.npz"))
  idx = body.guidance_vertex_indices(model)
  for split in ("train", "test"):
    rec = decode_record(src[split][0])
    ann, img = fx["anns"][split][0], fx["images"][split][0]  # The train frame with masks is the first.
    assert rec["frame_id"] == f"{img['file_name']}#{ann['id']}"
    orig = np.asarray(Image.open(os.path.join(fx["seq_root"], img["file_name"])).convert("RGB"))
    np.testing.assert_array_equal(rec["image"], orig)  # Stored as the original JPEG bytes.
    np.testing.assert_array_equal(rec["human_mask"], _mask(5, 30) > 127)
    np.testing.assert_allclose(rec["focal"], img["cam_param"]["focal"])
    o_rot = _check_targets(rec, ann, img["cam_param"], fx["arrays"], fx["kps"])
    _check_contacts(rec, fx["arrays"], o_rot, idx)
  meta = json.load(open(os.path.join(out, "behave", "1.0.0", "metadata.json")))
  assert meta["skipped"] == {"train/missing_mask": 1}
  # A second prepare finds the dataset and reports the stored counts without regenerating.
  assert behave.prepare_behave(str(tmp_path / "root"), str(tmp_path / "root" / "smplh"), out) == counts
  # The stored records feed the input pipeline.
  from scorehoi_jax.data import loader
  batch = next(loader.eval_batches(src["test"], pl.PipelineConfig(size=32), 2))
  assert batch["image"].shape == (2, 32, 32, 5) and batch["valid"].tolist() == [1, 0]


def test_behave_errors(tmp_path):
  from scorehoi_jax.data import behave
  root = str(tmp_path / "root")
  _behave_fixture(root, masks_missing=())
  smplh = os.path.join(root, "smplh")
  ann = os.path.join(root, "data", "base_data", "annotations", "behave_train.json")
  with pytest.raises(DatasetError, match="nowhere.*not found"):
    behave.prepare_behave(str(tmp_path / "nowhere"), smplh, str(tmp_path / "o1"))
  with pytest.raises(DatasetError, match="SMPL-H model not found"):
    behave.prepare_behave(root, str(tmp_path / "no_model.npz"), str(tmp_path / "o2"))
  good = open(ann).read()
  open(ann, "w").write(good[:-20])
  with pytest.raises(DatasetError, match="behave_train.json: malformed JSON"):
    behave.prepare_behave(root, smplh, str(tmp_path / "o3"))
  db = json.loads(good)
  del db["annotations"][0]["obj_param"]["name"]
  json.dump(db, open(ann, "w"))
  with pytest.raises(DatasetError, match="annotation 0 lacks 'obj_param.name'"):
    behave.prepare_behave(root, smplh, str(tmp_path / "o4"))
  open(ann, "w").write(good)
  img = os.path.join(root, "data", "BEHAVE", "sequences", "Date01_Sub01_boxsmall_hand", "t0001.000", "k1.color.jpg")
  open(img, "wb").write(b"garbage")
  with pytest.raises(DatasetError, match="t0001.000/k1.color.jpg: cannot read image"):
    behave.prepare_behave(root, smplh, str(tmp_path / "o5"))
  os.remove(img)
  with pytest.raises(DatasetError, match="t0001.000/k1.color.jpg: image not found"):
    behave.prepare_behave(root, smplh, str(tmp_path / "o6"))
  os.remove(os.path.join(root, "data", "base_data", "object_models", "behave", "boxsmall.obj"))
  with pytest.raises(DatasetError, match="boxsmall.obj: object mesh not found"):
    behave.prepare_behave(root, smplh, str(tmp_path / "o7"))


def _intercap_fixture(root):
  """InterCap's layout with CONTHO-style annotations: 3 train frames (frame 2 lacks its object mask)."""
  frame_dir = root / "sequences" / "01" / "01" / "Seg_0" / "Frames_Cam1"
  (frame_dir / "color").mkdir(parents=True)
  (frame_dir / "mask").mkdir()
  (root / "annotations").mkdir()
  kps = _write_object(str(root / "object_models" / "intercap"), name="01")
  rng = np.random.default_rng(3)
  images, anns = [], []
  for i in range(3):
    Image.fromarray(_image(10 + i)).save(frame_dir / "color" / f"{i:05d}.jpg")
    if i != 2:  # Frame 2 has no object mask: skipped and counted.
      Image.fromarray(_mask(30, 60)).save(frame_dir / "mask" / f"{i:05d}_object.png")
    Image.fromarray(_mask(2, 33)).save(frame_dir / "mask" / f"{i:05d}_human.png")
    images.append({"id": i, "file_name": f"01/01/Seg_0/Frames_Cam1/color/{i:05d}.jpg", "height": H, "width": W,
                   "cam_param": {}})
    anns.append(_ann(i, i, rng, name="01"))
  anns[1]["smpl_param"]["gender"] = "female"  # No SMPLH_FEMALE in the folder: falls back to neutral.
  with open(root / "annotations" / "intercap_train.json", "w") as f:
    json.dump({"images": images, "annotations": anns}, f)
  (root / "smplh").mkdir()
  arrays = _write_model(root / "smplh" / "SMPLH_NEUTRAL.npz")
  return images, anns, arrays, kps


def test_intercap_round_trip_and_intrinsics(tmp_path):
  from scorehoi_jax.data import intercap
  root = tmp_path / "ic"
  images, anns, arrays, kps = _intercap_fixture(root)
  with pytest.raises(DatasetError, match="intercap_train.json: image 0 .* has no intrinsics"):
    intercap.prepare_intercap(str(root), str(root / "smplh"), str(tmp_path / "o0"))
  out = str(tmp_path / "out")
  counts = intercap.prepare_intercap(str(root), str(root / "smplh"), out,
                                     default_intrinsics=(55.0, 55.0, 32.0, 24.0))
  assert counts == {"written": {"train": 2}, "skipped": {"train/missing_mask": 1}}
  src = tfds.data_source("intercap", data_dir=out)["train"]
  assert len(src) == 2
  recs = sorted((decode_record(src[k]) for k in range(2)), key=lambda r: r["frame_id"])  # Stored order is hashed.
  for k, rec in enumerate(recs):
    assert rec["frame_id"] == f"{images[k]['file_name']}#{k}"
    np.testing.assert_allclose(rec["focal"], [55.0, 55.0])
    np.testing.assert_array_equal(rec["object_mask"], _mask(30, 60) > 127)
    _check_targets(rec, anns[k], {}, arrays, kps, name="01")


def _write_imhd(root, offset=(1.0, 2.0, 3.0)):
  date, seg, seq = "20230825", "20230825_sub1_bat", "swing1"
  gt_dir = root / "ground_truth" / date / seg / seq
  gt_dir.mkdir(parents=True)
  rng = np.random.default_rng(5)
  n = 3
  motion = {"smplPose": rng.normal(size=(n, 66)) * 0.2, "smplHandPose": rng.normal(size=(n, 90)) * 0.2,
            "smplShape": rng.normal(size=(n, 16)), "smplTrans": np.array([[0.1, 0.0, 0.2]] * n),
            "objectRot": rng.normal(size=(n, 3)) * 0.5, "objectTrans": np.array([[0.3, 0.1, 0.2]] * n)}
  with open(gt_dir / "gt_0_10_12.pkl", "wb") as f:
    pickle.dump(motion, f)
  cal = root / "calibrations" / date
  cal.mkdir(parents=True)
  r_c = Rotation.from_rotvec([0.05, 3.0, 0.02]).as_matrix()
  t_c = np.array([0.1, -0.2, 3.0])
  json.dump({"color": {"fx": 3000.0, "fy": 3010.0, "cx": 1920.0, "cy": 1080.0}}, open(cal / "intrin.json", "w"))
  json.dump({"1": {"rotation": r_c.reshape(-1).tolist(), "translation": t_c.tolist()}},
            open(cal / "extrin.json", "w"))
  obj_dir = root / "object_templates" / "baseball"
  obj_dir.mkdir(parents=True)
  box = trimesh.creation.box(BOX)
  box.apply_translation(offset)  # The reader re-centres templates on their vertex mean.
  box.export(obj_dir / "baseball_simplified_transformed.obj")
  img_dir = root / "images" / date / seg / seq / "1"
  mask_dir = root / "masks" / date / seg / seq / "1"
  img_dir.mkdir(parents=True)
  mask_dir.mkdir(parents=True)
  for i in range(n):
    Image.fromarray(_image(20 + i)).save(img_dir / f"{10 + i:06d}.jpg")
    Image.fromarray(_mask(2, 33)).save(mask_dir / f"{10 + i:06d}_human.png")
    if i != 1:
      Image.fromarray(_mask(30, 60)).save(mask_dir / f"{10 + i:06d}_object.png")
  (root / "smplh").mkdir()
  arrays = _write_model(root / "smplh" / "SMPLH_NEUTRAL.npz")
  return motion, r_c, t_c, arrays


def test_imhd_round_trip(tmp_path):
  from scorehoi_jax.data import imhd
  root = tmp_path / "imhd"
  motion, r_c, t_c, arrays = _write_imhd(root)
  out = str(tmp_path / "out")
  counts = imhd.prepare_imhd(str(root), str(root / "smplh"), out, split_fn=lambda rel: "test")
  assert counts == {"written": {"test": 2}, "skipped": {"test/missing_mask": 1}}
  src = tfds.data_source("imhd", data_dir=out)["test"]
  from scorehoi_jax import body
  idx = body.guidance_vertex_indices(body.load_body_model(str(root / "smplh" / "SMPLH_NEUTRAL.npz")))
  recs = sorted((decode_record(src[k]) for k in range(2)), key=lambda r: r["frame_id"])  # Stored order is hashed.
  for rec, i in zip(recs, (0, 2)):
    assert rec["frame_id"] == f"20230825/20230825_sub1_bat/swing1/1/{10 + i:06d}"
    np.testing.assert_allclose(rec["focal"], [3000 * W / 3840, 3010 * W / 3840], rtol=1e-6)
    np.testing.assert_allclose(rec["princpt"], [1920 * W / 3840, 1080 * W / 3840], rtol=1e-6)
    np.testing.assert_allclose(rec["pose"][0], r_c @ Rotation.from_rotvec(motion["smplPose"][i, :3]).as_matrix(),
                               atol=1e-5)
    hand = motion["smplHandPose"][i].reshape(30, 3)  # Absolute hand poses: no MANO mean added.
    np.testing.assert_allclose(rec["pose"][22], Rotation.from_rotvec(hand[0]).as_matrix(), atol=1e-5)
    betas = motion["smplShape"][i, :10]
    np.testing.assert_allclose(rec["betas"], betas, atol=1e-6)
    j0 = arrays["J_regressor"][0] @ (arrays["v_template"] + arrays["shapedirs"][..., :10] @ betas)
    np.testing.assert_allclose(rec["cam_trans"], r_c @ (j0 + motion["smplTrans"][i]) + t_c, atol=1e-5)
    o_rot = r_c @ Rotation.from_rotvec(motion["objectRot"][i]).as_matrix()
    np.testing.assert_allclose(rec["obj_rot"], o_rot, atol=1e-5)
    np.testing.assert_allclose(rec["obj_trans"], r_c @ motion["objectTrans"][i] + t_c, atol=1e-5)
    # Template points lie on the re-centred box's surface.
    assert np.abs(_box_distance(rec["object_template"])).max() < 1e-5
    _check_contacts(rec, arrays, o_rot, idx)


def test_imhd_errors(tmp_path):
  from scorehoi_jax.data import imhd
  root = tmp_path / "imhd"
  _write_imhd(root)
  smplh = str(root / "smplh")
  pkl = root / "ground_truth" / "20230825" / "20230825_sub1_bat" / "swing1" / "gt_0_10_12.pkl"
  good = pkl.read_bytes()
  pkl.write_bytes(pickle.dumps({"smplPose": np.zeros((2, 66))}))
  with pytest.raises(DatasetError, match="gt_0_10_12.pkl: ground-truth pickle lacks smplHandPose"):
    imhd.prepare_imhd(str(root), smplh, str(tmp_path / "o1"))
  pkl.write_bytes(good[:40])
  with pytest.raises(DatasetError, match="gt_0_10_12.pkl: cannot read ground-truth pickle"):
    imhd.prepare_imhd(str(root), smplh, str(tmp_path / "o2"))
  pkl.write_bytes(good)
  (root / "calibrations" / "20230825" / "intrin.json").write_text("{broken")
  with pytest.raises(DatasetError, match="intrin.json: malformed JSON"):
    imhd.prepare_imhd(str(root), smplh, str(tmp_path / "o3"), split_fn=lambda rel: "train")
  assert imhd.default_split("a/b/c") == imhd.default_split("a/b/c") in ("train", "test")
