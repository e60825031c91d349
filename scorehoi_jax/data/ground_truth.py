"""Ground-truth targets of a real-dataset frame from its SMPL-H and object parameters.

Shared by the BEHAVE, InterCap and IMHD readers: pose the user's SMPL-H model,
place the object, express both in the camera frame, and compute the contact
labels as the field does (human vertices within 5 cm of the object surface,
object template points within 5 cm of the body). Object-floor contact needs a
floor plane, which these releases do not give in camera coordinates, so it is
stored as zeros.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial.transform import Rotation

from scorehoi_jax import body as body_lib
from scorehoi_jax.data.tfds_common import NUM_TEMPLATE, DatasetError, contact_labels, read_json, template_points


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
  """An object mesh in its canonical frame with its 64 template points."""
  name: str
  object_id: int
  vertices: np.ndarray  # [N, 3]
  faces: np.ndarray  # [F, 3]
  template: np.ndarray  # [64, 3]


def _read_mesh(path: str, where: str):
  import trimesh
  if not os.path.exists(path):
    raise DatasetError(f"{path}: object mesh not found (listed in {where}).")
  try:
    mesh = trimesh.load(path, force="mesh", process=False, maintain_order=True)
  except Exception as e:  # trimesh raises many types for bad files.
    raise DatasetError(f"{path}: cannot read object mesh ({type(e).__name__}: {e}).") from None
  if len(getattr(mesh, "faces", [])) == 0:
    raise DatasetError(f"{path}: object mesh has no faces.")
  return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)


def load_object_infos(info_path: str) -> dict[str, ObjectInfo]:
  """CONTHO's ``_info.json``: {name: {"path": mesh, "kps": [64, 3]}}; ids in key order.

  Mesh paths may be absolute or relative to the json's folder. Objects are
  also reachable under their mesh file stem (CONTHO names objects by stem).
  """
  info = read_json(info_path, "object info file")
  if not isinstance(info, dict) or not info:
    raise DatasetError(f"{info_path}: expected a non-empty JSON object name -> {{path, kps}}.")
  out = {}
  for oid, (name, entry) in enumerate(info.items()):
    if not isinstance(entry, dict) or "path" not in entry:
      raise DatasetError(f"{info_path}: entry '{name}' lacks 'path'.")
    path = entry["path"]
    if not os.path.isabs(path):
      path = os.path.join(os.path.dirname(info_path), path)
    verts, faces = _read_mesh(path, info_path)
    if "kps" in entry:
      kps = np.asarray(entry["kps"], np.float32)
      if kps.shape != (NUM_TEMPLATE, 3):
        raise DatasetError(f"{info_path}: '{name}' kps has shape {kps.shape}, expected ({NUM_TEMPLATE}, 3).")
    else:
      kps = template_points(verts, faces)
    obj = ObjectInfo(name, oid, verts, faces, kps)
    out[name] = obj
    out.setdefault(os.path.splitext(os.path.basename(path))[0], obj)
  return out


class BodyModels:
  """The user's SMPL-H model(s), per gender, with jitted forward and guidance indices.

  ``path`` is a model file (used for every gender) or a folder holding
  SMPLH_{NEUTRAL,MALE,FEMALE}.{npz,pkl} (genders missing there fall back to
  neutral).
  """

  def __init__(self, path: str):
    self.path = path
    self._cache: dict = {}
    if not os.path.exists(path):
      raise DatasetError(f"{path}: SMPL-H model not found.")

  def get(self, gender: str = "neutral"):
    gender = (gender or "neutral").lower()
    if gender not in self._cache:
      try:
        model = body_lib.load_body_model(self.path, gender=gender)
      except body_lib.BodyModelError:
        if gender == "neutral" or not os.path.isdir(self.path):
          raise
        return self.get("neutral")
      idx = body_lib.guidance_vertex_indices(model)
      fwd = jax.jit(lambda r, b, m=model: body_lib.body_forward(m, r, b))
      self._cache[gender] = (model, idx, fwd)
    return self._cache[gender]


def rotmats_from_axis_angle(pose: np.ndarray, model, hand_mean: bool) -> np.ndarray:
  """[52, 3, 3] rotations from 156 axis-angle values (smplx order).

  hand_mean=True: the hand values are offsets from the MANO mean pose
  (smplx's default ``flat_hand_mean=False``, what CONTHO's annotations use);
  smplx adds the mean to the axis-angles before Rodrigues, and we store the
  resulting absolute rotations (identity = flat hand). NumPy/SciPy here, not
  JAX: eager JAX ops would compile once per op for a few 3×3 matrices.
  """
  aa = np.asarray(pose, np.float64).reshape(52, 3).copy()
  if hand_mean and model.hands_mean is not None:
    aa[22:] += np.asarray(model.hands_mean, np.float64)
  return Rotation.from_rotvec(aa).as_matrix().astype(np.float32)


def axis_angle_matrix(aa) -> np.ndarray:
  """[3, 3] rotation of one axis-angle vector."""
  return Rotation.from_rotvec(np.asarray(aa, np.float64).reshape(3)).as_matrix()


def make_targets(bodies: BodyModels, gender: str, rotmats: np.ndarray, betas: np.ndarray, obj: ObjectInfo,
                 obj_rot: np.ndarray, obj_trans: np.ndarray, *, trans=None, pelvis_cam=None,
                 cam_rot=None, cam_trans=None) -> dict:
  """Record targets of one frame.

  Body and object parameters may be in a world frame; ``cam_rot``/``cam_trans``
  (world -> camera, x_cam = R x + t) bring them into the camera. The pelvis
  position is ``pelvis_cam`` if given (CONTHO uses the annotated pelvis joint),
  else R (J_pelvis + trans) + t.
  """
  model, idx, fwd = bodies.get(gender)
  r_c = np.eye(3) if cam_rot is None else np.asarray(cam_rot, np.float64).reshape(3, 3)
  t_c = np.zeros(3) if cam_trans is None else np.asarray(cam_trans, np.float64).reshape(3)
  b = np.zeros(10, np.float32)
  betas = np.asarray(betas, np.float32).reshape(-1)[:10]
  b[:len(betas)] = betas
  nb = min(10, model.num_betas)
  rot = np.array(rotmats, np.float32)
  root_src = rot[0].copy()
  rot[0] = r_c @ root_src
  out = fwd(jnp.asarray(rot), jnp.asarray(b[:nb]))
  verts, joints = np.asarray(out.vertices, np.float64), np.asarray(out.joints, np.float64)
  if pelvis_cam is None:
    # The root rotates about the pelvis joint, so the world pelvis is J_pelvis + trans.
    tr = np.zeros(3) if trans is None else np.asarray(trans, np.float64).reshape(3)
    pelvis_cam = r_c @ (joints[0] + tr) + t_c
  pelvis_cam = np.asarray(pelvis_cam, np.float64).reshape(3)
  human = verts - joints[0] + pelvis_cam
  o_rot = r_c @ np.asarray(obj_rot, np.float64).reshape(3, 3)
  o_trans = r_c @ np.asarray(obj_trans, np.float64).reshape(3) + t_c
  obj_verts = obj.vertices @ o_rot.T + o_trans
  template_cam = obj.template @ o_rot.T + o_trans
  h_full, o_contact = contact_labels(human, np.asarray(model.faces), obj_verts, obj.faces, template_cam)
  return {
      "pose": rot,
      "betas": b,
      "cam_trans": pelvis_cam.astype(np.float32),
      "obj_rot": o_rot.astype(np.float32),
      "obj_trans": o_trans.astype(np.float32),
      "object_template": obj.template.astype(np.float32),
      "object_id": np.int32(obj.object_id),
      "object_name": obj.name,
      "human_contact": h_full[idx].astype(np.float32),
      "object_contact": o_contact.astype(np.float32),
      "object_floor_contact": np.zeros(NUM_TEMPLATE, np.float32),
  }


def read_mask(path: str, size: tuple[int, int]) -> np.ndarray | None:
  """A binary mask (> 127 inside), None if the file is missing; errors name the file."""
  from PIL import Image, UnidentifiedImageError
  if not os.path.exists(path):
    return None
  try:
    with Image.open(path) as im:
      m = np.asarray(im.convert("L")) > 127
  except (UnidentifiedImageError, OSError) as e:
    raise DatasetError(f"{path}: cannot read mask ({e}).") from None
  if m.shape[::-1] != tuple(size):
    raise DatasetError(f"{path}: mask is {m.shape[1]}x{m.shape[0]} but the image is {size[0]}x{size[1]}.")
  return m.astype(np.uint8)


def read_image_bytes(path: str) -> tuple[bytes, tuple[int, int]]:
  """The encoded file as stored (no re-encoding) and its (width, height)."""
  from PIL import Image, UnidentifiedImageError
  if not os.path.exists(path):
    raise DatasetError(f"{path}: image not found.")
  with open(path, "rb") as f:
    data = f.read()
  try:
    import io
    with Image.open(io.BytesIO(data)) as im:
      im.verify()
      size = im.size
  except (UnidentifiedImageError, OSError, SyntaxError) as e:
    raise DatasetError(f"{path}: cannot read image ({e}).") from None
  return data, size


def frame_record(frame_id: str, image_path: str, human_mask_path: str, object_mask_path: str,
                 focal, princpt, targets_fn) -> dict:
  """One frame's record, or {"skip": reason} when a mask is missing or empty."""
  data, size = read_image_bytes(image_path)
  masks = {}
  for key, path in (("human_mask", human_mask_path), ("object_mask", object_mask_path)):
    m = read_mask(path, size)
    if m is None:
      return {"skip": "missing_mask"}
    if not m.any():
      return {"skip": "empty_mask"}
    masks[key] = m
  return {"frame_id": frame_id, "image": data, **masks,
          "focal": np.asarray(focal, np.float32).reshape(2), "princpt": np.asarray(princpt, np.float32).reshape(2),
          **targets_fn()}
