"""A small exact z-buffer rasteriser in NumPy (the generator's built-in renderer).

Synthetic frames need an image, exact instance masks and depth for a few
triangle meshes at 128–512 px. This rasteriser has no system dependencies and
is exact at pixel centres (a pixel belongs to the nearest triangle whose
interior contains its centre; pixel centres at integer coordinates, OpenCV
camera axes), which is what the mask/re-projection tests need. It works by
binning: every triangle is expanded to the pixel centres of its bounding box,
inside-tests and perspective-correct depths are vectorised, and the nearest
candidate per pixel wins. Triangles are small at these resolutions (the
meshes are subdivided to a few cm), so the candidate count stays near the
pixel count times the depth complexity.

Shading (Lambert + ambient + a little specular, smooth vertex normals,
per-vertex colours) is done per pixel from the interpolated attributes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

_NEAR = 0.05  # Triangles with a vertex closer than this to the camera plane are dropped.


class Fragments(NamedTuple):
  face: np.ndarray  # [H, W] int64 index into the concatenated faces; -1 for background.
  bary: np.ndarray  # [H, W, 3] perspective-correct barycentrics.
  depth: np.ndarray  # [H, W] camera z in metres; 0 for background.


def rasterize(verts_cam: np.ndarray, faces: np.ndarray, focal, princpt, width: int, height: int) -> Fragments:
  """Nearest-triangle fragments of a mesh given in camera coordinates."""
  v = np.asarray(verts_cam, np.float64)
  f = np.asarray(faces, np.int64)
  keep = np.all(v[f][..., 2] > _NEAR, axis=1)
  fid = np.nonzero(keep)[0]
  tri = v[f[fid]]  # [T, 3, 3]
  z = tri[..., 2]
  uv = tri[..., :2] / z[..., None] * np.asarray(focal, np.float64) + np.asarray(princpt, np.float64)
  x0 = np.clip(np.ceil(uv[..., 0].min(1)), 0, width)
  x1 = np.clip(np.floor(uv[..., 0].max(1)), -1, width - 1)
  y0 = np.clip(np.ceil(uv[..., 1].min(1)), 0, height)
  y1 = np.clip(np.floor(uv[..., 1].max(1)), -1, height - 1)
  nx = np.maximum(x1 - x0 + 1, 0).astype(np.int64)
  ny = np.maximum(y1 - y0 + 1, 0).astype(np.int64)
  count = nx * ny
  ok = count > 0
  fid, uv, z, x0, y0, nx, count = fid[ok], uv[ok], z[ok], x0[ok], y0[ok], nx[ok], count[ok]
  face = np.full((height, width), -1, np.int64)
  bary = np.zeros((height, width, 3), np.float32)
  depth = np.zeros((height, width), np.float32)
  if len(fid) == 0:
    return Fragments(face, bary, depth)
  # Expand each triangle to the pixel centres of its bounding box.
  owner = np.repeat(np.arange(len(fid)), count)
  local = np.arange(owner.size) - np.repeat(np.cumsum(count) - count, count)
  px = x0[owner] + local % nx[owner]
  py = y0[owner] + local // nx[owner]
  a, b, c = uv[owner, 0], uv[owner, 1], uv[owner, 2]
  area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
  w0 = (b[:, 0] - px) * (c[:, 1] - py) - (b[:, 1] - py) * (c[:, 0] - px)
  w1 = (c[:, 0] - px) * (a[:, 1] - py) - (c[:, 1] - py) * (a[:, 0] - px)
  w2 = (a[:, 0] - px) * (b[:, 1] - py) - (a[:, 1] - py) * (b[:, 0] - px)
  safe = np.where(np.abs(area) < 1e-12, 1.0, area)
  l0, l1, l2 = w0 / safe, w1 / safe, w2 / safe
  inside = (l0 >= 0) & (l1 >= 0) & (l2 >= 0) & (np.abs(area) >= 1e-12)
  owner, px, py, l0, l1, l2 = owner[inside], px[inside], py[inside], l0[inside], l1[inside], l2[inside]
  zt = z[owner]
  inv_z = l0 / zt[:, 0] + l1 / zt[:, 1] + l2 / zt[:, 2]  # 1/z is affine in screen space.
  zz = 1.0 / inv_z
  pix = py.astype(np.int64) * width + px.astype(np.int64)
  order = np.lexsort((zz, pix))  # By pixel, nearest first.
  first = order[np.r_[True, pix[order][1:] != pix[order][:-1]]]
  p = pix[first]
  face.reshape(-1)[p] = fid[owner[first]]
  persp = np.stack([l0[first] / zt[first, 0], l1[first] / zt[first, 1], l2[first] / zt[first, 2]], -1)
  persp *= zz[first, None]
  bary.reshape(-1, 3)[p] = persp
  depth.reshape(-1)[p] = zz[first]
  return Fragments(face, bary, depth)


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
  tri = verts[faces]
  fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # Area-weighted.
  vn = np.zeros_like(verts)
  for k in range(3):
    np.add.at(vn, faces[:, k], fn)
  return vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)


def shade(frags: Fragments, verts_cam: np.ndarray, faces: np.ndarray, colors: np.ndarray,
          light_dir: np.ndarray, ambient: float, diffuse: float, specular: float = 0.15) -> np.ndarray:
  """Float RGB [H, W, 3] in [0, 1] of the covered pixels (0 elsewhere).

  ``light_dir`` points from the scene towards the light, in camera axes.
  Normals are flipped to face the camera, so open or inward-facing surfaces
  still shade sensibly.
  """
  h, w = frags.face.shape
  out = np.zeros((h, w, 3), np.float32)
  cov = frags.face >= 0
  if not cov.any():
    return out
  fi = faces[frags.face[cov]]  # [P, 3]
  b = frags.bary[cov][..., None]  # [P, 3, 1]
  vn = vertex_normals(verts_cam, faces)
  n = np.sum(vn[fi] * b, 1)
  n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
  pos = np.sum(verts_cam[fi] * b, 1)
  view = -pos / np.maximum(np.linalg.norm(pos, axis=1, keepdims=True), 1e-12)
  n = np.where(np.sum(n * view, 1, keepdims=True) < 0, -n, n)
  col = np.sum(colors[fi] * b, 1)
  lam = np.clip(n @ light_dir, 0.0, 1.0)[:, None]
  half = light_dir[None] + view
  half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-12)
  spec = np.clip(np.sum(n * half, 1), 0, 1)[:, None] ** 24
  out[cov] = np.clip(col * (ambient + diffuse * lam) + specular * spec, 0.0, 1.0)
  return out
