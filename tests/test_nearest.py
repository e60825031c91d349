"""Clustered exact nearest-neighbour search (evaluation/nearest.py) against SciPy KD-trees on real meshes."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from scorehoi_jax.evaluation import nearest as N
from scorehoi_jax.objects import get_object
from scorehoi_jax.reconstruct import make_bodies


@pytest.fixture(scope="module")
def meshes():
  body = np.asarray(make_bodies().full.v_template, np.float64)
  obj = get_object("boxmedium")
  return body, np.asarray(obj.vertices, np.float64)


def _place(obj, rot, trans):
  return obj @ Rotation.from_rotvec(rot).as_matrix().T + np.asarray(trans)


def test_clusters_cover_every_point_once(meshes):
  body, _ = meshes
  c = N.clusters(body, 32, num_clusters=N.num_clusters_for(len(body), 32) + 3)
  assert c.index.shape == (N.num_clusters_for(len(body), 32) + 3, 32)
  counted = np.bincount(c.index[c.first], minlength=len(body))
  np.testing.assert_array_equal(counted, 1)
  assert c.num_points == len(body)


@pytest.mark.parametrize("ks", [(8, 32), (1,)])  # (1,): the first pass proves little, the fallback decides.
def test_nearest_matches_kdtree(meshes, ks):
  body, obj = meshes
  rng = np.random.default_rng(0)
  refs = np.stack([_place(obj, rng.normal(0, 1, 3), [0.1 * i, 0.0, 0.2]) for i in range(3)])
  queries = body[rng.choice(len(body), 3000, replace=False)]
  qc = N.clusters(queries, 16)
  rc = N.clusters(obj, 16)
  d = N.nearest(jnp.asarray(np.broadcast_to(queries, (3,) + queries.shape), jnp.float32), qc.index,
                jnp.asarray(refs, jnp.float32), rc.index, ks=ks)
  mean = np.asarray(N.cluster_mean(d, qc.first))
  for i in range(3):
    ref = cKDTree(refs[i]).query(queries)[0]
    np.testing.assert_allclose(mean[i], ref.mean(), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(d[i])[qc.first], ref[qc.index[qc.first]], atol=2e-6)


@pytest.mark.parametrize("ks,near", [((8, 32), 64), ((1,), 2)])
def test_within_matches_kdtree(meshes, ks, near):
  body, obj = meshes
  # An object held against the belly and one in the hand region: contacts on a few body clusters.
  refs = np.stack([_place(obj, [0.3, 0.2, 0.1], [0.0, 0.05, 0.17]), _place(obj, [1.0, 0.0, 0.0], [0.7, 0.2, 0.0])])
  hc = N.clusters(body, 32)
  oc = N.clusters(obj, 32)
  hit = np.asarray(N.within(jnp.asarray(np.broadcast_to(body, (2,) + body.shape), jnp.float32), hc.index,
                            jnp.asarray(refs, jnp.float32), oc.index, 0.05, ks=ks, near=near))
  for i in range(2):
    ref = cKDTree(refs[i]).query(body)[0] < 0.05
    assert ref.sum() > 20
    np.testing.assert_array_equal(hit[i], ref)
