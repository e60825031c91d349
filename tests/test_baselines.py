"""The optimisation baseline: it lowers the physical loss, the data term alone keeps x, the budget matches."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scorehoi_jax.body import from_arrays, guidance_vertex_indices, random_smplh_arrays, subset_body_model
from scorehoi_jax.diffusion import GuidanceWeights, RefineInputs, RefineSettings, default_betas_stats, pack_x
from scorehoi_jax.evaluation.baselines import BaselineConfig, make_optimization_refine, steps_per_round
from scorehoi_jax.geometry import SDFGrid, axis_angle_to_rot6d, grid_points
from scorehoi_jax.objects.geometry import ObjectGeometry

pytestmark = pytest.mark.usefixtures("fast_compile")

B = 3
STATS = default_betas_stats()
SETTINGS = RefineSettings(num_rounds=3, tau=10, dt=2)  # 3 blocks of 5 Adam steps.


@functools.lru_cache(maxsize=1)
def _body():
  full = from_arrays(random_smplh_arrays(3, num_vertices=300, num_betas=10, with_posedirs=True))
  return subset_body_model(full, guidance_vertex_indices(full, 48))


def _inputs():
  """A box (half-size 0.1 m) whose template sits 0.4–0.6 m away from a random body: contact pulls them together."""
  rng = np.random.default_rng(0)
  pose = axis_angle_to_rot6d(jnp.asarray(rng.normal(size=(B, 52, 3)) * 0.2, jnp.float32))
  trans = jnp.asarray([[0.5, 0.0, 0.0], [0.0, 0.4, 0.3], [-0.3, 0.0, 0.5]], jnp.float32)
  x = pack_x(pose, axis_angle_to_rot6d(jnp.zeros((B, 3))), trans, jnp.zeros((B, 10)), STATS)
  lo, hi = -0.2 * np.ones(3), 0.2 * np.ones(3)
  sdf = np.max(np.abs(np.asarray(grid_points(lo, hi, 8))) - 0.1, axis=-1)
  grid = SDFGrid(jnp.asarray(np.broadcast_to(sdf, (B, 8, 8, 8)), jnp.float32),
                 jnp.asarray(np.broadcast_to(lo, (B, 3)), jnp.float32), jnp.asarray(np.broadcast_to(hi, (B, 3)), jnp.float32))
  template = jnp.asarray(rng.uniform(-0.1, 0.1, (B, 64, 3)), jnp.float32)
  return RefineInputs(x_init=x, objects=ObjectGeometry(template=template, sdf=grid))


def _contact_fn(h, o, aux):
  """Every human and object point in contact; the 'floor' output records where the object is (weight 0 in
  the tests that move things), so the contacts stored per block show whether they were re-predicted."""
  where = jnp.broadcast_to(jnp.mean(o[..., 0], -1, keepdims=True), o.shape[:2])
  return jnp.ones(h.shape[:2]), jnp.ones(o.shape[:2]), where


CONFIG = BaselineConfig(learning_rate=0.02)


@functools.lru_cache(maxsize=None)
def _compiled(config, settings):
  """One compile per (config, settings): the weights are traced, so the tests share it."""
  refine = make_optimization_refine(config)
  return jax.jit(lambda inp, body, w: refine(None, inp, body, STATS, w, denoiser=None, contact_fn=_contact_fn,
                                             settings=settings))


def _run(config, weights, settings=SETTINGS):
  return _compiled(config, settings)(_inputs(), _body(), weights)


def test_budget_is_scorehoi_gradient_count():
  assert steps_per_round(RefineSettings()) * RefineSettings().num_rounds == 250  # Paper: N × τ/Δt = 10 × 25.
  assert steps_per_round(SETTINGS) == 5


def test_lowers_physical_loss_and_reports_every_block():
  out = _run(CONFIG, GuidanceWeights(lambda_ho=1.0, lambda_of=0.0, lambda_pt=1.0))
  total = np.asarray(out.losses.total)  # [R + 1, B]: at x_init, after each block.
  assert total.shape == (SETTINGS.num_rounds + 1, B)
  assert np.all(total[-1] < 0.7 * total[0]), total
  assert out.x_rounds.shape == (SETTINGS.num_rounds, B, 331)
  np.testing.assert_array_equal(out.x_rounds[-1], out.x0)
  assert out.step_losses.shape == (SETTINGS.num_rounds, 5, B)
  assert out.contacts[0].shape == (SETTINGS.num_rounds, B, 48)
  # The objects moved, and the contacts were re-predicted on the moved geometry before each block (CDIR).
  assert float(jnp.max(jnp.abs(out.x0[:, 318:321] - _inputs().x_init[:, 318:321]))) > 1e-3
  where = np.asarray(out.contacts[2][:, :, 0])  # [R, B]
  assert np.all(np.abs(np.diff(where, axis=0)) > 1e-5)


def test_data_term_alone_keeps_x_init():
  out = _run(CONFIG, GuidanceWeights(lambda_ho=0.0, lambda_of=0.0, lambda_pt=0.0))
  np.testing.assert_array_equal(np.asarray(out.x0), np.asarray(_inputs().x_init))
  np.testing.assert_array_equal(np.asarray(out.losses.total), 0.0)


def test_frozen_contacts_without_cdir():
  import dataclasses
  settings = dataclasses.replace(SETTINGS, cdir=False)
  out = _run(CONFIG, GuidanceWeights(lambda_ho=1.0, lambda_of=0.0), settings)
  where = np.asarray(out.contacts[2][:, :, 0])
  np.testing.assert_array_equal(where, np.broadcast_to(where[:1], where.shape))  # Predicted once, at x_init.
  assert float(jnp.max(jnp.abs(out.x0 - _inputs().x_init))) > 1e-3
