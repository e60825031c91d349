"""The field's metrics against an independent re-implementation and hand-built cases.

The reference for the Chamfer protocol is written here from the protocol's
description (NumPy SVD Umeyama, ``trimesh.sample.sample_surface``, SciPy
KD-trees); values agree up to surface-sampling noise.
"""

import jax.numpy as jnp
import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from scorehoi_jax.evaluation import (
    ContactPRF,
    chamfer_after_procrustes,
    contact_from_reconstruction,
    contact_precision_recall,
    fixed_samples,
    fscore,
    make_batched_chamfer,
    reconstruction_metrics,
)
from scorehoi_jax.geometry.distances import nearest_distances


def _reference_cd(pred_h, pred_o, gt_h, gt_o, faces_h, faces_o, n=6000):
  """CONTHO protocol, independently: Umeyama on all vertices, trimesh samples, KD-tree."""
  x = np.concatenate([pred_h, pred_o])
  y = np.concatenate([gt_h, gt_o])
  mx, my = x.mean(0), y.mean(0)
  xc, yc = x - mx, y - my
  u, s, vt = np.linalg.svd(yc.T @ xc / len(x))
  d = np.diag([1, 1, np.sign(np.linalg.det(u @ vt))])
  r = u @ d @ vt
  scale = np.trace(np.diag(s) @ d) / np.mean(np.sum(xc ** 2, 1))
  al = scale * x @ r.T + (my - scale * r @ mx)
  out = []
  np.random.seed(123)
  for pv, gv, f in ((al[:len(pred_h)], gt_h, faces_h), (al[len(pred_h):], gt_o, faces_o)):
    ps, _ = trimesh.sample.sample_surface(trimesh.Trimesh(pv, f, process=False), n)
    gs, _ = trimesh.sample.sample_surface(trimesh.Trimesh(gv, f, process=False), n)
    out.append(100 * (cKDTree(ps).query(gs)[0].mean() + cKDTree(gs).query(ps)[0].mean()))
  return tuple(out)


@pytest.fixture(scope="module")
def scene():
  """A capsule 'human' next to a box 'object' (metres)."""
  human = trimesh.creation.capsule(height=1.2, radius=0.15, count=[16, 16])
  obj = trimesh.creation.box(extents=[0.4, 0.3, 0.3], transform=trimesh.transformations.translation_matrix([0.4, -0.3, 0]))
  obj = obj.subdivide().subdivide()
  return human, obj


def _similarity(points, seed):
  rot = Rotation.random(random_state=seed).as_matrix()
  return 1.3 * points @ rot.T + np.array([0.5, -1.0, 2.0])


def test_chamfer_is_invariant_to_a_global_similarity(scene):
  human, obj = scene
  hv, ov = human.vertices, obj.vertices
  self_h, self_o = chamfer_after_procrustes(hv, ov, hv, ov, human.faces, obj.faces)
  moved_h, moved_o = chamfer_after_procrustes(_similarity(hv, 0), _similarity(ov, 0), hv, ov, human.faces, obj.faces)
  # Only sampling noise is left (~1-1.5 cm for 6000 samples on these 0.7-1.2 m² surfaces),
  # the same as for a mesh against itself; unaligned, the distance would be metres.
  assert self_h < 2.0 and self_o < 1.5
  np.testing.assert_allclose([moved_h, moved_o], [self_h, self_o], rtol=0.1)


def test_chamfer_matches_independent_reference(scene):
  human, obj = scene
  rng = np.random.default_rng(0)
  gt_h, gt_o = human.vertices, obj.vertices
  pred_h = gt_h + 0.01 * rng.normal(size=gt_h.shape)
  pred_o = gt_o @ Rotation.from_euler("y", 25, degrees=True).as_matrix().T + np.array([0.1, 0.05, 0.0])
  ours = chamfer_after_procrustes(_similarity(pred_h, 1), _similarity(pred_o, 1), gt_h, gt_o, human.faces, obj.faces)
  ref = _reference_cd(pred_h, pred_o, gt_h, gt_o, human.faces, obj.faces)
  assert ours[1] > 5.0  # The misplaced object dominates.
  np.testing.assert_allclose(ours, ref, rtol=0.08, atol=0.15)


def test_batched_chamfer_matches_reference(scene):
  human, obj = scene
  rng = np.random.default_rng(1)
  gt_h = np.stack([human.vertices, human.vertices * 1.05])
  gt_o = np.stack([obj.vertices, obj.vertices + 0.02])
  pred_h = gt_h + 0.01 * rng.normal(size=gt_h.shape)
  pred_o = gt_o + np.array([0.0, 0.08, 0.03])
  fn = make_batched_chamfer(fixed_samples(human.vertices, human.faces), fixed_samples(obj.vertices, obj.faces),
                            chunk=512)
  got = fn(*(jnp.asarray(x, jnp.float32) for x in (pred_h, pred_o, gt_h, gt_o)))
  for b in range(2):
    ref = reconstruction_metrics(pred_h[b], pred_o[b], gt_h[b], gt_o[b], human.faces, obj.faces)
    np.testing.assert_allclose([got["cd_human"][b], got["cd_object"][b]], [ref["cd_human"], ref["cd_object"]],
                               rtol=0.08, atol=0.15)
    np.testing.assert_allclose(got["fscore_object"][b], ref["fscore_object"], atol=0.05)


def test_nearest_distances_match_ckdtree_with_offset():
  rng = np.random.default_rng(2)
  a = rng.normal(size=(2, 700, 3)).astype(np.float32) + 5.0  # Offset: stresses the expansion's cancellation.
  b = rng.normal(size=(2, 300, 3)).astype(np.float32) + 5.0
  got, _ = nearest_distances(jnp.asarray(a), jnp.asarray(b), chunk=256)
  for i in range(2):
    np.testing.assert_allclose(got[i], cKDTree(b[i]).query(a[i])[0], atol=2e-4)


def test_fscore_hand_built():
  g = np.stack(np.meshgrid(np.arange(10), np.arange(10), indexing="ij"), -1).reshape(-1, 2) * 0.05
  pts = np.concatenate([g, np.zeros((100, 1))], 1)
  assert fscore(pts + [0, 0, 0.005], pts) == 1.0  # Every point within 1 cm.
  assert fscore(pts + [0, 0, 0.02], pts) == 0.0  # None within 1 cm (grid spacing 5 cm).
  # Half of the predicted points are off: P = 0.5, R = 1 (every gt point has its twin) -> F = 2/3.
  pred = np.concatenate([pts, pts + [0, 0, 0.5]])
  assert fscore(pred, pts) == pytest.approx(2 / 3)


def test_contact_from_reconstruction_vertex_and_surface():
  obj_v = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
  obj_f = np.array([[0, 1, 2]])
  human = np.array([[0.0, 0.0, 0.01], [0.049, 0.0, 0.0], [0.051, 0.0, 0.0], [0.0, 0.0, 0.2],
                    [0.3, 0.3, 0.03]])  # Last: 3 cm above the triangle, far from its vertices.
  np.testing.assert_array_equal(contact_from_reconstruction(human, obj_v), [True, True, False, False, False])
  np.testing.assert_array_equal(contact_from_reconstruction(human, obj_v, obj_faces=obj_f, to_surface=True),
                                [True, True, True, False, True])
  # Batched and chunked agrees with per-sample.
  batch = np.stack([human, human + [0, 0, 0.03]])
  got = contact_from_reconstruction(batch, np.stack([obj_v, obj_v]), chunk=2)
  np.testing.assert_array_equal(got[0], [True, True, False, False, False])
  np.testing.assert_array_equal(got[1], [True, False, False, False, False])


def test_contact_prf_skips_empty_denominators():
  pred = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]], bool)
  gt = np.array([[0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], bool)
  # Sample 1: P = R = 1/2. Sample 2: P skipped (no prediction), R = 0. Sample 3: P = 0, R skipped.
  acc = ContactPRF().update(pred, gt)
  assert acc.precision == pytest.approx(0.25) and acc.recall == pytest.approx(0.25)
  assert acc.f1 == pytest.approx(0.25)
  assert (acc.num_precision, acc.num_recall) == (2, 2)
  seq = ContactPRF()
  for p, g in zip(pred, gt):
    seq.update(p, g)
  assert seq.result() == acc.result()
  merged = ContactPRF().update(pred[:1], gt[:1]).merge(ContactPRF().update(pred[1:], gt[1:]))
  assert merged.result() == acc.result()
  p, r, vp, vr = contact_precision_recall(pred, gt)
  np.testing.assert_allclose(p, [0.5, 0.0, 0.0])
  np.testing.assert_array_equal(vp, [True, False, True])
  np.testing.assert_array_equal(vr, [True, True, False])
  assert np.isnan(ContactPRF().precision)


def test_field_contact_protocol_matches_scipy_on_real_meshes():
  """Every full-mesh body vertex, nearest object vertex < 5 cm, P/R averaged over non-empty denominators, F of
  the averages: our jitted path against NumPy + SciPy cKDTree on the embedded body and a library object."""
  import jax

  from scorehoi_jax.evaluation import nearest
  from scorehoi_jax.evaluation.metrics import field_contacts
  from scorehoi_jax.geometry.rotations import axis_angle_to_matrix
  from scorehoi_jax.objects import get_object
  from scorehoi_jax.reconstruct import full_vertices, make_bodies
  bodies = make_bodies()
  rng = np.random.default_rng(3)
  rot = axis_angle_to_matrix(jnp.asarray(rng.normal(size=(8, 52, 3)) * 0.2, jnp.float32))
  human = np.asarray(full_vertices(bodies, rot, jnp.zeros((8, 10))), np.float64)  # [8, V, 3]
  obj = get_object("boxsmall")
  ov = np.asarray(obj.vertices, np.float64)
  # GT object near the belly (4 samples) or away (no GT contact); predictions shifted (some predict nothing).
  shifts = [[0, .05, .13], [0, 0, .14], [.05, .1, .15], [0, -.1, .12], [0, 0, .8], [0, 0, 1.0], [0, 0, .14], [0, 0, .13]]
  gt_o = np.stack([ov @ Rotation.from_rotvec(rng.normal(size=3)).as_matrix().T + s for s in shifts])
  pred_o = gt_o + np.array([[0, 0, .02], [0, 0, .9], [0, 0, -.03], [.04, 0, 0], [0, 0, -.7], [0, 0, 0], [0, .02, 0],
                            [0, 0, 0]])[:, None]
  pred_h = human + rng.normal(0, 0.005, human.shape)
  hc = nearest.clusters(np.asarray(bodies.full.v_template), 32).index
  oc = nearest.clusters(ov, 32).index
  fn = jax.jit(lambda h, o: field_contacts(h, o, hc, oc))
  got = ContactPRF().update(np.asarray(fn(jnp.asarray(pred_h, jnp.float32), jnp.asarray(pred_o, jnp.float32))),
                            np.asarray(fn(jnp.asarray(human, jnp.float32), jnp.asarray(gt_o, jnp.float32))))
  # Reference.
  ps, rs = [], []
  for i in range(8):
    pred = cKDTree(pred_o[i]).query(pred_h[i])[0] < 0.05
    gt = cKDTree(gt_o[i]).query(human[i])[0] < 0.05
    tp = np.sum(pred & gt)
    if pred.sum():
      ps.append(tp / pred.sum())
    if gt.sum():
      rs.append(tp / gt.sum())
  assert 0 < len(ps) < 8 and 0 < len(rs) < 8  # Both empty-denominator rules are exercised.
  p, r = np.mean(ps), np.mean(rs)
  assert got.num_precision == len(ps) and got.num_recall == len(rs)
  np.testing.assert_allclose([got.precision, got.recall, got.f1], [p, r, 2 * p * r / (p + r)], rtol=1e-6)
