"""Rotation representations: 6D, rotation matrices and axis-angle.

The 6D convention is the one of the released ScoreHOI / CONTHO / Hand4Whole code
(notes/official-code-notes.md §1.2): the first two *columns* of R, flattened
row-major, i.e. ``[R00, R01, R10, R11, R20, R21]``. Decoding reshapes to (3, 2),
takes column 0 as a1 and column 1 as a2, and runs Gram–Schmidt with a1 first.

Every function is batched over arbitrary leading dimensions, jittable, and has
finite gradients at the identity (the rest pose, where most samples start).
"""

from __future__ import annotations

import jax.numpy as jnp

_EPS = 1e-12  # torch.nn.functional.normalize's eps, so decoding matches the released code.


def _normalize(v: jnp.ndarray) -> jnp.ndarray:
  norm = jnp.sqrt(jnp.sum(v * v, axis=-1, keepdims=True))
  return v / jnp.maximum(norm, _EPS)


def rot6d_to_matrix(x: jnp.ndarray) -> jnp.ndarray:
  """[..., 6] -> [..., 3, 3]; Gram–Schmidt on the two stored columns."""
  m = x.reshape(x.shape[:-1] + (3, 2))
  b1 = _normalize(m[..., 0])
  a2 = m[..., 1]
  b2 = _normalize(a2 - jnp.sum(b1 * a2, axis=-1, keepdims=True) * b1)
  b3 = jnp.cross(b1, b2)
  return jnp.stack([b1, b2, b3], axis=-1)


def matrix_to_rot6d(r: jnp.ndarray) -> jnp.ndarray:
  """[..., 3, 3] -> [..., 6]; first two columns, row-major."""
  return r[..., :, :2].reshape(r.shape[:-2] + (6,))


def _skew(v: jnp.ndarray) -> jnp.ndarray:
  x, y, z = v[..., 0], v[..., 1], v[..., 2]
  o = jnp.zeros_like(x)
  return jnp.stack([
      jnp.stack([o, -z, y], -1),
      jnp.stack([z, o, -x], -1),
      jnp.stack([-y, x, o], -1),
  ], -2)


def axis_angle_to_matrix(aa: jnp.ndarray) -> jnp.ndarray:
  """Rodrigues: [..., 3] -> [..., 3, 3].

  sin(θ)/θ and (1-cos θ)/θ² are evaluated with a Taylor branch near 0 and the
  norm is taken of a safe argument, so the value and its gradient are finite at
  aa = 0 (jnp.linalg.norm has a NaN gradient there).
  """
  sq = jnp.sum(aa * aa, axis=-1)
  small = sq < 1e-8
  sq_safe = jnp.where(small, 1.0, sq)
  theta = jnp.sqrt(sq_safe)
  a = jnp.where(small, 1.0 - sq / 6.0, jnp.sin(theta) / theta)
  b = jnp.where(small, 0.5 - sq / 24.0, (1.0 - jnp.cos(theta)) / sq_safe)
  k = _skew(aa)
  eye = jnp.eye(3, dtype=aa.dtype)
  return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def matrix_to_quaternion(r: jnp.ndarray) -> jnp.ndarray:
  """[..., 3, 3] -> [..., 4] as (w, x, y, z), w >= 0.

  Picks, per matrix, the best-conditioned of the four classic formulas (the one
  whose diagonal combination is largest), which stays accurate near θ = π where
  the trace formula loses all precision.
  """
  m00, m01, m02 = r[..., 0, 0], r[..., 0, 1], r[..., 0, 2]
  m10, m11, m12 = r[..., 1, 0], r[..., 1, 1], r[..., 1, 2]
  m20, m21, m22 = r[..., 2, 0], r[..., 2, 1], r[..., 2, 2]
  # 4*q_i^2 for each component; the largest one is divided by safely.
  d = jnp.stack([
      1.0 + m00 + m11 + m22,
      1.0 + m00 - m11 - m22,
      1.0 - m00 + m11 - m22,
      1.0 - m00 - m11 + m22,
  ], -1)
  cands = jnp.stack([
      jnp.stack([d[..., 0], m21 - m12, m02 - m20, m10 - m01], -1),
      jnp.stack([m21 - m12, d[..., 1], m10 + m01, m02 + m20], -1),
      jnp.stack([m02 - m20, m10 + m01, d[..., 2], m21 + m12], -1),
      jnp.stack([m10 - m01, m02 + m20, m21 + m12, d[..., 3]], -1),
  ], -2)
  best = jnp.argmax(d, axis=-1)
  q = jnp.take_along_axis(cands, best[..., None, None], axis=-2)[..., 0, :]
  denom = jnp.take_along_axis(d, best[..., None], axis=-1)
  q = q / (2.0 * jnp.sqrt(jnp.maximum(denom, 1e-12)))
  return q * jnp.where(q[..., :1] < 0, -1.0, 1.0)


def quaternion_to_axis_angle(q: jnp.ndarray) -> jnp.ndarray:
  """[..., 4] (w, x, y, z) -> [..., 3], angle in [0, π]."""
  q = q * jnp.where(q[..., :1] < 0, -1.0, 1.0)
  xyz = q[..., 1:]
  sin_sq = jnp.sum(xyz * xyz, axis=-1)
  small = sin_sq < 1e-12
  sin_half = jnp.sqrt(jnp.where(small, 1.0, sin_sq))
  angle = 2.0 * jnp.arctan2(sin_half, q[..., 0])
  # θ/sin(θ/2) -> 2/w as θ -> 0 (w ≈ 1 there).
  scale = jnp.where(small, 2.0 / jnp.maximum(q[..., 0], 1e-6), angle / sin_half)
  return xyz * scale[..., None]


def matrix_to_axis_angle(r: jnp.ndarray) -> jnp.ndarray:
  """[..., 3, 3] -> [..., 3] via the quaternion (stable near 0 and π)."""
  return quaternion_to_axis_angle(matrix_to_quaternion(r))


def rot6d_to_axis_angle(x: jnp.ndarray) -> jnp.ndarray:
  return matrix_to_axis_angle(rot6d_to_matrix(x))


def axis_angle_to_rot6d(aa: jnp.ndarray) -> jnp.ndarray:
  return matrix_to_rot6d(axis_angle_to_matrix(aa))
