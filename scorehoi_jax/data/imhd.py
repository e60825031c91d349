"""IMHD² reader (official release layout) and TFDS builder ``imhd``.

Release layout (AfterJourney00/IMHD-Dataset README and visualization.py):
  ground_truth/<date>/<segment>/<sequence>/gt_<part>_<start>_<end>.pkl
      dict of per-frame arrays in the *world* frame: smplPose [N, 66]
      (root + 21 body joints, axis-angle), smplHandPose [N, 90] (absolute:
      human_body_prior's SMPL-H, no MANO mean), smplShape [N, 16],
      smplTrans [N, 3], objectRot [N, 3] (axis-angle), objectTrans [N, 3];
      row i is video frame start + i.
  calibrations/<date>/intrin.json  {"color": {fx, fy, cx, cy}} at 3840 px width
  calibrations/<date>/extrin.json  {"rotation": 3×3, "translation": 3} world->camera
      (either file may instead hold one such entry per view, keyed by the view id)
  object_templates/<name>/<name>_simplified_transformed.obj
      (the object's canonical frame is this mesh re-centred on its vertex mean)
The release ships videos and segmentations, not frames; decode the main view
(camera 1) as its README says (``ffmpeg ... %06d.jpg``) and place frames and
masks where ``image_pattern`` and ``mask_patterns`` say (defaults below;
both are format strings over date, segment, sequence, view and frame).
Intrinsics are scaled from 3840 px to the decoded frame width. The object name
is the last ``_`` token of the segment name ('bat' means 'baseball', README
FAQ). There is no official split: by default a sequence goes to ``test`` when
crc32 of "<date>/<segment>/<sequence>" is divisible by 5, else ``train``.
"""

from __future__ import annotations

import glob
import os
import pickle
import re
import zlib

import numpy as np

from scorehoi_jax.data import ground_truth as gt
from scorehoi_jax.data.tfds_common import DatasetError, make_builder_class, prepare, read_json, template_points

NAME = "imhd"
IMAGE_PATTERN = "images/{date}/{segment}/{sequence}/{view}/{frame:06d}.jpg"
MASK_PATTERNS = ("masks/{date}/{segment}/{sequence}/{view}/{frame:06d}_human.png",
                 "masks/{date}/{segment}/{sequence}/{view}/{frame:06d}_object.png")
CALIBRATION_WIDTH = 3840.0  # Intrinsics in intrin.json are for the raw 4K frames.
OBJECT_ALIASES = {"bat": "baseball"}
_GT_KEYS = ("smplPose", "smplHandPose", "smplShape", "smplTrans", "objectRot", "objectTrans")
_GT_NAME = re.compile(r"gt_(\d+)_(\d+)_(\d+)\.pkl$")


def _load_json(path: str) -> dict:
  return read_json(path, "calibration file")


def _per_view(data: dict, view: str, key: str, path: str):
  if key in data:
    return data[key]
  if view in data and isinstance(data[view], dict) and key in data[view]:
    return data[view][key]
  raise DatasetError(f"{path}: no '{key}' entry (top-level or for view '{view}').")


def load_camera(root: str, date: str, view: str):
  """(K at 4K [3, 3], R [3, 3], t [3]) of one capture date and view."""
  ipath = os.path.join(root, "calibrations", date, "intrin.json")
  epath = os.path.join(root, "calibrations", date, "extrin.json")
  color = _per_view(_load_json(ipath), view, "color", ipath)
  ext = _load_json(epath)
  try:
    k = np.array([[color["fx"], 0, color["cx"]], [0, color["fy"], color["cy"]], [0, 0, 1]], np.float64)
    r = np.asarray(_per_view(ext, view, "rotation", epath), np.float64).reshape(3, 3)
    t = np.asarray(_per_view(ext, view, "translation", epath), np.float64).reshape(3)
  except (KeyError, ValueError, TypeError) as e:
    raise DatasetError(f"{ipath} / {epath}: malformed camera parameters ({type(e).__name__}: {e}).") from None
  return k, r, t


def load_objects(root: str) -> dict[str, gt.ObjectInfo]:
  """Object templates (re-centred on their vertex mean), ids in sorted name order."""
  folder = os.path.join(root, "object_templates")
  if not os.path.isdir(folder):
    raise DatasetError(f"{folder}: object templates folder not found.")
  out = {}
  for oid, name in enumerate(sorted(os.listdir(folder))):
    path = os.path.join(folder, name, f"{name}_simplified_transformed.obj")
    if not os.path.exists(path):
      continue
    verts, faces = gt._read_mesh(path, folder)  # pylint: disable=protected-access
    verts = verts - verts.mean(0)
    out[name] = gt.ObjectInfo(name, oid, verts, faces, template_points(verts, faces))
  if not out:
    raise DatasetError(f"{folder}: no <name>/<name>_simplified_transformed.obj meshes found.")
  return out


def load_motion(path: str) -> dict:
  try:
    with open(path, "rb") as f:
      data = pickle.load(f)
  except Exception as e:  # Truncated or foreign pickles raise many types.
    raise DatasetError(f"{path}: cannot read ground-truth pickle ({type(e).__name__}: {e}).") from None
  if not isinstance(data, dict) or any(k not in data for k in _GT_KEYS):
    missing = [k for k in _GT_KEYS if not isinstance(data, dict) or k not in data]
    raise DatasetError(f"{path}: ground-truth pickle lacks {', '.join(missing)}.")
  n = len(data["smplPose"])
  for k in _GT_KEYS:
    if len(data[k]) != n:
      raise DatasetError(f"{path}: '{k}' has {len(data[k])} frames but smplPose has {n}.")
  return {k: np.asarray(data[k], np.float64) for k in _GT_KEYS}


def default_split(rel: str) -> str:
  return "test" if zlib.crc32(rel.encode()) % 5 == 0 else "train"


def motion_files(root: str) -> list[tuple[str, str, str, str]]:
  """[(path, date, segment, sequence)] of every ground-truth pickle."""
  base = os.path.join(root, "ground_truth")
  if not os.path.isdir(base):
    raise DatasetError(f"{base}: IMHD ground_truth folder not found.")
  out = []
  for path in sorted(glob.glob(os.path.join(base, "*", "*", "*", "gt_*.pkl"))):
    date, segment, sequence = os.path.relpath(path, base).split(os.sep)[:3]
    out.append((path, date, segment, sequence))
  if not out:
    raise DatasetError(f"{base}: no <date>/<segment>/<sequence>/gt_*.pkl files.")
  return out


def iter_frames(root: str, smplh: str, split: str, *, view: str = "1", stride: int = 1,
                image_pattern: str = IMAGE_PATTERN, mask_patterns=MASK_PATTERNS, split_fn=default_split,
                limit: int | None = None):
  """Records (or {"skip": reason}) of one split, frame by frame."""
  bodies = gt.BodyModels(smplh)
  objects = load_objects(root)
  count = 0
  for path, date, segment, sequence in motion_files(root):
    if split_fn(f"{date}/{segment}/{sequence}") != split:
      continue
    m = _GT_NAME.search(os.path.basename(path))
    if m is None:
      raise DatasetError(f"{path}: expected a name gt_<part>_<start>_<end>.pkl.")
    start = int(m.group(2))
    obj_name = OBJECT_ALIASES.get(segment.split("_")[-1], segment.split("_")[-1])
    if obj_name not in objects:
      raise DatasetError(f"{path}: object '{obj_name}' (from segment '{segment}') has no template in "
                         f"{os.path.join(root, 'object_templates')}.")
    motion = load_motion(path)
    k4, r_c, t_c = load_camera(root, date, view)
    for i in range(0, len(motion["smplPose"]), stride):
      if limit is not None and count >= limit:
        return
      fields = dict(date=date, segment=segment, sequence=sequence, view=view, frame=start + i)
      image_path = os.path.join(root, image_pattern.format(**fields))
      hm, om = (os.path.join(root, p.format(**fields)) for p in mask_patterns)

      def targets(i=i, motion=motion, r_c=r_c, t_c=t_c, obj=objects[obj_name]):
        model, _, _ = bodies.get("neutral")
        aa = np.concatenate([motion["smplPose"][i][:66], motion["smplHandPose"][i][:90]])
        rot = gt.rotmats_from_axis_angle(aa, model, hand_mean=False)
        return gt.make_targets(bodies, "neutral", rot, motion["smplShape"][i][:10], obj,
                               gt.axis_angle_matrix(motion["objectRot"][i]), motion["objectTrans"][i],
                               trans=motion["smplTrans"][i], cam_rot=r_c, cam_trans=t_c)

      if not os.path.exists(image_path):
        raise DatasetError(f"{image_path}: frame image not found (decode the videos as described in "
                           "scorehoi_jax/data/imhd.py, or pass image_pattern).")
      width = _image_width(image_path)
      k = k4 * (width / CALIBRATION_WIDTH)
      rec = gt.frame_record(f"{date}/{segment}/{sequence}/{view}/{start + i:06d}", image_path, hm, om,
                            (k[0, 0], k[1, 1]), (k[0, 2], k[1, 2]), targets)
      count += "skip" not in rec
      yield rec


def _image_width(path: str) -> int:
  from PIL import Image, UnidentifiedImageError
  try:
    with Image.open(path) as im:
      return im.size[0]
  except (UnidentifiedImageError, OSError) as e:
    raise DatasetError(f"{path}: cannot read image ({e}).") from None


class Imhd(make_builder_class(NAME, description="IMHD² frames (main view) with SMPL-H and object poses.")):
  """TFDS builder; reader arguments: root, smplh, view, stride, image_pattern,
  mask_patterns, split_fn, limit."""

  def _split_generators(self, dl_manager):
    kw = dict(self.reader_kwargs)
    if "root" not in kw or "smplh" not in kw:
      raise DatasetError("preparing 'imhd' needs root=<IMHD data folder> and smplh=<SMPL-H model>.")
    root, smplh = kw.pop("root"), kw.pop("smplh")
    split_fn = kw.get("split_fn", default_split)
    splits = sorted({split_fn(f"{d}/{s}/{q}") for _, d, s, q in motion_files(root)})
    return {split: self._generate_examples(split, iter_frames(root, smplh, split, **kw)) for split in splits}


def prepare_imhd(root: str, smplh: str, out_dir: str, **kwargs) -> dict:
  """Write the ``imhd`` dataset under out_dir; returns written/skipped counts."""
  return prepare(Imhd(data_dir=out_dir, root=root, smplh=smplh, **kwargs))
