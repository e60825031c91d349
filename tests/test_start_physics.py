"""The silhouette fit's starts judged with the physics too (refine.start_physical; reconstruct.start_physics)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from scorehoi_jax.diffusion.image_evidence import POSE_HYPOTHESES

pytestmark = pytest.mark.usefixtures("fast_compile")


def _x(pose6d, obj_trans):
  """x [331]: a body facing the camera (body up = camera −y) in pose ``pose6d`` [21, 6], identity hands,
  betas 0, the object upright (its +y up too) at ``obj_trans`` (pelvis-relative, camera axes)."""
  from scorehoi_jax.diffusion.xpack import matrix_to_rot6d
  from scorehoi_jax.reconstruct import BODY_POSE
  upright = np.asarray(matrix_to_rot6d(jnp.asarray(Rotation.from_euler("x", 180, degrees=True).as_matrix(),
                                                   jnp.float32)))
  x = np.zeros(331, np.float32)
  x[:6] = upright
  x[BODY_POSE] = pose6d.reshape(-1)
  x[132:312] = np.tile(np.asarray(matrix_to_rot6d(jnp.eye(3))), 30)
  x[312:318] = upright
  x[318:321] = obj_trans
  x[321:] = 0.5  # Normalised betas of 0 (bounds ±3).
  return x


def test_each_start_is_charged_its_own_floor_term_in_the_guidance_balance():
  """Two samples, three starts each (the box on the floor beside the person, or lifted by 0.1–0.6 m), in
  different orders: judge(x, 3) must give every row start_physical · λ_of · L_of / λ_mask, with L_of the
  squared hinge of the floor-flagged box points' heights above the plane under the feet (NumPy below) and
  each sample's own masks (a mix-up of samples and starts reads the other sample's flags). No L_pt (nothing
  is inside the box) and no L_ho, although every point is flagged in contact."""
  from scorehoi_jax.diffusion.losses import GuidanceWeights
  from scorehoi_jax.diffusion.refine import RefineInputs, RefineSettings
  from scorehoi_jax.diffusion.xpack import decode_x, default_betas_stats
  from scorehoi_jax.objects import get_object
  from scorehoi_jax.objects.geometry import stack_geometries
  from scorehoi_jax.reconstruct import make_bodies, start_physics

  with np.load(POSE_HYPOTHESES) as z:
    stand = z["body6d"][list(z["names"]).index("stand")]
  stats, body = default_betas_stats(), make_bodies().guidance
  geo = stack_geometries([get_object("boxsmall", sdf_resolution=16).geometry()] * 2)
  template = np.asarray(geo.template[0])
  human = np.asarray(decode_x(jnp.asarray(_x(stand, [0.0, 0.0, 0.0])[None]), body, geo.template[:1],
                              stats).human_points)[0]
  up = np.array([0.0, -1.0, 0.0])  # Camera y points down.
  floor = -np.min(human @ up)  # The plane under the feet: height = up·p + floor.
  # 0.6 m to the person's side, the box's base (canonical y = 0) `lift` metres above the floor.
  at = lambda lift: [0.6, floor - lift, 0.0]
  lifts = [0.0, 0.4, 0.1, 0.25, 0.0, 0.6]  # Sample 0's three starts, then sample 1's.
  x = jnp.asarray(np.stack([_x(stand, at(lift)) for lift in lifts]))
  # Sample 0 flags the box's 8 lowest points as on the floor, sample 1 its 4 lowest: the samples differ.
  order = np.argsort(template[:, 1])
  m_of = np.zeros((2, 64), np.float32)
  m_of[0, order[:8]] = 1.0
  m_of[1, order[:4]] = 1.0
  # Every body vertex and box point flagged in contact: L_ho would be large (the box is 0.6 m away), but a
  # start is not charged the contacts of the pose they were predicted on.
  masks = (jnp.ones((2, body.v_template.shape[0])), jnp.ones((2, 64)), jnp.asarray(m_of))
  weights = GuidanceWeights(lambda_ho=0.5, lambda_of=0.7, lambda_pt=5.0, lambda_mask=500.0)
  settings = RefineSettings(use_mask=True, floor="body", start_physical=0.3)
  inputs = RefineInputs(x_init=x[::3], objects=geo)
  batch = {"object_template": geo.template, "ground_plane": jnp.asarray([[0.0, -1.0, 0.0, 0.0]] * 2)}
  judge = start_physics(masks, inputs, batch, body, stats, weights, settings)
  got = np.asarray(judge(x, 3))

  def l_of(trans, flags):  # The box upright: a point's height is its canonical y plus its base's height.
    heights = template[:, 1] + up @ trans + floor
    return np.sum(np.maximum(np.abs(heights) * flags - weights.margin, 0.0) ** 2)

  want = np.array([0.3 * 0.7 * l_of(at(lift), m_of[i // 3]) / 500.0 for i, lift in enumerate(lifts)])
  np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-9)
  assert want[0] == want[4] == 0.0 and np.all(np.diff(want[[0, 2, 1]]) > 0)  # The reference tells them apart.


def test_the_judge_takes_part_in_choosing_the_start():
  """Seated masks, a standing estimate: on L_mask alone the seated hypothesis wins
  (test_image_evidence.py); a judge that charges the seated pose must hand the choice to the start with the
  next-lowest L_mask, and a judge that charges nothing must change nothing."""
  from scorehoi_jax.diffusion.image_evidence import batched_mask_loss
  from scorehoi_jax.diffusion.refine import RefineSettings
  from scorehoi_jax.diffusion.xpack import decode_x, default_betas_stats
  from scorehoi_jax.reconstruct import BODY_POSE, fit_to_masks, make_bodies
  from scorehoi_jax.reconstruct import HYPOTHESIS_SAMPLES
  from test_image_evidence import _evidence_of, _x_with

  with np.load(POSE_HYPOTHESES) as z:
    hyps, names = z["body6d"], list(z["names"])
  stats, body = default_betas_stats(), make_bodies().guidance
  facing = Rotation.from_euler("xy", [180, 30], degrees=True).as_matrix()
  template = jnp.zeros((1, 64, 3))
  sit = hyps[names.index("sit")].reshape(-1)
  ev = _evidence_of(decode_x(_x_with(facing, hyps[names.index("sit")]), body, template, stats), 64,
                    np.array([90.0, 90.0], np.float32), np.array([31.5, 31.5], np.float32), [0.0, 0.0, 3.0])
  start = _x_with(facing, hyps[names.index("stand")])
  s = RefineSettings(use_mask=True, pose_hypotheses=True)
  seated = lambda x: jnp.all(jnp.abs(x[:, BODY_POSE] - sit) < 1e-6, axis=-1)
  no_sitting = lambda x, k: jnp.where(seated(x), 1.0, 0.0)
  x, _ = fit_to_masks(start, ev, template, body, stats, s, jnp.asarray(hyps), judge=no_sitting)
  starts = np.concatenate([np.asarray(start), np.asarray(start).repeat(len(hyps), 0)])
  starts[1:, BODY_POSE] = hyps.reshape(len(hyps), -1)
  # The starts are judged on the first HYPOTHESIS_SAMPLES pixel samples of each mask, as fit_to_masks does.
  short = {f: getattr(ev, f)[:, :HYPOTHESIS_SAMPLES] for f in ("samples_h", "weight_h", "samples_o", "weight_o")}
  ev_k = jax.tree.map(lambda a: jnp.repeat(a, len(starts), 0), dataclasses.replace(ev, **short))
  loss = np.asarray(batched_mask_loss(*(lambda d: (d.human_points, d.object_points))(
      decode_x(jnp.asarray(starts), body, template.repeat(len(starts), 0), stats)), ev_k))
  ranked = np.argsort(loss)
  assert np.allclose(starts[ranked[0], BODY_POSE], sit)  # Without the judge the seated start wins ...
  np.testing.assert_allclose(np.asarray(x)[0], starts[ranked[1]], atol=1e-6)  # ... with it, the runner-up.
  same, _ = fit_to_masks(start, ev, template, body, stats, s, jnp.asarray(hyps), judge=lambda x, k: 0.0 * x[:, 0])
  np.testing.assert_allclose(np.asarray(same)[0, BODY_POSE], sit, atol=1e-6)
