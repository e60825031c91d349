"""Visualisations: mesh overlay on the input image, side views, contact heat maps.

All functions take meshes in camera coordinates (OpenCV axes) as accepted by
``scorehoi_jax.render.render`` and return uint8 RGB images.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from scorehoi_jax.render import Camera, Mesh, render
from scorehoi_jax.render.core import as_mesh

HUMAN_COLOR = (0.78, 0.74, 0.70)
OBJECT_COLOR = (0.35, 0.60, 0.85)

# Heat-map stops (value, colour): blue (no contact) -> cyan -> yellow -> red (contact).
_HEAT_STOPS = np.array([0.0, 0.33, 0.66, 1.0])
_HEAT_COLORS = np.array([[0.20, 0.25, 0.70], [0.20, 0.75, 0.85], [0.95, 0.85, 0.20], [0.85, 0.10, 0.10]])


def heat_colors(values, vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
  """Per-vertex colours [V, 3] in [0, 1] for scalar values [V] (e.g. contact probabilities)."""
  v = np.clip((np.asarray(values, np.float64) - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
  return np.stack([np.interp(v, _HEAT_STOPS, _HEAT_COLORS[:, c]) for c in range(3)], -1)


def contact_colors(contact, base=HUMAN_COLOR, contact_color=(0.9, 0.1, 0.1)) -> np.ndarray:
  """Colours [V, 3]: ``base`` blended towards ``contact_color`` by contact in [0, 1]."""
  c = np.clip(np.asarray(contact, np.float64), 0.0, 1.0)[:, None]
  return (1.0 - c) * np.asarray(base) + c * np.asarray(contact_color)


def overlay(image, meshes: Sequence, camera: Camera, alpha: float = 0.8, backend: str | None = None) -> np.ndarray:
  """The meshes rendered over ``image`` (uint8 [H, W, 3]), blended by ``alpha``."""
  img = np.asarray(image)
  if img.ndim == 2:
    img = np.repeat(img[..., None], 3, -1)
  img = img[..., :3]
  if img.dtype != np.uint8:
    img = np.clip(np.rint(img * (255.0 if img.max(initial=0) <= 1.0 else 1.0)), 0, 255).astype(np.uint8)
  out = render(meshes, camera, background=img, backend=backend)
  # Blend only where the meshes are; render() already anti-aliased the edges against the image.
  a = np.where(out.instance[..., None] > 0, alpha, 0.0)
  return np.clip(np.rint(a * out.rgb + (1 - a) * img), 0, 255).astype(np.uint8)


def rotate_about_center(meshes: Sequence, angle_deg: float, axis: str = "y", center=None) -> list[Mesh]:
  """Meshes rotated by ``angle_deg`` about a camera axis through ``center``.

  The centre defaults to the middle of the joint bounding box, so the scene
  stays at the same distance from the camera (same framing scale).
  """
  a = np.deg2rad(angle_deg)
  c, s = np.cos(a), np.sin(a)
  rot = {"y": [[c, 0, s], [0, 1, 0], [-s, 0, c]],
         "x": [[1, 0, 0], [0, c, -s], [0, s, c]],
         "z": [[c, -s, 0], [s, c, 0], [0, 0, 1]]}[axis]
  return _turn(meshes, np.asarray(rot), center)


def _turn(meshes: Sequence, rot: np.ndarray, center=None) -> list[Mesh]:
  """Meshes rotated by ``rot`` [3, 3] about ``center`` (default: the middle of their joint bounding box)."""
  ms = [as_mesh(m) for m in meshes]
  if center is None:
    allv = np.concatenate([np.asarray(m.vertices, np.float64) for m in ms])
    center = 0.5 * (allv.min(0) + allv.max(0))
  return [Mesh((np.asarray(m.vertices) - center) @ rot.T + center, m.faces, m.color) for m in ms]


def level(meshes: Sequence, up, center=None) -> list[Mesh]:
  """Meshes turned about ``center`` (default: the middle of their joint bounding box) by the smallest rotation
  that takes the camera-frame direction ``up`` to camera −y (up in the image).

  A camera pitched down by θ sees the vertical θ off its own −y, so a side view turned about the camera's
  y axis shows a standing person leaning by θ. Levelled first, the turn is about the true vertical.
  """
  from scipy.spatial.transform import Rotation
  up = np.asarray(up, np.float64)
  rot = Rotation.align_vectors([[0.0, -1.0, 0.0]], [up / np.linalg.norm(up)])[0].as_matrix()
  return _turn(meshes, rot, center)


def side_view(meshes: Sequence, camera: Camera, angle_deg: float = 90.0, axis: str = "y",
              background=(1.0, 1.0, 1.0), backend: str | None = None) -> np.ndarray:
  """The scene seen from the side: rotated about the vertical (y) axis by default.

  Use axis="x", angle_deg=-90 for a top view.
  """
  return render(rotate_about_center(meshes, angle_deg, axis), camera, background=background, backend=backend).rgb


def hstack(images: Sequence[np.ndarray], pad: int = 4, color: int = 255) -> np.ndarray:
  """Images side by side, padded to the tallest; grey images become RGB."""
  ims = []
  for im in images:
    im = np.asarray(im)
    if im.dtype != np.uint8:
      im = np.clip(np.rint(im * 255.0), 0, 255).astype(np.uint8)
    if im.ndim == 2:
      im = np.repeat(im[..., None], 3, -1)
    ims.append(im[..., :3])
  h = max(im.shape[0] for im in ims)
  cols = []
  for k, im in enumerate(ims):
    col = np.full((h, im.shape[1], 3), color, np.uint8)
    col[:im.shape[0]] = im
    cols.append(col)
    if k + 1 < len(ims):
      cols.append(np.full((h, pad, 3), color, np.uint8))
  return np.concatenate(cols, 1)


def mask_image(human_mask, object_mask) -> np.ndarray:
  """Masks as one RGB image: human red, object blue, overlap magenta."""
  hm = np.asarray(human_mask) > 0
  om = np.asarray(object_mask) > 0
  out = np.zeros(hm.shape + (3,), np.uint8)
  out[..., 0] = hm * 230
  out[..., 2] = om * 230
  return out


def hoi_panel(image, human: Mesh, obj: Mesh, camera: Camera, human_contact=None, object_contact=None,
              backend: str | None = None) -> np.ndarray:
  """Input | overlay | side view, the human coloured by contact if given."""
  hc = heat_colors(human_contact) if human_contact is not None else human.color
  oc = heat_colors(object_contact) if object_contact is not None else obj.color
  meshes = [Mesh(human.vertices, human.faces, hc), Mesh(obj.vertices, obj.faces, oc)]
  return hstack([image, overlay(image, meshes, camera, backend=backend),
                 side_view(meshes, camera, backend=backend)])


def framed_view(meshes: Sequence, size: int = 256, angle_deg: float = 0.0, axis: str = "y",
                background=(1.0, 1.0, 1.0), fill: float = 0.9, backend: str | None = None, up=None) -> np.ndarray:
  """The meshes rotated about their centre (as ``side_view``), centred and filling a square image.

  up: the scene's up direction in camera axes (e.g. the floor's normal); the meshes are levelled first
  (``level``), so the rotation is about the true vertical. None: about the camera's y axis.

  Unlike ``side_view`` the camera is not the input camera: the scene's
  bounding box is put on the optical axis at the distance where it spans
  ``fill`` of the image, so a person at the edge of a photo is still fully
  in view from the side.
  """
  ms = rotate_about_center(meshes if up is None else level(meshes, up), angle_deg, axis)
  allv = np.concatenate([np.asarray(m.vertices, np.float64) for m in ms])
  lo, hi = allv.min(0), allv.max(0)
  center, half = 0.5 * (lo + hi), np.maximum(0.5 * (hi - lo), 1e-3)
  focal = float(size)
  # The box's front face (half-extents hx, hy at depth d − hz) spans `fill` of the image.
  dist = focal * max(half[0], half[1]) / (0.5 * fill * size) + half[2]
  shift = np.array([0.0, 0.0, dist]) - center
  cam = Camera(focal=(focal, focal), princpt=((size - 1) / 2, (size - 1) / 2), width=size, height=size,
               near=max(1e-3, 0.5 * (dist - half[2])), far=dist + 10 * float(half.max()))
  moved = [Mesh(np.asarray(m.vertices) + shift, m.faces, m.color) for m in ms]
  return render(moved, cam, background=background, backend=backend).rgb
