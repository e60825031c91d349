"""Random pinhole cameras that see the person and the object.

Camera axes are OpenCV's: x right, y down, z forward; a world point p maps to
camera coordinates ``R @ (p - position)`` and to pixels ``f * xy / z + c``
with pixel centres at integer coordinates. Two layouts:

- ``sample_camera`` (layout "centred", the original generator): a square
  image; the camera is sampled around the pair (azimuth, height, focal
  length), aimed at the centre of their bounding box with some jitter, and
  moved along its viewing ray until every vertex falls inside a random
  fraction of the image, so the subject fills most of the frame, centred.
- ``sample_capture_camera`` (layout "capture"): a fixed 4:3 camera as in
  real capture (BEHAVE's Kinect colour camera: 2048x1536, fx = fy ≈ 976,
  scaled to the rendered width), principal point a few per cent off-centre,
  mounted 1–3 m high, pitched down 0–35 degrees, no roll, 1.6–4.2 m from the
  subject, turned so the subject lands anywhere in the frame. Candidates are
  drawn in a batch and the first that keeps every vertex in the image is
  taken (else the one that keeps most: the subject stays mostly visible).

The floor plane (world y = 0) in camera coordinates is ``ground_plane``:
n·x + d = 0 with n the world up direction in camera axes and d the camera's
height; n·x + d is a point's height above the floor.
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


# BEHAVE's Kinect colour intrinsics (2048 x 1536): the capture layout scales them to its width.
KINECT_SIZE = (2048, 1536)
KINECT_FOCAL = 976.0
CAPTURE_HEIGHT = (1.0, 3.0)  # Camera height above the floor, metres.
CAPTURE_PITCH = (0.0, 35.0)  # Downward pitch of the optical axis, degrees.
CAPTURE_DISTANCE = (1.6, 4.2)  # Horizontal distance to the subject's centre, metres.
CAPTURE_PRINCPT_OFFSET = 0.03  # Principal point within +- this fraction of the size from the centre.


def capture_size(width: int) -> tuple[int, int]:
  """(width, height) of a 4:3 capture frame ``width`` pixels wide."""
  return int(width), int(round(width * KINECT_SIZE[1] / KINECT_SIZE[0]))


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


def ground_plane(cam: Camera) -> np.ndarray:
  """[4] (n, d): the floor y = 0 in camera coordinates, n·x + d = height above the floor."""
  return np.concatenate([cam.rot[:, 1], [cam.position[1]]]).astype(np.float32)


def height_and_pitch(rot: np.ndarray, position: np.ndarray) -> tuple[float, float]:
  """Camera height (m) and downward pitch (degrees) of a world -> camera rotation and centre."""
  return float(position[1]), float(np.degrees(np.arcsin(np.clip(-rot[2, 1], -1.0, 1.0))))


def _rotations(heading: np.ndarray, pitch: np.ndarray) -> np.ndarray:
  """World -> camera rotations [N, 3, 3] looking along ``heading`` (about +Y from +Z), pitched down."""
  fwd = np.stack([np.cos(pitch) * np.sin(heading), -np.sin(pitch), np.cos(pitch) * np.cos(heading)], -1)
  x = np.cross(fwd, _UP)
  x /= np.linalg.norm(x, axis=-1, keepdims=True)
  y = np.cross(fwd, x)
  return np.stack([x, y, fwd], 1)


def sample_capture_camera(rng: np.random.Generator, points: np.ndarray, width: int,
                          azimuth_range: float = np.radians(160.0), positions: int = 12, pitches: int = 8,
                          headings: int = 16, margin: float = 2.0) -> Camera:
  """A capture-layout camera (module docstring) that sees ``points`` [N, 3] (world), 4:3, ``width`` wide.

  Placement: ``positions`` camera positions are drawn (azimuth around the
  subject, height, distance); for each, a grid of pitches x headings (each
  cell jittered) is tested. The first position with any camera that keeps
  every point in the image is used, and one of its valid cells is drawn
  uniformly, so the subject lands anywhere in the range of framings that
  fit it, edges included, rather than mostly in the middle.
  """
  w, h = capture_size(width)
  f = KINECT_FOCAL * w / KINECT_SIZE[0] * rng.uniform(0.97, 1.03)
  princpt = (np.array([w - 1, h - 1]) / 2 + rng.uniform(-1, 1, 2) * CAPTURE_PRINCPT_OFFSET * np.array([w, h]))
  lo, hi = points.min(0), points.max(0)
  centre = 0.5 * (lo + hi)
  azimuth = rng.uniform(-azimuth_range, azimuth_range, positions)  # Where the camera stands.
  height = rng.uniform(*CAPTURE_HEIGHT, positions)
  dist = rng.uniform(*CAPTURE_DISTANCE, positions)
  pos = np.stack([centre[0] + dist * np.sin(azimuth), height, centre[2] + dist * np.cos(azimuth)], -1)
  p_lo, p_hi = np.radians(CAPTURE_PITCH)
  cells = (positions, pitches, headings)  # Each grid cell jittered uniformly within itself.
  pitch = p_lo + (np.arange(pitches)[:, None] + rng.uniform(size=cells)) * (p_hi - p_lo) / pitches
  half_fov = np.arctan(0.5 * w / f)
  turn = -half_fov + (np.arange(headings) + rng.uniform(size=cells)) * 2 * half_fov / headings
  heading = azimuth[:, None, None] + np.pi + turn  # Back towards the subject, turned away by up to half the view.
  rots = _rotations(heading.reshape(-1), pitch.reshape(-1)).reshape(positions, pitches * headings, 3, 3)
  sub = points[::max(1, len(points) // 400)]
  cam = np.einsum("pkij,pnj->pkni", rots, sub[None] - pos[:, None])  # [P, K, N, 3]
  z = cam[..., 2]
  uv = cam[..., :2] / np.maximum(z, 1e-6)[..., None] * f + princpt
  inside = ((z > 0.3) & (uv[..., 0] >= margin) & (uv[..., 0] <= w - 1 - margin)
            & (uv[..., 1] >= margin) & (uv[..., 1] <= h - 1 - margin)).mean(-1)  # [P, K]
  ok = inside >= 1.0
  if ok.any():
    p = int(np.argmax(ok.any(1)))
    k = int(rng.choice(np.nonzero(ok[p])[0]))
  else:  # Nothing frames it all: keep the view that shows most of it.
    p, k = np.unravel_index(int(np.argmax(inside)), inside.shape)
  return Camera(rot=rots[p, k], position=pos[p], focal=np.array([f, f], np.float32),
                princpt=princpt.astype(np.float32), width=w, height=h)
