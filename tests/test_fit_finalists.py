"""The silhouette fit's finalists (refine.fit_finalists; reconstruct.fit_to_masks, reconstruct._keep_best)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from scorehoi_jax.diffusion.image_evidence import POSE_HYPOTHESES, ImageEvidence

pytestmark = pytest.mark.usefixtures("fast_compile")


def test_keep_best_keeps_each_samples_n_lowest_in_order():
  """3 samples × 5 candidates in consecutive rows: the n = 2 kept must be each sample's two lowest losses,
  lowest first (NumPy argsort), with the evidence rows that go with them; n = 1 is the argmin."""
  from scorehoi_jax.reconstruct import _keep_best
  b, k = 3, 5
  loss = np.random.default_rng(0).permutation(b * k).astype(np.float32)
  rows = jnp.arange(b * k, dtype=jnp.float32)
  x = jnp.stack([rows] * 331, -1)
  ev = ImageEvidence(jnp.broadcast_to(rows[:, None, None], (b * k, 2, 2)), *(
      [jnp.broadcast_to(rows[:, None, None], (b * k, 4, 2)), jnp.broadcast_to(rows[:, None], (b * k, 4))] * 2),
      jnp.broadcast_to(rows[:, None], (b * k, 3)), jnp.broadcast_to(rows[:, None], (b * k, 2)),
      jnp.broadcast_to(rows[:, None], (b * k, 2)))
  for n in (1, 2):
    want = np.concatenate([s * k + np.argsort(loss[s * k:(s + 1) * k])[:n] for s in range(b)])
    got_x, got_ev = _keep_best(jnp.asarray(loss), b, k, x, ev, n)
    assert got_x.shape == (b * n, 331)
    np.testing.assert_array_equal(np.asarray(got_x)[:, 0], want)
    for leaf in jax.tree.leaves(got_ev):
      assert leaf.shape[0] == b * n
      np.testing.assert_array_equal(np.asarray(leaf).reshape(b * n, -1)[:, 0], want)


def test_the_finalists_are_ranked_again_on_every_mask_sample():
  """The masks of a person squatting with the arms overhead (no pose class of its own), a standing estimate,
  the 13 pose hypotheses as starts, no fitting steps. The short stage ranks the starts on the first
  HYPOTHESIS_SAMPLES pixel samples of each mask, here the topmost human pixels (head and raised arms: the
  arms-overhead start wins); with fit_finalists = 3 the three best must be ranked again on all the samples
  (the bent legs too) and the best of them kept. The reference recomputes both rankings with
  batched_mask_loss on the decoded starts."""
  from scorehoi_jax.diffusion.image_evidence import batched_mask_loss
  from scorehoi_jax.diffusion.refine import RefineSettings
  from scorehoi_jax.diffusion.xpack import decode_x, default_betas_stats
  from scorehoi_jax.reconstruct import BODY_POSE, HYPOTHESIS_SAMPLES, fit_to_masks, make_bodies
  from test_image_evidence import _evidence_of, _x_with

  with np.load(POSE_HYPOTHESES) as z:
    hyps, names = z["body6d"], list(z["names"])
  stats, body = default_betas_stats(), make_bodies().guidance
  facing = Rotation.from_euler("xy", [180, 30], degrees=True).as_matrix()
  template = jnp.zeros((1, 64, 3))
  pose = hyps[names.index("arms_overhead")].copy()
  legs = np.array([1, 2, 4, 5, 7, 8, 10, 11]) - 1  # Hips, knees, ankles, feet (joints 1–21 → rows 0–20).
  pose[legs] = hyps[names.index("squat")][legs]
  ev = _evidence_of(decode_x(_x_with(facing, pose), body, template, stats), 96,
                    np.array([120.0, 120.0], np.float32), np.array([47.5, 47.5], np.float32), [0.0, 0.0, 3.0])
  top_first = np.argsort(np.asarray(ev.samples_h)[0, :, 1] + 1e3 * (1 - np.asarray(ev.weight_h)[0]))
  ev = dataclasses.replace(ev, samples_h=ev.samples_h[:, top_first], weight_h=ev.weight_h[:, top_first])
  assert float(ev.weight_h[0].sum()) > 2 * HYPOTHESIS_SAMPLES  # The first samples are not all of them.
  start = _x_with(facing, hyps[names.index("stand")])
  starts = np.concatenate([np.asarray(start), np.asarray(start).repeat(len(hyps), 0)])
  starts[1:, BODY_POSE] = hyps.reshape(len(hyps), -1)

  def loss(e):
    ev_k = jax.tree.map(lambda a: jnp.repeat(a, len(starts), 0), e)
    d = decode_x(jnp.asarray(starts), body, template.repeat(len(starts), 0), stats)
    return np.asarray(batched_mask_loss(d.human_points, d.object_points, ev_k))

  short = loss(dataclasses.replace(ev, **{f: getattr(ev, f)[:, :HYPOTHESIS_SAMPLES]
                                          for f in ("samples_h", "weight_h", "samples_o", "weight_o")}))
  full = loss(ev)
  finalists = np.argsort(short)[:3]
  want = finalists[np.argmin(full[finalists])]
  assert want != finalists[0], "the test needs the full ranking to overturn the short one"
  for n, pick in ((1, finalists[0]), (3, want)):
    s = RefineSettings(use_mask=True, pose_hypotheses=True, fit_finalists=n)
    x, got_ev = fit_to_masks(start, ev, template, body, stats, s, jnp.asarray(hyps))
    np.testing.assert_allclose(np.asarray(x)[0], starts[pick], atol=1e-6)
    assert got_ev.samples_h.shape == ev.samples_h.shape  # The long stage reads every sample again.


def test_fit_finalists_is_checked():
  """At least one finalist, and more than one only where there are starts to rank (pose_hypotheses)."""
  from scorehoi_jax.diffusion.refine import RefineSettings
  with pytest.raises(ValueError, match="fit_finalists must be >= 1"):
    RefineSettings(use_mask=True, pose_hypotheses=True, fit_finalists=0)
  with pytest.raises(ValueError, match="needs pose_hypotheses=True"):
    RefineSettings(use_mask=True, fit_finalists=4)
  assert RefineSettings(use_mask=True, pose_hypotheses=True, fit_finalists=4).fit_finalists == 4
