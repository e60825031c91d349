"""InterCap (CONTHO format) reader and TFDS builder ``intercap``.

Layout (notes/contho-notes.md §1.1, §1.3): frames under
``<sequences>/<subject>/<object>/Seg_<k>/Frames_Cam<c>/color/<frame>.jpg``
(whatever ``file_name`` in CONTHO's ``intercap_{train,test}.json`` says),
masks at ``.../mask/<frame>_human.png`` and ``.../mask/<frame>_object.png``
(not part of the official zips: the user produces or obtains them), objects in
``object_models/intercap/_info.json``. ``root`` is resolved as for BEHAVE
(``data/InterCap/sequences`` in CONTHO's tree, or ``sequences/``).
"""

from __future__ import annotations

import os

from scorehoi_jax.data import behave
from scorehoi_jax.data.tfds_common import DatasetError, make_builder_class, prepare

NAME = "intercap"


def mask_paths(image_path: str) -> tuple[str, str]:
  """.../color/00012.jpg -> .../mask/00012_human.png, .../mask/00012_object.png."""
  folder, fname = os.path.split(image_path)
  if os.path.basename(folder) != "color":
    raise DatasetError(f"{image_path}: InterCap frames are expected in a 'color' folder.")
  stem = os.path.splitext(fname)[0]
  mask_dir = os.path.join(os.path.dirname(folder), "mask")
  return os.path.join(mask_dir, f"{stem}_human.png"), os.path.join(mask_dir, f"{stem}_object.png")


class Intercap(make_builder_class(NAME, description="InterCap frames with CONTHO annotations.")):
  """TFDS builder; reader arguments as ``behave.Behave``."""

  def _split_generators(self, dl_manager):
    kw = dict(self.reader_kwargs)
    if "root" not in kw or "smplh" not in kw:
      raise DatasetError("preparing 'intercap' needs root=<InterCap/CONTHO root> and smplh=<SMPL-H model>.")
    layout = behave.resolve_layout(kw["root"], "InterCap", NAME, sequences=kw.get("sequences"),
                                   annotations=kw.get("annotations"), objects=kw.get("objects"))
    return {split: self._generate_examples(split, behave.split_frames(
        layout, split, kw["smplh"], mask_paths, default_intrinsics=kw.get("default_intrinsics"),
        limit=kw.get("limit"))) for split in layout["annotations"]}


def prepare_intercap(root: str, smplh: str, out_dir: str, **kwargs) -> dict:
  """Write the ``intercap`` dataset under out_dir; returns written/skipped counts."""
  return prepare(Intercap(data_dir=out_dir, root=root, smplh=smplh, **kwargs))
