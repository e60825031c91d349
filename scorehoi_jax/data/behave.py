"""BEHAVE (CONTHO format) reader and TFDS builder ``behave``.

Layout (notes/contho-notes.md §1.1, §1.3): the release's frames under
``<sequences>/<Date0X_SubYY_object[_action]>/t*.000/k[0-3].color.jpg`` with
masks beside them (``.person_mask.jpg``, ``.obj_rend_mask.jpg``), CONTHO's
``behave_{train,test}.json`` annotations and ``object_models/behave/_info.json``.
``root`` may be CONTHO's repository root (``data/BEHAVE/sequences``,
``data/base_data/...``) or a folder holding ``sequences/``, ``annotations/``
and ``object_models/`` directly; explicit paths override the search.

    from scorehoi_jax.data import behave
    behave.prepare_behave(root, smplh, out_dir)       # writes out_dir/behave/1.0.0
    src = tfds.data_source("behave", data_dir=out_dir)["test"]
"""

from __future__ import annotations

import os

from scorehoi_jax.data import contho_format, ground_truth as gt
from scorehoi_jax.data.tfds_common import DatasetError, make_builder_class, prepare

NAME = "behave"
SPLITS = ("train", "test")


def find_first(candidates, what: str) -> str:
  """The first existing path among candidates, else an error listing them all."""
  for c in candidates:
    if c and os.path.exists(c):
      return c
  raise DatasetError(f"{what} not found; looked for: " + ", ".join(c for c in candidates if c))


def mask_paths(image_path: str) -> tuple[str, str]:
  """BEHAVE: k1.color.jpg -> k1.person_mask.jpg, k1.obj_rend_mask.jpg."""
  if not image_path.endswith(".color.jpg"):
    raise DatasetError(f"{image_path}: BEHAVE frames are named '<camera>.color.jpg'.")
  base = image_path[:-len(".color.jpg")]
  return base + ".person_mask.jpg", base + ".obj_rend_mask.jpg"


def resolve_layout(root: str, dataset_dir: str, set_name: str, *, sequences=None, annotations=None,
                   objects=None) -> dict:
  """Paths of the sequences folder, the split annotation files and the object info."""
  if not os.path.isdir(root):
    raise DatasetError(f"{root}: dataset root not found.")
  seq = sequences or find_first([os.path.join(root, "data", dataset_dir, "sequences"),
                                 os.path.join(root, "sequences")], f"{set_name} sequences folder")
  ann_dirs = [annotations] if annotations else [os.path.join(root, "data", "base_data", "annotations"),
                                                os.path.join(root, "annotations"), root]
  files = {}
  for split in SPLITS:
    for d in ann_dirs:
      p = os.path.join(d, f"{set_name}_{split}.json")
      if os.path.exists(p):
        files[split] = p
        break
  if not files:
    raise DatasetError(f"no {set_name}_train.json or {set_name}_test.json in: " + ", ".join(ann_dirs))
  info = objects or find_first([os.path.join(root, "data", "base_data", "object_models", set_name, "_info.json"),
                                os.path.join(root, "object_models", set_name, "_info.json"),
                                os.path.join(root, "object_models", "_info.json")], f"{set_name} object info")
  return {"sequences": seq, "annotations": files, "objects": info}


def split_frames(layout: dict, split: str, smplh: str, mask_fn, *, default_intrinsics=None, limit=None,
                 hand_mean: bool = True):
  bodies = gt.BodyModels(smplh)
  objects = gt.load_object_infos(layout["objects"])
  return contho_format.iter_frames(layout["annotations"][split], layout["sequences"], mask_fn, bodies, objects,
                                   default_intrinsics=default_intrinsics, hand_mean=hand_mean, limit=limit)


class Behave(make_builder_class(NAME, description="BEHAVE frames with CONTHO annotations.")):
  """TFDS builder; reader arguments: root, smplh, sequences, annotations, objects,
  default_intrinsics, limit (frames per split, for tests)."""

  def _split_generators(self, dl_manager):
    kw = dict(self.reader_kwargs)
    if "root" not in kw or "smplh" not in kw:
      raise DatasetError("preparing 'behave' needs root=<BEHAVE/CONTHO root> and smplh=<SMPL-H model>.")
    layout = resolve_layout(kw["root"], "BEHAVE", NAME, sequences=kw.get("sequences"),
                            annotations=kw.get("annotations"), objects=kw.get("objects"))
    return {split: self._generate_examples(split, split_frames(
        layout, split, kw["smplh"], mask_paths, default_intrinsics=kw.get("default_intrinsics"),
        limit=kw.get("limit"))) for split in layout["annotations"]}


def prepare_behave(root: str, smplh: str, out_dir: str, **kwargs) -> dict:
  """Write the ``behave`` dataset under out_dir; returns written/skipped counts."""
  return prepare(Behave(data_dir=out_dir, root=root, smplh=smplh, **kwargs))
