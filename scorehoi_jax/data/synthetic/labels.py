"""Ground-truth labels of a synthetic frame: contacts, floor contacts, crop box.

Definitions (as the field computes contact, notes/contho-notes.md §4):
- human contact: a body vertex is in contact when its distance to the object
  surface is below 5 cm (``CONTACT_THRESHOLD``); given on all vertices and on
  the 431 guidance vertices;
- object contact: a template point (of the 64) is in contact when it is
  within 5 cm of the body surface;
- object-floor contact: a template point within 2 cm of the floor (y = 0).

Distances are exact point-to-triangle distances: the candidate triangles of
each query point are its k nearest by centroid (meshes are subdivided to a few
cm, so the nearest triangle is among them whenever the distance is near the
threshold), and points farther than the threshold from every centroid are
skipped early. Exact rather than SDF-grid distances, because the grid's
voxels (~2 cm) are too coarse for a 5 cm threshold.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

CONTACT_THRESHOLD = 0.05
FLOOR_THRESHOLD = 0.02
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


def contact_labels(body_verts: np.ndarray, body_faces: np.ndarray, obj_verts: np.ndarray,
                   obj_faces: np.ndarray, template_world: np.ndarray, guidance_idx: np.ndarray,
                   human_d: np.ndarray | None = None) -> dict:
  """All contact labels of one frame; every input is in the same (world) frame.

  ``human_d`` may pass body-to-object distances already computed with
  ``mesh_distance(body_verts, obj_verts, obj_faces, >= CONTACT_THRESHOLD)``.
  """
  if human_d is None:
    human_d = mesh_distance(body_verts, obj_verts, obj_faces, 2 * CONTACT_THRESHOLD)
  full = (human_d < CONTACT_THRESHOLD).astype(np.uint8)
  obj_d = mesh_distance(template_world, body_verts, body_faces, 2 * CONTACT_THRESHOLD)
  return dict(
      human_contact_full=full,
      human_contact=full[guidance_idx].astype(np.float32),
      object_contact=(obj_d < CONTACT_THRESHOLD).astype(np.float32),
      object_floor_contact=(template_world[:, 1] < FLOOR_THRESHOLD).astype(np.float32),
      human_object_distance=human_d.astype(np.float32),
  )


def crop_box(human_mask: np.ndarray, object_mask: np.ndarray, fallback_uv: np.ndarray) -> np.ndarray:
  """[x0, y0, x1, y1] (pixels) of the union of the masks; projected vertices if both are empty."""
  union = (human_mask > 0) | (object_mask > 0)
  if union.any():
    ys, xs = np.nonzero(union)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
  lo, hi = fallback_uv.min(0), fallback_uv.max(0)
  return np.array([lo[0], lo[1], hi[0], hi[1]], np.float32)
