"""Procrustes alignment against known transforms and SciPy's Kabsch solver."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial.transform import Rotation

from scorehoi_jax.geometry import (
    align_similarity,
    apply_similarity,
    procrustes_rigid,
    procrustes_similarity,
)


def _random_similarity(rng, batch):
  rot = Rotation.random(batch, random_state=rng.integers(1 << 31)).as_matrix()
  scale = rng.uniform(0.5, 2.0, batch)
  t = rng.normal(size=(batch, 3))
  return scale, rot, t


def test_recovers_known_similarity_batched():
  rng = np.random.default_rng(0)
  src = rng.normal(size=(4, 50, 3))
  scale, rot, t = _random_similarity(rng, 4)
  dst = scale[:, None, None] * np.einsum("bij,bnj->bni", rot, src) + t[:, None]
  s_hat, r_hat, t_hat = procrustes_similarity(jnp.asarray(src, jnp.float32), jnp.asarray(dst, jnp.float32))
  np.testing.assert_allclose(s_hat, scale, rtol=1e-4)
  np.testing.assert_allclose(r_hat, rot, atol=1e-4)
  np.testing.assert_allclose(t_hat, t, atol=1e-4)
  np.testing.assert_allclose(apply_similarity(s_hat, r_hat, t_hat, src), dst, atol=1e-4)


def test_reflection_is_never_returned():
  rng = np.random.default_rng(1)
  src = rng.normal(size=(40, 3))
  dst = src * np.array([-1.0, 1.0, 1.0])  # A mirror image: best *rotation* is not exact.
  _, rot, _ = procrustes_similarity(jnp.asarray(src), jnp.asarray(dst))
  assert np.linalg.det(np.asarray(rot)) > 0.999
  np.testing.assert_allclose(np.asarray(rot) @ np.asarray(rot).T, np.eye(3), atol=1e-5)


def test_rotation_matches_scipy_kabsch_on_noisy_data():
  rng = np.random.default_rng(2)
  src = rng.normal(size=(100, 3))
  rot = Rotation.random(random_state=3).as_matrix()
  dst = src @ rot.T + 0.05 * rng.normal(size=src.shape) + np.array([0.3, -0.2, 1.0])
  r_hat, t_hat = procrustes_rigid(jnp.asarray(src, jnp.float32), jnp.asarray(dst, jnp.float32))
  # SciPy: rotation aligning centred src onto centred dst (independent implementation).
  ref, _ = Rotation.align_vectors(dst - dst.mean(0), src - src.mean(0))
  np.testing.assert_allclose(r_hat, ref.as_matrix(), atol=1e-4)
  np.testing.assert_allclose(t_hat, dst.mean(0) - ref.as_matrix() @ src.mean(0), atol=1e-4)


def test_weights_ignore_outliers():
  rng = np.random.default_rng(4)
  src = rng.normal(size=(30, 3))
  scale, rot, t = _random_similarity(rng, 1)
  dst = scale[0] * src @ rot[0].T + t[0]
  dst[:5] += 10.0  # Corrupted points, weighted out.
  w = np.ones(30)
  w[:5] = 0.0
  s_hat, r_hat, t_hat = procrustes_similarity(jnp.asarray(src), jnp.asarray(dst), jnp.asarray(w))
  np.testing.assert_allclose(s_hat, scale[0], rtol=1e-4)
  np.testing.assert_allclose(r_hat, rot[0], atol=1e-4)
  np.testing.assert_allclose(t_hat, t[0], atol=1e-4)


def test_scale_minimises_residual():
  """The closed-form optimum beats nearby scales (checks the scale formula on noisy data)."""
  rng = np.random.default_rng(5)
  src = rng.normal(size=(60, 3))
  dst = 1.7 * src + 0.3 * rng.normal(size=src.shape)
  s, r, t = procrustes_similarity(jnp.asarray(src), jnp.asarray(dst))

  def residual(scale):
    return float(jnp.sum((apply_similarity(scale, r, t, src) - dst) ** 2))

  best = residual(s)
  # Re-fit t for each perturbed scale: t = mean(dst) - s R mean(src).
  for ds in (-0.02, 0.02):
    s2 = s + ds
    t2 = dst.mean(0) - s2 * np.asarray(r) @ src.mean(0)
    assert best < float(jnp.sum((apply_similarity(s2, r, jnp.asarray(t2), src) - dst) ** 2))


def test_jit_and_vmap_agree_with_broadcasting():
  rng = np.random.default_rng(6)
  src = jnp.asarray(rng.normal(size=(3, 20, 3)), jnp.float32)
  dst = jnp.asarray(rng.normal(size=(3, 20, 3)), jnp.float32)
  batched = align_similarity(src, dst)
  mapped = jax.jit(jax.vmap(align_similarity))(src, dst)
  np.testing.assert_allclose(batched, mapped, atol=1e-5)
