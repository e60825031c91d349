"""Procrustes alignment of corresponding point sets, batched and jittable.

The evaluation protocol of the field (CONTHO, ScoreHOI; notes/contho-notes.md
§4.2) aligns the prediction to the ground truth with one *similarity*
transform (scale, rotation, translation) fitted by Umeyama's closed form on
the concatenated human + object vertices before measuring Chamfer distances.

Umeyama (1991): with centred point sets X (source) and Y (target),
Σ = Yᵀ X / N = U S Vᵀ, R = U D Vᵀ where D = diag(1, 1, sign(det U det V))
removes reflections, s = tr(S D) / σ²_X and t = μ_Y - s R μ_X, so that
y ≈ s R x + t.
"""

from __future__ import annotations

import jax.numpy as jnp


def _weighted_mean(x, w):
  """Mean over the point axis [..., N, 3] with optional weights [..., N]."""
  if w is None:
    return jnp.mean(x, axis=-2)
  w = w / jnp.sum(w, axis=-1, keepdims=True)
  return jnp.sum(x * w[..., None], axis=-2)


def _cross_covariance(src_c, dst_c, w):
  """Σ = Σ_i w_i y_i x_iᵀ for centred points: [..., N, 3] x2 -> [..., 3, 3]."""
  if w is None:
    return jnp.einsum("...ni,...nj->...ij", dst_c, src_c) / src_c.shape[-2]
  w = w / jnp.sum(w, axis=-1, keepdims=True)
  return jnp.einsum("...n,...ni,...nj->...ij", w, dst_c, src_c)


def _rotation_and_d(cov):
  """The reflection-free rotation U D Vᵀ from Σ = U S Vᵀ, plus S and D's diagonal."""
  u, s, vt = jnp.linalg.svd(cov)
  det = jnp.linalg.det(u) * jnp.linalg.det(vt)
  # D = diag(1, 1, sign(det)); a zero determinant (planar data) counts as +1.
  last = jnp.where(det < 0, -1.0, 1.0).astype(cov.dtype)
  d = jnp.concatenate([jnp.ones(cov.shape[:-2] + (2,), cov.dtype), last[..., None]], -1)
  rot = jnp.einsum("...ij,...j,...jk->...ik", u, d, vt)
  return rot, s, d


def procrustes_similarity(src: jnp.ndarray, dst: jnp.ndarray, weights: jnp.ndarray | None = None):
  """Similarity transform (scale, R, t) minimising Σ w |s R src + t - dst|².

  Args:
    src: [..., N, 3] source points (e.g. the prediction).
    dst: [..., N, 3] corresponding target points (e.g. the ground truth).
    weights: optional [..., N] non-negative point weights (default: equal).

  Returns:
    (scale [...], R [..., 3, 3], t [..., 3]); apply with ``apply_similarity``.
  """
  mu_s = _weighted_mean(src, weights)
  mu_d = _weighted_mean(dst, weights)
  src_c = src - mu_s[..., None, :]
  dst_c = dst - mu_d[..., None, :]
  cov = _cross_covariance(src_c, dst_c, weights)
  rot, sing, d = _rotation_and_d(cov)
  if weights is None:
    var_s = jnp.mean(jnp.sum(src_c * src_c, axis=-1), axis=-1)
  else:
    w = weights / jnp.sum(weights, axis=-1, keepdims=True)
    var_s = jnp.sum(w * jnp.sum(src_c * src_c, axis=-1), axis=-1)
  # Guard against a source collapsed to one point (scale is then undefined).
  scale = jnp.sum(sing * d, axis=-1) / jnp.maximum(var_s, 1e-12)
  t = mu_d - scale[..., None] * jnp.einsum("...ij,...j->...i", rot, mu_s)
  return scale, rot, t


def procrustes_rigid(src: jnp.ndarray, dst: jnp.ndarray, weights: jnp.ndarray | None = None):
  """Rigid transform (R, t) minimising Σ w |R src + t - dst|² (no scale)."""
  mu_s = _weighted_mean(src, weights)
  mu_d = _weighted_mean(dst, weights)
  cov = _cross_covariance(src - mu_s[..., None, :], dst - mu_d[..., None, :], weights)
  rot, _, _ = _rotation_and_d(cov)
  t = mu_d - jnp.einsum("...ij,...j->...i", rot, mu_s)
  return rot, t


def apply_similarity(scale, rot, t, points):
  """s R p + t for points [..., N, 3] with (scale [...], R [..., 3, 3], t [..., 3])."""
  scale = jnp.asarray(scale)
  rotated = jnp.einsum("...ij,...nj->...ni", rot, points)
  return scale[..., None, None] * rotated + t[..., None, :]


def align_similarity(src: jnp.ndarray, dst: jnp.ndarray, weights: jnp.ndarray | None = None):
  """src [..., N, 3] moved onto dst by the best similarity transform."""
  scale, rot, t = procrustes_similarity(src, dst, weights)
  return apply_similarity(scale, rot, t, src)
