"""The capture layout's surroundings: a textured box room, a lamp, and clutter on the floor.

Real capture frames show a room: a floor in perspective that meets walls,
furniture standing about, light that falls off away from a lamp. Here the
room is an axis-aligned box around the camera and the subject (floor y = 0,
a ceiling 2.6–3.4 m up); each pixel's ray is intersected with the box from
the inside, and the surface it leaves through is textured by its own 2D
world coordinates (so textures have correct perspective):
- floor: tiles, planks, plain or carpet noise, sometimes a rug, with a soft
  contact shadow under the person and the object;
- walls: paint, wallpaper stripes, wood panels, tiles or brick, with a
  skirting board and a few rectangles (doors, posters, windows, shelves);
- ceiling: plain;
- light: ambient plus a ceiling lamp (cosine and distance fall-off) plus a
  window-like gradient along one wall direction.
Clutter: up to four other procedural objects (shape variants included)
standing on the floor, drawn as meshes with the subject. They are placed
only *behind* the subject as the camera sees it (every clutter vertex
farther from the camera than every subject vertex), so they never hide the
person or the object, and the masks and labels stay exact.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.spatial import cKDTree

from scorehoi_jax.data.synthetic import appearance
from scorehoi_jax.data.synthetic.camera import Camera
from scorehoi_jax.objects import procedural

_CLUTTER_POOL = 6  # Shape instances per category used as clutter (meshes memoised per process).
_MESHES: dict = {}


class Room(NamedTuple):
  lo: np.ndarray  # [3] x_min, 0, z_min (world).
  hi: np.ndarray  # [3] x_max, ceiling, z_max.
  lamp: np.ndarray  # [3] lamp position under the ceiling.


def sample_room(rng: np.random.Generator, cam: Camera, subject: np.ndarray) -> Room:
  """A room that holds the camera and the subject's points [N, 3] with 0.6–2.5 m to spare."""
  pts = np.concatenate([subject, cam.position[None]])
  lo, hi = pts.min(0), pts.max(0)
  ceiling = max(rng.uniform(2.6, 3.4), cam.position[1] + 0.3)
  lo = np.array([lo[0] - rng.uniform(0.6, 2.5), 0.0, lo[2] - rng.uniform(0.6, 2.5)])
  hi = np.array([hi[0] + rng.uniform(0.6, 2.5), ceiling, hi[2] + rng.uniform(0.6, 2.5)])
  lamp = np.array([rng.uniform(lo[0], hi[0]), ceiling - 0.05, rng.uniform(lo[2], hi[2])])
  return Room(lo, hi, lamp)


def _clutter_mesh(name: str, k: int):
  key = (name, k)
  if key not in _MESHES:
    mesh, _ = procedural.build_procedural(name, procedural.VARIANT_SEED_BASE + 500_000 + k)
    v = np.asarray(mesh.vertices, np.float64)
    v[:, 1] -= v[:, 1].min()  # Hand-held objects are centred on the origin: stand them on the floor.
    _MESHES[key] = (v, np.asarray(mesh.faces, np.int64))
  return _MESHES[key]


def sample_clutter(rng: np.random.Generator, room: Room, cam: Camera, subject: np.ndarray,
                   max_items: int = 4) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """Clutter meshes (world vertices, faces, per-vertex colours) behind the subject (module docstring)."""
  names = procedural.procedural_names()
  depth_limit = ((subject - cam.position) @ cam.rot[2]).max() + 0.05
  centre = 0.5 * (subject.min(0) + subject.max(0))
  radius = 0.5 * np.linalg.norm((subject.max(0) - subject.min(0))[[0, 2]])
  placed, out = [], []
  for _ in range(int(rng.integers(0, max_items + 1))):
    v, f = _clutter_mesh(str(rng.choice(names)), int(rng.integers(_CLUTTER_POOL)))
    yaw = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(yaw), np.sin(yaw)
    v = v @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]).T
    r = 0.5 * np.linalg.norm(np.ptp(v, 0)[[0, 2]])
    for _ in range(12):
      xz = rng.uniform(room.lo[[0, 2]] + r + 0.05, room.hi[[0, 2]] - r - 0.05)
      if np.linalg.norm(xz - centre[[0, 2]]) < radius + r + 0.3:
        continue
      if any(np.linalg.norm(xz - p) < r + q + 0.05 for p, q in placed):
        continue
      world = v + np.array([xz[0], 0.0, xz[1]])
      if ((world - cam.position) @ cam.rot[2]).min() <= depth_limit:
        continue
      placed.append((xz, r))
      col = appearance.object_colors(rng, len(world))
      out.append((world, f, col))
      break
  return out


def _noise(rng: np.random.Generator, uv: np.ndarray, cell: float, cells: int = 32) -> np.ndarray:
  """Smooth value noise [N] in [0, 1] at 2D world coordinates (a random periodic lattice, bilinear)."""
  grid = rng.uniform(size=(cells, cells))
  g = uv / cell
  i0 = np.floor(g).astype(np.int64)
  t = g - i0
  i0 %= cells
  i1 = (i0 + 1) % cells
  a = grid[i0[:, 0], i0[:, 1]] * (1 - t[:, 0]) + grid[i1[:, 0], i0[:, 1]] * t[:, 0]
  b = grid[i0[:, 0], i1[:, 1]] * (1 - t[:, 0]) + grid[i1[:, 0], i1[:, 1]] * t[:, 0]
  return a * (1 - t[:, 1]) + b * t[:, 1]


def _wall_texture(rng: np.random.Generator, uv: np.ndarray) -> np.ndarray:
  """Colours [N, 3] of wall points at (along-wall, height) coordinates [N, 2]."""
  base = appearance.random_color(rng, sat=(0.0, 0.35), val=(0.45, 0.95))
  alt = np.clip(base * rng.uniform(0.75, 0.95) + rng.normal(0, 0.03, 3), 0, 1)
  kind = rng.choice(["paint", "paint", "stripes", "panels", "tiles", "brick"])
  u, y = uv[:, 0], uv[:, 1]
  if kind == "paint":
    t = 0.5 * _noise(rng, uv, 0.8)
  elif kind == "stripes":
    t = (np.floor(u / rng.uniform(0.05, 0.3)) % 2).astype(float)
  elif kind == "panels":
    w = rng.uniform(0.1, 0.25)
    t = 0.5 * (np.floor(u / w) % 3) / 2 + 0.5 * (np.abs((u / w) % 1 - 0.5) > 0.47)
  elif kind == "tiles":
    s = rng.uniform(0.1, 0.3)
    t = (((u / s) % 1 < 0.05) | ((y / s) % 1 < 0.05)).astype(float)
  else:  # Brick: rows offset by half a brick.
    bh, bw = rng.uniform(0.06, 0.09), rng.uniform(0.18, 0.26)
    row = np.floor(y / bh)
    uu = u / bw + 0.5 * (row % 2)
    t = (((y / bh) % 1 < 0.12) | (uu % 1 < 0.05)).astype(float) + 0.3 * _noise(rng, np.stack([uu, row], 1), 1.0)
  col = base * (1 - t[:, None]) + alt * t[:, None]
  skirting = y < rng.uniform(0.06, 0.14)
  col[skirting] = appearance.random_color(rng, sat=(0.0, 0.3), val=(0.2, 0.95))
  for _ in range(int(rng.integers(0, 4))):  # Doors, posters, windows, shelves.
    x0, width = rng.uniform(u.min() if len(u) else 0, u.max() if len(u) else 1), rng.uniform(0.3, 1.2)
    y0, height = rng.uniform(0.0, 1.6), rng.uniform(0.3, 2.0)
    inside = (u > x0) & (u < x0 + width) & (y > y0) & (y < y0 + height)
    col[inside] = appearance.random_color(rng, sat=(0.0, 0.8), val=(0.15, 1.0))
  return col * (1 + 0.08 * (_noise(rng, uv, 0.2)[:, None] - 0.5))


def _floor_texture(rng: np.random.Generator, xz: np.ndarray) -> np.ndarray:
  if rng.uniform() < 0.25:  # Carpet: smooth colour noise.
    c0 = appearance.random_color(rng, sat=(0.05, 0.6), val=(0.2, 0.8))
    c1 = np.clip(c0 * rng.uniform(0.6, 0.9) + rng.normal(0.0, 0.04, 3), 0, 1)
    t = _noise(rng, xz, rng.uniform(0.02, 0.2))[:, None]
    col = c0 * (1 - t) + c1 * t
  else:
    col = appearance.floor_texture(rng, xz)
  if rng.uniform() < 0.35:  # A rug.
    c = rng.uniform(xz.min(0), xz.max(0)) if len(xz) else np.zeros(2)
    half = rng.uniform(0.4, 1.4, 2)
    on = np.all(np.abs(xz - c) < half, 1)
    col[on] = appearance.random_color(rng) * (0.85 + 0.3 * _noise(rng, xz[on], 0.1))[:, None]
  return col * (1 + 0.1 * (_noise(rng, xz, 0.3)[:, None] - 0.5))


def render_room(rng: np.random.Generator, cam: Camera, room: Room, low_points: np.ndarray) -> np.ndarray:
  """The room as seen by ``cam``: float image [H, W, 3] in [0, 1].

  ``low_points`` [N, 3] (world) are body/object vertices near the floor, for
  the contact shadow.
  """
  w, h = cam.width, cam.height
  ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
  rays = np.stack([(xs - cam.princpt[0]) / cam.focal[0], (ys - cam.princpt[1]) / cam.focal[1], np.ones_like(xs)], -1)
  d = (rays @ cam.rot).reshape(-1, 3)  # World directions.
  o = cam.position
  # Exit distance through each axis' far face (the camera is inside the box).
  with np.errstate(divide="ignore", invalid="ignore"):
    t_axes = np.where(d > 0, (room.hi - o) / d, np.where(d < 0, (room.lo - o) / d, np.inf))
  axis = np.argmin(t_axes, 1)
  t = t_axes[np.arange(len(d)), axis]
  hit = o + t[:, None] * d
  img = np.zeros((len(d), 3))
  normal = np.zeros((len(d), 3))
  floor = (axis == 1) & (d[:, 1] < 0)
  ceiling = (axis == 1) & (d[:, 1] >= 0)
  img[floor] = _floor_texture(rng, hit[floor][:, [0, 2]])
  normal[floor] = (0, 1, 0)
  img[ceiling] = appearance.random_color(rng, sat=(0.0, 0.1), val=(0.75, 0.98))
  normal[ceiling] = (0, -1, 0)
  for ax, along in ((0, 2), (2, 0)):
    for sign in (-1, 1):
      m = (axis == ax) & (np.sign(d[:, ax]) == sign)
      img[m] = _wall_texture(rng, np.stack([hit[m][:, along], hit[m][:, 1]], 1))
      normal[m, ax] = -sign
  # Light: ambient + lamp (cosine, distance fall-off) + a window gradient across the room.
  to_lamp = room.lamp - hit
  r = np.linalg.norm(to_lamp, axis=1)
  lamp = np.clip(np.sum(normal * to_lamp, 1) / np.maximum(r, 1e-6), 0, 1) / (1 + (r / rng.uniform(1.5, 3.5)) ** 2)
  g_axis = rng.integers(2) * 2
  span = room.hi[g_axis] - room.lo[g_axis]
  grad = (hit[:, g_axis] - room.lo[g_axis]) / span
  grad = grad if rng.uniform() < 0.5 else 1 - grad
  light = rng.uniform(0.5, 0.75) + rng.uniform(0.4, 0.9) * lamp + rng.uniform(0.0, 0.35) * grad
  img *= light[:, None] * appearance.random_color(rng, sat=(0.0, 0.15), val=(0.9, 1.0))  # Tinted light.
  if floor.any() and len(low_points):  # Soft contact shadow under the person and the object.
    dist = cKDTree(low_points[:, [0, 2]]).query(hit[floor][:, [0, 2]], k=1)[0]
    img[floor] *= (1.0 - 0.45 * np.exp(-0.5 * (dist / 0.12) ** 2))[:, None]
  return np.clip(img.reshape(h, w, 3), 0.0, 1.0).astype(np.float32)
