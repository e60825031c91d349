"""Exact unsigned distances from points to triangle meshes (NumPy, for labels and evaluation).

``point_triangle_distance`` is Ericson's closest point on a triangle by Voronoi
regions, vectorised over (point, triangle) pairs. ``mesh_distance`` takes each
point's k nearest triangles by centroid as candidates (exact whenever the
mesh's triangles are small next to the distances that matter, e.g. meshes
subdivided to a few cm against a 5 cm contact threshold) and skips points
farther than ``max_distance`` from every triangle early.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

_K_FACES = 12


def point_triangle_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
  """Exact Euclidean distance from points p [N, 3] to triangles (a, b, c) [N, 3] each.

  Ericson's closest-point-on-triangle by Voronoi regions, vectorised.
  """
  ab, ac, ap = b - a, c - a, p - a
  d1, d2 = np.sum(ab * ap, 1), np.sum(ac * ap, 1)
  bp = p - b
  d3, d4 = np.sum(ab * bp, 1), np.sum(ac * bp, 1)
  cp = p - c
  d5, d6 = np.sum(ab * cp, 1), np.sum(ac * cp, 1)
  va = d3 * d6 - d5 * d4
  vb = d5 * d2 - d1 * d6
  vc = d1 * d4 - d3 * d2
  denom = np.where(np.abs(va + vb + vc) < 1e-20, 1e-20, va + vb + vc)
  v = vb / denom
  w = vc / denom
  closest = a + ab * v[:, None] + ac * w[:, None]  # Interior by default.
  div = lambda x, y: x / np.where(np.abs(y) < 1e-20, 1e-20, y)
  # Edge regions (then vertex regions override them).
  m = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)
  t = div(d4 - d3, (d4 - d3) + (d5 - d6))
  closest[m] = (b + (c - b) * t[:, None])[m]
  m = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
  t = div(d2, d2 - d6)
  closest[m] = (a + ac * t[:, None])[m]
  m = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
  t = div(d1, d1 - d3)
  closest[m] = (a + ab * t[:, None])[m]
  closest[(d1 <= 0) & (d2 <= 0)] = a[(d1 <= 0) & (d2 <= 0)]
  closest[(d3 >= 0) & (d4 <= d3)] = b[(d3 >= 0) & (d4 <= d3)]
  closest[(d6 >= 0) & (d5 <= d6)] = c[(d6 >= 0) & (d5 <= d6)]
  return np.linalg.norm(p - closest, axis=1)


def mesh_distance(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray,
                  max_distance: float = 0.1) -> np.ndarray:
  """Unsigned distance [N] from points to a triangle mesh; np.inf beyond ``max_distance``.

  Beyond max_distance + the largest triangle radius nothing is computed.
  """
  points = np.asarray(points, np.float64)
  tri = np.asarray(vertices, np.float64)[np.asarray(faces)]
  centroids = tri.mean(1)
  radius = np.max(np.linalg.norm(tri - centroids[:, None], axis=2))
  k = min(_K_FACES, len(centroids))
  dist_c, idx = cKDTree(centroids).query(points, k=k, distance_upper_bound=max_distance + radius)
  dist_c, idx = dist_c.reshape(len(points), k), idx.reshape(len(points), k)
  out = np.full(len(points), np.inf)
  near = np.isfinite(dist_c[:, 0])
  if not near.any():
    return out
  rows = np.nonzero(near)[0]
  cand = idx[rows]  # [M, k]; missing neighbours are == len(centroids).
  valid = cand < len(centroids)
  cand = np.where(valid, cand, cand[:, :1])
  p = np.repeat(points[rows], k, axis=0)
  t = tri[cand.reshape(-1)]
  d = point_triangle_distance(p, t[:, 0], t[:, 1], t[:, 2]).reshape(len(rows), k)
  d = np.where(valid, d, np.inf).min(1)
  out[rows] = np.where(d <= max_distance, d, np.inf)
  return out
