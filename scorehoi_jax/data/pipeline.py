"""Input pipeline: frame record -> cropped, augmented 5-channel example (batched by data/loader.py).

A *record* is one decoded frame (what the TFDS builders store, decoded by
``tfds_common.decode_record``; the CLI builds one from a user's image):
  image uint8 [H, W, 3]; human_mask, object_mask [H, W] (nonzero = inside);
  focal [2], princpt [2] (original pixels, pixel centres at integers);
  optionally the targets: pose [52, 3, 3] (joint 0 = global orientation in
  camera axes), betas [10], cam_trans [3] (pelvis in camera coordinates),
  obj_rot [3, 3], obj_trans [3] (object origin in camera coordinates),
  object_template [64, 3], object_id [], human_contact [431],
  object_contact [64], object_floor_contact [64], ground_plane [4] (the floor in
  camera coordinates: n·X + c = 0 with n pointing up; when known).

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

Crop-aware camera (design.md §10, a perspective crop): the subject may sit
anywhere in a photo, far from the optical axis. The networks never see that.
Every crop is the image of a *virtual camera* that shares the camera centre
but looks along the ray through the box centre (turned by the in-plane
augmentation; panned about the camera's y axis, then tilted), with a square-pixel focal f_v and its principal point at the
crop centre c = ((S−1)/2, (S−1)/2). With R_v that pan and tilt of the optical
axis onto the ray and Rz(θ) the augmentation, m = R_vᵀ Rz(θ) takes camera
coordinates into the virtual camera, and the crop is the homography

  x_crop ~ K_v m K⁻¹ x_image,  K_v = [[f_v, 0, c], [0, f_v, c], [0, 0, 1]],

exact for every depth because it is a pure rotation of the camera. Targets are
rotated into the virtual camera (X_v = m X), ``princpt`` is c, and
``camera_rot`` = mᵀ takes results back (X_image = camera_rot · X_v). A
subject anywhere in a photo therefore gives the networks the same input as
the same subject on the optical axis, and its result is turned by the exact
rotation of its viewing ray. With the box centred on the principal point and
no augmentation, m = I and the crop is the plain scale-and-shift of before.
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
EXAMPLE_KEYS = ("image", "pose", "betas", "obj_rot", "obj_trans", "cam_trans", "focal", "princpt", "camera_rot",
                "ground_plane", "object_template", "object_id", "human_contact", "object_contact", "object_floor_contact", "valid")


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
  """The homography from original pixels p to crop pixels q ~ H [p, 1] (and its inverse)."""

  def __init__(self, h: np.ndarray):
    self.h = np.asarray(h, np.float64)

  @staticmethod
  def _map(h, points) -> np.ndarray:
    p = np.asarray(points, np.float64)
    q = p @ h[:, :2].T + h[:, 2]
    return q[..., :2] / q[..., 2:]

  def apply(self, points) -> np.ndarray:
    return self._map(self.h, points)

  def inverse(self, points) -> np.ndarray:
    return self._map(np.linalg.inv(self.h), points)


def _rot_z(theta: float) -> np.ndarray:
  c, s = np.cos(theta), np.sin(theta)
  return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def mask_outline(human_mask: np.ndarray, object_mask: np.ndarray, name: str = "frame") -> np.ndarray:
  """Pixel-edge corners [N, 2] of the convex hull of the union of the masks: every extreme point of
  the masks under any homography is among them, so the crop can be fitted in the virtual camera."""
  union = ((np.asarray(human_mask) > 0) | (np.asarray(object_mask) > 0)).astype(np.uint8)
  if not union.any():
    raise PipelineError(f"{name}: both masks are empty; nothing to crop.")
  hull = cv2.convexHull(cv2.findNonZero(union)).reshape(-1, 2).astype(np.float64)
  corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
  return (hull[:, None] + corners[None]).reshape(-1, 2)


def view_rotation(r) -> np.ndarray:
  """R_v [3, 3] with R_v ẑ = r/|r|: a pan about the camera's y axis, then a tilt about the panned x axis.

  R_v = Ry(atan2(r_x, r_z)) · Rx(asin(−r̂_y)). Pan-then-tilt keeps the virtual
  camera's x axis level in the camera's x–z plane, so a person upright in the
  photo stays upright in an off-centre crop (the shortest rotation onto r
  would roll the crop by up to a few degrees towards the image corners), and a
  camera turned by a pan and a tilt turns every crop by exactly that rotation.
  """
  r = np.asarray(r, np.float64) / np.linalg.norm(r)
  yaw, pitch = np.arctan2(r[0], r[2]), np.arcsin(np.clip(-r[1], -1.0, 1.0))
  cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
  ry = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
  rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
  return ry @ rx


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


def crop_transform(outline, focal, princpt, size: int, expand: float = 1.3, scale: float = 1.0,
                   rot: float = 0.0, iterations: int = 3):
  """(CropTransform, virtual focal [2], m [3, 3]) of the perspective crop (module docstring).

  outline: image points [N, 2] the crop must frame (``mask_outline``), or a
  box [x0, y0, x1, y1]. The virtual camera looks through the centre of their
  box *as that camera sees them* (a few fixed-point steps from the image box's
  centre), and the crop's side covers ``expand·scale`` times that box's longer
  side; both are therefore the same for the same subject anywhere in the frame.
  m turns camera coordinates into the virtual camera's.
  """
  pts = np.asarray(outline, np.float64)
  if pts.shape == (4,):
    pts = pts[[0, 1, 2, 1, 2, 3, 0, 3]].reshape(4, 2)
  k = np.array([[focal[0], 0.0, princpt[0]], [0.0, focal[1], princpt[1]], [0.0, 0.0, 1.0]], np.float64)
  rz = _rot_z(rot)
  rays = rz @ np.linalg.solve(k, np.c_[pts, np.ones(len(pts))].T)  # [3, N], in the rolled camera.
  lo, hi = pts.min(0), pts.max(0)
  r = rz @ np.linalg.solve(k, np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, 1.0]))
  for _ in range(iterations):
    r_v = view_rotation(r)
    w = r_v.T @ rays
    xy = w[:2] / w[2]
    lo, hi = xy.min(1), xy.max(1)
    r = r_v @ np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, 1.0])
  r_v = view_rotation(r)
  w = r_v.T @ rays
  xy = w[:2] / w[2]
  side = float(np.max(xy.max(1) - xy.min(1))) * expand * scale  # In units of the focal length.
  f_v = size / side
  c = (size - 1) / 2.0
  k_v = np.array([[f_v, 0.0, c], [0.0, f_v, c], [0.0, 0.0, 1.0]])
  m = r_v.T @ rz
  return CropTransform(k_v @ m @ np.linalg.inv(k)), np.array([f_v, f_v]), m


def warp(image: np.ndarray, tf: CropTransform, size: int) -> np.ndarray:
  """Resample image [H, W(, C)] into the crop: bilinear, zeros outside, dtype kept (uint8 or float32).

  One ``cv2.warpAffine`` per group of at most 4 channels (OpenCV's
  vectorised bilinear paths cover 1-4 channels; 5 channels take a slow
  generic path). OpenCV, like ``CropTransform``, puts pixel centres at
  integer coordinates, so the forward homography is passed as it is
  (``cv2.warpAffine`` when it is affine, the common case of a centred subject).
  OpenCV quantises source coordinates to 1/32 pixel, far below what a
  256-pixel crop of a photo can resolve.
  """
  img = np.asarray(image)
  if img.dtype not in (np.uint8, np.float32):
    img = img.astype(np.float32)
  h = tf.h / tf.h[2, 2]
  affine = np.allclose(h[2, :2], 0.0, atol=1e-12)
  kw = dict(flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

  def one(x):
    out = cv2.warpAffine(x, h[:2], (size, size), **kw) if affine else cv2.warpPerspective(x, h, (size, size), **kw)
    return out.reshape(size, size, -1)

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


def _ground_plane(record, m) -> np.ndarray:
  """The floor (n, c) in the virtual camera (n·X + c = 0, n up, unit), or zeros when the record has none."""
  plane = record.get("ground_plane")
  if plane is None:
    return np.zeros(4, np.float32)
  plane = np.asarray(plane, np.float64)
  n = np.linalg.norm(plane[:3])
  return np.concatenate([m @ plane[:3] / n, [plane[3] / n]]).astype(np.float32)


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
  # m: image camera → the crop's virtual camera (module docstring).
  tf, focal, m = crop_transform(mask_outline(hm, om, name), record["focal"], record["princpt"], config.size,
                                config.expand, scale, rot)
  s = config.size
  # Two warps: RGB in the image's dtype, both masks as 0/255 uint8 (thresholded at one half after).
  img5 = np.empty((s, s, 5), np.float32)
  rgb = warp(image[..., :3], tf, s)
  gains = (gains / (255.0 if rgb.dtype == np.uint8 else 1.0)).astype(np.float32)
  np.clip(np.multiply(rgb, gains, dtype=np.float32), 0.0, 1.0, out=img5[..., :3])
  masks = warp(np.stack([hm > 0, om > 0], -1).view(np.uint8) * np.uint8(255), tf, s)
  img5[..., 3:] = masks >= 128

  pose = _target(record, "pose", (NUM_JOINTS, 3, 3), np.eye(3))
  pose[0] = m @ pose[0]
  cam_trans = m @ _target(record, "cam_trans", (3,), 0.0)
  obj_rot = m @ _target(record, "obj_rot", (3, 3), np.eye(3))
  obj_abs = m @ _target(record, "obj_trans", (3,), 0.0)
  example = {
      "image": img5,
      "pose": pose.astype(np.float32),
      "betas": _target(record, "betas", (10,), 0.0),
      "obj_rot": obj_rot.astype(np.float32),
      "obj_trans": (obj_abs - cam_trans).astype(np.float32),
      "cam_trans": cam_trans.astype(np.float32),
      "focal": focal.astype(np.float32),
      "princpt": np.full(2, (s - 1) / 2.0, np.float32),  # The virtual camera looks through the crop centre.
      "camera_rot": m.T.astype(np.float32),  # Virtual camera → image camera.
      "ground_plane": _ground_plane(record, m),
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

# Masks below this many pixels are refused: an 8x8 patch has no silhouette left to fit. The
# synthetic training frames never show the person or the object on fewer than 0.4% of a 256²
# image (262 pixels, synthetic/generator.py _MIN_VISIBLE), so 64 is well outside what the model
# learnt; a 1-pixel human mask was otherwise "reconstructed" as a 1 m person 3 m away.
MIN_MASK_PIXELS = 64


def _read_image(path: str, what: str, grey: bool = False) -> np.ndarray:
  """The image as displayed: rotated/flipped by its EXIF orientation tag (phone photos)."""
  from PIL import Image, ImageOps, UnidentifiedImageError
  try:
    with Image.open(path) as im:
      try:
        im = ImageOps.exif_transpose(im)
      except Exception as e:  # Malformed EXIF: the orientation, hence the mask alignment, is unknown.
        raise PipelineError(f"{path}: cannot read the {what}'s EXIF orientation ({type(e).__name__}: {e}).") from None
      return np.asarray(im.convert("L" if grey else "RGB"))
  except FileNotFoundError:
    raise PipelineError(f"{path}: {what} file not found.") from None
  except (UnidentifiedImageError, OSError) as e:
    raise PipelineError(f"{path}: cannot read the {what} as an image ({e}).") from None


def load_user_record(image_path: str, human_mask_path: str, object_mask_path: str, focal=None, princpt=None,
                     object_template=None, object_id: int = -1) -> dict:
  """A record from image + mask files, for inference on a user's image.

  Masks: any greyscale image, > 127 is inside, at least MIN_MASK_PIXELS pixels.
  Image and masks are read as displayed (EXIF orientation applied). Intrinsics default to a
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
    if (area := int((m > 127).sum())) < MIN_MASK_PIXELS:
      raise PipelineError(f"{path}: {key.replace('_', ' ')} covers only {area} pixel{'s' * (area != 1)} of {w}x{h}; "
                          f"at least {MIN_MASK_PIXELS} are needed to reconstruct from it.")
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
