"""Rotation conversions against SciPy and closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from scorehoi_jax import geometry as g


def _random_rotations(n, seed=0):
  return Rotation.random(n, random_state=seed)


def test_axis_angle_to_matrix_matches_scipy():
  r = _random_rotations(200)
  got = g.axis_angle_to_matrix(jnp.asarray(r.as_rotvec(), jnp.float32))
  np.testing.assert_allclose(got, r.as_matrix(), atol=2e-6)


@pytest.mark.parametrize("angle", [0.0, 1e-7, 1e-3, 1.0, np.pi - 1e-3, np.pi - 1e-6, np.pi])
def test_matrix_to_axis_angle_near_zero_and_pi(angle):
  axis = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
  rv = axis * angle
  m = Rotation.from_rotvec(rv).as_matrix()
  got = np.asarray(g.matrix_to_axis_angle(jnp.asarray(m, jnp.float32)), np.float64)
  # Near π, aa and -aa are the same rotation: compare the rotations.
  np.testing.assert_allclose(Rotation.from_rotvec(got).as_matrix(), m, atol=2e-5)
  if angle < np.pi - 1e-2:
    np.testing.assert_allclose(got, rv, atol=1e-5)


def test_rot6d_convention_is_first_two_columns_row_major():
  m = jnp.arange(9.0).reshape(3, 3)
  np.testing.assert_array_equal(g.matrix_to_rot6d(m), [0, 1, 3, 4, 6, 7])


def test_rot6d_round_trip_and_gram_schmidt():
  r = _random_rotations(100, seed=1).as_matrix()
  x = g.matrix_to_rot6d(jnp.asarray(r, jnp.float32))
  np.testing.assert_allclose(g.rot6d_to_matrix(x), r, atol=2e-6)
  # A non-orthonormal 6D decodes to a rotation whose first column is a1/|a1|.
  raw = np.random.default_rng(0).normal(size=(50, 6))
  m = np.asarray(g.rot6d_to_matrix(jnp.asarray(raw)))
  np.testing.assert_allclose(np.einsum("nij,nik->njk", m, m), np.broadcast_to(np.eye(3), (50, 3, 3)), atol=1e-5)
  np.testing.assert_allclose(np.linalg.det(m), 1.0, atol=1e-5)
  a1 = raw.reshape(50, 3, 2)[:, :, 0]
  np.testing.assert_allclose(m[:, :, 0], a1 / np.linalg.norm(a1, axis=1, keepdims=True), atol=1e-5)


def test_batched_leading_dims():
  aa = jnp.asarray(np.random.default_rng(2).normal(size=(4, 5, 3)), jnp.float32)
  m = g.axis_angle_to_matrix(aa)
  assert m.shape == (4, 5, 3, 3)
  assert g.matrix_to_rot6d(m).shape == (4, 5, 6)
  back = g.axis_angle_to_matrix(g.matrix_to_axis_angle(m))
  np.testing.assert_allclose(back, m, atol=1e-5)


def test_gradients_finite_at_identity():
  for fn, x in [(g.axis_angle_to_matrix, jnp.zeros(3)),
                (g.matrix_to_axis_angle, jnp.eye(3)),
                (g.rot6d_to_matrix, jnp.array([1.0, 0, 0, 1, 0, 0])),
                (g.rot6d_to_axis_angle, jnp.array([1.0, 0, 0, 1, 0, 0]))]:
    grad = jax.grad(lambda v: jnp.sum(fn(v) ** 2 + fn(v)))(x)
    assert np.all(np.isfinite(grad)), fn.__name__


def test_rodrigues_gradient_matches_finite_differences():
  aa = jnp.array([0.3, -0.2, 0.5], jnp.float64) if jax.config.jax_enable_x64 else jnp.array([0.3, -0.2, 0.5])
  w = jnp.asarray(np.random.default_rng(3).normal(size=(3, 3)), aa.dtype)
  f = lambda v: jnp.sum(g.axis_angle_to_matrix(v) * w)
  grad = np.asarray(jax.grad(f)(aa))
  eps = 1e-3
  fd = [(f(aa.at[i].add(eps)) - f(aa.at[i].add(-eps))) / (2 * eps) for i in range(3)]
  np.testing.assert_allclose(grad, fd, atol=2e-3)
