"""Renderer interface shared by the backends: meshes, camera, output, shading.

Conventions (both backends obey them, tests/test_render.py checks it):
- Vertices are given in camera coordinates, OpenCV axes: x right, y down,
  z forward (metres).
- Pinhole camera: a point (X, Y, Z) projects to u = fx X / Z + cx,
  v = fy Y / Z + cy, with pixel centres at integer coordinates; pixel (r, c)
  is row r = v, column c = u.
- Output: ``rgb`` uint8 [H, W, 3], ``instance`` uint8 [H, W] (0 background,
  k for the k-th mesh of the list, 1-based; visible surfaces only, so
  occlusion is resolved), ``depth`` float32 [H, W] (camera z of the visible
  surface at the pixel centre; 0 for background).
- Masks and depth are exact at pixel centres (single sample); only the RGB
  may be anti-aliased.

Shading is deliberately simple and identical in both backends (``shade``
here, ``_FRAG_COLOR`` in gl.py), so RGB values agree up to anti-aliasing at
silhouettes: one directional light in camera space (``Light``; the default is
a fixed Lambert + ambient light), two-sided (normals are turned towards the
viewer), with an optional Blinn-Phong highlight.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Sequence

import numpy as np

from scorehoi_jax.errors import ScoreHOIError

# Direction from the surface towards the light, camera axes: above-left and
# behind the camera, so faces turned to the viewer are lit.
LIGHT_DIR = np.array([-0.35, -0.55, -1.0]) / np.linalg.norm([-0.35, -0.55, -1.0])
AMBIENT = 0.35
DIFFUSE = 0.65
MAX_INSTANCES = 255  # Instance ids are stored as uint8.


class RenderError(ScoreHOIError):
  """Bad renderer input (shapes, camera, light) or no usable backend."""


@dataclasses.dataclass(frozen=True)
class Light:
  """A directional light in camera space, ambient term and Blinn-Phong highlight.

  A surface point with colour c, unit normal n (turned towards the viewer)
  and unit view vector v (towards the camera) gets
  ``clip(c * (ambient + diffuse * lam) + specular * max(n . h, 0) ** shininess)``
  with h = normalize(direction + v) and lam = |n . direction| if ``symmetric``,
  else max(n . direction, 0). The highlight is white (not tinted by c).

  The defaults are the renderer's fixed light (no highlight), so
  ``light=None`` and ``Light()`` render the same image.

  Attributes:
    direction: from the scene towards the light, camera axes (OpenCV: x right,
      y down, z forward, so a light behind the camera has z < 0); normalised
      on construction.
    ambient: light reaching every surface, in units of its colour.
    diffuse: strength of the Lambert term.
    specular: strength of the Blinn-Phong highlight (0 = none).
    shininess: Blinn-Phong exponent (larger = smaller, sharper highlight).
    symmetric: True lights surfaces facing away from the light as if it were
      mirrored to their side (|n . l|: flat and shape-revealing from any
      light direction, the visualisation default); False is physical Lambert,
      so surfaces turned away from the light get only the ambient term.
  """
  direction: tuple = tuple(float(x) for x in LIGHT_DIR)
  ambient: float = AMBIENT
  diffuse: float = DIFFUSE
  specular: float = 0.0
  shininess: float = 24.0
  symmetric: bool = True

  def __post_init__(self):
    try:
      d = np.asarray(self.direction, np.float64)
    except (TypeError, ValueError):
      d = np.zeros(0)
    if d.shape != (3,) or not np.all(np.isfinite(d)) or np.linalg.norm(d) < 1e-9:
      raise RenderError(f"Light.direction must be a finite, non-zero 3-vector, got {self.direction!r}.")
    # Frozen dataclass: store the checked values once (unit direction, plain floats), so both
    # backends see exactly the same numbers.
    object.__setattr__(self, "direction", tuple(float(x) for x in d / np.linalg.norm(d)))
    for name in ("ambient", "diffuse", "specular", "shininess"):
      v = getattr(self, name)
      try:
        v = float(v)
      except (TypeError, ValueError):
        v = float("nan")
      if not np.isfinite(v) or v < 0 or (name == "shininess" and v == 0):
        raise RenderError(f"Light.{name} must be a finite number {'> 0' if name == 'shininess' else '>= 0'}, "
                          f"got {getattr(self, name)!r}.")
      object.__setattr__(self, name, v)
    object.__setattr__(self, "symmetric", bool(self.symmetric))


DEFAULT_LIGHT = Light()


def check_light(light) -> Light:
  """``light`` as a Light (None = the default light)."""
  if light is None:
    return DEFAULT_LIGHT
  if not isinstance(light, Light):
    raise RenderError(f"light must be a scorehoi_jax.render.Light or None, got {type(light).__name__}.")
  return light


@dataclasses.dataclass(frozen=True)
class Camera:
  """Pinhole intrinsics in pixels and the image size."""
  focal: tuple  # (fx, fy)
  princpt: tuple  # (cx, cy)
  width: int
  height: int
  near: float = 0.05
  far: float = 100.0

  @classmethod
  def from_k(cls, k, width: int, height: int, **kw) -> "Camera":
    k = np.asarray(k, np.float64)
    return cls((k[0, 0], k[1, 1]), (k[0, 2], k[1, 2]), int(width), int(height), **kw)

  def project(self, points) -> np.ndarray:
    """Pixel coordinates (u, v) of camera-frame points [..., 3]."""
    p = np.asarray(points, np.float64)
    return p[..., :2] / p[..., 2:3] * np.asarray(self.focal) + np.asarray(self.princpt)

  def rays(self) -> np.ndarray:
    """Ray directions [H*W, 3] through pixel centres, row-major, with z = 1."""
    u, v = np.meshgrid(np.arange(self.width, dtype=np.float64), np.arange(self.height, dtype=np.float64))
    d = np.stack([(u - self.princpt[0]) / self.focal[0], (v - self.princpt[1]) / self.focal[1],
                  np.ones_like(u)], -1)
    return d.reshape(-1, 3)


@dataclasses.dataclass(frozen=True)
class Mesh:
  """A triangle mesh in camera coordinates with a flat or per-vertex colour in [0, 1]."""
  vertices: np.ndarray  # [V, 3]
  faces: np.ndarray  # [F, 3]
  color: np.ndarray | Sequence[float] = (0.7, 0.7, 0.7)  # [3] or [V, 3]


class RenderOutput(NamedTuple):
  rgb: np.ndarray  # uint8 [H, W, 3]
  instance: np.ndarray  # uint8 [H, W]
  depth: np.ndarray  # float32 [H, W]


class Scene(NamedTuple):
  """All meshes concatenated: what a backend consumes."""
  vertices: np.ndarray  # float32 [N, 3]
  normals: np.ndarray  # float32 [N, 3] smooth vertex normals
  colors: np.ndarray  # float32 [N, 3]
  ids: np.ndarray  # float32 [N] instance id (1-based) of each vertex
  faces: np.ndarray  # int32 [F, 3] into the concatenated vertices
  face_ids: np.ndarray  # uint8 [F] instance id of each face


def as_mesh(m) -> Mesh:
  """Accept Mesh, (vertices, faces[, color]) tuples, or trimesh objects."""
  if isinstance(m, Mesh):
    return m
  if hasattr(m, "vertices") and hasattr(m, "faces"):
    color = (0.7, 0.7, 0.7)
    vc = getattr(getattr(m, "visual", None), "vertex_colors", None)
    if vc is not None and len(vc) == len(m.vertices):
      color = np.asarray(vc)[:, :3] / 255.0
    return Mesh(np.asarray(m.vertices), np.asarray(m.faces), color)
  if isinstance(m, (tuple, list)) and len(m) in (2, 3):
    return Mesh(*m)
  raise RenderError(f"cannot render {type(m).__name__}: expected Mesh, (vertices, faces[, color]) or a trimesh.")


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
  """Area-weighted smooth vertex normals (zero for isolated vertices)."""
  tri = vertices[faces]
  fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
  # bincount is ~10x faster than np.add.at for this scatter-add.
  idx = faces.reshape(-1)
  w = np.repeat(fn, 3, axis=0)
  vn = np.stack([np.bincount(idx, weights=w[:, c], minlength=len(vertices)) for c in range(3)], -1)
  norm = np.linalg.norm(vn, axis=1, keepdims=True)
  return vn / np.maximum(norm, 1e-12)


def build_scene(meshes: Sequence, normals: bool = True) -> Scene:
  """Validate and concatenate meshes; instance ids follow list order from 1.

  ``normals=False`` leaves the normals zero (only shading reads them; they
  are a good part of the cost of a mask-only render of a large mesh).
  """
  meshes = [as_mesh(m) for m in meshes]
  if len(meshes) > MAX_INSTANCES:
    raise RenderError(f"{len(meshes)} meshes given; at most {MAX_INSTANCES} instances fit in uint8 ids.")
  vs, ns, cs, ids, fs, fids = [], [], [], [], [], []
  offset = 0
  for k, m in enumerate(meshes, start=1):
    v = np.asarray(m.vertices, np.float64)
    f = np.asarray(m.faces, np.int64)
    if v.ndim != 2 or v.shape[1] != 3:
      raise RenderError(f"mesh {k}: vertices have shape {v.shape}, expected (V, 3).")
    if f.ndim != 2 or f.shape[1] != 3 or (f.size and (f.min() < 0 or f.max() >= len(v))):
      raise RenderError(f"mesh {k}: faces must be (F, 3) indices into {len(v)} vertices.")
    if not np.all(np.isfinite(v)):
      raise RenderError(f"mesh {k}: vertices contain NaN or inf.")
    c = np.asarray(m.color, np.float64)
    if c.ndim == 1:
      c = np.broadcast_to(c[:3], (len(v), 3))
    if c.shape != (len(v), 3):
      raise RenderError(f"mesh {k}: color has shape {c.shape}; expected (3,) or ({len(v)}, 3).")
    if c.max(initial=0) > 1.0 + 1e-6:  # uint8-style colours.
      c = c / 255.0
    vs.append(v)
    ns.append(vertex_normals(v, f) if normals else np.zeros_like(v))
    cs.append(c)
    ids.append(np.full(len(v), k))
    fs.append(f + offset)
    fids.append(np.full(len(f), k))
    offset += len(v)
  if not vs:
    z3 = np.zeros((0, 3))
    return Scene(z3.astype(np.float32), z3.astype(np.float32), z3.astype(np.float32), np.zeros(0, np.float32),
                 np.zeros((0, 3), np.int32), np.zeros(0, np.uint8))
  return Scene(np.concatenate(vs).astype(np.float32), np.concatenate(ns).astype(np.float32),
               np.concatenate(cs).astype(np.float32), np.concatenate(ids).astype(np.float32),
               np.concatenate(fs).astype(np.int32), np.concatenate(fids).astype(np.uint8))


def shade(colors: np.ndarray, normals: np.ndarray, positions: np.ndarray,
          light: Light = DEFAULT_LIGHT) -> np.ndarray:
  """Shaded colours [..., 3] in [0, 1] (the ``Light`` model; gl.py's shader is the same).

  Args:
    colors: surface colours [..., 3] in [0, 1].
    normals: interpolated (unnormalised) normals [..., 3].
    positions: the surface points [..., 3] in camera coordinates (for the
      view vector: two-sidedness and the highlight).
    light: the light.
  """
  n = normals / np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)
  view = -positions / np.maximum(np.linalg.norm(positions, axis=-1, keepdims=True), 1e-12)
  # Two-sided: back faces of open meshes (seen through holes) shade like front faces.
  n = np.where(np.sum(n * view, -1, keepdims=True) < 0, -n, n)
  ldir = np.asarray(light.direction)
  nl = n @ ldir
  lam = np.abs(nl) if light.symmetric else np.maximum(nl, 0.0)
  out = colors * (light.ambient + light.diffuse * lam)[..., None]
  if light.specular > 0:  # Skipped at 0, so the default light costs what it did before highlights existed.
    half = ldir + view
    half /= np.maximum(np.linalg.norm(half, axis=-1, keepdims=True), 1e-12)
    out = out + light.specular * np.maximum(np.sum(n * half, -1), 0.0)[..., None] ** light.shininess
  return np.clip(out, 0.0, 1.0)


def background_array(background, camera: Camera) -> np.ndarray:
  """A float32 [H, W, 3] background in [0, 1] from None (black), a colour, or an image."""
  h, w = camera.height, camera.width
  if background is None:
    return np.zeros((h, w, 3), np.float32)
  b = np.asarray(background)
  scale = 255.0 if b.dtype == np.uint8 or b.max(initial=0) > 1.0 else 1.0
  b = b.astype(np.float32) / scale
  if b.ndim == 1:
    return np.broadcast_to(b[:3], (h, w, 3)).astype(np.float32)
  if b.shape[:2] != (h, w):
    raise RenderError(f"background image is {b.shape[1]}x{b.shape[0]} but the camera is {w}x{h}.")
  if b.ndim == 2:
    b = np.repeat(b[..., None], 3, -1)
  return b[..., :3]


def check_camera(camera: Camera) -> None:
  if camera.width <= 0 or camera.height <= 0:
    raise RenderError(f"camera image size {camera.width}x{camera.height} must be positive.")
  if min(camera.focal) <= 0:
    raise RenderError(f"camera focal length {camera.focal} must be positive.")
  if not 0 < camera.near < camera.far:
    raise RenderError(f"camera clip range near={camera.near}, far={camera.far} is invalid.")
