"""Guidance losses: values against NumPy/SciPy and analytic SDFs; each loss goes
down along its own guidance on a toy scene (hand near a box, box floating above
the floor, hand inside the box)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.spatial.transform import Rotation

from scorehoi_jax.body import guidance_vertex_indices, load_body_model, subset_body_model
from scorehoi_jax.diffusion import ddim, losses
from scorehoi_jax.diffusion.schedule import cosine_schedule
from scorehoi_jax.diffusion.xpack import decode_x, default_betas_stats, pack_x_from_matrices
from scorehoi_jax.geometry import SDFGrid, grid_points, pairwise_sq_distances

A = cosine_schedule()
HALF = 0.06  # Box half-size (m).


pytestmark = pytest.mark.usefixtures("fast_compile")


def box_sdf_grid(half=HALF, extent=0.2, res=33):
  lo, hi = -extent * np.ones(3), extent * np.ones(3)
  p = np.asarray(grid_points(lo, hi, res), np.float64)
  q = np.abs(p) - half
  sdf = np.linalg.norm(np.maximum(q, 0), axis=-1) + np.minimum(q.max(-1), 0)
  return SDFGrid(jnp.asarray(sdf, jnp.float32), jnp.asarray(lo, jnp.float32), jnp.asarray(hi, jnp.float32))


def box_template(half=HALF, n=64, seed=0):
  rng = np.random.default_rng(seed)
  p = rng.uniform(-half, half, size=(n, 3))
  axis = rng.integers(0, 3, n)
  p[np.arange(n), axis] = np.where(rng.random(n) < 0.5, -half, half)  # Push onto a face.
  return jnp.asarray(p, jnp.float32)


# ------------------------------------------------------------------------------------------------
# Values against references.
# ------------------------------------------------------------------------------------------------


def test_contact_loss_matches_numpy_and_naive_gradient():
  rng = np.random.default_rng(0)
  h = rng.normal(size=(50, 3)).astype(np.float32) * 0.2
  o = rng.normal(size=(20, 3)).astype(np.float32) * 0.2
  m_h = (rng.random(50) < 0.5).astype(np.float32)
  m_o = (rng.random(20) < 0.5).astype(np.float32)
  d = cdist(h, o)
  ref = np.sum(np.maximum(d.min(1) * m_h - 0.02, 0) ** 2) + np.sum(np.maximum(d.min(0) * m_o - 0.02, 0) ** 2)
  assert float(losses.contact_loss(h, o, m_h, m_o)) == pytest.approx(ref, rel=1e-5)

  def naive(h, o):  # Differentiating min over the dense matrix directly.
    sq = pairwise_sq_distances(h, o)
    dh, do = jnp.sqrt(sq.min(1) + 1e-12), jnp.sqrt(sq.min(0) + 1e-12)
    return jnp.sum(jnp.maximum(dh * m_h - 0.02, 0) ** 2) + jnp.sum(jnp.maximum(do * m_o - 0.02, 0) ** 2)

  g = jax.grad(losses.contact_loss, argnums=(0, 1))(h, o, m_h, m_o)
  g_ref = jax.grad(naive, argnums=(0, 1))(h, o)
  for a, b in zip(g, g_ref):
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_floor_loss_implicit_floor_and_plane():
  rng = np.random.default_rng(1)
  h = rng.normal(size=(30, 3)).astype(np.float32)
  o = rng.normal(size=(10, 3)).astype(np.float32)
  m = (rng.random(10) < 0.6).astype(np.float32)
  y_floor = max(h[:, 1].max(), o[:, 1].max())  # y down: the floor is the largest y.
  ref = np.sum(np.maximum(np.abs(o[:, 1] - y_floor) * m - 0.02, 0) ** 2)
  assert float(losses.floor_loss(h, o, m)) == pytest.approx(ref, rel=1e-5)
  n = np.array([0.0, -1.0, 0.0], np.float32)  # Up = −y; plane y = 1.5: height = −y + 1.5.
  plane = jnp.asarray(np.r_[n, 1.5], jnp.float32)
  ref_p = np.sum(np.maximum(np.abs(1.5 - o[:, 1]) * m - 0.02, 0) ** 2)
  assert float(losses.floor_loss(h, o, m, plane=plane)) == pytest.approx(ref_p, rel=1e-5)


def test_penetration_loss_is_mean_depth_of_analytic_box():
  grid = box_sdf_grid()
  rng = np.random.default_rng(2)
  pts = rng.uniform(-0.09, 0.09, size=(200, 3))
  q = np.abs(pts) - HALF
  true_sdf = np.linalg.norm(np.maximum(q, 0), axis=-1) + np.minimum(q.max(-1), 0)
  ref = np.mean(np.maximum(-true_sdf, 0))
  assert ref > 0.002  # Some points are inside.
  r = jnp.eye(3)
  t = jnp.zeros(3)
  got = float(losses.penetration_loss(jnp.asarray(pts, jnp.float32), r, t, grid))
  assert got == pytest.approx(ref, abs=1e-3)  # Trilinear interpolation of a 1.25 cm grid.
  # A rotated, translated object: the same points moved rigidly give the same loss.
  rot = Rotation.from_euler("xyz", [0.3, -0.5, 1.1]).as_matrix()
  shift = np.array([0.1, -0.2, 0.3])
  moved = pts @ rot.T + shift
  got_m = float(losses.penetration_loss(jnp.asarray(moved, jnp.float32), jnp.asarray(rot, jnp.float32),
                                        jnp.asarray(shift, jnp.float32), grid))
  assert got_m == pytest.approx(got, abs=1e-5)
  # The inert (released) variant reports a value but has no gradient.
  g = jax.grad(losses.penetration_inert)(jnp.asarray(pts, jnp.float32), r, t, grid)
  assert float(jnp.abs(g).max()) == 0.0
  g_sdf = jax.grad(losses.penetration_loss)(jnp.asarray(pts, jnp.float32), r, t, grid)
  assert float(jnp.abs(g_sdf).max()) > 0.0
  far = np.abs(true_sdf) > 0.02  # Away from the surface, where interpolation cannot flip the sign.
  frac = losses.penetration_inert(jnp.asarray(pts[far], jnp.float32), r, t, grid)
  assert float(frac) == pytest.approx(np.mean(true_sdf[far] <= 0), abs=1e-6)


# ------------------------------------------------------------------------------------------------
# Each loss decreases along its own guidance (toy scenes on the default body).
# ------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _scene_body():
  full = load_body_model()
  return subset_body_model(full, guidance_vertex_indices(full, 431))


STATS = default_betas_stats()
TEMPLATE = box_template()[None]


@functools.lru_cache(maxsize=1)
def _scene_fn():
  body = _scene_body()

  @jax.jit
  def scene(offset):
    flip = jnp.diag(jnp.asarray([1.0, -1.0, -1.0]))  # π about x: the body's up (+y) becomes −y.
    rot = jnp.tile(jnp.eye(3), (1, 52, 1, 1)).at[:, 0].set(flip)
    x_rest = pack_x_from_matrices(rot, jnp.eye(3)[None], jnp.zeros((1, 3)), jnp.zeros((1, 10)), STATS)
    dec = decode_x(x_rest, body, TEMPLATE, STATS)
    t_o = (dec.joints[0, 21] + offset)[None]  # Joint 21: right wrist.
    x = x_rest.at[:, 318:321].set(t_o)
    return x, decode_x(x, body, TEMPLATE, STATS)

  return scene


def _scene(offset):
  """The rest body turned into camera axes (y down) and a box at the right wrist + offset."""
  return _scene_fn()(jnp.asarray(offset, jnp.float32))


@functools.lru_cache(maxsize=1)
def _compiled():
  """One compiled (loss, guided refinement) pair shared by the three scenes.

  The term weights w [3] select which loss guides; ε ≡ 0 (a flat prior) so only
  the guidance moves x. Three rounds of Algorithm A (τ = 50, Δt = 10).
  """
  body, grid = _scene_body(), box_sdf_grid()

  def loss(x, m_h, m_o, m_of, w):
    d = decode_x(x, body, TEMPLATE, STATS)
    ho = jax.vmap(losses.contact_loss, (0, 0, None, None))(d.human_points, d.object_points, m_h, m_o)
    of = jax.vmap(losses.floor_loss, (0, 0, None))(d.human_points, d.object_points, m_of)
    pt = jax.vmap(losses.penetration_loss, (0, 0, 0, None))(d.human_points, d.obj_rotmat, d.obj_trans, grid)
    return w[0] * ho + w[1] * of + w[2] * pt

  def run(x, m_h, m_o, m_of, w, rho):
    eps0 = lambda x, t: jnp.zeros_like(x)
    grad_fn = ddim.make_guidance_grad_fn(lambda xx: loss(xx, m_h, m_o, m_of, w), A)

    def one_round(x, _):
      x_tau = ddim.ddim_invert(eps0, x, A, 50, 10)
      return ddim.ddim_sample(eps0, x_tau, A, 50, 10, grad_fn, rho=rho), None

    return jax.lax.scan(one_round, x, None, length=3)[0]

  return jax.jit(loss), jax.jit(run)


def _before_after(x, masks, w, rho):
  loss, run = _compiled()
  w = jnp.asarray(w, jnp.float32)
  x_new = run(x, *masks, w, jnp.float32(rho))
  return float(loss(x, *masks, w)[0]), float(loss(x_new, *masks, w)[0]), x_new


def test_contact_guidance_pulls_box_to_hand():
  x, dec = _scene([0.0, 0.0, 0.15])  # Box centre 15 cm in front of the wrist.
  wrist = dec.joints[0, 21]
  m_h = (jnp.linalg.norm(dec.human_points[0] - wrist, axis=-1) < 0.08).astype(jnp.float32)
  m_o = jnp.zeros(64).at[jnp.argsort(jnp.linalg.norm(dec.object_points[0] - wrist, axis=-1))[:8]].set(1.0)
  assert float(m_h.sum()) >= 3
  before, after, _ = _before_after(x, (m_h, m_o, jnp.zeros(64)), [1, 0, 0], 1.0)
  assert before > 1e-3 and after < 0.5 * before


def test_floor_guidance_lowers_floating_box():
  x, dec = _scene([0.0, 0.0, 0.15])
  feet_y = float(dec.human_points[0, :, 1].max())
  x = x.at[:, 319].set(feet_y - 0.3 - HALF)  # Box bottom 30 cm above the floor (y down).
  m_of = (TEMPLATE[0, :, 1] > HALF - 1e-4).astype(jnp.float32)  # The bottom face (largest y).
  assert float(m_of.sum()) >= 3
  before, after, x_new = _before_after(x, (jnp.zeros(431), jnp.zeros(64), m_of), [0, 1, 0], 1.0)
  assert before > 1e-2 and after < 0.5 * before
  assert float(x_new[0, 319]) > float(x[0, 319])  # It moved down (+y).


def test_penetration_guidance_pushes_hand_out_of_box():
  x, _ = _scene([0.0, 0.0, 0.0])  # Box centred on the wrist.
  before, after, _ = _before_after(x, (jnp.zeros(431), jnp.zeros(64), jnp.zeros(64)), [0, 0, 1], 200.0)
  assert before > 1e-4 and after < 0.5 * before


def test_physical_loss_is_the_weighted_sum():
  _, dec = _scene([0.0, 0.02, 0.05])
  grid = box_sdf_grid()
  w = losses.GuidanceWeights(lambda_ho=0.3, lambda_of=0.7, lambda_pt=2.0).as_arrays()
  ones_h, ones_o = jnp.ones(431), jnp.ones(64)
  args = (dec.human_points[0], dec.object_points[0], dec.obj_rotmat[0], dec.obj_trans[0], grid,
          ones_h, ones_o, ones_o, w)
  terms = losses.physical_loss(*args)
  assert float(terms.total) == pytest.approx(0.3 * float(terms.ho) + 0.7 * float(terms.of) + 2.0 * float(terms.pt),
                                             rel=1e-6)
  assert float(losses.physical_loss(*args, pt_mode="off").pt) == 0.0
  with pytest.raises(ValueError, match="pt_mode"):
    losses.physical_loss(*args, pt_mode="count")
