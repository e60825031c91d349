"""geometry/mesh_distance.py against trimesh's closest points (an independent implementation)."""

import numpy as np
import trimesh

from scorehoi_jax.geometry.mesh_distance import mesh_distance, point_triangle_distance


def test_point_triangle_distance_matches_trimesh():
  rng = np.random.default_rng(0)
  tri = rng.normal(size=(500, 3, 3))
  p = rng.normal(size=(500, 3)) * 2.0  # Every Voronoi region (vertices, edges, face) gets hits.
  closest = trimesh.triangles.closest_point(tri, p)
  np.testing.assert_allclose(point_triangle_distance(p, tri[:, 0], tri[:, 1], tri[:, 2]),
                             np.linalg.norm(p - closest, axis=1), atol=1e-9)


def test_mesh_distance_matches_trimesh_within_range():
  mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
  rng = np.random.default_rng(1)
  pts = rng.uniform(-0.45, 0.45, size=(400, 3))
  ref = np.abs(trimesh.proximity.signed_distance(mesh, pts))
  got = mesh_distance(pts, mesh.vertices, mesh.faces, max_distance=0.1)
  near = ref <= 0.1 - 1e-6
  np.testing.assert_allclose(got[near], ref[near], atol=1e-7)
  assert np.all(np.isinf(got[ref > 0.1 + 1e-6]))
