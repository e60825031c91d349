"""The image-evidence term L_mask (diffusion/image_evidence.py) and its placement fit."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from scorehoi_jax.diffusion.image_evidence import (POSE_HYPOTHESES, ImageEvidence, batched_mask_loss, fit_placement,
                                                   fit_pose, mask_evidence_arrays, mask_loss)
from scorehoi_jax.geometry.image_lookup import bilinear_lookup

pytestmark = pytest.mark.usefixtures("fast_compile")

S = 48
FOCAL = np.array([60.0, 60.0], np.float32)
PP = np.array([(S - 1) / 2, (S - 1) / 2], np.float32)


def _points(seed=0, n=40):
  """Pelvis-centred points whose projections (pelvis at z = 2) land on pixel centres."""
  rng = np.random.default_rng(seed)
  uv = rng.integers(12, 36, size=(n, 2)).astype(np.float64)
  z = 2.0 + rng.uniform(-0.1, 0.1, n)
  xyz = np.c_[(uv - PP) / FOCAL * z[:, None], z]
  return (xyz - [0.0, 0.0, 2.0]).astype(np.float32), uv


def _evidence(mask_h, mask_o, cam=(0.0, 0.0, 2.0)):
  arr = mask_evidence_arrays(np.stack([mask_h, mask_o], -1)[None].astype(np.float32))
  return ImageEvidence(*(jnp.asarray(arr[k]) for k in ("distance", "samples_h", "weight_h", "samples_o", "weight_o")),
                       jnp.asarray([cam], jnp.float32), jnp.asarray(FOCAL[None]), jnp.asarray(PP[None]))


def _mask_of(uv):
  m = np.zeros((S, S), bool)
  m[uv[:, 1].astype(int), uv[:, 0].astype(int)] = True
  return m


def test_lookup_matches_scipy_inside_and_grows_outside():
  rng = np.random.default_rng(1)
  mask = np.zeros((S, S), bool)
  mask[10:30, 15:40] = True
  mask[5:9, 3:7] = True
  dist = ndimage.distance_transform_edt(~mask)
  xy = rng.uniform(0, S - 1, size=(200, 2))
  ref = ndimage.map_coordinates(dist, [xy[:, 1], xy[:, 0]], order=1)
  np.testing.assert_allclose(bilinear_lookup(jnp.asarray(dist, jnp.float32), jnp.asarray(xy, jnp.float32)), ref,
                             rtol=1e-5, atol=1e-4)
  out = np.array([[-5.0, 20.0], [S + 2.0, 10.0]])  # 5 px left of column 0; 3 px right of the last column.
  want = np.array([dist[20, 0] + 5.0, dist[10, S - 1] + 3.0])
  np.testing.assert_allclose(bilinear_lookup(jnp.asarray(dist, jnp.float32), jnp.asarray(out, jnp.float32)), want,
                             rtol=1e-5)


def test_zero_when_the_points_fill_their_masks_exactly():
  human, uv_h = _points(0)
  obj, uv_o = _points(1, 20)
  ev = _evidence(_mask_of(uv_h), _mask_of(uv_o))
  loss = batched_mask_loss(jnp.asarray(human[None]), jnp.asarray(obj[None]), ev)
  assert float(loss[0]) < 1e-9
  # Points outside, or a mask not covered, both cost.
  moved = batched_mask_loss(jnp.asarray(human[None]) + jnp.array([0.15, 0.0, 0.0]), jnp.asarray(obj[None]), ev)
  more = _mask_of(uv_h)
  more[2:6, 2:6] = True
  uncovered = batched_mask_loss(jnp.asarray(human[None]), jnp.asarray(obj[None]), _evidence(more, _mask_of(uv_o)))
  assert float(moved[0]) > 1e-4 and float(uncovered[0]) > 1e-4


def test_gradient_step_lowers_the_loss():
  human, uv_h = _points(2)
  obj, uv_o = _points(3, 20)
  ev = _evidence(_mask_of(uv_h), _mask_of(uv_o))
  h = jnp.asarray(human) + jnp.array([0.08, -0.05, 0.0])  # Off its mask.
  args = (ev.distance[0], ev.samples_h[0], ev.weight_h[0], ev.samples_o[0], ev.weight_o[0], ev.cam_trans[0],
          ev.focal[0], ev.princpt[0])
  f = lambda h: mask_loss(h, jnp.asarray(obj), *args)
  g = jax.grad(f)(h)
  assert float(f(h - 1e-3 * g / jnp.linalg.norm(g))) < float(f(h))


def test_placement_fit_moves_the_pelvis_back_onto_the_mask():
  human, uv_h = _points(4)
  obj, uv_o = _points(5, 20)
  true_cam = np.array([0.0, 0.0, 2.0])
  ev = _evidence(_mask_of(uv_h), _mask_of(uv_o), cam=(0.12, -0.08, 2.0))  # The regressor's pelvis is off.
  cam, offset = jax.jit(fit_placement, static_argnums=3)(jnp.asarray(human[None]), jnp.asarray(obj[None]), ev, 150)
  px = lambda c: np.asarray(c)[:2] / np.asarray(c)[2] * FOCAL  # Pelvis pixel offset from the principal point.
  before = np.linalg.norm(px(ev.cam_trans[0]) - px(true_cam))
  after = np.linalg.norm(px(cam[0]) - px(true_cam))
  assert before > 4.0 and after < 0.25 * before


def test_pelvis_refit_moves_the_pair_as_one_back_onto_the_masks():
  """move_object=False (the re-fit after the sampling, RefineSettings.final_fit_steps): the object keeps
  its place relative to the pelvis and the pair comes back to its masks."""
  human, uv_h = _points(6)
  obj, uv_o = _points(7, 20)
  ev = _evidence(_mask_of(uv_h), _mask_of(uv_o), cam=(-0.1, 0.09, 2.0))
  fit = jax.jit(lambda h, o, e: fit_placement(h, o, e, 150, move_object=False))
  cam, offset = fit(jnp.asarray(human[None]), jnp.asarray(obj[None]), ev)
  assert not np.any(np.asarray(offset))
  px = lambda c: np.asarray(c)[:2] / np.asarray(c)[2] * FOCAL
  before = np.linalg.norm(px(ev.cam_trans[0]) - px([0.0, 0.0, 2.0]))
  assert before > 4.0 and np.linalg.norm(px(cam[0]) - px([0.0, 0.0, 2.0])) < 0.25 * before
  # The object's own offset is not a free parameter: with its mask shifted away, the pair settles between
  # the two masks, while the free fit puts each on its own.
  shifted = _evidence(_mask_of(uv_h), _mask_of(uv_o + [6, 0]), cam=(0.0, 0.0, 2.0))
  cam_pair, _ = fit(jnp.asarray(human[None]), jnp.asarray(obj[None]), shifted)
  cam_free, off_free = jax.jit(fit_placement, static_argnums=3)(jnp.asarray(human[None]), jnp.asarray(obj[None]),
                                                                shifted, 150)
  assert px(cam_pair[0])[0] > 0.5 and abs(px(cam_free[0])[0]) < 0.5 < float(off_free[0, 0]) / 2.0 * FOCAL[0]


def test_pose_fit_brings_a_displaced_limb_back_and_its_prior_holds_it():
  """x moves a 'limb' (a third of the human points) sideways; the masks are those of x = 0."""
  human, uv_h = _points(6)
  obj, uv_o = _points(7, 20)
  ev = _evidence(_mask_of(uv_h), _mask_of(uv_o))
  limb = jnp.asarray((np.arange(len(human)) % 3 == 0)[:, None], jnp.float32)

  def decode(x):  # x [B, 3]: the limb's offset (metres).
    return jnp.asarray(human)[None] + x[:, None, :] * limb[None], jnp.asarray(obj)[None]

  x0 = jnp.asarray([[0.1, -0.06, 0.0]], jnp.float32)  # ≈ 3 px and 2 px off at z = 2.
  fit = jax.jit(fit_pose, static_argnums=(1, 3))
  loss = lambda x, cam: float(batched_mask_loss(*decode(x), ev, cam)[0])
  x, cam = fit(x0, decode, ev, 200, 1e-3)
  assert loss(x, cam) < 0.3 * loss(x0, ev.cam_trans)
  assert np.linalg.norm(np.asarray(x)[0, :2]) < 0.4 * np.linalg.norm(np.asarray(x0)[0, :2])
  held, _ = fit(x0, decode, ev, 200, 1e4)  # A strong prior keeps the network's pose.
  np.testing.assert_allclose(np.asarray(held), np.asarray(x0), atol=2e-3)


def test_pose_fit_adds_the_extra_terms_it_is_given():
  """fit_pose(extra=…): a quadratic pull toward a target wins over the masks when it is strong; without it the
  limb goes back into its mask (the polish after the sampling passes L_P this way)."""
  human, uv_h = _points(6)
  obj, uv_o = _points(7, 20)
  ev = _evidence(_mask_of(uv_h), _mask_of(uv_o))
  limb = jnp.asarray((np.arange(len(human)) % 3 == 0)[:, None], jnp.float32)
  decode = lambda x: (jnp.asarray(human)[None] + x[:, None, :] * limb[None], jnp.asarray(obj)[None])
  target = jnp.asarray([[0.08, 0.0, 0.0]], jnp.float32)
  pull = lambda x: 1e3 * jnp.sum((x - target) ** 2, -1)
  x0 = jnp.zeros((1, 3), jnp.float32)
  fit = jax.jit(fit_pose, static_argnums=(1, 3, 6))
  pulled, _ = fit(x0, decode, ev, 300, 1e-3, 0.01, pull)
  np.testing.assert_allclose(np.asarray(pulled), np.asarray(target), atol=5e-3)
  free, _ = fit(target, decode, ev, 300, 1e-3, 0.01, None)
  assert np.linalg.norm(np.asarray(free)) < 0.3 * float(target[0, 0])


def test_polish_keeps_the_last_rounds_contacts_in_its_loss():
  """reconstruct.polish: the hand and the object 25 cm apart in depth (where the masks cannot tell). With the
  last round's contact masks on for the hand and the object, L_ho in the polish's loss closes the gap; with
  them on only in an earlier round, nothing pulls and the gap stays."""
  from scipy.spatial.transform import Rotation
  from scorehoi_jax.diffusion.losses import GuidanceWeights
  from scorehoi_jax.diffusion.refine import RefineInputs, RefineOutput, RefineSettings
  from scorehoi_jax.diffusion.xpack import OBJ_TRANS, decode_x, default_betas_stats
  from scorehoi_jax.objects import get_object
  from scorehoi_jax.objects.geometry import stack_geometries
  from scorehoi_jax.reconstruct import make_bodies, polish

  with np.load(POSE_HYPOTHESES) as z:
    stand = z["body6d"][list(z["names"]).index("stand")]
  stats, body = default_betas_stats(), make_bodies().guidance
  obj = get_object("boxtiny")
  geo = stack_geometries([obj.geometry()])
  facing = Rotation.from_euler("x", 180, degrees=True).as_matrix()  # Facing the camera.
  x = np.array(_x_with(facing, stand))
  human = np.asarray(decode_x(jnp.asarray(x), body, geo.template, stats).human_points)[0]
  hand = np.argsort(human[:, 0])[:8]  # The 8 vertices farthest along −x: one hand's side.
  tip = human[hand].mean(0)
  x[0, OBJ_TRANS] = tip + [0.0, 0.0, -0.25]  # 25 cm nearer the camera than the hand.
  x = jnp.asarray(x)
  size, focal, pp, cam = 64, np.array([90.0, 90.0], np.float32), np.array([31.5, 31.5], np.float32), [0.0, 0.0, 3.0]
  ev = _evidence_of(decode_x(x, body, geo.template, stats), size, focal, pp, cam)
  on_h = np.zeros((1, human.shape[0]), np.float32)
  on_h[0, hand] = 1.0
  on, off = (jnp.asarray(on_h), jnp.ones((1, 64))), (jnp.zeros((1, human.shape[0])), jnp.zeros((1, 64)))
  settings = RefineSettings(use_mask=True, floor="body", final_pose_fit_steps=150, final_pose_fit_prior=1e-3)
  weights = GuidanceWeights(lambda_mask=1.0, lambda_of=0.0).as_arrays()
  inputs = RefineInputs(x_init=x, objects=geo, evidence=ev)

  def gap(first, last):
    contacts = tuple(jnp.stack([a, b]) for a, b in zip(first + (jnp.zeros((1, 64)),), last + (jnp.zeros((1, 64)),)))
    res = RefineOutput(x, None, contacts, None, None, None)
    polished, _ = polish(res, inputs, body, stats, weights, settings, body, geo.template)
    d = decode_x(polished, body, geo.template, stats)
    h, o = np.asarray(d.human_points)[0, hand], np.asarray(d.object_points)[0]
    return np.linalg.norm(h[:, None] - o[None], axis=-1).min()

  before = np.linalg.norm(human[hand][:, None] - (np.asarray(geo.template)[0] + tip + [0, 0, -0.25])[None],
                          axis=-1).min()
  assert before > 0.05
  assert gap(off, on) < 0.5 * before
  assert gap(on, off) > 0.8 * before


def _evidence_of(decoded, size, focal, pp, cam):
  """ImageEvidence of the masks a decoded x draws: its human and object points projected, dilated by 2 px."""
  from scorehoi_jax.models.contact_former import project_to_pixels
  masks = []
  for pts in (decoded.human_points, decoded.object_points):
    uv = np.rint(np.asarray(project_to_pixels(pts, jnp.asarray([cam]), focal[None], pp[None]))[0]).astype(int)
    m = np.zeros((size, size), bool)
    m[np.clip(uv[:, 1], 0, size - 1), np.clip(uv[:, 0], 0, size - 1)] = True
    masks.append(ndimage.binary_dilation(m, iterations=2))
  arr = mask_evidence_arrays(np.stack(masks, -1)[None].astype(np.float32))
  return ImageEvidence(*(jnp.asarray(arr[k]) for k in ("distance", "samples_h", "weight_h", "samples_o", "weight_o")),
                       jnp.asarray([cam], jnp.float32), jnp.asarray(focal[None]), jnp.asarray(pp[None]))


def _x_with(root, pose6d):
  """x of a body with root rotation ``root`` [3, 3] and body pose ``pose6d`` [21, 6]; identity hands, an object
  (64 copies of one point) in front of the hips, betas 0."""
  from scorehoi_jax.diffusion.xpack import matrix_to_rot6d
  from scorehoi_jax.reconstruct import BODY_POSE
  x = np.zeros((1, 331), np.float32)
  x[0, :6] = np.asarray(matrix_to_rot6d(jnp.asarray(root, jnp.float32)))
  x[0, BODY_POSE] = pose6d.reshape(-1)
  eye = np.asarray(matrix_to_rot6d(jnp.eye(3)))  # The 6D layout interleaves the two columns.
  x[0, 6 + 21 * 6:312] = np.tile(eye, 30)  # Hands: identity rotations.
  x[0, 312:318] = eye
  x[0, 318:321] = [0.0, 0.3, 0.2]
  x[0, 321:] = 0.5  # Normalised betas of 0 (bounds ±3).
  return jnp.asarray(x)


def test_pose_hypotheses_pick_the_start_whose_silhouette_fills_the_masks():
  """A seated person's masks, a standing estimate: the fit's starts include each pose class's typical pose,
  and the seated one must win on L_mask (with the hypotheses off, the standing estimate stays)."""
  from scipy.spatial.transform import Rotation
  from scorehoi_jax.diffusion.refine import RefineSettings
  from scorehoi_jax.diffusion.xpack import decode_x, default_betas_stats
  from scorehoi_jax.reconstruct import BODY_POSE, fit_to_masks, make_bodies

  with np.load(POSE_HYPOTHESES) as z:
    hyps, names = z["body6d"], list(z["names"])
  stats, body = default_betas_stats(), make_bodies().guidance
  size, focal, pp, cam = 64, np.array([90.0, 90.0], np.float32), np.array([31.5, 31.5], np.float32), [0.0, 0.0, 3.0]
  facing = Rotation.from_euler("xy", [180, 30], degrees=True).as_matrix()  # Body up → camera −y, turned 30°.
  x_with = lambda pose6d: _x_with(facing, pose6d)

  template = jnp.zeros((1, 64, 3))
  true = decode_x(x_with(hyps[names.index("sit")]), body, template, stats)
  ev = _evidence_of(true, size, focal, pp, cam)
  start = x_with(hyps[names.index("stand")])
  s = RefineSettings(use_mask=True, pose_hypotheses=True)
  x, _ = fit_to_masks(start, ev, template, body, stats, s, jnp.asarray(hyps))
  np.testing.assert_allclose(np.asarray(x)[0, BODY_POSE], hyps[names.index("sit")].reshape(-1), atol=1e-6)
  kept, _ = fit_to_masks(start, ev, template, body, stats, dataclasses.replace(s, pose_hypotheses=False), None)
  np.testing.assert_array_equal(np.asarray(kept), np.asarray(start))


@pytest.mark.parametrize("degrees", [90.0, 180.0, 270.0, -37.0])
def test_turned_start_is_the_body_turned_about_its_own_vertical_axis(degrees):
  """turn_root(x, θ) decodes to R·R_y(θ) (SciPy reference), for any root rotation R."""
  from scipy.spatial.transform import Rotation
  from scorehoi_jax.diffusion.xpack import matrix_to_rot6d
  from scorehoi_jax.geometry.rotations import rot6d_to_matrix
  from scorehoi_jax.reconstruct import turn_root
  r = Rotation.random(5, random_state=3).as_matrix()
  x = matrix_to_rot6d(jnp.asarray(r, jnp.float32))
  turned = np.asarray(rot6d_to_matrix(turn_root(x, np.deg2rad(degrees))))
  np.testing.assert_allclose(turned, r @ Rotation.from_euler("y", degrees, degrees=True).as_matrix(), atol=1e-6)


@pytest.mark.parametrize("degrees, turns", [(180.0, 2), (90.0, 4), (270.0, 4)])
def test_turned_hypotheses_find_a_person_the_estimate_faces_the_wrong_way(degrees, turns):
  """Seated masks of a person turned by ``degrees`` from the standing estimate (seen from the front): only
  the start turned that far holds the right pose *and* facing; root_turns = ``turns`` must pick it, and
  fewer turns that miss the angle must not."""
  from scipy.spatial.transform import Rotation
  from scorehoi_jax.diffusion.refine import RefineSettings
  from scorehoi_jax.diffusion.xpack import decode_x, default_betas_stats, matrix_to_rot6d
  from scorehoi_jax.reconstruct import BODY_POSE, fit_to_masks, make_bodies

  with np.load(POSE_HYPOTHESES) as z:
    hyps, names = z["body6d"], list(z["names"])
  stats, body = default_betas_stats(), make_bodies().guidance
  size, focal, pp, cam = 64, np.array([90.0, 90.0], np.float32), np.array([31.5, 31.5], np.float32), [0.0, 0.0, 3.0]
  facing = Rotation.from_euler("xy", [180, 10], degrees=True).as_matrix()  # Nearly facing the camera.
  turned = facing @ Rotation.from_euler("y", degrees, degrees=True).as_matrix()

  template = jnp.zeros((1, 64, 3))
  true = decode_x(_x_with(turned, hyps[names.index("sit")]), body, template, stats)
  ev = _evidence_of(true, size, focal, pp, cam)
  start = _x_with(facing, hyps[names.index("stand")])
  s = RefineSettings(use_mask=True, pose_hypotheses=True, root_turns=turns)
  x, _ = fit_to_masks(start, ev, template, body, stats, s, jnp.asarray(hyps))
  np.testing.assert_allclose(np.asarray(x)[0, BODY_POSE], hyps[names.index("sit")].reshape(-1), atol=1e-6)
  np.testing.assert_allclose(np.asarray(x)[0, :6], np.asarray(matrix_to_rot6d(jnp.asarray(turned, jnp.float32))),
                             atol=1e-5)
  for fewer in (1, 2) if turns == 4 else (1,):
    missed, _ = fit_to_masks(start, ev, template, body, stats, dataclasses.replace(s, root_turns=fewer),
                             jnp.asarray(hyps))
    assert np.abs(np.asarray(missed)[0, :6] - np.asarray(matrix_to_rot6d(jnp.asarray(turned, jnp.float32)))).max() > 0.5


def test_coverage_and_its_gradient_match_the_all_pairs_minimum():
  """The coverage term picks each sample's nearest projection without gradient, then differentiates only
  that distance: value against a NumPy all-pairs minimum, gradient against autodiff of the all-pairs min."""
  from scorehoi_jax.diffusion.image_evidence import _coverage
  rng = np.random.default_rng(4)
  samples = rng.uniform(0, S, (60, 2)).astype(np.float32)
  weight = (rng.uniform(size=60) > 0.2).astype(np.float32)
  uv = rng.uniform(0, S, (300, 2)).astype(np.float32)
  d2 = ((samples[:, None] - uv[None]) ** 2).sum(-1).min(1)
  want = (weight * d2).sum() / weight.sum() / S ** 2
  np.testing.assert_allclose(float(_coverage(jnp.asarray(samples), jnp.asarray(weight), jnp.asarray(uv), S)), want,
                             rtol=1e-5)
  pairs = lambda u: jnp.sum(weight * jnp.min(jnp.sum((samples[:, None] - u[None]) ** 2, -1), 1)) / weight.sum() / S ** 2
  g = jax.grad(lambda u: _coverage(jnp.asarray(samples), jnp.asarray(weight), u, S))(jnp.asarray(uv))
  np.testing.assert_allclose(np.asarray(g), np.asarray(jax.grad(pairs)(jnp.asarray(uv))), rtol=1e-5, atol=1e-9)
  assert np.count_nonzero(np.abs(np.asarray(g)).sum(1)) > 10  # Many projections are some sample's nearest.


def test_the_fit_body_is_a_denser_subset_of_the_same_body():
  """Bodies.fit: FIT_VERTICES distinct vertices of the full model, posed exactly as the full model poses them."""
  from scipy.spatial import cKDTree
  from scipy.spatial.transform import Rotation
  from scorehoi_jax import body as body_lib
  from scorehoi_jax.reconstruct import FIT_VERTICES, make_bodies
  bodies = make_bodies()
  rng = np.random.default_rng(5)
  rot = jnp.asarray(np.tile(np.eye(3, dtype=np.float32), (1, 52, 1, 1)))
  rot = rot.at[0, 1:22].set(jnp.asarray(Rotation.from_rotvec(rng.normal(0, 0.3, (21, 3))).as_matrix(), jnp.float32))
  betas = jnp.asarray(rng.normal(0, 1, (1, 10)), jnp.float32)
  full = np.asarray(body_lib.body_forward(bodies.full, rot, betas).vertices)[0]
  fit = np.asarray(body_lib.body_forward(bodies.fit, rot, betas).vertices)[0]
  assert fit.shape == (FIT_VERTICES, 3) and FIT_VERTICES > bodies.guidance.num_vertices
  # Every fit vertex is one of the posed full-mesh vertices, and no two are the same.
  dist, _ = cKDTree(full).query(fit)
  assert dist.max() < 1e-5
  assert len(np.unique(np.round(fit, 5), axis=0)) == FIT_VERTICES


@pytest.mark.parametrize("degrees", [90.0, 270.0, -33.0])
def test_turned_object_is_the_object_turned_about_its_own_vertical_axis(degrees):
  """turn_object(x, θ) decodes to R_o·R_y(θ) (SciPy reference) and leaves everything else of x as it was."""
  from scipy.spatial.transform import Rotation
  from scorehoi_jax.diffusion.xpack import OBJ_ROT, matrix_to_rot6d
  from scorehoi_jax.geometry.rotations import rot6d_to_matrix
  from scorehoi_jax.reconstruct import turn_object
  r = Rotation.random(4, random_state=6).as_matrix()
  x = jnp.asarray(np.random.default_rng(6).normal(size=(4, 331)), jnp.float32).at[:, OBJ_ROT].set(
      matrix_to_rot6d(jnp.asarray(r, jnp.float32)))
  turned = turn_object(x, np.deg2rad(degrees))
  np.testing.assert_allclose(np.asarray(rot6d_to_matrix(turned[:, OBJ_ROT])),
                             r @ Rotation.from_euler("y", degrees, degrees=True).as_matrix(), atol=1e-6)
  keep = np.ones(331, bool)
  keep[OBJ_ROT] = False
  np.testing.assert_array_equal(np.asarray(turned)[:, keep], np.asarray(x)[:, keep])


def _l_shaped_object(n=64):
  """Points of an L-shaped footprint (template frame, +y up, centred in x and z): a 0.8 × 0.2 m bar along x
  and a 0.2 × 0.5 m bar along +z at its +x end, 0.3 m high. Every quarter turn has its own silhouette."""
  rng = np.random.default_rng(7)
  bar = np.c_[rng.uniform(-0.4, 0.4, n // 2), rng.uniform(0, 0.3, n // 2), rng.uniform(-0.1, 0.1, n // 2)]
  foot = np.c_[rng.uniform(0.2, 0.4, n // 2), rng.uniform(0, 0.3, n // 2), rng.uniform(0.1, 0.6, n // 2)]
  pts = np.r_[bar, foot]
  return jnp.asarray((pts - [0.0, 0.0, pts[:, 2].mean()])[None], jnp.float32)


@pytest.mark.parametrize("degrees", [90.0, 270.0])
def test_object_turns_find_an_object_the_estimate_sees_from_another_side(degrees):
  """Masks of an object turned by ``degrees`` about its vertical from the estimate: object_turns = 4 must pick
  that turn (no fit steps: the choice alone), and 2 turns, which miss the angle, must not."""
  from scipy.spatial.transform import Rotation
  from scorehoi_jax.diffusion.refine import RefineSettings
  from scorehoi_jax.diffusion.xpack import OBJ_ROT, decode_x, default_betas_stats, matrix_to_rot6d
  from scorehoi_jax.reconstruct import fit_to_masks, make_bodies

  with np.load(POSE_HYPOTHESES) as z:
    hyps, names = z["body6d"], list(z["names"])
  stats, body = default_betas_stats(), make_bodies().guidance
  size, focal, pp, cam = 64, np.array([90.0, 90.0], np.float32), np.array([31.5, 31.5], np.float32), [0.0, 0.0, 3.0]
  facing = Rotation.from_euler("x", 180, degrees=True).as_matrix()
  seen = Rotation.from_euler("x", 180 + 35, degrees=True).as_matrix()  # Object up is image up, seen from above.
  true_rot = seen @ Rotation.from_euler("y", degrees, degrees=True).as_matrix()
  template = _l_shaped_object()
  start = _x_with(facing, hyps[names.index("stand")]).at[0, OBJ_ROT].set(
      matrix_to_rot6d(jnp.asarray(seen, jnp.float32)))
  truth = start.at[0, OBJ_ROT].set(matrix_to_rot6d(jnp.asarray(true_rot, jnp.float32)))
  ev = _evidence_of(decode_x(truth, body, template, stats), size, focal, pp, cam)
  s = RefineSettings(use_mask=True, object_turns=4)
  x, _ = fit_to_masks(start, ev, template, body, stats, s)
  np.testing.assert_allclose(np.asarray(x)[0, OBJ_ROT], np.asarray(truth)[0, OBJ_ROT], atol=1e-5)
  missed, _ = fit_to_masks(start, ev, template, body, stats, dataclasses.replace(s, object_turns=2))
  assert np.abs(np.asarray(missed)[0, OBJ_ROT] - np.asarray(truth)[0, OBJ_ROT]).max() > 0.5


def _disc_mask(centre, radius, size=S):
  """A disc rasterised as a renderer does: a pixel is in the mask when its centre is covered."""
  yy, xx = np.mgrid[:size, :size]
  return (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius ** 2


def test_points_on_the_edge_of_a_rasterised_mask_count_as_inside():
  """outside_distance is the distance to the *region* the mask pixels rasterise, not to their centres: ~0 on a
  disc's true edge (the raw distance transform reads ~0.5 px there) and the true distance 2 px outside it."""
  from scorehoi_jax.diffusion.image_evidence import outside_distance
  centre, r = np.array([23.6, 24.2]), 10.3
  dist = jnp.asarray(ndimage.distance_transform_edt(~_disc_mask(centre, r)), jnp.float32)
  a = np.linspace(0, 2 * np.pi, 180, endpoint=False)
  ring = lambda rad: jnp.asarray(centre + rad * np.c_[np.cos(a), np.sin(a)], jnp.float32)
  on_edge = np.asarray(outside_distance(dist, ring(r)))
  assert on_edge.mean() < 0.2 and on_edge.max() < 0.5, on_edge  # The raw transform: mean 0.53.
  np.testing.assert_allclose(np.asarray(outside_distance(dist, ring(r + 2.0))).mean(), 2.0, atol=0.15)


@pytest.mark.parametrize("r", [7.8, 10.3, 14.55])
def test_the_mask_loss_is_lowest_at_the_true_size_of_a_silhouette(r):
  """A filled disc of points scaled to radius ρ against the rasterised mask of a disc of radius r: L_mask is
  lowest within 0.2 px of ρ = r. Reading the distance between pixel centres put it at ρ = r − 0.275 for all
  three radii: every fitted silhouette came out thinner than the mask all round."""
  centre = np.array([23.6, 24.2])
  mask = _disc_mask(centre, r)
  ev = _evidence(mask, np.zeros_like(mask))
  k = np.arange(1, 401)
  unit = np.c_[np.sqrt(k / 400) * np.cos(k * 2.39996), np.sqrt(k / 400) * np.sin(k * 2.39996)]  # Sunflower disc.

  def loss(rho):
    uv = centre + rho * unit
    xyz = np.c_[(uv - PP) / FOCAL * 2.0, np.full(len(uv), 2.0)] - [0.0, 0.0, 2.0]
    pts = jnp.asarray(xyz[None], jnp.float32)
    return float(batched_mask_loss(pts, pts, ev)[0])

  radii = np.linspace(r - 1.5, r + 1.5, 121)
  best = radii[np.argmin([loss(v) for v in radii])]
  assert abs(best - r) < 0.2, best - r

