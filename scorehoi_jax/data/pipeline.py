"""Input pipeline: frame record -> cropped, augmented 5-channel example (batched by data/loader.py).

A *record* is one decoded frame (what the TFDS builders store, decoded by
``tfds_common.decode_record``; the CLI builds one from a user's image):
  image uint8 [H, W, 3]; human_mask, object_mask [H, W] (nonzero = inside);
  focal [2], princpt [2] (original pixels, pixel centres at integers);
  optionally the targets: pose [52, 3, 3] (joint 0 = global orientation in
  camera axes), betas [10], cam_trans [3] (pelvis in camera coordinates),
  obj_rot [3, 3], obj_trans [3] (object origin in camera coordinates),
  object_template [64, 3], object_id [], human_contact [431],
  object_contact [64], object_floor_contact [64].

An *example* follows the shared batch spec (design notes of issue 7):
image float32 [S, S, 5] (RGB in [0, 1], human mask, object mask), pose,
betas, obj_rot, obj_trans (object origin minus the pelvis), cam_trans,
focal/princpt in crop pixels, object_template, object_id, the three contact
labels and valid.

Crop (as CONTHO, notes/contho-notes.md §1.4): the square around the union of
both masks, ×1.3. Training augmentation: scale 1 + 0.2·clip(N, −1, 1), an
in-plane rotation of 30°·clip(N, −2, 2) with probability 0.6, per-channel
colour gains U[0.8, 1.2]; no flip. The crop is one affine map
q = k·Rot(θ)·D·(p − c) + (S − 1)/2 where D = diag(f̄/fx, f̄/fy) makes the
pixels square (f̄ = √(fx·fy)), so the new camera is an exact pinhole with
focal k·f̄ and the image rotation by θ is the 3D rotation Rz(θ) about the
optical axis, applied to the global orientation, pelvis and object pose.
Every random draw comes from a generator seeded by (seed, epoch, index), so
an example is reproducible on its own.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import cv2
import numpy as np

from scorehoi_jax.errors import ScoreHOIError

NUM_JOINTS = 52
NUM_HUMAN_CONTACT = 431
NUM_TEMPLATE = 64
EXAMPLE_KEYS = ("image", "pose", "betas", "obj_rot", "obj_trans", "cam_trans", "focal", "princpt",
                "object_template", "object_id", "human_contact", "object_contact", "object_floor_contact", "valid")


class PipelineError(ScoreHOIError):
  """A frame or user input the pipeline cannot use; the message names it."""


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Crop and augmentation settings (CONTHO's values by default)."""
  size: int = 256
  expand: float = 1.3
  augment: bool = False
  scale_factor: float = 0.2  # scale = 1 + scale_factor * clip(N(0, 1), -1, 1)
  rot_factor: float = 30.0  # degrees; rot = rot_factor * clip(N(0, 1), -2, 2)
  rot_prob: float = 0.6
  color_factor: float = 0.2  # per-channel gain U[1 - c, 1 + c]
  flip: bool = False  # Not supported: mirroring needs a left/right vertex map of the body.

  def __post_init__(self):
    if self.flip:
      raise PipelineError("PipelineConfig.flip=True is not supported (CONTHO trains without flips; mirroring "
                          "the contact labels needs a left/right vertex correspondence of the body model).")
    if self.size < 8:
      raise PipelineError(f"PipelineConfig.size={self.size} is too small.")


class CropTransform:
  """The affine map from original pixels p to crop pixels q = A p + b (and its inverse)."""

  def __init__(self, a: np.ndarray, b: np.ndarray):
    self.a = np.asarray(a, np.float64)
    self.b = np.asarray(b, np.float64)

  def apply(self, points) -> np.ndarray:
    return np.asarray(points, np.float64) @ self.a.T + self.b

  def inverse(self, points) -> np.ndarray:
    return (np.asarray(points, np.float64) - self.b) @ np.linalg.inv(self.a).T


def _rot_z(theta: float) -> np.ndarray:
  c, s = np.cos(theta), np.sin(theta)
  return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def mask_box(human_mask: np.ndarray, object_mask: np.ndarray, name: str = "frame") -> np.ndarray:
  """[x0, y0, x1, y1] pixel-edge box of the union of the masks (pixel i spans i ± 0.5)."""
  union = (np.asarray(human_mask) > 0) | (np.asarray(object_mask) > 0)
  if not union.any():
    raise PipelineError(f"{name}: both masks are empty; nothing to crop.")
  rows, cols = np.nonzero(union.any(1))[0], np.nonzero(union.any(0))[0]
  return np.array([cols[0] - 0.5, rows[0] - 0.5, cols[-1] + 0.5, rows[-1] + 0.5])


def draw_augmentation(rng: np.random.Generator, config: PipelineConfig):
  """(scale, rotation in radians, colour gains [3]) for one example."""
  if not config.augment:
    return 1.0, 0.0, np.ones(3)
  scale = 1.0 + config.scale_factor * float(np.clip(rng.standard_normal(), -1.0, 1.0))
  rot = config.rot_factor * float(np.clip(rng.standard_normal(), -2.0, 2.0))
  if rng.random() >= config.rot_prob:
    rot = 0.0
  gains = rng.uniform(1.0 - config.color_factor, 1.0 + config.color_factor, 3)
  return scale, np.deg2rad(rot), gains


def crop_transform(box, focal, princpt, size: int, expand: float = 1.3, scale: float = 1.0,
                   rot: float = 0.0):
  """The crop affine and the crop's intrinsics (focal [2], princpt [2])."""
  fx, fy = float(focal[0]), float(focal[1])
  fbar = np.sqrt(fx * fy)
  d = np.diag([fbar / fx, fbar / fy])
  x0, y0, x1, y1 = box
  center = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
  side = max((x1 - x0) * d[0, 0], (y1 - y0) * d[1, 1]) * expand * scale
  k = size / side
  c, s = np.cos(rot), np.sin(rot)
  a = k * np.array([[c, -s], [s, c]]) @ d
  b = (size - 1) / 2.0 - a @ center
  pp = a @ np.asarray(princpt, np.float64) + b
  return CropTransform(a, b), np.array([k * fbar, k * fbar]), pp


def warp(image: np.ndarray, tf: CropTransform, size: int) -> np.ndarray:
  """Resample image [H, W(, C)] into the crop: bilinear, zeros outside, dtype kept (uint8 or float32).

  One ``cv2.warpAffine`` per group of at most 4 channels (OpenCV's
  vectorised bilinear paths cover 1-4 channels; 5 channels take a slow
  generic path). OpenCV, like ``CropTransform``, puts pixel centres at
  integer coordinates, so the forward map [A | b] is passed as it is.
  OpenCV quantises source coordinates to 1/32 pixel, far below what a
  256-pixel crop of a photo can resolve.
  """
  img = np.asarray(image)
  if img.dtype not in (np.uint8, np.float32):
    img = img.astype(np.float32)
  m = np.concatenate([tf.a, tf.b[:, None]], 1)

  def one(x):
    return cv2.warpAffine(x, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0).reshape(size, size, -1)

  if img.ndim == 2:
    return one(img)[..., 0]
  if img.shape[-1] <= 4:
    return one(img)
  return np.concatenate([one(np.ascontiguousarray(img[..., c:c + 4])) for c in range(0, img.shape[-1], 4)], -1)


def _target(record, key, shape, default):
  v = record.get(key)
  if v is None:
    return np.broadcast_to(np.asarray(default, np.float32), shape).copy()
  v = np.asarray(v, np.float32)
  if v.shape != shape:
    raise PipelineError(f"{record.get('frame_id', 'frame')}: {key} has shape {v.shape}, expected {shape}.")
  return v


def make_example(record: dict, config: PipelineConfig = PipelineConfig(), rng: np.random.Generator | None = None):
  """(example, CropTransform) for one decoded record; rng drives augmentation."""
  name = str(record.get("frame_id", "frame"))
  image = np.asarray(record["image"])
  hm, om = np.asarray(record["human_mask"]), np.asarray(record["object_mask"])
  if image.ndim != 3 or image.shape[-1] < 3:
    raise PipelineError(f"{name}: image has shape {image.shape}, expected (H, W, 3).")
  for key, m in (("human_mask", hm), ("object_mask", om)):
    if m.shape[:2] != image.shape[:2]:
      raise PipelineError(f"{name}: {key} is {m.shape[1]}x{m.shape[0]} but the image is "
                          f"{image.shape[1]}x{image.shape[0]}.")
    if not (m > 0).any():
      raise PipelineError(f"{name}: {key} is empty.")
  rng = rng if rng is not None else np.random.default_rng(0)
  scale, rot, gains = draw_augmentation(rng, config)
  box = mask_box(hm, om, name)
  tf, focal, princpt = crop_transform(box, record["focal"], record["princpt"], config.size, config.expand,
                                      scale, rot)
  s = config.size
  # Two warps: RGB in the image's dtype, both masks as 0/255 uint8 (thresholded at one half after).
  img5 = np.empty((s, s, 5), np.float32)
  rgb = warp(image[..., :3], tf, s)
  gains = (gains / (255.0 if rgb.dtype == np.uint8 else 1.0)).astype(np.float32)
  np.clip(np.multiply(rgb, gains, dtype=np.float32), 0.0, 1.0, out=img5[..., :3])
  masks = warp(np.stack([hm > 0, om > 0], -1).view(np.uint8) * np.uint8(255), tf, s)
  img5[..., 3:] = masks >= 128

  rz = _rot_z(rot)
  pose = _target(record, "pose", (NUM_JOINTS, 3, 3), np.eye(3))
  pose[0] = rz @ pose[0]
  cam_trans = rz @ _target(record, "cam_trans", (3,), 0.0)
  obj_rot = rz @ _target(record, "obj_rot", (3, 3), np.eye(3))
  obj_abs = rz @ _target(record, "obj_trans", (3,), 0.0)
  example = {
      "image": img5,
      "pose": pose.astype(np.float32),
      "betas": _target(record, "betas", (10,), 0.0),
      "obj_rot": obj_rot.astype(np.float32),
      "obj_trans": (obj_abs - cam_trans).astype(np.float32),
      "cam_trans": cam_trans.astype(np.float32),
      "focal": focal.astype(np.float32),
      "princpt": princpt.astype(np.float32),
      "object_template": _target(record, "object_template", (NUM_TEMPLATE, 3), 0.0),
      "object_id": np.asarray(record.get("object_id", -1), np.int32),
      "human_contact": _target(record, "human_contact", (NUM_HUMAN_CONTACT,), 0.0),
      "object_contact": _target(record, "object_contact", (NUM_TEMPLATE,), 0.0),
      "object_floor_contact": _target(record, "object_floor_contact", (NUM_TEMPLATE,), 0.0),
      "valid": np.asarray(1.0, np.float32),
  }
  return example, tf


def example_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
  """The generator of one example's augmentation: independent of order and batching."""
  return np.random.default_rng([int(seed), int(epoch), int(index)])


def padding_like(example: dict) -> dict:
  """An all-zero example with valid = 0 (batch padding)."""
  return {k: np.zeros_like(v) for k, v in example.items()}


def stack(examples: Sequence[dict], batch_size: int | None = None) -> dict:
  """Stack examples into a batch, padding to batch_size with valid = 0 examples."""
  if not examples:
    raise PipelineError("cannot stack an empty list of examples.")
  examples = list(examples)
  if batch_size is not None:
    examples += [padding_like(examples[0])] * (batch_size - len(examples))
  return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


# ------------------------------------------------------------------------------------------------
# A user's own image (CLI).
# ------------------------------------------------------------------------------------------------

def _read_image(path: str, what: str, grey: bool = False) -> np.ndarray:
  from PIL import Image, UnidentifiedImageError
  try:
    with Image.open(path) as im:
      return np.asarray(im.convert("L" if grey else "RGB"))
  except FileNotFoundError:
    raise PipelineError(f"{path}: {what} file not found.") from None
  except (UnidentifiedImageError, OSError) as e:
    raise PipelineError(f"{path}: cannot read the {what} as an image ({e}).") from None


def load_user_record(image_path: str, human_mask_path: str, object_mask_path: str, focal=None, princpt=None,
                     object_template=None, object_id: int = -1) -> dict:
  """A record from image + mask files, for inference on a user's image.

  Masks: any greyscale image, > 127 is inside. Intrinsics default to a
  principal point at the image centre and a focal length of max(H, W)
  (about 53° field of view) when the camera is unknown.
  """
  image = _read_image(image_path, "image")
  h, w = image.shape[:2]
  masks = {}
  for key, path in (("human_mask", human_mask_path), ("object_mask", object_mask_path)):
    m = _read_image(path, key.replace("_", " "), grey=True)
    if m.shape != (h, w):
      raise PipelineError(f"{path}: {key.replace('_', ' ')} is {m.shape[1]}x{m.shape[0]} but the image "
                          f"{image_path} is {w}x{h}.")
    if not (m > 127).any():
      raise PipelineError(f"{path}: {key.replace('_', ' ')} is empty (no pixel above 127).")
    masks[key] = (m > 127).astype(np.uint8)
  f = float(max(h, w))
  record = {"frame_id": image_path, "image": image, **masks,
            "focal": np.asarray(focal if focal is not None else (f, f), np.float32),
            "princpt": np.asarray(princpt if princpt is not None else ((w - 1) / 2, (h - 1) / 2), np.float32),
            "object_id": object_id}
  if object_template is not None:
    record["object_template"] = np.asarray(object_template, np.float32)
  return record


def prepare_user_input(image_path: str, human_mask_path: str, object_mask_path: str,
                       config: PipelineConfig = PipelineConfig(), **kwargs):
  """(batch of one example, CropTransform) for a user's image; same code path as training."""
  if config.augment:
    config = dataclasses.replace(config, augment=False)
  example, tf = make_example(load_user_record(image_path, human_mask_path, object_mask_path, **kwargs), config)
  return stack([example]), tf
