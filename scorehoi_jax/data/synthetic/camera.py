"""Random pinhole cameras that look at the person and the object.

Camera axes are OpenCV's: x right, y down, z forward; a world point p maps to
camera coordinates ``R @ (p - position)`` and to pixels ``f * xy / z + c``
with pixel centres at integer coordinates. The camera is sampled around the
pair (azimuth, height, focal length), aimed at the centre of their bounding
box with some jitter, and then moved along its viewing ray to the distance
at which every vertex falls inside a random fraction of the image, so both
are in view at a random scale (partial self/object occlusion is left to
happen naturally).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

_UP = np.array([0.0, 1.0, 0.0])


class Camera(NamedTuple):
  rot: np.ndarray  # [3, 3] world -> camera.
  position: np.ndarray  # [3] camera centre in world coordinates.
  focal: np.ndarray  # [2] fx, fy in pixels.
  princpt: np.ndarray  # [2] cx, cy in pixels.
  width: int
  height: int

  @property
  def intrinsics(self) -> np.ndarray:
    return np.array([[self.focal[0], 0, self.princpt[0]], [0, self.focal[1], self.princpt[1]], [0, 0, 1]],
                    np.float32)


def look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
  """World -> camera rotation of a camera at ``position`` looking at ``target``, image y down."""
  z = target - position
  z = z / np.linalg.norm(z)
  x = np.cross(z, _UP)
  if np.linalg.norm(x) < 1e-6:  # Looking straight down/up: any horizontal x will do.
    x = np.array([1.0, 0.0, 0.0])
  x = x / np.linalg.norm(x)
  y = np.cross(z, x)
  return np.stack([x, y, z]).astype(np.float64)


def to_camera(points: np.ndarray, cam: Camera) -> np.ndarray:
  return (points - cam.position) @ cam.rot.T


def project(points_cam: np.ndarray, focal, princpt) -> np.ndarray:
  """Pixel coordinates [..., 2] of camera-space points [..., 3]."""
  z = np.maximum(points_cam[..., 2:3], 1e-6)
  return points_cam[..., :2] / z * np.asarray(focal) + np.asarray(princpt)


def sample_camera(rng: np.random.Generator, points: np.ndarray, resolution: int,
                  azimuth_range: float = np.radians(160.0)) -> Camera:
  """A random camera that sees all of ``points`` [N, 3] (world).

  Args:
    rng: the frame's generator.
    points: vertices of the person and the object.
    resolution: square image size in pixels.
    azimuth_range: cameras are placed within +- this of the person's front
      (+Z); straight-from-behind views are rarely informative.
  """
  lo, hi = points.min(0), points.max(0)
  target = 0.5 * (lo + hi) + rng.normal(0.0, 0.04, 3) * (hi - lo)
  azimuth = rng.uniform(-azimuth_range, azimuth_range)
  height = rng.uniform(0.3, 2.3)
  # Focal length from a field of view of 28–62 degrees.
  fov = np.radians(rng.uniform(28.0, 62.0))
  f = 0.5 * resolution / np.tan(0.5 * fov)
  direction = np.array([np.sin(azimuth), 0.0, np.cos(azimuth)])
  provisional = target + 3.0 * direction
  provisional[1] = height
  rot = look_at(provisional, target)
  # Distance along the viewing ray at which all points fit in ``fill`` of the half-image.
  fill = rng.uniform(0.55, 0.9)
  rel = (points - target) @ rot.T  # Camera-axis coordinates relative to the target.
  half = fill * 0.5 * resolution / f
  need = np.max(np.abs(rel[:, :2]) / half - rel[:, 2:3])
  dist = max(float(need), 1.2)
  position = target - dist * rot[2]
  return Camera(rot=rot, position=position, focal=np.array([f, f], np.float32),
                princpt=np.array([0.5 * (resolution - 1)] * 2, np.float32), width=resolution, height=resolution)
