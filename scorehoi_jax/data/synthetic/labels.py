"""Ground-truth labels of a synthetic frame: contacts, floor contacts, crop box.

Definitions (as the field computes contact, notes/contho-notes.md §4):
- human contact: a body vertex is in contact when its distance to the object
  surface is below 5 cm (``CONTACT_THRESHOLD``); given on all vertices and on
  the 431 guidance vertices;
- object contact: a template point (of the 64) is in contact when it is
  within 5 cm of the body surface;
- object-floor contact: a template point within 2 cm of the floor (y = 0).

Distances are exact point-to-triangle distances (geometry/mesh_distance.py;
meshes are subdivided to a few cm, so each point's nearest triangle is among
its k nearest by centroid whenever the distance is near the threshold).
Exact rather than SDF-grid distances, because the grid's voxels (~2 cm) are
too coarse for a 5 cm threshold.
"""

from __future__ import annotations

import numpy as np

from scorehoi_jax.geometry.mesh_distance import mesh_distance

CONTACT_THRESHOLD = 0.05
FLOOR_THRESHOLD = 0.02


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
