"""CONTHO-style COCO annotation files (BEHAVE, InterCap): parsing and frame iteration.

Format (notes/contho-notes.md §1.2, official-code-notes.md §8.4):
``<set>_<split>.json`` = {"images": [...], "annotations": [...]}, where
- an image has ``id``, ``file_name`` (relative to the dataset's
  ``sequences`` folder), ``height``, ``width`` and ``cam_param`` (optional
  ``R`` 3×3, ``t`` 3 world->camera; intrinsics as ``focal``/``princpt`` or
  ``K``);
- an annotation has ``image_id``, ``smpl_param`` {``pose`` 156 axis-angle,
  ``shape`` ≥10, ``trans`` 3, ``gender``}, ``obj_param`` {``pose`` 3,
  ``trans`` 3, ``name``}, optionally ``h3d_keypoints`` (73×3, camera frame;
  joint 0 = pelvis), ``bbox``, ``h_contacts``, ``o_contacts``.
We recompute the contact labels from geometry (tfds_common.contact_labels)
rather than reading ``h_contacts``: its 431-vertex form is tied to SMPL's
GraphCMR downsampling, while ours lives on the body model's guidance vertices.
"""

from __future__ import annotations

import os
from typing import Callable, Iterator

import numpy as np

from scorehoi_jax.data import ground_truth as gt
from scorehoi_jax.data.tfds_common import DatasetError, read_json

_REQUIRED = (("smpl_param", "pose"), ("smpl_param", "shape"), ("obj_param", "pose"), ("obj_param", "trans"),
             ("obj_param", "name"))


def read_annotations(path: str) -> list[tuple[dict, dict]]:
  """[(image entry, annotation entry)] of a COCO-style file, validated."""
  db = read_json(path, "annotation file")
  if not isinstance(db, dict) or "images" not in db or "annotations" not in db:
    raise DatasetError(f"{path}: expected a COCO-style object with 'images' and 'annotations'.")
  images = {}
  for img in db["images"]:
    for key in ("id", "file_name"):
      if key not in img:
        raise DatasetError(f"{path}: an image entry lacks '{key}': {str(img)[:120]}")
    images[img["id"]] = img
  out = []
  for ann in db["annotations"]:
    aid = ann.get("id", "?")
    if ann.get("image_id") not in images:
      raise DatasetError(f"{path}: annotation {aid} refers to unknown image_id {ann.get('image_id')!r}.")
    for a, b in _REQUIRED:
      if not isinstance(ann.get(a), dict) or b not in ann[a]:
        raise DatasetError(f"{path}: annotation {aid} lacks '{a}.{b}'.")
    if np.asarray(ann["smpl_param"]["pose"]).size != 156:
      raise DatasetError(f"{path}: annotation {aid} smpl_param.pose has "
                         f"{np.asarray(ann['smpl_param']['pose']).size} values, expected 156.")
    out.append((images[ann["image_id"]], ann))
  return out


def intrinsics(img: dict, where: str, default=None):
  """(focal [2], princpt [2]) from ``cam_param`` (focal/princpt or K), else ``default``."""
  cam = img.get("cam_param") or {}
  if "focal" in cam and "princpt" in cam:
    return np.asarray(cam["focal"], np.float64), np.asarray(cam["princpt"], np.float64)
  if "K" in cam:
    k = np.asarray(cam["K"], np.float64).reshape(3, 3)
    return k[[0, 1], [0, 1]], k[[0, 1], [2, 2]]
  if default is not None:
    d = np.asarray(default, np.float64)
    return d[:2], d[2:]
  raise DatasetError(f"{where}: image {img['id']} ({img['file_name']}) has no intrinsics in cam_param "
                     "(focal/princpt or K); pass default_intrinsics=(fx, fy, cx, cy).")


def iter_frames(ann_path: str, sequences_dir: str, mask_paths: Callable[[str], tuple[str, str]],
                bodies: gt.BodyModels, objects: dict, *, default_intrinsics=None, hand_mean: bool = True,
                limit: int | None = None) -> Iterator[dict]:
  """Records (or {"skip": reason}) of every annotated frame of one split file."""
  pairs = read_annotations(ann_path)
  if limit is not None:
    pairs = pairs[:limit]
  for img, ann in pairs:
    image_path = os.path.join(sequences_dir, img["file_name"])
    hm_path, om_path = mask_paths(image_path)
    name = str(ann["obj_param"]["name"])
    if name not in objects:
      raise DatasetError(f"{ann_path}: annotation {ann.get('id', '?')} uses object '{name}', which the object "
                         f"info does not list (known: {', '.join(sorted(objects))}).")
    focal, princpt = intrinsics(img, ann_path, default_intrinsics)
    cam = img.get("cam_param") or {}
    smpl, objp = ann["smpl_param"], ann["obj_param"]
    h3d = ann.get("h3d_keypoints")

    def targets(smpl=smpl, objp=objp, cam=cam, h3d=h3d, name=name):
      model, _, _ = bodies.get(smpl.get("gender", "neutral"))
      rot = gt.rotmats_from_axis_angle(smpl["pose"], model, hand_mean)
      obj_r = gt.axis_angle_matrix(objp["pose"])
      pelvis = None if h3d is None else np.asarray(h3d, np.float64).reshape(-1, 3)[0]
      return gt.make_targets(bodies, smpl.get("gender", "neutral"), rot, smpl["shape"], objects[name], obj_r,
                             objp["trans"], trans=smpl.get("trans"), pelvis_cam=pelvis, cam_rot=cam.get("R"),
                             cam_trans=cam.get("t"))

    frame_id = f"{img['file_name']}#{ann.get('id', img['id'])}"
    yield gt.frame_record(frame_id, image_path, hm_path, om_path, focal, princpt, targets)
