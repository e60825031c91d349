"""Synthetic human-object interaction frames: one per seed, and a sharded, resumable driver.

``generate_frame(seed, config)`` makes one frame, reproducibly from its seed
alone (frames are independent, so any subset can be regenerated or spread
over machines): draw an interaction and a suitable object instance, a body
shape, solve the pose (poses.py), reject and redraw if the result penetrates
the object or the floor by more than 1 cm or a held object is not in the
hands, draw a camera, appearance and light, render, and label.

Two layouts (SyntheticConfig.layout):
- "capture" (default): frames like real capture. A 4:3 image ``resolution``
  pixels wide (default 512 x 384) from a Kinect-like camera 1–3 m high,
  pitched down 0–35 degrees, 1.6–4.2 m away, with the subject small and
  anywhere in the frame (camera.py); a textured room with a lamp and clutter
  (room.py); camera imperfections and JPEG artefacts (appearance.py);
  object instances are the library's shape variants
  (objects/procedural.py); all interaction types, including bend, squat
  and overhead.
- "centred": the original generator, unchanged (a square image in which the
  subject fills most of the frame, centred; flat backdrops; size-jittered
  instances; the original eight interaction types). Its frames are the same
  as before this option existed, apart from the added fields ground_plane
  and pose_class.

Raw frame format (a dict; H x W = image size, V = body vertices):
  image                uint8   [H, W, 3]
  human_mask           uint8   [H, W]   visible human pixels (0/1)
  object_mask          uint8   [H, W]   visible object pixels (0/1)
  depth                float32 [H, W]   camera z of the human/object, 0 elsewhere
  pose                 float32 [52, 3, 3] parent-relative rotations; pose[0] is the
                                          global orientation in camera axes (OpenCV:
                                          x right, y down, z forward)
  betas                float32 [10]
  cam_trans            float32 [3]      pelvis joint in camera coordinates, so
                       vertices_cam = body_forward(pose, betas).vertices
                                      - body_forward(...).joints[0] + cam_trans
  obj_rot              float32 [3, 3]   object canonical frame -> camera
  obj_trans            float32 [3]      object canonical origin in camera coordinates
                       (object_cam = template_or_mesh @ obj_rot.T + obj_trans)
  object_name          str              category; get_object(object_name, seed=object_seed)
  object_seed          int              gives the exact instance
  object_template      float32 [64, 3]  canonical template points
  focal, princpt       float32 [2]      pixels; pixel centres at integer coordinates
  crop_box             float32 [4]      x0, y0, x1, y1 of the union of the masks
  human_contact        float32 [431]    on guidance_vertex_indices(model)
  human_contact_full   uint8   [V]      body vertices within 5 cm of the object surface
  object_contact       float32 [64]     template points within 5 cm of the body
  object_floor_contact float32 [64]     template points within 2 cm of the floor
  interaction          str              carry, lift, hold_one_hand, sit, push, lean,
                                        stand_beside, kick (+ bend, squat, overhead: capture)
  pose_class           str              what the body does (scenes.POSE_CLASSES): carry_front,
                                        lift, hold, carry_side, sit, push, lean, stand, kick,
                                        bend, squat, arms_overhead
  ground_plane         float32 [4]      the floor in camera coordinates: n (unit, up) and d,
                                        n·x + d = a point's height above the floor
  seed                 int
  held                 uint8            1: the object is supported by the hands
  cam_rot, cam_pos     float32          world -> camera rotation, camera centre
                                        (world: +Y up, floor y = 0), for floor queries

The driver ``generate`` writes shards of ``frames_per_shard`` frames as
compressed ``.npz`` files (one array per key, stacked over frames), each
written under a temporary name and renamed when complete, so an interrupted
run resumes by skipping the shards that exist.
"""

from __future__ import annotations

import concurrent.futures as futures
import ctypes
import dataclasses
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial import cKDTree

from scorehoi_jax import body as body_lib
from scorehoi_jax import render as render_lib
from scorehoi_jax.data.synthetic import appearance, camera as camera_lib, labels, poses, room as room_lib, scenes
from scorehoi_jax.errors import ScoreHOIError
from scorehoi_jax.geometry.sdf import sdf_lookup
from scorehoi_jax.objects import get_object
from scorehoi_jax.objects.procedural import VARIANT_SEED_BASE

_PENETRATION_TOL = 0.01
_FLOOR_TOL = 0.01
_MIN_VISIBLE = 0.004  # Fraction of the image each of the person and the object must cover.
_SPLIT_OBJECT_SEEDS = {"train": 0, "test": 100_000}  # Instance seeds: disjoint per split.
_SPLIT_SHAPE_SEEDS = {"train": 0, "test": 1_000_000}  # Body-shape pools: disjoint per split.
LAYOUTS = ("capture", "centred")
_DEFAULT_RESOLUTION = {"capture": 512, "centred": 256}
_DEFAULT_INSTANCES = {"capture": 24, "centred": 8}


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """Settings of the generator (all frames of a dataset share them)."""
  # Image width in pixels (capture: 4:3, height = 3/4 of it; centred: square). None: 512 capture,
  # 256 centred.
  resolution: int | None = None
  split: str = "train"  # "train" or "test": disjoint object instances and body shapes.
  # Instances per category in the split's pool (capture: shape variants; centred: size-jittered).
  # None: 24 capture, 8 centred.
  object_instances: int | None = None
  body_shapes: int = 4000  # Body shapes in the split's pool (test: a tenth of it).
  beta_scale: float = 1.0  # betas ~ N(0, scale²) (the open model's betas are ~N(0, 1)).
  solver_steps: int = 200
  solver_lr: float = 0.03
  max_attempts: int = 6
  interactions: tuple | None = None  # Restrict to these interaction types (scenes.INTERACTIONS).
  objects: tuple | None = None  # Restrict to these object categories.
  body_model: str | None = None  # Path of an SMPL-H-layout model; None = embedded default.
  # scorehoi_jax.render backend: "gl" (moderngl/EGL, anti-aliased), "raycast" (trimesh/embree,
  # no system packages), "auto", or None (the SCOREHOI_RENDER_BACKEND variable, else auto).
  # Masks and depth are exact with either; RGB differs at silhouettes (anti-aliasing).
  backend: str | None = None
  layout: str = "capture"  # "capture" (real-capture-like full frames) or "centred" (module docstring).

  def __post_init__(self):
    if self.layout not in LAYOUTS:
      raise ScoreHOIError(f"SyntheticConfig.layout must be one of {LAYOUTS}, got {self.layout!r}")
    if self.resolution is None:  # Frozen: fill the layout's defaults in place.
      object.__setattr__(self, "resolution", _DEFAULT_RESOLUTION[self.layout])
    if self.object_instances is None:
      object.__setattr__(self, "object_instances", _DEFAULT_INSTANCES[self.layout])
    if self.split not in _SPLIT_OBJECT_SEEDS:
      raise ScoreHOIError(f"SyntheticConfig.split must be one of {sorted(_SPLIT_OBJECT_SEEDS)}, got {self.split!r}")
    if self.backend not in (None, "auto") + render_lib.BACKENDS:
      raise ScoreHOIError(f"SyntheticConfig.backend must be one of {render_lib.BACKENDS + ('auto',)} or None, "
                          f"got {self.backend!r}")
    if not 32 <= self.resolution <= 2048:
      raise ScoreHOIError(f"SyntheticConfig.resolution must be in [32, 2048], got {self.resolution}")


class _State:
  """Per-process objects that are expensive to build: the body model and jitted functions."""

  def __init__(self, body_model: str | None):
    self.model = body_lib.load_body_model(body_model)
    self.sb = poses.solver_body(self.model)
    self.guidance = body_lib.guidance_vertex_indices(self.model)
    self.faces = np.asarray(self.model.faces, np.int64)
    self.weights = np.asarray(self.model.weights)
    model = self.model
    self.forward = jax.jit(lambda r, b: body_lib.body_forward(model, r, b))
    self.rest = jax.jit(lambda b: body_lib.shaped_rest(model, b))
    hand_joints = [np.arange(20, 52)[np.array([n.startswith(s) for n in body_lib.SMPLH_JOINT_NAMES[20:]])]
                   for s in ("left", "right")]
    self.hand_vertices = [np.nonzero(self.weights[:, j].sum(1) > 0.5)[0] for j in hand_joints]


_STATES: dict = {}


def _state(config: SyntheticConfig) -> _State:
  if config.body_model not in _STATES:
    _STATES[config.body_model] = _State(config.body_model)
  return _STATES[config.body_model]


def _betas(split: str, config: SyntheticConfig, rng, num_betas: int) -> np.ndarray:
  pool = config.body_shapes if split == "train" else max(1, config.body_shapes // 10)
  shape_seed = _SPLIT_SHAPE_SEEDS[split] + int(rng.integers(pool))
  return (np.random.default_rng(shape_seed).normal(size=num_betas) * config.beta_scale).astype(np.float32)


_sdf_jit = jax.jit(sdf_lookup)


def _check(scene: scenes.Scene, verts: np.ndarray, human_d: np.ndarray, st: _State) -> str | None:
  """Why a solved scene is not acceptable, or None."""
  if verts[:, 1].min() < -_FLOOR_TOL:
    return "body below the floor"
  if scene.interaction not in ("sit",) and verts[:, 1].min() > 0.03:
    return "feet off the floor"
  local = (verts - scene.obj_trans) @ scene.obj_rot
  phi = np.asarray(_sdf_jit(scene.obj.sdf, np.asarray(local, np.float32)))
  if phi.min() < -_PENETRATION_TOL:
    return f"penetration {-phi.min():.3f} m"
  for hand in scene.hands_used:
    if human_d[st.hand_vertices[hand]].min() > 0.02:
      return f"hand {hand} not on the object"
  if scene.interaction == "sit" and human_d.min() > 0.02:
    return "not on the seat"
  return None


def _solve_scene(seed: int, config: SyntheticConfig, st: _State):
  """Draw and solve scenes until one passes the checks (deterministic in the seed)."""
  reason = None
  interactions = config.interactions
  if interactions is None and config.layout == "centred":
    interactions = scenes.LEGACY_INTERACTIONS
  seed_base = _SPLIT_OBJECT_SEEDS[config.split] + (VARIANT_SEED_BASE if config.layout == "capture" else 0)
  for attempt in range(config.max_attempts):
    rng = np.random.default_rng([seed, attempt])
    last = attempt == config.max_attempts - 1
    allowed = ("stand_beside",) if last else interactions
    try:
      kind, category = scenes.sample_interaction(rng, allowed, config.objects)
    except ValueError:  # No stand-beside object among config.objects: keep the configured types.
      kind, category = scenes.sample_interaction(rng, interactions, config.objects)
    object_seed = seed_base + int(rng.integers(config.object_instances))
    obj = get_object(category, seed=object_seed)
    betas = _betas(config.split, config, rng, st.model.num_betas)
    v_rest, j_rest = (np.asarray(x) for x in st.rest(jnp.asarray(betas)))
    scene = scenes.build_scene(rng, kind, obj, st.sb, betas, j_rest, float(v_rest[:, 1].min()))
    sol = poses.solve_pose(scene.problem, st.sb, steps=config.solver_steps, lr=config.solver_lr)
    out = st.forward(sol.rotmats, jnp.asarray(betas))
    trans = np.asarray(sol.trans, np.float64)
    verts = np.asarray(out.vertices, np.float64) + trans
    # The solver sees a vertex subset; put the full mesh's lowest point exactly on the floor
    # (a seated body is only lifted out of it, never lowered onto it).
    lift = -verts[:, 1].min()
    if kind == "sit":
      lift = max(lift, 0.0)
    trans[1] += lift
    verts[:, 1] += lift
    obj_verts = obj.vertices @ scene.obj_rot.T + scene.obj_trans
    human_d = labels.mesh_distance(verts, obj_verts, obj.faces, 2 * labels.CONTACT_THRESHOLD)
    reason = _check(scene, verts, human_d, st)
    if reason is None:
      return rng, scene, sol, betas, verts, np.asarray(out.joints, np.float64) + trans, obj_verts, object_seed, human_d
  raise RuntimeError(f"synthetic frame seed {seed}: no valid scene in {config.max_attempts} attempts "
                     f"(last: {reason})")


def _camera(cam, scale: float = 1.0) -> render_lib.Camera:
  """The renderer camera of a sampled camera, optionally for an image ``scale`` times the size.

  Scaling keeps pixel *edges* aligned: with centres at integer coordinates,
  the image edge is at -0.5, so c' = (c + 0.5) * scale - 0.5.
  """
  if scale == 1.0:  # Exactly the frame's intrinsics (the shift below is not exact in floating point).
    return render_lib.Camera(tuple(float(f) for f in cam.focal), tuple(float(c) for c in cam.princpt),
                             cam.width, cam.height)
  return render_lib.Camera(tuple(float(f) * scale for f in cam.focal),
                           tuple((float(c) + 0.5) * scale - 0.5 for c in cam.princpt),
                           int(round(cam.width * scale)), int(round(cam.height * scale)))


def _render(rng, cam, meshes, verts_world_low, light: render_lib.Light, backend):
  """Image (float [R, R, 3]), instance ids (1 body, 2 object) and depth.

  The backdrop and the floor are drawn first and passed to the renderer as
  its background, so anti-aliased silhouettes blend with what is behind them.
  """
  r = cam.width
  img = appearance.backdrop(rng, r, r)
  # Floor: where a pixel's ray hits y = 0 within 12 m of the scene, textured by world x/z.
  ys, xs = np.mgrid[0:r, 0:r].astype(np.float64)
  rays = np.stack([(xs - cam.princpt[0]) / cam.focal[0], (ys - cam.princpt[1]) / cam.focal[1], np.ones_like(xs)], -1)
  rays_w = rays @ cam.rot  # Camera -> world directions (rot is world -> camera).
  t = -cam.position[1] / np.where(rays_w[..., 1] < -1e-6, rays_w[..., 1], -1e-6)
  hit = cam.position + t[..., None] * rays_w
  on_floor = (rays_w[..., 1] < -1e-6) & (np.hypot(hit[..., 0], hit[..., 2]) < 12.0)
  if on_floor.any():
    xz = hit[on_floor][:, [0, 2]]
    floor = appearance.floor_texture(rng, xz)
    up_cam = cam.rot[:, 1]
    lit = light.ambient + light.diffuse * max(0.0, float(up_cam @ np.asarray(light.direction)))
    # Soft contact shadow under the body and object: darker near low vertices.
    d = np.full(len(xz), 9.0)
    if len(verts_world_low):
      d = cKDTree(verts_world_low[:, [0, 2]]).query(xz, k=1)[0]
    shadow = 1.0 - 0.45 * np.exp(-0.5 * (d / 0.12) ** 2)
    img[on_floor] = floor * min(lit, 1.1) * shadow[:, None]
  out = render_lib.render(meshes, _camera(cam), background=np.clip(img, 0.0, 1.0), light=light, backend=backend)
  return out.rgb.astype(np.float32) / 255.0, out.instance, out.depth


def _sample_view(rng, verts, obj_verts, body_faces, obj_faces, resolution, backend, tries: int = 5):
  """A camera from which both the person and the object are visible (not fully occluded).

  Visibility is checked on the instance ids of a 64 px preview render; a
  frame whose object is hidden behind the person would be useless (the crop
  needs both masks), so the camera is redrawn, up to ``tries`` times (the
  last draw is kept).
  """
  points = np.concatenate([verts, obj_verts])
  small = 64
  for _ in range(tries):
    cam = camera_lib.sample_camera(rng, points, resolution)
    all_cam = camera_lib.to_camera(points, cam)
    # Ids only (rgb=False skips normals and shading). The default sample count reuses the
    # frame's GL context; another count would create a second context in the process.
    ids = render_lib.render([(all_cam[:len(verts)], body_faces), (all_cam[len(verts):], obj_faces)],
                            _camera(cam, small / resolution), backend=backend, rgb=False).instance
    min_px = _MIN_VISIBLE * small * small
    if np.sum(ids == 2) >= min_px and np.sum(ids == 1) >= min_px:
      break
  return cam, all_cam


def _sample_capture_view(rng, verts, obj_verts, body_faces, obj_faces, width, backend, tries: int = 5):
  """A capture-layout camera from which both the person and the object are visible.

  As ``_sample_view``, on a preview 160 px wide; the subject is small in
  these frames, so the thresholds are absolute pixel counts of the preview.
  """
  points = np.concatenate([verts, obj_verts])
  for _ in range(tries):
    cam = camera_lib.sample_capture_camera(rng, points, width)
    all_cam = camera_lib.to_camera(points, cam)
    ids = render_lib.render([(all_cam[:len(verts)], body_faces), (all_cam[len(verts):], obj_faces)],
                            _camera(cam, 160 / cam.width), backend=backend, rgb=False).instance
    if np.sum(ids == 2) >= 6 and np.sum(ids == 1) >= 40:
      break
  return cam, all_cam


def _render_capture(rng, cam, meshes, verts, obj_verts, low, light, backend):
  """Image, ids and depth of a capture-layout frame: room and clutter behind the subject (room.py)."""
  subject = np.concatenate([verts, obj_verts])
  room = room_lib.sample_room(rng, cam, subject)
  clutter = room_lib.sample_clutter(rng, room, cam, subject)
  meshes = meshes + [render_lib.Mesh(camera_lib.to_camera(v, cam), f, c) for v, f, c in clutter]
  background = room_lib.render_room(rng, cam, room, low)
  out = render_lib.render(meshes, _camera(cam), background=background, light=light, backend=backend)
  ids = np.where(out.instance <= 2, out.instance, 0)  # Clutter is background.
  depth = np.where(ids > 0, out.depth, 0.0).astype(np.float32)
  return out.rgb.astype(np.float32) / 255.0, ids, depth


def generate_frame(seed: int, config: SyntheticConfig = SyntheticConfig()) -> dict:
  """One synthetic frame in the raw-frame format of this module's docstring."""
  st = _state(config)
  rng, scene, sol, betas, verts, joints, obj_verts, object_seed, human_d = _solve_scene(int(seed), config, st)
  obj = scene.obj
  capture = config.layout == "capture"
  view = _sample_capture_view if capture else _sample_view
  cam, all_cam = view(rng, verts, obj_verts, st.faces, obj.faces, config.resolution, config.backend)
  body_col = appearance.body_colors(rng, st.weights)
  obj_col = appearance.object_colors(rng, len(obj_verts), [len(p.vertices) for p in obj.parts])
  light = appearance.lighting(rng)
  low = np.concatenate([verts, obj_verts])
  low = low[low[:, 1] < 0.25]
  nv = len(verts)
  meshes = [render_lib.Mesh(all_cam[:nv], st.faces, body_col), render_lib.Mesh(all_cam[nv:], obj.faces, obj_col)]
  if capture:
    img, ids, depth = _render_capture(rng, cam, meshes, verts, obj_verts, low, light, config.backend)
    image = appearance.finish_capture(rng, img)
  else:
    img, ids, depth = _render(rng, cam, meshes, low, light, config.backend)
    image = appearance.finish(rng, img)
  template_world = obj.template @ scene.obj_rot.T + scene.obj_trans
  lab = labels.contact_labels(verts, st.faces, obj_verts, obj.faces, template_world, st.guidance, human_d)
  human_mask, object_mask = (ids == 1).astype(np.uint8), (ids == 2).astype(np.uint8)
  uv = camera_lib.project(all_cam, cam.focal, cam.princpt)
  pose = np.array(sol.rotmats, np.float32)
  pose[0] = cam.rot @ pose[0]
  return dict(
      image=image, human_mask=human_mask, object_mask=object_mask, depth=depth,
      pose=pose, betas=betas.astype(np.float32),
      cam_trans=camera_lib.to_camera(joints[0], cam).astype(np.float32),
      obj_rot=(cam.rot @ scene.obj_rot).astype(np.float32),
      obj_trans=camera_lib.to_camera(scene.obj_trans.astype(np.float64), cam).astype(np.float32),
      object_name=obj.category, object_seed=np.int64(object_seed), object_template=obj.template.astype(np.float32),
      focal=cam.focal.astype(np.float32), princpt=cam.princpt.astype(np.float32),
      crop_box=labels.crop_box(human_mask, object_mask, uv),
      human_contact=lab["human_contact"], human_contact_full=lab["human_contact_full"],
      object_contact=lab["object_contact"], object_floor_contact=lab["object_floor_contact"],
      interaction=scene.interaction, seed=np.int64(seed), held=np.uint8(scene.held),
      cam_rot=cam.rot.astype(np.float32), cam_pos=cam.position.astype(np.float32),
      pose_class=scene.pose_class, ground_plane=camera_lib.ground_plane(cam),
  )


# ------------------------------------------------------------------------------------------------
# The sharded driver.
# ------------------------------------------------------------------------------------------------


def frame_seed(dataset_seed: int, index: int) -> int:
  """The seed of frame ``index`` of a dataset (independent streams per frame)."""
  return int(np.random.SeedSequence([int(dataset_seed), int(index)]).generate_state(1, np.uint64)[0] >> 1)


def shard_path(out_dir: str, split: str, shard: int, num_shards: int) -> str:
  return os.path.join(out_dir, f"synthetic_hoi-{split}.npz-{shard:05d}-of-{num_shards:05d}")


def _write_shard(path: str, seeds: list[int], config: SyntheticConfig) -> int:
  frames = [generate_frame(s, config) for s in seeds]
  arrays = {k: np.stack([np.asarray(f[k]) for f in frames]) for k in frames[0]}
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "wb") as fh:
    np.savez_compressed(fh, **arrays)
  os.replace(tmp, path)  # Atomic: a shard file exists only when complete.
  return len(frames)


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _watch_parent(parent_pid: int):
  while True:
    time.sleep(0.5)
    if os.getppid() != parent_pid:
      os._exit(1)


def _worker_init(parent_pid: int):
  """Pool initializer: a worker dies with its parent (a `kill -9` of prepare must not leave
  workers writing shards that a rerun then races).

  On Linux the kernel sends SIGKILL when the parent dies (prctl PR_SET_PDEATHSIG); a thread
  polling the parent PID covers other systems, and the check below covers a parent that died
  before the prctl (the worker was then already re-parented).
  """
  if sys.platform.startswith("linux"):
    try:
      ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
      pass  # The polling thread still applies.
  if os.getppid() != parent_pid:
    os._exit(1)
  threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="parent-watch").start()


def _remove_stale_tmp(out_dir: str):
  """Delete half-written shards (``*.tmp-<pid>``) of workers that are gone."""
  from scorehoi_jax.outputs import pid_alive
  for name in os.listdir(out_dir):
    head, sep, pid = name.rpartition(".tmp-")
    if sep and pid.isdigit() and not pid_alive(int(pid)):
      try:
        os.remove(os.path.join(out_dir, name))
      except OSError:
        pass


def generate(num: int, seed: int, out_dir: str, workers: int = 2, resolution: int | None = None, progress: bool = True,
             frames_per_shard: int = 64, config: SyntheticConfig | None = None) -> list[str]:
  """Generate ``num`` frames into ``out_dir`` as .npz shards; resumable. Returns the shard paths.

  Frame i has seed ``frame_seed(seed, i)``. Shards already in ``out_dir`` are
  kept; a partial shard (killed mid-write) only exists under a temporary name
  and is redone. Workers are spawned processes (JAX does not survive fork),
  each single-threaded, and die with the calling process (``_worker_init``).
  """
  config = config or SyntheticConfig(resolution=resolution)
  if resolution is not None and config.resolution != resolution:
    config = dataclasses.replace(config, resolution=resolution)
  os.makedirs(out_dir, exist_ok=True)
  _remove_stale_tmp(out_dir)
  info_path = os.path.join(out_dir, f"synthetic_hoi-{config.split}.json")
  # The RGB depends on the backend (anti-aliasing), so the dataset records the one actually used, and
  # resuming where another backend would be chosen (e.g. no EGL) is refused rather than mixing the two.
  backend = render_lib.resolve_backend(config.backend)
  info = dict(num=int(num), seed=int(seed), frames_per_shard=int(frames_per_shard), render_backend=backend,
              config={k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()})
  if os.path.exists(info_path):
    with open(info_path) as fh:
      old = json.load(fh)
    if old != info:
      raise ScoreHOIError(f"{info_path} describes a different dataset ({old}); use another --out or delete it")
  else:
    with open(info_path, "w") as fh:
      json.dump(info, fh, indent=1)
  config = dataclasses.replace(config, backend=backend)  # Workers must not fall back on their own.
  num_shards = max(1, -(-num // frames_per_shard))
  jobs = []
  for k in range(num_shards):
    path = shard_path(out_dir, config.split, k, num_shards)
    seeds = [frame_seed(seed, i) for i in range(k * frames_per_shard, min(num, (k + 1) * frames_per_shard))]
    if not os.path.exists(path):
      jobs.append((path, seeds))
  done_frames = num - sum(len(s) for _, s in jobs)
  bar = None
  if progress:
    from tqdm import tqdm
    bar = tqdm(total=num, initial=done_frames, unit="frame", desc=f"synthetic_hoi {config.split}")
  try:
    if workers <= 1:
      for path, seeds in jobs:
        n = _write_shard(path, seeds, config)
        bar is not None and bar.update(n)
    else:
      ctx = multiprocessing.get_context("spawn")
      # One XLA/BLAS thread per worker, so the workers do not oversubscribe the cores.
      # LP_NUM_THREADS: Mesa llvmpipe (the GL renderer on CPU) otherwise starts a thread per core
      # in every worker (notes/renderer.md: single-threaded workers give the higher throughput).
      env = {"XLA_FLAGS": os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                          "intra_op_parallelism_threads=1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
             "LP_NUM_THREADS": "1"}
      saved = {k: os.environ.get(k) for k in env}
      os.environ.update(env)  # Spawned children read these at import time.
      try:
        with futures.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init,
                                         initargs=(os.getpid(),)) as pool:
          pending = [pool.submit(_write_shard, path, seeds, config) for path, seeds in jobs]
          for fut in futures.as_completed(pending):
            n = fut.result()
            bar is not None and bar.update(n)
      finally:
        for k, v in saved.items():
          if v is None:
            os.environ.pop(k, None)
          else:
            os.environ[k] = v
  finally:
    if bar is not None:
      bar.close()
  return [shard_path(out_dir, config.split, k, num_shards) for k in range(num_shards)]


def iter_frames(out_dir: str, split: str = "train") -> Iterator[dict]:
  """Frames of the shards in ``out_dir``, in order (for the TFDS builder, `scorehoi show`, tests)."""
  paths = sorted(p for p in os.listdir(out_dir) if p.startswith(f"synthetic_hoi-{split}.npz-") and ".tmp" not in p)
  if not paths:
    raise ScoreHOIError(f"no synthetic_hoi-{split} shards in {out_dir}")
  for name in paths:
    with np.load(os.path.join(out_dir, name)) as data:
      arrays = {k: data[k] for k in data.files}
    for i in range(len(arrays["seed"])):
      frame = {k: v[i] for k, v in arrays.items()}
      for key in ("object_name", "interaction", "pose_class"):
        if key in frame:
          frame[key] = str(frame[key])
      yield frame
