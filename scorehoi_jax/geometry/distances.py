"""Nearest-neighbour distances between point sets, in JAX.

Brute force on purpose: for the guidance (431 × 64 points) a dense distance
matrix is the fastest thing on every backend and has exact gradients. For the
evaluation sizes (13k × 6k) the query set is processed in chunks with
``lax.map`` so the [chunk, M] matrix bounds memory.
(``pairwise_sq_distances`` keeps the difference form, for callers that need
every pair to full precision, e.g. hinge losses over all pairs.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def pairwise_sq_distances(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
  """[..., N, 3], [..., M, 3] -> [..., N, M] squared Euclidean distances.

  Computed as a difference (not the |a|²+|b|²-2ab expansion) so that small
  distances keep full precision; that matters for 2 cm contact margins.
  """
  d = a[..., :, None, :] - b[..., None, :, :]
  return jnp.sum(d * d, axis=-1)


def nearest_distances(a: jnp.ndarray, b: jnp.ndarray, chunk: int | None = None):
  """For each point of a, the distance to its nearest point of b, and its index.

  a: [..., N, 3], b: [..., M, 3] -> (dist [..., N], index [..., N]).
  The neighbour is picked with the |a|² + |b|² − 2a·b expansion (one matrix
  multiply: 3–20× faster than the difference form on CPU and GPU), then its
  distance is recomputed exactly from the difference, so values and gradients
  are exact; only near-ties within ~1e-7 m² could pick a different, equally
  near point. chunk: if given, queries are processed ``chunk`` at a time
  (N padded) so the [chunk, M] matrix bounds memory at evaluation sizes.
  """
  b_sq = jnp.sum(b * b, axis=-1)

  def query(q):
    sq = jnp.sum(q * q, -1)[..., :, None] + b_sq[..., None, :] - 2.0 * jnp.einsum("...nd,...md->...nm", q, b)
    idx = jnp.argmin(sq, axis=-1)
    near = jnp.take_along_axis(b, idx[..., None], axis=-2)
    return jnp.sqrt(jnp.sum((q - near) ** 2, axis=-1) + 1e-12), idx

  n = a.shape[-2]
  if chunk is None or n <= chunk:
    return query(a)
  pad = (-n) % chunk
  a_p = jnp.pad(a, [(0, 0)] * (a.ndim - 2) + [(0, pad), (0, 0)])
  a_c = jnp.moveaxis(a_p.reshape(a.shape[:-2] + (-1, chunk, 3)), -3, 0)
  dist, idx = jax.lax.map(query, a_c)
  dist = jnp.moveaxis(dist, 0, -2).reshape(a.shape[:-2] + (n + pad,))[..., :n]
  idx = jnp.moveaxis(idx, 0, -2).reshape(a.shape[:-2] + (n + pad,))[..., :n]
  return dist, idx


def chamfer_distance(a: jnp.ndarray, b: jnp.ndarray, chunk: int | None = None):
  """Symmetric Chamfer as the HOI field reports it (not squared):

  mean_b min_a |a-b| + mean_a min_b |a-b|. a: [..., N, 3], b: [..., M, 3] -> [...].
  """
  d_ab, _ = nearest_distances(a, b, chunk)
  d_ba, _ = nearest_distances(b, a, chunk)
  return d_ab.mean(-1) + d_ba.mean(-1)
