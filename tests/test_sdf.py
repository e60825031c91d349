"""Nearest neighbours, Chamfer, SDF grid lookup and SDF grid building.

References: SciPy's cKDTree for distances; the analytic SDFs of a sphere and
a box for lookup and building; trimesh's ray-parity ``contains`` for winding
numbers on a watertight mesh.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

from scorehoi_jax.geometry import SDFGrid, chamfer_distance, grid_points, nearest_distances, sdf_lookup
from scorehoi_jax.objects import sdf_build


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
  monkeypatch.setenv("SCOREHOI_CACHE", str(tmp_path / "cache"))


# ------------------------------------------------------------------------------------------------
# Distances.
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [None, 64, 100])
def test_nearest_distances_match_ckdtree(chunk):
  rng = np.random.default_rng(0)
  a = rng.normal(size=(2, 333, 3)).astype(np.float32)  # 333 is not a multiple of either chunk.
  b = rng.normal(size=(2, 120, 3)).astype(np.float32)
  dist, idx = nearest_distances(jnp.asarray(a), jnp.asarray(b), chunk)
  for i in range(2):
    ref_d, ref_i = cKDTree(b[i]).query(a[i])
    np.testing.assert_allclose(dist[i], ref_d, atol=1e-5)
    np.testing.assert_array_equal(idx[i], ref_i)


def test_chamfer_matches_ckdtree_and_shift_gives_twice_the_shift():
  rng = np.random.default_rng(1)
  a = rng.uniform(size=(400, 3)).astype(np.float32)
  b = rng.uniform(size=(300, 3)).astype(np.float32)
  ref = cKDTree(b).query(a)[0].mean() + cKDTree(a).query(b)[0].mean()
  np.testing.assert_allclose(chamfer_distance(jnp.asarray(a), jnp.asarray(b), chunk=128), ref, rtol=1e-5)
  # A planar grid (spacing 1 cm) shifted by d = 3 mm along its normal: every
  # nearest neighbour is the shifted copy, so CD = 2d exactly.
  g = np.stack(np.meshgrid(np.arange(20), np.arange(20), indexing="ij"), -1).reshape(-1, 2) * 0.01
  plane = np.concatenate([g, np.zeros((len(g), 1))], 1).astype(np.float32)
  shifted = plane + np.array([0, 0, 0.003], np.float32)
  np.testing.assert_allclose(chamfer_distance(jnp.asarray(plane), jnp.asarray(shifted)), 0.006, rtol=1e-3)
  assert float(chamfer_distance(jnp.asarray(plane), jnp.asarray(plane))) < 1e-5


# ------------------------------------------------------------------------------------------------
# Lookup of an analytic sphere grid.
# ------------------------------------------------------------------------------------------------


def _sphere_grid(radius=0.3, half=0.5, res=41):
  lo, hi = -half * np.ones(3), half * np.ones(3)
  pts = np.asarray(grid_points(lo, hi, res))
  return SDFGrid(jnp.asarray(np.linalg.norm(pts, axis=-1) - radius, jnp.float32),
                 jnp.asarray(lo, jnp.float32), jnp.asarray(hi, jnp.float32))


def test_lookup_of_sphere_grid_matches_analytic():
  grid = _sphere_grid()
  rng = np.random.default_rng(2)
  p = rng.uniform(-0.45, 0.45, size=(500, 3)).astype(np.float32)
  got = sdf_lookup(grid, jnp.asarray(p))
  voxel = 1.0 / 40
  # Trilinear interpolation of |p| - r is exact up to the curvature term ~ voxel² / r.
  np.testing.assert_allclose(got, np.linalg.norm(p, axis=-1) - 0.3, atol=voxel ** 2 / 0.05)


def test_lookup_gradient_points_outward():
  grid = _sphere_grid()
  rng = np.random.default_rng(3)
  p = rng.normal(size=(200, 3))
  p = (p / np.linalg.norm(p, axis=-1, keepdims=True) * rng.uniform(0.1, 0.45, (200, 1))).astype(np.float32)
  g = jax.grad(lambda x: jnp.sum(sdf_lookup(grid, x)))(jnp.asarray(p))
  radial = p / np.linalg.norm(p, axis=-1, keepdims=True)
  cos = np.sum(np.asarray(g) * radial, -1) / np.linalg.norm(g, axis=-1)
  assert cos.min() > 0.95


def test_lookup_outside_the_box_adds_distance_to_box():
  grid = _sphere_grid()
  p = np.array([[0.8, 0.0, 0.0], [0.7, 0.9, -0.6], [0.0, -1.5, 0.2]], np.float32)
  clamped = np.clip(p, -0.5, 0.5)
  expected = np.asarray(sdf_lookup(grid, jnp.asarray(clamped))) + np.linalg.norm(p - clamped, axis=-1)
  np.testing.assert_allclose(sdf_lookup(grid, jnp.asarray(p)), expected, atol=1e-5)
  # Upper bound of the true distance, and the gradient still points away from the object.
  assert np.all(np.asarray(sdf_lookup(grid, jnp.asarray(p))) >= np.linalg.norm(p, axis=-1) - 0.3 - 1e-4)
  g = jax.grad(lambda x: jnp.sum(sdf_lookup(grid, x)))(jnp.asarray(p))
  assert np.all(np.sum(np.asarray(g) * p, -1) > 0)


# ------------------------------------------------------------------------------------------------
# Building grids from meshes.
# ------------------------------------------------------------------------------------------------


def _box_sdf(p, half):
  q = np.abs(p) - half
  return np.linalg.norm(np.maximum(q, 0), axis=-1) + np.minimum(q.max(-1), 0)


@pytest.mark.parametrize("backend", sdf_build.available_backends())
def test_built_sphere_and_box_grids_match_analytic(backend):
  res = 24 if backend == "igl" else 12
  sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.2)
  grid = sdf_build.build_sdf_grid(sphere.vertices, sphere.faces, res, margin=0.1, backend=backend)
  pts = np.asarray(grid_points(grid.lo, grid.hi, res)).reshape(-1, 3)
  voxel = float(np.max(np.asarray(grid.hi - grid.lo))) / (res - 1)
  # The icosphere's facets sit at most ~1.2 mm inside the true sphere.
  np.testing.assert_allclose(np.asarray(grid.values).reshape(-1), np.linalg.norm(pts, axis=-1) - 0.2, atol=2e-3)
  half = np.array([0.15, 0.05, 0.1])
  box = trimesh.creation.box(extents=2 * half)
  grid = sdf_build.build_sdf_grid(box.vertices, box.faces, res, backend=backend)
  rng = np.random.default_rng(4)
  q = rng.uniform(np.asarray(grid.lo), np.asarray(grid.hi), size=(300, 3)).astype(np.float32)
  np.testing.assert_allclose(sdf_lookup(grid, jnp.asarray(q)), _box_sdf(q, half), atol=voxel)
  assert grid.values.shape == (res, res, res)
  assert float(sdf_lookup(grid, jnp.zeros(3))) == pytest.approx(-0.05, abs=voxel / 2)


def test_sign_is_robust_for_open_mesh():
  """A box with its top face removed is not watertight; the winding number still signs it."""
  box = trimesh.creation.box(extents=[0.4, 0.4, 0.4])
  top = box.face_normals[:, 1] > 0.9
  open_box = trimesh.Trimesh(box.vertices, box.faces[~top], process=False)
  assert not open_box.is_watertight
  for backend in sdf_build.available_backends():
    sd = sdf_build.signed_distance(np.array([[0.0, 0.0, 0.0], [0.0, -0.15, 0.05], [0.0, 0.5, 0.0]]),
                                   open_box.vertices, open_box.faces, backend)
    assert sd[0] < -0.15 and sd[1] < -0.04 and sd[2] > 0.25, (backend, sd)


def test_numpy_winding_numbers_agree_with_ray_parity_on_watertight_mesh():
  mesh = trimesh.creation.capsule(height=0.3, radius=0.1, count=[12, 12])
  rng = np.random.default_rng(5)
  p = rng.uniform(-0.3, 0.3, size=(400, 3))
  inside = sdf_build.winding_numbers(p, mesh.vertices, mesh.faces) > 0.5
  np.testing.assert_array_equal(inside, mesh.contains(p))


def test_union_of_parts_is_min_and_grid_is_cached(tmp_path):
  a = trimesh.creation.box(extents=[0.2, 0.2, 0.2])
  b = trimesh.creation.box(extents=[0.2, 0.2, 0.2], transform=trimesh.transformations.translation_matrix([0.15, 0, 0]))
  whole = trimesh.util.concatenate([a, b])
  kw = dict(parts=[(a.vertices, a.faces), (b.vertices, b.faces)], cache_root=str(tmp_path))
  grid = sdf_build.build_sdf_grid(whole.vertices, whole.faces, 16, **kw)
  # On a face of box a buried inside box b (x = 0.1), the distance to the
  # concatenated mesh is 0; the union's SDF is b's depth there, -0.05.
  assert float(sdf_lookup(grid, jnp.array([0.1, 0.0, 0.0]))) < -0.035
  files = [f for _, _, fs in os.walk(tmp_path) for f in fs]
  assert len(files) == 1 and files[0].endswith(".npz")
  again = sdf_build.build_sdf_grid(whole.vertices, whole.faces, 16, **kw)
  np.testing.assert_array_equal(grid.values, again.values)
  # The cache is keyed by the mesh: a moved part gives a new file.
  b2 = b.copy()
  b2.apply_translation([0.01, 0, 0])
  sdf_build.build_sdf_grid(whole.vertices, whole.faces, 16, parts=[(a.vertices, a.faces), (b2.vertices, b2.faces)],
                           cache_root=str(tmp_path))
  assert len([f for _, _, fs in os.walk(tmp_path) for f in fs]) == 2
