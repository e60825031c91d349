"""Image alignment of a reconstruction: what a user sees first when the meshes are drawn over the photo.

* silhouette IoU of the projected human and object against the input masks
  (visible masks: each mesh is drawn with the other as an occluder, as the
  masks of a photo are);
* the image-plane offset of the pelvis, in pixels, against the true one.

Rendering is the project's renderer (render/), so the numbers are those of
the overlay PNGs.
"""

from __future__ import annotations

import numpy as np

from scorehoi_jax.render import Camera, Mesh, render


def camera_of(record: dict) -> Camera:
  """The full-image pinhole camera of a record (focal, princpt, image size)."""
  h, w = np.asarray(record["image"]).shape[:2]
  return Camera(focal=tuple(np.asarray(record["focal"], np.float64)),
                princpt=tuple(np.asarray(record["princpt"], np.float64)), width=int(w), height=int(h), near=0.01)


def silhouettes(human, obj, camera: Camera, backend: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Visible masks (bool [H, W]) of the human and object meshes, each a (vertices, faces) pair in camera axes."""
  out = render([Mesh(np.asarray(human[0]), np.asarray(human[1])), Mesh(np.asarray(obj[0]), np.asarray(obj[1]))],
               camera, backend=backend, rgb=False)
  return out.instance == 1, out.instance == 2


def mask_iou(a, b) -> float:
  """|a ∩ b| / |a ∪ b| of two boolean masks (1.0 when both are empty)."""
  a, b = np.asarray(a, bool), np.asarray(b, bool)
  union = np.count_nonzero(a | b)
  return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def pixel_of(point, camera: Camera) -> np.ndarray:
  """(u, v) of a camera-frame point [3] (pixel centres at integers)."""
  return camera.project(np.asarray(point, np.float64)[None])[0]
