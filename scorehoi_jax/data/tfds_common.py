"""What every HOI dataset stores, and how: the record spec, codecs, labels, TFDS base builder.

Datasets are written by TFDS builders as ArrayRecord files and read back with
``tfds.data_source`` (random access, no TensorFlow). TFDS's Image feature
needs TensorFlow, so images and masks are stored as encoded bytes (JPEG for
photos, PNG for masks) in plain ``Tensor(dtype=object)`` features and decoded
with PIL by ``decode_record``.

A stored record holds one frame in its original camera (the input pipeline
crops and augments later):
  frame_id text; image / human_mask / object_mask bytes;
  pose f32 [52, 3, 3] (parent-relative rotations, identity = rest pose with
  flat hands; joint 0 = global orientation in camera axes, OpenCV x right,
  y down, z forward); betas f32 [10]; cam_trans f32 [3] (pelvis joint in
  camera coordinates); obj_rot f32 [3, 3], obj_trans f32 [3] (object
  canonical frame -> camera: x_cam = obj_rot @ x + obj_trans); focal,
  princpt f32 [2]; object_template f32 [64, 3]; object_id int32;
  object_name text; human_contact f32 [431] (on the body model's guidance
  vertices); object_contact f32 [64]; object_floor_contact f32 [64].

A builder adds its own fields through ``EXTRA_FEATURES`` (e.g. the synthetic
generator's interaction type and seed). To add a dataset, subclass
``make_builder_class(name)`` and implement ``_split_generators`` returning
``{split: self._generate_examples(split, frames)}``, where ``frames`` yields
records of arrays (see ``encode_record``) or ``{"skip": reason}`` for a
frame that had to be skipped (counted in the dataset's metadata).
"""

from __future__ import annotations

import abc
import io
import os
from collections import Counter
from typing import Iterable, Iterator

import numpy as np

from scorehoi_jax.errors import ScoreHOIError

CONTACT_THRESHOLD = 0.05  # Metres: the field's contact definition (notes/contho-notes.md §4).
NUM_TEMPLATE = 64
NUM_HUMAN_CONTACT = 431

# name -> (shape, dtype); dtype object = bytes/text.
RECORD_SPEC = {
    "frame_id": ((), "text"),
    "image": ((), "bytes"),
    "human_mask": ((), "bytes"),
    "object_mask": ((), "bytes"),
    "pose": ((52, 3, 3), np.float32),
    "betas": ((10,), np.float32),
    "cam_trans": ((3,), np.float32),
    "obj_rot": ((3, 3), np.float32),
    "obj_trans": ((3,), np.float32),
    "focal": ((2,), np.float32),
    "princpt": ((2,), np.float32),
    "object_template": ((NUM_TEMPLATE, 3), np.float32),
    "object_id": ((), np.int32),
    "object_name": ((), "text"),
    "human_contact": ((NUM_HUMAN_CONTACT,), np.float32),
    "object_contact": ((NUM_TEMPLATE,), np.float32),
    "object_floor_contact": ((NUM_TEMPLATE,), np.float32),
}


class DatasetError(ScoreHOIError):
  """A dataset file is missing or malformed; the message names the path."""


def features_dict(extra: dict | None = None):
  """The TFDS FeaturesDict of a record (+ builder-specific ``extra`` fields)."""
  import tensorflow_datasets as tfds

  feats = {}
  for name, (shape, dtype) in {**RECORD_SPEC, **(extra or {})}.items():
    if dtype == "text":
      feats[name] = tfds.features.Text()
    elif dtype == "bytes":
      feats[name] = tfds.features.Tensor(shape=(), dtype=np.object_)
    else:
      feats[name] = tfds.features.Tensor(shape=shape, dtype=dtype)
  return tfds.features.FeaturesDict(feats)


# ------------------------------------------------------------------------------------------------
# Codecs.
# ------------------------------------------------------------------------------------------------

def read_json(path: str, what: str):
  """A JSON file's content; a missing or malformed file is a DatasetError naming it."""
  import json
  if not os.path.exists(path):
    raise DatasetError(f"{path}: {what} not found.")
  try:
    with open(path) as f:
      return json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise DatasetError(f"{path}: malformed JSON ({e}).") from None


def encode_image(image: np.ndarray, fmt: str = "JPEG", quality: int = 92) -> bytes:
  from PIL import Image
  buf = io.BytesIO()
  kw = {"quality": quality} if fmt.upper() == "JPEG" else {"compress_level": 1}
  Image.fromarray(np.asarray(image, np.uint8)).save(buf, format=fmt, **kw)
  return buf.getvalue()


def encode_mask(mask: np.ndarray) -> bytes:
  """A {0, 255} PNG (lossless; compresses to a few kB)."""
  return encode_image((np.asarray(mask) > 0).astype(np.uint8) * 255, "PNG")


def decode_image(data: bytes, grey: bool = False) -> np.ndarray:
  from PIL import Image
  with Image.open(io.BytesIO(data)) as im:
    return np.asarray(im.convert("L" if grey else "RGB"))


def encode_record(frame: dict, image_format: str = "JPEG", extra: dict | None = None) -> dict:
  """Arrays -> storable dict. Image/mask values that are already bytes are kept as they are."""
  out = {}
  for name, (shape, dtype) in {**RECORD_SPEC, **(extra or {})}.items():
    if name not in frame:
      raise DatasetError(f"{frame.get('frame_id', 'frame')}: record lacks '{name}'.")
    v = frame[name]
    if dtype == "text":
      out[name] = str(v)
    elif dtype == "bytes":
      if isinstance(v, (bytes, bytearray)):
        out[name] = bytes(v)
      elif name == "image":
        out[name] = encode_image(v, image_format)
      else:
        out[name] = encode_mask(v)
    else:
      a = np.asarray(v, dtype)
      if a.shape != tuple(shape):
        raise DatasetError(f"{frame.get('frame_id', 'frame')}: '{name}' has shape {a.shape}, expected {shape}.")
      out[name] = a
  return out


def decode_record(stored: dict) -> dict:
  """A stored record (as ``tfds.data_source`` returns it) -> arrays for the pipeline."""
  out = {}
  for k, v in stored.items():
    if k == "image":
      out[k] = decode_image(v)
    elif k in ("human_mask", "object_mask"):
      out[k] = (decode_image(v, grey=True) > 127).astype(np.uint8)
    elif isinstance(v, bytes):
      out[k] = v.decode("utf-8")
    else:
      out[k] = v
  return out


# ------------------------------------------------------------------------------------------------
# Ground-truth labels, as the field computes them.
# ------------------------------------------------------------------------------------------------

def contact_labels(human_verts, human_faces, obj_verts, obj_faces, template_cam,
                   threshold: float = CONTACT_THRESHOLD):
  """(human contact [V] bool, object contact [64] bool) at ``threshold`` metres.

  A body vertex is in contact when it is within ``threshold`` of the object
  surface or inside the object; a template point when it is within
  ``threshold`` of the body surface. Exact point-to-mesh distances.
  """
  from scorehoi_jax.objects.sdf_build import signed_distance
  d_h = signed_distance(np.asarray(human_verts), np.asarray(obj_verts), np.asarray(obj_faces))
  d_o = np.abs(signed_distance(np.asarray(template_cam), np.asarray(human_verts), np.asarray(human_faces)))
  return d_h < threshold, d_o < threshold


def template_points(vertices, faces, num: int = NUM_TEMPLATE, seed: int = 0) -> np.ndarray:
  """64 farthest-point samples of a mesh surface (when a dataset ships no keypoints)."""
  from scorehoi_jax.geometry.sampling import farthest_point_sampling, sample_surface
  pts = sample_surface(np.asarray(vertices, np.float64), np.asarray(faces), 4096, seed).points
  return pts[farthest_point_sampling(pts, num)].astype(np.float32)


# ------------------------------------------------------------------------------------------------
# Builders.
# ------------------------------------------------------------------------------------------------

def _builder_base():
  import tensorflow_datasets as tfds
  return tfds.core.GeneratorBasedBuilder


class SkipCounter(Counter):
  """Frames skipped while building, by reason (written to the dataset's metadata)."""


def make_builder_class(name: str, extra_features: dict | None = None, description: str = ""):
  """Decorator factory: turns a reader class into a TFDS builder named ``name``.

  Kept as a function so that tensorflow_datasets is imported only when a
  builder is used (import cost ~1 s).
  """
  import tensorflow_datasets as tfds

  class _Base(_builder_base(), skip_registration=True):  # Only the concrete builders get names.
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    EXTRA_FEATURES = extra_features or {}

    def __init__(self, *, data_dir: str | None = None, image_format: str = "JPEG", **reader_kwargs):
      self.reader_kwargs = reader_kwargs
      self.image_format = image_format
      self.skipped = SkipCounter()
      self.written = Counter()
      super().__init__(data_dir=data_dir, file_format="array_record")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, description=description,
                                   features=features_dict(self.EXTRA_FEATURES),
                                   metadata=tfds.core.MetadataDict())

    def _generate_examples(self, split: str, frames: Iterable[dict]) -> Iterator[tuple[str, dict]]:
      for frame in frames:
        if "skip" in frame:  # Readers report skipped frames in-band so they are counted here.
          self.skipped[f"{split}/{frame['skip']}"] += 1
          continue
        self.written[split] += 1
        yield frame["frame_id"], encode_record(frame, self.image_format, self.EXTRA_FEATURES)
      # The metadata is written after all splits are generated, so the counts are complete.
      self.info.metadata["skipped"] = dict(self.skipped)
      self.info.metadata["written"] = dict(self.written)

    @abc.abstractmethod
    def _split_generators(self, dl_manager):
      ...

  _Base.__name__ = "".join(p.capitalize() for p in name.split("_")) + "Base"
  return _Base


def prepare(builder, **prepare_kwargs) -> dict:
  """Run a builder; returns {'written': {...}, 'skipped': {...}} per split.

  ``prepare_kwargs`` go to ``download_and_prepare`` (e.g. a DownloadConfig
  with a Beam runner).
  """
  from scorehoi_jax.locks import folder_lock
  root = os.path.dirname(os.path.dirname(builder.data_dir))  # <data dir>/<name>/<version>.
  with folder_lock(root, f"scorehoi prepare {builder.name}"):  # One writer per data dir.
    builder.download_and_prepare(**prepare_kwargs)
  if getattr(builder, "written", None):
    return {"written": dict(builder.written), "skipped": dict(builder.skipped)}
  # Already prepared earlier (TFDS skips generation): report the stored counts.
  meta = builder.info.metadata or {}
  return {"written": dict(meta.get("written", {})), "skipped": dict(meta.get("skipped", {}))}


def data_source(data_dir: str, name: str, split: str):
  """Random-access source of stored records of a prepared dataset (no TensorFlow).

  Reads with ``tfds.builder_from_directory``, so no builder class needs to be
  importable; equivalent to ``tfds.data_source(name, data_dir=...)[split]``.
  """
  import tensorflow_datasets as tfds
  root = os.path.join(data_dir, name)
  if not os.path.isdir(root):
    raise DatasetError(f"{root}: no prepared dataset '{name}' here.")
  versions = sorted(v for v in os.listdir(root) if os.path.exists(os.path.join(root, v, "dataset_info.json")))
  if not versions:
    raise DatasetError(f"{root}: no complete version of '{name}' (was preparation interrupted?).")
  builder = tfds.builder_from_directory(os.path.join(root, versions[-1]))
  if split not in builder.info.splits:
    raise DatasetError(f"{root}: split '{split}' not found; available: {sorted(builder.info.splits)}.")
  return builder.as_data_source(split=split)
