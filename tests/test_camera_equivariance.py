"""Placement equivariance (design.md §10): where the subject sits in the photo only turns the result.

A shipped example (the subject 25° left of the optical axis) is re-imaged as
another capture: the camera is panned by Q about its centre and the frame is a
larger canvas with its principal point at the canvas centre. For a pure rotation of the camera
the new image is exactly a homography of the old one (at every depth), so the
warped image, masks and camera are a real capture of the same scene, with the
subject now on the other side of the axis. The reconstruction must be the original one
turned by Q (pose, shape and the object relative to the person unchanged;
pelvis and orientation turned), and its silhouettes drawn in the canvas must
match the original's turned by Q. Before the crop-aware camera the off-centre
result stayed near the image centre (IoU ≈ 0).

How close is close enough is measured, not guessed: the same frame shifted by
half a pixel (same camera: nothing may change but the resampling of the crop)
moves the small shipped model's silhouettes by IoU ≈ 0.8–0.96 and its joint
angles by up to 0.03 rad. The turned capture resamples too, so it must stay within a few
points of that floor. Separately, a larger focal length must keep the
pelvis's pixel and scale its depth.
"""

import dataclasses
import os

import cv2
import numpy as np
import pytest
import trimesh
from PIL import Image
from scipy.spatial.transform import Rotation

from scorehoi_jax import demo
from scorehoi_jax import reconstruct_io as rio
from scorehoi_jax.evaluation.alignment import mask_iou, silhouettes
from scorehoi_jax.render import Camera

pytestmark = pytest.mark.usefixtures("fast_compile")

CONFIG = "refine_paper:runlocal"
CANVAS = (640, 480)
# The camera pans 30° about its vertical axis: a level camera turned towards another spot, the way a subject
# ends up anywhere in a photo. Crops pan and tilt onto the subject (pipeline.view_rotation), so a pan turns
# every crop by exactly Q; a rotation with a tilt of an already off-axis crop would also roll it slightly.
Q = Rotation.from_euler("y", 30.0, degrees=True).as_matrix()  # The subject, 25° left, ends 5° right of the axis.
HALF_PIXEL = np.array([40.5, 20.5])


def _k(focal, princpt):
  return np.array([[focal[0], 0, princpt[0]], [0, focal[1], princpt[1]], [0, 0, 1.0]])


def _homography(frame):
  """H: original pixels → canvas pixels of the same rays after the scene turns by Q (x₁ ~ K₁ Q K₀⁻¹ x₀)."""
  k1 = _k(frame.focal, ((CANVAS[0] - 1) / 2, (CANVAS[1] - 1) / 2))
  return k1 @ Q @ np.linalg.inv(_k(frame.focal, frame.princpt)), k1


def _warp(src: str, dst: str, h, grey: bool):
  im = np.asarray(Image.open(src).convert("L" if grey else "RGB"))
  out = cv2.warpPerspective(im, h, CANVAS, flags=cv2.INTER_NEAREST if grey else cv2.INTER_LINEAR)
  Image.fromarray(out).save(dst)


def _result(folder):
  p = np.load(os.path.join(folder, "params.npz"))
  human = trimesh.load(os.path.join(folder, "human.ply"), process=False)
  obj = trimesh.load(os.path.join(folder, "object.ply"), process=False)
  cam = Camera(tuple(p["focal"]), tuple(p["princpt"]), int(p["image_size"][0]), int(p["image_size"][1]), near=0.01)
  return p, (human.vertices, human.faces), (obj.vertices, obj.faces), cam


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  frame = [f for f in demo.example_frames() if f.name == "sit_chair"][0]
  root = tmp_path_factory.mktemp("equivariance")
  h, k1 = _homography(frame)
  shift = np.array([[1.0, 0.0, HALF_PIXEL[0]], [0.0, 1.0, HALF_PIXEL[1]], [0.0, 0.0, 1.0]])
  names = {"image": ("img.png", False), "human_mask": ("hm.png", True), "object_mask": ("om.png", True)}
  turned, shifted = {}, {}
  for key, (name, grey) in names.items():
    _warp(getattr(frame, key), str(root / ("turned_" + name)), h, grey)
    _warp(getattr(frame, key), str(root / ("shifted_" + name)), shift, grey)
    turned[key], shifted[key] = str(root / ("turned_" + name)), str(root / ("shifted_" + name))
  frames = [
      frame,
      dataclasses.replace(frame, name="turned", princpt=(k1[0, 2], k1[1, 2]), **turned),
      dataclasses.replace(frame, name="shifted", princpt=tuple(np.asarray(frame.princpt) + HALF_PIXEL), **shifted),
      dataclasses.replace(frame, name="zoomed", focal=tuple(1.5 * np.asarray(frame.focal))),
  ]
  out = root / "out"
  rio.reconstruct_frames(frames, str(out), refine_config=CONFIG, batch_size=4, progress=False, per_frame_dirs=True)
  return {f.name: _result(out / f.name) for f in frames}


def _ious(ref_meshes, meshes, cam):
  ref, got = silhouettes(*ref_meshes, cam), silhouettes(*meshes, cam)
  return mask_iou(ref[0], got[0]), mask_iou(ref[1], got[1])


def test_off_centre_capture_gives_the_same_silhouettes(runs):
  _, human0, obj0, cam0 = runs["sit_chair"]
  _, human1, obj1, cam1 = runs["turned"]
  _, human2, obj2, cam2 = runs["shifted"]
  assert silhouettes(human0, obj0, cam0)[0].sum() > 1500  # The result is in the frame at all.
  # The original result seen by the turned camera, against the result of the turned capture.
  turned = _ious(((human0[0] @ Q.T, human0[1]), (obj0[0] @ Q.T, obj0[1])), (human1, obj1), cam1)
  floor = _ious((human0, obj0), (human2, obj2), cam2)  # Resampling alone.
  assert turned[0] >= min(0.98, floor[0] - 0.03), (turned, floor)
  assert turned[1] >= min(0.98, floor[1] - 0.06), (turned, floor)


def _pose_change(p, q):
  return max(np.abs(p[k] - q[k]).max() for k in ("body_pose", "left_hand_pose", "right_hand_pose", "betas"))


def test_off_centre_result_is_the_original_turned_by_the_camera_rotation(runs):
  p0, p1, p2 = runs["sit_chair"][0], runs["turned"][0], runs["shifted"][0]
  # Pose and shape: unchanged up to what resampling the crop alone changes (the shifted frame, same camera).
  assert _pose_change(p1, p0) <= max(0.1, 3.0 * _pose_change(p2, p0)), (_pose_change(p1, p0), _pose_change(p2, p0))
  angle = lambda a, b: np.degrees(Rotation.from_matrix(a @ b.T).magnitude())
  root = lambda p: Rotation.from_rotvec(p["global_orient"]).as_matrix()
  assert angle(root(p1), Q @ root(p0)) < 3.0  # Without the view rotation: 30° off.
  # The object's orientation: within 5° or 3× what resampling alone moves it (the shifted frame), far below
  # the 30° a missing view rotation gives.
  obj_floor = angle(p2["object_R"], p0["object_R"])
  assert angle(p1["object_R"], Q @ p0["object_R"]) < max(5.0, 3.0 * obj_floor), obj_floor
  np.testing.assert_allclose(p1["cam_trans"], Q @ p0["cam_trans"], atol=0.03 * np.linalg.norm(p0["cam_trans"]))
  np.testing.assert_allclose(p1["object_t"] - p1["cam_trans"], Q @ (p0["object_t"] - p0["cam_trans"]), atol=0.03)


def test_focal_change_keeps_the_pelvis_pixel_and_scales_depth(runs):
  """A 1.5× focal length: the same pixels seen by a narrower camera. The crop's pan and tilt onto the subject
  shrink (the rays are 1.5× closer to the axis), so the crop is re-imaged a little differently: ±5 %."""
  p0, p3 = runs["sit_chair"][0], runs["zoomed"][0]
  uv = lambda p: p["cam_trans"][:2] / p["cam_trans"][2] * p["focal"] + p["princpt"]
  np.testing.assert_allclose(uv(p3), uv(p0), atol=6.0)
  # Same pixel, focal ×1.5: the point on its ray at 1.5× the depth (x/z and y/z shrink by 1.5, x and y stay).
  np.testing.assert_allclose(p3["cam_trans"][2], 1.5 * p0["cam_trans"][2], rtol=0.05)
