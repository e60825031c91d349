"""Input pipeline: crop, augmentation consistency with 3D targets, determinism, batching, errors."""

import dataclasses

import numpy as np
import pytest
import trimesh
from PIL import Image

from scorehoi_jax.data import pipeline as pl
from scorehoi_jax.render import Camera, render


def _rot(axis, deg):
  return trimesh.transformations.rotation_matrix(np.deg2rad(deg), axis)[:3, :3]


@pytest.fixture(scope="module")
def record():
  """A rendered frame: a box 'human' (pelvis at its centre) and a ball 'object'."""
  cam = Camera((170.0, 150.0), (83.0, 57.0), 160, 120)
  body = trimesh.creation.box((0.4, 0.9, 0.3))
  pelvis = np.array([-0.25, 0.1, 3.0])
  r0 = _rot([0, 1, 0], 20)
  hv = body.vertices @ r0.T + pelvis
  ball = trimesh.creation.icosphere(2, 0.2)
  obj_rot, obj_trans = _rot([1, 0, 0], 30), np.array([0.3, 0.2, 2.8])
  ov = ball.vertices @ obj_rot.T + obj_trans
  # A textured background so content checks are meaningful.
  yy, xx = np.mgrid[:cam.height, :cam.width]
  bg = np.stack([(xx * 7) % 256, (yy * 5) % 256, ((xx + yy) * 3) % 256], -1).astype(np.uint8)
  out = render([(hv, body.faces, (0.9, 0.5, 0.2)), (ov, ball.faces, (0.2, 0.4, 0.9))], cam, background=bg,
               backend="raycast")
  pose = np.tile(np.eye(3), (52, 1, 1))
  pose[0] = r0
  rng = np.random.default_rng(0)
  template = ball.vertices[rng.choice(len(ball.vertices), 64, replace=False)]
  return {"frame_id": "fixture", "image": out.rgb, "human_mask": (out.instance == 1).astype(np.uint8),
          "object_mask": (out.instance == 2).astype(np.uint8), "focal": np.array(cam.focal),
          "princpt": np.array(cam.princpt), "pose": pose, "betas": np.arange(10) * 0.1, "cam_trans": pelvis,
          "obj_rot": obj_rot, "obj_trans": obj_trans, "object_template": template, "object_id": 3,
          "human_contact": (np.arange(431) % 5 == 0), "object_contact": np.ones(64),
          "object_floor_contact": np.zeros(64)}


def _project(points, focal, princpt):
  return points[:, :2] / points[:, 2:] * focal + princpt


def test_crop_contains_both_masks(record):
  cfg = pl.PipelineConfig(size=64)
  ex, tf = pl.make_example(record, cfg)
  assert ex["image"].shape == (64, 64, 5) and ex["image"].dtype == np.float32
  for ch, key in ((3, "human_mask"), (4, "object_mask")):
    ys, xs = np.nonzero(record[key])
    q = tf.apply(np.stack([xs, ys], -1))
    assert q.min() >= -0.5 and q.max() <= 63.5  # Every mask pixel lands inside the crop...
    area = np.prod(ex["focal"] / record["focal"])  # Crop pixels per image pixel (near the axis).
    assert ex["image"][..., ch].sum() > 0.5 * len(xs) * area  # ...and is there.
  # Union box ×1.3: the masks span about 1/1.3 of the crop along the longer side.
  union = (ex["image"][..., 3] + ex["image"][..., 4]) > 0
  extent = max(np.ptp(np.nonzero(union.any(0))[0]), np.ptp(np.nonzero(union.any(1))[0])) + 1
  assert extent == pytest.approx(64 / 1.3, abs=2)


@pytest.mark.parametrize("seed", [0, 3, 11])
def test_targets_follow_the_image_under_augmentation(record, seed):
  cfg = pl.PipelineConfig(size=96, augment=True, rot_prob=1.0)
  ex, tf = pl.make_example(record, cfg, pl.example_rng(seed, 0, 0))
  # 3D object points in the virtual camera of the example, from its targets: the crop is that camera's
  # image, so projecting with the example's intrinsics lands where the crop put the original pixels.
  obj_pts = record["object_template"] @ ex["obj_rot"].T + ex["obj_trans"] + ex["cam_trans"]
  q_new = _project(obj_pts, ex["focal"], ex["princpt"])
  # The same points in the original frame, projected with the original camera, then cropped.
  orig = record["object_template"] @ record["obj_rot"].T + record["obj_trans"]
  q_old = tf.apply(_project(orig, record["focal"], record["princpt"]))
  np.testing.assert_allclose(q_new, q_old, atol=1e-3)
  # Pelvis and global orientation move with the same rotation.
  np.testing.assert_allclose(_project(ex["cam_trans"][None], ex["focal"], ex["princpt"]),
                             tf.apply(_project(record["cam_trans"][None], record["focal"], record["princpt"])),
                             atol=1e-3)
  # camera_rot is a rotation that takes the example's frame back to the original camera; it turns the
  # virtual optical axis onto the original camera's ray through the crop centre.
  r = ex["camera_rot"]
  np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-5)
  assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-5)
  np.testing.assert_allclose(r @ ex["pose"][0], record["pose"][0], atol=1e-5)
  np.testing.assert_allclose(r @ ex["cam_trans"], record["cam_trans"], atol=1e-5)
  centre = tf.inverse(np.full((1, 2), (96 - 1) / 2))[0]
  ray = np.array([(centre[0] - record["princpt"][0]) / record["focal"][0],
                  (centre[1] - record["princpt"][1]) / record["focal"][1], 1.0])
  np.testing.assert_allclose(r[:, 2], ray / np.linalg.norm(ray), atol=1e-6)
  # Content: the object's origin (the ball's centre) lands on the object mask of the crop,
  # and the rotation keeps the pelvis-to-object distance.
  q = _project((ex["obj_trans"] + ex["cam_trans"])[None], ex["focal"], ex["princpt"])[0]
  assert ex["image"][int(round(q[1])), int(round(q[0])), 4] == 1.0
  assert np.linalg.norm(ex["obj_trans"]) == pytest.approx(
      np.linalg.norm(record["obj_trans"] - record["cam_trans"]), rel=1e-5)


def test_image_content_moves_with_the_transform(record):
  # A pixel of the original lands where the transform says (bilinear resampling, no colour gain).
  cfg = pl.PipelineConfig(size=128, augment=True, rot_prob=1.0, color_factor=0.0)
  ex, tf = pl.make_example(record, cfg, pl.example_rng(5, 0, 0))
  grid = np.stack(np.meshgrid(np.arange(10, 118, 9), np.arange(10, 118, 9)), -1).reshape(-1, 2)
  src = tf.inverse(grid)
  inside = (src[:, 0] > 1) & (src[:, 0] < 158) & (src[:, 1] > 1) & (src[:, 1] < 118)
  img = record["image"].astype(np.float64) / 255
  near = np.rint(src[inside]).astype(int)
  exact_hit = np.all(np.abs(src[inside] - near) < 0.02, 1)  # Compare only where no interpolation happens.
  assert inside.sum() > 50
  got = ex["image"][grid[inside][:, 1], grid[inside][:, 0], :3]
  want = img[near[:, 1], near[:, 0]]
  if exact_hit.any():
    np.testing.assert_allclose(got[exact_hit], want[exact_hit], atol=0.03)
  # Everywhere else: bilinear value lies within the 2x2 neighbourhood's range.
  f = np.floor(src[inside]).astype(int)
  nb = np.stack([img[f[:, 1] + dy, f[:, 0] + dx] for dy in (0, 1) for dx in (0, 1)])
  assert np.all(got >= nb.min(0) - 1e-4) and np.all(got <= nb.max(0) + 1e-4)


def _scipy_warp(channel, tf, size):
  """Independent reference: source points from the inverse homography, sampled by scipy's
  map_coordinates in (row, col) order, bilinear, zeros outside."""
  from scipy import ndimage
  q = np.stack(np.meshgrid(np.arange(size), np.arange(size)), -1).reshape(-1, 2).astype(np.float64)
  hinv = np.linalg.inv(tf.h)
  p = np.c_[q, np.ones(len(q))] @ hinv.T
  p = p[:, :2] / p[:, 2:]
  out = ndimage.map_coordinates(np.asarray(channel, np.float64), [p[:, 1], p[:, 0]], order=1, mode="constant")
  return out.reshape(size, size)


def _inside(tf, size, shape, margin=1.0):
  """Crop pixels whose source point lies ≥ margin inside the image (the libraries differ at its edge)."""
  q = np.stack(np.meshgrid(np.arange(size), np.arange(size)), -1).reshape(-1, 2)
  p = tf.inverse(q)
  ok = (p[:, 0] >= margin) & (p[:, 0] <= shape[1] - 1 - margin) & (p[:, 1] >= margin) & (p[:, 1] <= shape[0] - 1 - margin)
  return ok.reshape(size, size)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_warp_matches_a_scipy_resampling(dtype):
  rng = np.random.default_rng(0)
  h, w = 90, 130
  yy, xx = np.mgrid[:h, :w]
  # 6 channels (groups of 4 + 2): smooth ramps, a sinusoid and noise with a bounded gradient.
  chans = [xx / w, yy / h, 0.5 + 0.5 * np.sin(xx / 5.0) * np.cos(yy / 7.0), rng.random((h, w)),
           (xx + yy) / (w + h), rng.random((h, w))]
  img = np.stack(chans, -1)
  img = (img * 255).round().astype(np.uint8) if dtype == np.uint8 else img.astype(np.float32)
  tf, _, _ = pl.crop_transform([20.0, 10.0, 100.0, 70.0], (300.0, 280.0), (60.0, 45.0), 64, 1.3, 0.9, 0.4)
  got = pl.warp(img, tf, 64)
  assert got.shape == (64, 64, 6) and got.dtype == dtype
  scale = 255.0 if dtype == np.uint8 else 1.0
  ref = np.stack([_scipy_warp(img[..., c], tf, 64) for c in range(6)], -1) / scale
  inside = _inside(tf, 64, img.shape)
  assert inside.mean() > 0.5
  # OpenCV snaps source points to 1/32 pixel: error ≤ 1/32 × the largest step between neighbours
  # (1.0 for the noise channels), plus rounding to uint8.
  err = np.abs(got / scale - ref)[inside]
  assert err.max() <= 1 / 32 + (0.5 / 255 if dtype == np.uint8 else 1e-6)
  assert np.median(err) < 0.01  # Typical error far below the bound: same pixel convention.
  # Outside the image: zeros, as scipy's "constant" mode.
  outside = ~_inside(tf, 64, img.shape, margin=-1.0)
  assert outside.any() and not got[outside].any()
  np.testing.assert_allclose(pl.warp(img[..., 0], tf, 64) / scale, got[..., 0] / scale)  # 2-D input.


def test_make_example_image_matches_a_scipy_crop(record):
  """The whole 5-channel image (RGB with colour gains, thresholded masks) against a scipy-built crop."""
  cfg = pl.PipelineConfig(size=96, augment=True, rot_prob=1.0)
  ex, tf = pl.make_example(record, cfg, pl.example_rng(2, 0, 7))
  gains = pl.draw_augmentation(pl.example_rng(2, 0, 7), cfg)[2]
  inside = _inside(tf, 96, record["image"].shape)
  for c in range(3):
    ref = np.clip(_scipy_warp(record["image"][..., c] / 255.0, tf, 96) * gains[c], 0, 1)
    err = np.abs(ex["image"][..., c] - ref)[inside]
    assert err.max() < 1.2 * (1 / 32 + 1 / 255) and np.median(err) < 0.01
  for c, key in ((3, "human_mask"), (4, "object_mask")):
    ref = _scipy_warp(record[key] > 0, tf, 96) >= 0.5
    assert np.mean(ex["image"][..., c][inside] != ref[inside]) < 0.01  # Only boundary pixels may differ.


def test_deterministic_per_seed(record):
  cfg = pl.PipelineConfig(size=48, augment=True)
  a = pl.make_example(record, cfg, pl.example_rng(1, 2, 3))[0]
  b = pl.make_example(record, cfg, pl.example_rng(1, 2, 3))[0]
  c = pl.make_example(record, cfg, pl.example_rng(2, 2, 3))[0]
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert not np.array_equal(a["image"], c["image"])


def test_stack_pads_with_invalid_examples(record):
  ex = pl.make_example(record, pl.PipelineConfig(size=32))[0]
  out = pl.stack([ex, ex], batch_size=3)
  assert set(out) == set(pl.EXAMPLE_KEYS)
  assert out["image"].shape == (3, 32, 32, 5) and out["pose"].shape == (3, 52, 3, 3)
  np.testing.assert_array_equal(out["valid"], [1, 1, 0])
  assert not out["image"][2].any() and out["image"][1].any()


def test_user_image_and_errors(record, tmp_path):
  Image.fromarray(record["image"]).save(tmp_path / "img.png")
  Image.fromarray(record["human_mask"] * 255).save(tmp_path / "h.png")
  Image.fromarray(record["object_mask"] * 255).save(tmp_path / "o.png")
  Image.fromarray(np.zeros((120, 160), np.uint8)).save(tmp_path / "empty.png")
  Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "small.png")
  (tmp_path / "bad.png").write_bytes(b"not an image")
  batch, tf = pl.prepare_user_input(str(tmp_path / "img.png"), str(tmp_path / "h.png"), str(tmp_path / "o.png"),
                                    pl.PipelineConfig(size=64), focal=record["focal"], princpt=record["princpt"])
  ref = pl.make_example(record, pl.PipelineConfig(size=64))[0]
  np.testing.assert_allclose(batch["image"][0], ref["image"], atol=1e-6)
  np.testing.assert_allclose(batch["princpt"][0], ref["princpt"], atol=1e-5)
  args = [str(tmp_path / n) for n in ("img.png", "h.png", "o.png")]
  for i, (name, msg) in enumerate([("bad.png", "cannot read"), ("missing.png", "not found")]):
    with pytest.raises(pl.PipelineError, match=name):
      pl.load_user_record(*[str(tmp_path / name) if j == i else a for j, a in enumerate(args)])
  with pytest.raises(pl.PipelineError, match="small.png.*10x10"):
    pl.load_user_record(args[0], str(tmp_path / "small.png"), args[2])
  with pytest.raises(pl.PipelineError, match="empty.png.*empty"):
    pl.load_user_record(args[0], args[1], str(tmp_path / "empty.png"))
  bad = dict(record, object_mask=record["object_mask"][:50])
  with pytest.raises(pl.PipelineError, match="fixture: object_mask"):
    pl.make_example(bad)
  with pytest.raises(pl.PipelineError, match="human_mask is empty"):
    pl.make_example(dict(record, human_mask=np.zeros_like(record["human_mask"])))
  with pytest.raises(pl.PipelineError, match="flip"):
    dataclasses.replace(pl.PipelineConfig(), flip=True)
