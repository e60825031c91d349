"""Object registry, procedural library, user-mesh loading and surface sampling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import trimesh

from scorehoi_jax.geometry import farthest_point_sampling, repose_samples, sample_surface, sdf_lookup
from scorehoi_jax.objects import (
    CATEGORIES,
    ObjectError,
    ObjectGeometry,
    build_procedural,
    get_object,
    list_objects,
    load_object,
    make_template,
    object_sdf,
    stack_geometries,
)

BEHAVE_OBJECTS = ["backpack", "basketball", "boxlarge", "boxlong", "boxmedium", "boxsmall", "boxtiny", "chairblack",
                  "chairwood", "keyboard", "monitor", "plasticcontainer", "stool", "suitcase", "tablesmall",
                  "tablesquare", "toolbox", "trashbin", "yogaball", "yogamat"]


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
  monkeypatch.setenv("SCOREHOI_CACHE", str(tmp_path / "cache"))


# ------------------------------------------------------------------------------------------------
# Procedural library.
# ------------------------------------------------------------------------------------------------


def test_library_covers_behave_categories():
  assert sorted(CATEGORIES) == BEHAVE_OBJECTS
  assert set(BEHAVE_OBJECTS) <= set(list_objects())


@pytest.mark.parametrize("name", BEHAVE_OBJECTS)
def test_procedural_objects_are_in_canonical_frame_with_plausible_size(name):
  mesh, parts = build_procedural(name)
  lo, hi = mesh.bounds
  np.testing.assert_allclose((lo + hi)[[0, 2]] / 2, 0.0, atol=1e-9)  # Centred in x/z.
  if CATEGORIES[name]:
    assert abs(lo[1]) < 1e-9  # Resting on the floor y = 0.
  else:
    assert abs(lo[1] + hi[1]) < 1e-9
  ext = hi - lo
  assert 0.02 < ext.max() < 1.3 and ext.min() > 0.01, ext  # Everyday, hand-manipulable sizes.
  assert all(p.is_watertight for p in parts)
  assert sum(len(p.faces) for p in parts) == len(mesh.faces)


def test_seeded_instances_vary_reproducibly():
  a1, _ = build_procedural("tablesquare", seed=1)
  a2, _ = build_procedural("tablesquare", seed=1)
  b, _ = build_procedural("tablesquare", seed=2)
  nominal, _ = build_procedural("tablesquare")
  np.testing.assert_array_equal(a1.vertices, a2.vertices)
  assert not np.allclose(a1.extents, b.extents)
  assert np.all(np.abs(a1.extents / nominal.extents - 1) < 0.13)


def test_chair_template_sdf_and_geometry():
  chair = get_object("chairwood", sdf_resolution=24)
  assert chair.category == "chairwood" and chair.template.shape == (64, 3)
  # Template points lie on the mesh surface and are spread out.
  _, d, _ = trimesh.proximity.closest_point(chair.mesh, chair.template)
  assert d.max() < 1e-4
  gaps = np.linalg.norm(chair.template[:, None] - chair.template[None], axis=-1) + np.eye(64)
  assert gaps.min() > 0.02
  # Surface normals point outward: a small step along them leaves the object.
  out = chair.surface_points + 0.01 * chair.surface_normals
  assert np.mean(chair.mesh.contains(out[:300])) < 0.05
  geom = chair.geometry()
  seat_y = chair.mesh.bounds[1][1] * 0.5  # Seat is at mid-height of a chair.
  assert float(object_sdf(geom, jnp.array([0.0, 1.5, 0.0]))) > 0.4  # Far above.
  assert float(object_sdf(geom, jnp.array([0.0, seat_y - 0.015, 0.0]))) < 0.0  # Inside the seat board.
  # Memoised, and the JAX side is a pytree that jit accepts.
  assert get_object("chairwood", sdf_resolution=24) is chair
  f = jax.jit(lambda g, p: object_sdf(g, p))
  np.testing.assert_allclose(f(geom, jnp.zeros((2, 3))), object_sdf(geom, jnp.zeros((2, 3))), atol=1e-6)


def test_stacked_geometries_match_single_lookups():
  box = get_object("boxsmall", sdf_resolution=12).geometry()
  ball = get_object("basketball", sdf_resolution=12).geometry()
  batch = stack_geometries([box, ball])
  assert batch.template.shape == (2, 64, 3) and batch.batch_shape == (2,)
  p = jnp.asarray(np.random.default_rng(0).uniform(-0.2, 0.2, (2, 7, 3)), jnp.float32)
  got = object_sdf(batch, p)
  np.testing.assert_allclose(got[0], sdf_lookup(box.sdf, p[0]), atol=1e-6)
  np.testing.assert_allclose(got[1], sdf_lookup(ball.sdf, p[1]), atol=1e-6)
  with pytest.raises(ValueError, match="sdf_resolution"):
    stack_geometries([box, get_object("basketball", sdf_resolution=10).geometry()])
  assert isinstance(jax.tree_util.tree_map(lambda x: x, batch), ObjectGeometry)


def test_fit_points_outline_the_surface_evenly():
  """The silhouette fit's object points (ObjectGeometry.surface): surface samples spread over the whole
  object, every surface sample nearer one of them than with as many random samples."""
  from scipy.spatial import cKDTree
  chair = get_object("chairwood", sdf_resolution=24)
  pts = chair.fit_points
  assert pts.shape == (512, 3) and len(np.unique(pts, axis=0)) == 512
  _, d, _ = trimesh.proximity.closest_point(chair.mesh, pts)
  assert d.max() < 1e-4
  reach = lambda subset: cKDTree(subset).query(chair.surface_points)[0].max()  # Covering radius.
  assert reach(pts) < 0.7 * reach(chair.surface_points[:512])
  np.testing.assert_array_equal(np.asarray(chair.geometry().surface), pts)
  with pytest.raises(ValueError, match="surface"):  # Objects with and without fit points do not mix.
    geom = chair.geometry()
    stack_geometries([geom, ObjectGeometry(template=geom.template, sdf=geom.sdf)])


def test_unknown_name_lists_known_objects():
  with pytest.raises(KeyError, match="chairwood"):
    get_object("chair_that_does_not_exist")
  with pytest.raises(ObjectError, match="known objects: .*yogamat"):
    load_object("sofa")


# ------------------------------------------------------------------------------------------------
# User meshes.
# ------------------------------------------------------------------------------------------------


def test_load_obj_in_centimetres(tmp_path):
  path = tmp_path / "crate.obj"
  trimesh.creation.box(extents=[40.0, 30.0, 20.0]).export(path)
  obj = load_object(str(path), scale="cm", sdf_resolution=12)
  assert obj.name == "crate"
  np.testing.assert_allclose(obj.mesh.extents, [0.4, 0.3, 0.2], atol=1e-9)
  # Exact -0.1 at the centre up to trilinear smoothing of the box SDF's ridge (voxel 2.7 cm).
  assert float(sdf_lookup(obj.sdf, jnp.zeros(3))) == pytest.approx(-0.1, abs=0.02)


def test_load_open_ply_gets_a_signed_sdf(tmp_path):
  box = trimesh.creation.box(extents=[0.4, 0.4, 0.4])
  keep = box.face_normals[:, 1] < 0.9  # Remove the lid: not watertight.
  path = tmp_path / "tub.ply"
  trimesh.Trimesh(box.vertices, box.faces[keep], process=False).export(path)
  obj = load_object(str(path), sdf_resolution=16)
  assert not obj.mesh.is_watertight
  assert float(sdf_lookup(obj.sdf, jnp.array([0.0, -0.1, 0.0]))) < -0.05
  assert float(sdf_lookup(obj.sdf, jnp.array([0.0, 0.0, 0.35]))) > 0.1


def test_load_glb(tmp_path):
  path = tmp_path / "ball.glb"
  trimesh.creation.icosphere(subdivisions=2, radius=0.1).export(path)
  obj = load_object(str(path), sdf_resolution=12)
  assert obj.mesh.extents.max() == pytest.approx(0.2, abs=1e-6)


@pytest.mark.parametrize("kind,match", [
    ("missing", "no such file"),
    ("empty", "empty mesh"),
    ("points", "not a triangle mesh"),
    ("degenerate", "degenerate"),
    ("format", "unsupported mesh format"),
])
def test_bad_meshes_raise_clear_errors(tmp_path, kind, match):
  path = tmp_path / {"format": "mesh.xyz", "points": "cloud.ply"}.get(kind, "bad.obj")
  if kind == "empty":
    path.write_text("# nothing here\n")
  elif kind == "points":
    trimesh.PointCloud(np.random.default_rng(0).normal(size=(20, 3))).export(path)
  elif kind == "degenerate":  # Every face has three collinear vertices.
    path.write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nv 3 0 0\nf 1 2 3\nf 2 3 4\n")
  elif kind == "format":
    path.write_text("0 0 0\n")
  with pytest.raises(ObjectError, match=match) as err:
    load_object(str(path))
  assert path.name in str(err.value)


# ------------------------------------------------------------------------------------------------
# Sampling.
# ------------------------------------------------------------------------------------------------


def test_sampling_is_area_weighted_seeded_and_reposable():
  # Two triangles with areas 1 : 3.
  v = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0], [5, 0, 0], [8, 0, 0], [5, 2, 0]], float)
  f = np.array([[0, 1, 2], [3, 4, 5]])
  s = sample_surface(v, f, 20000, seed=3)
  assert np.mean(s.face_index == 1) == pytest.approx(0.75, abs=0.015)
  np.testing.assert_array_equal(s.points, sample_surface(v, f, 20000, seed=3).points)
  assert np.all(s.barycentric >= 0) and np.allclose(s.barycentric.sum(-1), 1)
  # Uniform within a triangle: the mean is the centroid.
  np.testing.assert_allclose(s.points[s.face_index == 0].mean(0), v[:3].mean(0), atol=0.02)
  # Re-posing the same samples on moved vertices equals moving the samples (affine map).
  a = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 2]])
  moved = np.asarray(repose_samples(jnp.asarray(v @ a.T + 1.0), f, s.face_index, s.barycentric))
  np.testing.assert_allclose(moved, s.points @ a.T + 1.0, atol=1e-4)


def test_farthest_point_sampling_visits_every_cluster():
  """Eight tight, well separated clusters: 8 farthest points take one from each."""
  rng = np.random.default_rng(0)
  centres = np.stack(np.meshgrid(*[[0.0, 1.0]] * 3, indexing="ij"), -1).reshape(-1, 3)
  pts = (centres[:, None] + 0.01 * rng.normal(size=(8, 30, 3))).reshape(-1, 3)
  idx = farthest_point_sampling(pts, 8)
  assert sorted(idx // 30) == list(range(8))
  np.testing.assert_array_equal(idx, farthest_point_sampling(pts, 8))
  with pytest.raises(ValueError):
    farthest_point_sampling(pts[:5], 8)


def test_make_template_is_deterministic():
  mesh = trimesh.creation.capsule(height=0.2, radius=0.05)
  a = make_template("pill", mesh, sdf_resolution=8)
  b = make_template("pill", mesh, sdf_resolution=8)
  np.testing.assert_array_equal(a.template, b.template)
  np.testing.assert_array_equal(a.surface_points, b.surface_points)
