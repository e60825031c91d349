"""Synthetic HOI frames checked against independent recomputation from their ground truth.

Each frame's meshes are rebuilt from the stored parameters only (pose, betas,
cam_trans, object name/seed, obj_rot/obj_trans) and compared with:
- masks and depth: trimesh's pure-Python ray casting at pixel centres (not the
  renderer's GL or embree backends);
- contact labels: trimesh closest-point distances (not our KD/triangle code);
- penetration: the object's SDF on every body vertex; floor: the stored
  camera pose maps the meshes back to the world, where the floor is y = 0.
Every check runs on both layouts (capture: 4:3 full frames with a room and
clutter, shape variants, the added poses; centred: the original frames).
"""

import dataclasses
import os

import jax.numpy as jnp
import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree
from trimesh.ray.ray_triangle import RayMeshIntersector

from scorehoi_jax import body as body_lib
from scorehoi_jax.data.synthetic import camera as camera_lib, generator, labels, scenes
from scorehoi_jax.geometry.sdf import SDFGrid, sdf_lookup
from scorehoi_jax.objects import get_object
from scorehoi_jax.render import available_backends

# Single-part objects keep SDF builds cheap on a fresh cache; the seeds cover a
# two-hand carry (held), a palm-up hold or kick, and a sit on the ball.
CONFIG = generator.SyntheticConfig(resolution=96, solver_steps=150, layout="centred",
                                   objects=("boxsmall", "boxmedium", "basketball", "yogaball", "boxlarge"))
SEEDS = (11, 18, 26)
# Capture layout: the same objects (as shape variants), 128 x 96 frames; the seeds give arms overhead
# (held), a bend and a squat (test_capture_pose_classes).
CAPTURE = dataclasses.replace(CONFIG, layout="capture", resolution=128, object_instances=4)
CAPTURE_SEEDS = (4, 5, 13)
LAYOUTS = {"centred": (CONFIG, SEEDS), "capture": (CAPTURE, CAPTURE_SEEDS)}


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def layout(request):
  return request.param


_FRAMES: dict = {}


def _frames(layout):
  if layout not in _FRAMES:
    config, seeds = LAYOUTS[layout]
    _FRAMES[layout] = [generator.generate_frame(s, config) for s in seeds]
  return _FRAMES[layout]


@pytest.fixture(scope="module")
def frames(layout):
  return _frames(layout)


@pytest.fixture(scope="module")
def model():
  return body_lib.load_body_model()


def _meshes(frame, model):
  """Body and object meshes in camera coordinates, from the stored parameters only."""
  out = body_lib.body_forward(model, jnp.asarray(frame["pose"]), jnp.asarray(frame["betas"]))
  body_v = np.asarray(out.vertices - out.joints[0], np.float64) + frame["cam_trans"]
  obj = get_object(str(frame["object_name"]), seed=int(frame["object_seed"]))
  obj_v = obj.vertices @ frame["obj_rot"].T.astype(np.float64) + frame["obj_trans"]
  return (trimesh.Trimesh(body_v, np.asarray(model.faces), process=False),
          trimesh.Trimesh(obj_v, obj.faces, process=False), obj)


def _to_world(points, frame):
  return points @ frame["cam_rot"].astype(np.float64) + frame["cam_pos"]


def test_frames_cover_interactions(frames, layout):
  kinds = {f["interaction"] for f in frames}
  assert len(kinds) >= 2, kinds
  for f in frames:
    r = LAYOUTS[layout][0].resolution
    assert f["image"].shape == ((r, r, 3) if layout == "centred" else (r * 3 // 4, r, 3))
    assert f["image"].dtype == np.uint8
    assert f["pose"].shape == (52, 3, 3) and f["human_contact"].shape == (431,)
    assert f["object_contact"].shape == (64,) and f["object_floor_contact"].shape == (64,)
    np.testing.assert_allclose(f["pose"] @ np.swapaxes(f["pose"], -1, -2), np.broadcast_to(np.eye(3), (52, 3, 3)),
                               atol=1e-4)
    assert f["human_mask"].sum() > 50


def test_masks_and_depth_match_ray_casting(frames, model):
  for f in frames:
    body, obj, _ = _meshes(f, model)
    h, w = f["human_mask"].shape
    ys, xs = np.mgrid[0:h, 0:w]
    dirs = np.stack([(xs - f["princpt"][0]) / f["focal"][0], (ys - f["princpt"][1]) / f["focal"][1],
                     np.ones_like(xs, float)], -1).reshape(-1, 3)
    scene = trimesh.util.concatenate([body, obj])
    locs, rays, tris = RayMeshIntersector(scene).intersects_location(np.zeros_like(dirs), dirs, multiple_hits=False)
    label = np.zeros(h * w, int)
    label[rays] = np.where(tris < len(body.faces), 1, 2)
    label = label.reshape(h, w)
    for k, mask in ((1, f["human_mask"]), (2, f["object_mask"])):
      ref = label == k
      if ref.sum() < 20:  # A hidden object: the masks must agree it is (almost) invisible.
        assert mask.sum() < 40
        continue
      iou = np.logical_and(ref, mask > 0).sum() / np.logical_or(ref, mask > 0).sum()
      assert iou > 0.95, (f["seed"], k, iou)
    # Depth: the hit point's z is the camera depth.
    depth_ref = np.zeros(h * w)
    depth_ref[rays] = locs[:, 2]
    both = (f["depth"].reshape(-1) > 0) & (depth_ref > 0)
    assert np.median(np.abs(f["depth"].reshape(-1)[both] - depth_ref[both])) < 1e-3


def test_contact_labels_match_trimesh_distances(frames, model):
  rng = np.random.default_rng(0)
  guidance = body_lib.guidance_vertex_indices(model)
  for f in frames:
    body, obj, tmpl = _meshes(f, model)
    sample = np.unique(np.concatenate([guidance, rng.choice(len(body.vertices), 400, replace=False),
                                       np.nonzero(f["human_contact_full"])[0][:400]]))
    _, dist, _ = trimesh.proximity.closest_point(obj, body.vertices[sample])
    clear = np.abs(dist - labels.CONTACT_THRESHOLD) > 1e-3  # Ties at the threshold may go either way.
    np.testing.assert_array_equal(f["human_contact_full"][sample][clear], (dist < 0.05)[clear])
    np.testing.assert_array_equal(f["human_contact"], f["human_contact_full"][guidance])
    template_cam = f["object_template"] @ f["obj_rot"].T.astype(np.float64) + f["obj_trans"]
    _, dist_o, _ = trimesh.proximity.closest_point(body, template_cam)
    clear = np.abs(dist_o - 0.05) > 1e-3
    np.testing.assert_array_equal(f["object_contact"][clear] > 0, (dist_o < 0.05)[clear])
    floor_ref = _to_world(template_cam, f)[:, 1] < labels.FLOOR_THRESHOLD
    np.testing.assert_array_equal(f["object_floor_contact"] > 0, floor_ref)
    if f["interaction"] in ("carry", "hold_one_hand", "sit", "kick", "bend", "squat", "overhead"):
      assert f["human_contact"].sum() > 0 and f["object_contact"].sum() > 0


def test_no_penetration_and_supported(frames, model):
  for f in frames:
    body, obj, tmpl = _meshes(f, model)
    local = (body.vertices - f["obj_trans"]) @ f["obj_rot"].astype(np.float64)
    grid = SDFGrid(*(jnp.asarray(x, jnp.float32) for x in (tmpl.sdf.values, tmpl.sdf.lo, tmpl.sdf.hi)))
    phi = np.asarray(sdf_lookup(grid, jnp.asarray(local, jnp.float32)))
    assert phi.min() >= -0.01, (f["seed"], phi.min())
    body_w, obj_w = _to_world(body.vertices, f), _to_world(obj.vertices, f)
    assert body_w[:, 1].min() > -0.01
    on_floor = abs(obj_w[:, 1].min()) < 0.01
    hands = np.nonzero(np.asarray(model.weights)[:, 20:].sum(1) > 0.5)[0]
    # Distance to dense surface samples over-estimates the true distance by < ~3 mm here.
    samples = trimesh.sample.sample_surface(obj, 30000, seed=0)[0]
    d_hand = cKDTree(samples).query(body.vertices[hands])[0]
    in_hands = d_hand.min() < 0.025
    assert in_hands if f["held"] else on_floor, (f["seed"], f["interaction"])


def test_reproducible_from_seed(frames, layout):
  config, seeds = LAYOUTS[layout]
  again = generator.generate_frame(seeds[0], config)
  for k, v in frames[0].items():
    np.testing.assert_array_equal(np.asarray(v), np.asarray(again[k]), err_msg=k)


def test_split_pools_are_disjoint():
  test_cfg = generator.SyntheticConfig(resolution=48, solver_steps=150, split="test", objects=("boxsmall",),
                                       interactions=("carry",), max_attempts=3)
  f = generator.generate_frame(5, test_cfg)
  assert f["object_seed"] >= generator._SPLIT_OBJECT_SEEDS["test"]
  train_betas = {tuple(np.round(generator._betas("train", CONFIG, np.random.default_rng(i), 10), 5))
                 for i in range(50)}
  assert tuple(np.round(f["betas"], 5)) not in train_betas


def test_mesh_distance_matches_trimesh():
  rng = np.random.default_rng(1)
  mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
  mesh.apply_translation([0.1, 0.0, 0.0])
  pts = rng.normal(size=(500, 3)) * 0.25
  ref = trimesh.proximity.closest_point(mesh, pts)[1]
  got = labels.mesh_distance(pts, mesh.vertices, mesh.faces, max_distance=0.08)
  near = ref < 0.079
  np.testing.assert_allclose(got[near], ref[near], atol=1e-6)
  assert np.all(np.isinf(got[ref > 0.081]))


@pytest.mark.skipif("gl" not in available_backends(), reason="no EGL/OpenGL context on this machine")
def test_backends_give_the_same_frame_geometry():
  # The backend only changes the RGB (anti-aliasing); scene, labels, masks and depth are the same.
  rc = generator.generate_frame(SEEDS[0], dataclasses.replace(CONFIG, backend="raycast"))
  gl = generator.generate_frame(SEEDS[0], dataclasses.replace(CONFIG, backend="gl"))
  for k, v in gl.items():
    if k not in ("image", "human_mask", "object_mask", "depth", "crop_box"):
      np.testing.assert_array_equal(np.asarray(v), np.asarray(rc[k]), err_msg=k)
  for k in ("human_mask", "object_mask"):
    assert (gl[k] != rc[k]).mean() < 0.002, k  # Pixel centres on a shared edge may go either way.
  ids_gl, ids_rc = (f["human_mask"] + 2 * f["object_mask"] for f in (gl, rc))
  both = (ids_gl == ids_rc) & (ids_gl > 0)
  np.testing.assert_allclose(gl["depth"][both], rc["depth"][both], atol=1e-3)
  # Same shading and light, and the same draws for the backdrop, blur and noise: the
  # images differ only near silhouettes (anti-aliasing).
  assert np.abs(gl["image"].astype(int) - rc["image"]).mean() < 3


def test_config_rejects_unknown_backend():
  with pytest.raises(generator.ScoreHOIError, match="backend"):
    generator.SyntheticConfig(backend="builtin")


def test_generate_is_resumable(tmp_path):
  cfg = generator.SyntheticConfig(resolution=48, solver_steps=150, objects=("boxsmall", "basketball"))
  out = str(tmp_path / "ds")
  paths = generator.generate(3, seed=7, out_dir=out, workers=1, resolution=48, progress=False,
                             frames_per_shard=2, config=cfg)
  assert len(paths) == 2 and all(os.path.exists(p) for p in paths)
  first_mtime = os.path.getmtime(paths[0])
  os.remove(paths[1])
  generator.generate(3, seed=7, out_dir=out, workers=1, resolution=48, progress=False, frames_per_shard=2,
                     config=cfg)
  assert os.path.getmtime(paths[0]) == first_mtime  # Complete shards are kept.
  seeds = [int(f["seed"]) for f in generator.iter_frames(out)]
  assert seeds == [generator.frame_seed(7, i) for i in range(3)]
  with pytest.raises(generator.ScoreHOIError):
    generator.generate(4, seed=7, out_dir=out, workers=1, resolution=48, progress=False, config=cfg)


# ------------------------------------------------------------------------------------------------
# Capture layout: camera ranges, floor plane, pose classes.
# ------------------------------------------------------------------------------------------------


def _heights(points_cam, frame):
  """Height above the floor of camera-frame points, from the record's ground_plane."""
  plane = frame["ground_plane"].astype(np.float64)
  return points_cam @ plane[:3] + plane[3]


def _camera_checks(rot, pos, focal, princpt, size, points_cam):
  """Height, pitch (from the optical axis in the world), roll, intrinsics and visibility of a capture camera."""
  w, h = size
  assert (w, h) == (size[0], round(size[0] * 0.75))
  axis = rot.T @ np.array([0.0, 0.0, 1.0])  # Optical axis, world.
  pitch = -np.degrees(np.arcsin(axis[1]))
  assert 1.0 - 1e-6 <= pos[1] <= 3.0 + 1e-6 and -1e-4 <= pitch <= 35.0 + 1e-4, (pos[1], pitch)
  assert abs((rot.T @ np.array([1.0, 0.0, 0.0]))[1]) < 1e-6  # No roll: image x stays horizontal.
  f_kinect = 976.0 * w / 2048.0
  assert np.all(np.abs(np.asarray(focal) / f_kinect - 1.0) <= 0.03 + 1e-6)
  off = (np.asarray(princpt) - (np.array([w, h]) - 1) / 2) / np.array([w, h])
  assert np.all(np.abs(off) <= 0.03 + 1e-6), off
  uv = points_cam[:, :2] / points_cam[:, 2:] * focal + princpt
  inside = (uv[:, 0] >= -0.5) & (uv[:, 0] <= w - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] <= h - 0.5)
  return inside.mean(), uv


def test_capture_frames_have_kinect_like_cameras(model):
  for f in _frames("capture"):
    body, obj, _ = _meshes(f, model)
    pts = np.concatenate([body.vertices, obj.vertices])
    h, w = f["image"].shape[:2]
    seen, _ = _camera_checks(f["cam_rot"].astype(np.float64), f["cam_pos"].astype(np.float64), f["focal"],
                             f["princpt"], (w, h), pts)
    assert seen > 0.98, seen  # Fully or (nearly) fully in the frame.
    np.testing.assert_allclose(f["ground_plane"][3], f["cam_pos"][1], rtol=1e-6)


def test_capture_camera_sampler_ranges_and_placement():
  # 300 draws for a person-sized cloud of points: every draw within the stated ranges, the subject fully
  # in the frame, and placed anywhere: its centre in the left and right thirds, and well above and below
  # the middle (a standing person is tall, so the top and bottom thirds are out of reach).
  rng = np.random.default_rng(0)
  centres = []
  for _ in range(300):
    pts = rng.uniform([-0.3, 0.0, -0.3], [0.3, 1.8, 0.3], (400, 3)) + np.array([rng.normal(), 0, rng.normal()])
    cam = camera_lib.sample_capture_camera(rng, pts, 512)
    seen, uv = _camera_checks(cam.rot, cam.position, cam.focal, cam.princpt, (cam.width, cam.height),
                              camera_lib.to_camera(pts, cam))
    assert seen == 1.0
    centres.append(0.5 * (uv.min(0) + uv.max(0)) / [cam.width, cam.height])
  c = np.array(centres)
  assert (c[:, 0] < 1 / 3).mean() > 0.15 and (c[:, 0] > 2 / 3).mean() > 0.15, c[:, 0]
  assert (c[:, 1] < 0.4).mean() > 0.1 and (c[:, 1] > 0.6).mean() > 0.1, c[:, 1]


def test_ground_plane_matches_the_scene(frames, model):
  for f in frames:
    body, obj, _ = _meshes(f, model)
    n = f["ground_plane"][:3].astype(np.float64)
    assert abs(np.linalg.norm(n) - 1.0) < 1e-5
    hb, ho = _heights(body.vertices, f), _heights(obj.vertices, f)
    assert hb.min() > -0.011, (f["seed"], hb.min())  # Nothing below the floor.
    if f["interaction"] != "sit":
      assert hb.min() < 0.011, (f["seed"], hb.min())  # Standing: the soles are on it.
    if not f["held"]:
      assert abs(ho.min()) < 0.011, (f["seed"], ho.min())  # A floor-standing object rests on it.
    # The camera-frame floor is the world floor: the world-up direction of the stored camera pose.
    np.testing.assert_allclose(n, f["cam_rot"].astype(np.float64) @ np.array([0.0, 1.0, 0.0]), atol=1e-6)
    # And the rendered depth agrees: back-projected, the lowest visible subject pixel is just above the floor
    # (feet or the base of the object), and none is below it.
    ys, xs = np.nonzero(f["depth"] > 0)
    z = f["depth"][ys, xs].astype(np.float64)
    pts = np.stack([(xs - f["princpt"][0]) / f["focal"][0] * z, (ys - f["princpt"][1]) / f["focal"][1] * z, z], 1)
    assert -0.015 < _heights(pts, f).min() < 0.1, (f["seed"], _heights(pts, f).min())


def test_capture_pose_classes(model):
  frames = _frames("capture")
  classes = [f["pose_class"] for f in frames]
  assert set(classes) == {"arms_overhead", "bend", "squat"}, classes
  names = body_lib.SMPLH_JOINT_NAMES
  for f in frames:
    out = body_lib.body_forward(model, jnp.asarray(f["pose"]), jnp.asarray(f["betas"]))
    joints = np.asarray(out.joints - out.joints[0], np.float64) + f["cam_trans"]
    height = dict(zip(names, _heights(joints, f)))
    if f["pose_class"] == "arms_overhead":
      assert min(height["left_wrist"], height["right_wrist"]) > height["head"] + 0.1, height
    elif f["pose_class"] == "squat":
      assert height["pelvis"] < 0.62, height["pelvis"]
    else:  # Bend: the trunk tilted well forward, the hands down near the object's top.
      assert height["head"] - height["pelvis"] < 0.45, (height["head"], height["pelvis"])
      assert max(height["left_wrist"], height["right_wrist"]) < height["pelvis"], height


def test_layouts_and_classes_are_declared():
  assert generator.SyntheticConfig().layout == "capture" and generator.SyntheticConfig().resolution == 512
  assert generator.SyntheticConfig(layout="centred").resolution == 256
  with pytest.raises(generator.ScoreHOIError, match="layout"):
    generator.SyntheticConfig(layout="portrait")
  assert set(scenes.LEGACY_INTERACTIONS) < set(scenes.INTERACTIONS)
