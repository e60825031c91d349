"""Affordance-aware geometry encoder: a PointNet++-style network in JAX (paper §3.2, App. B).

The paper uses a PointNeXt pre-trained on ModelNet40 and frozen; the released
code feeds it the 64 template points of each known object offline and looks
the feature up by category name, so an unseen object has no feature. Here the
encoder runs on whatever points it is given — the 64 template points of any
mesh — and nothing in its forward needs a category id.

Architecture (Qi et al. 2017, "PointNet++", segmentation variant):
  * set abstraction (SA) levels: farthest-point sampling of centres, k-nearest-
    neighbour grouping, a shared MLP on [neighbour xyz − centre, neighbour
    features], max-pool over the neighbours;
  * a group-all level giving the global feature (max over all centres);
  * feature propagation (FP) back to the input points: inverse-distance
    interpolation from the 3 nearest coarse centres, concatenated with the
    finer level's features, shared MLP. The global feature is appended to
    every point, so each per-point token knows the whole shape.
Heads: category logits on the global feature and per-point affordance
(contact-region) logits on the tokens; both serve the pre-training
(``pretrain_loss``) and are ignored downstream.

kNN rather than ball query: grouping then never comes back empty or padded,
whatever the object's size (a ball radius would have to suit both a keyboard
and a table). Points are centred on their centroid but keep metric scale:
size is part of affordance (a stool and a toy stool are used differently).

FPS starts from the point farthest from the centroid, so the global feature
is invariant to the order of the input points (tested) and per-point tokens
are equivariant.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from scorehoi_jax.geometry.distances import pairwise_sq_distances


def farthest_point_indices(points: jnp.ndarray, k: int) -> jnp.ndarray:
  """Indices [k] of a farthest-point subset of points [N, 3] (JAX, jittable).

  Starts at the point farthest from the centroid (order independent).
  """
  start = jnp.argmax(jnp.sum((points - points.mean(0)) ** 2, -1))
  idx0 = jnp.zeros((k,), jnp.int32).at[0].set(start)
  dist0 = jnp.sum((points - points[start]) ** 2, -1)

  def body(i, carry):
    idx, dist = carry
    nxt = jnp.argmax(dist).astype(jnp.int32)
    return idx.at[i].set(nxt), jnp.minimum(dist, jnp.sum((points - points[nxt]) ** 2, -1))

  idx, _ = jax.lax.fori_loop(1, k, body, (idx0, dist0)) if k > 1 else (idx0, dist0)
  return idx


def _gather(x, idx):
  """Batched gather: x [B, N, C], idx [B, ...] -> [B, ..., C]."""
  return jax.vmap(lambda a, i: a[i])(x, idx)


class SharedMLP(nn.Module):
  """Pointwise Dense → LayerNorm → ReLU, one per width."""
  widths: Sequence[int]

  @nn.compact
  def __call__(self, x):
    for i, w in enumerate(self.widths):
      x = nn.relu(nn.LayerNorm(name=f"norm{i}")(nn.Dense(w, name=f"fc{i}")(x)))
    return x


class SetAbstraction(nn.Module):
  """FPS centres, kNN groups, shared MLP, max-pool over each group."""
  num_centers: int
  num_neighbors: int
  widths: Sequence[int]

  @nn.compact
  def __call__(self, xyz, feats):
    n = xyz.shape[1]
    m, k = min(self.num_centers, n), min(self.num_neighbors, n)
    centre_idx = jax.vmap(lambda p: farthest_point_indices(p, m))(jax.lax.stop_gradient(xyz))
    centres = _gather(xyz, centre_idx)  # [B, M, 3]
    _, nbr = jax.lax.top_k(-pairwise_sq_distances(centres, xyz), k)  # [B, M, k]
    grouped = jnp.concatenate([_gather(xyz, nbr) - centres[:, :, None, :], _gather(feats, nbr)], -1)
    return centres, jnp.max(SharedMLP(self.widths, name="mlp")(grouped), axis=2)


def interpolate(dst_xyz, src_xyz, src_feats, k: int = 3):
  """Inverse-squared-distance interpolation of src features at dst points (PointNet++ FP)."""
  k = min(k, src_xyz.shape[1])
  neg_sq, idx = jax.lax.top_k(-pairwise_sq_distances(dst_xyz, src_xyz), k)
  w = 1.0 / (-neg_sq + 1e-8)
  w = w / jnp.sum(w, -1, keepdims=True)
  return jnp.sum(_gather(src_feats, idx) * w[..., None], axis=2)


class PointEncoder(nn.Module):
  """Points [B, N, 3] -> per-point tokens, global feature, pre-training heads.

  Attributes:
    num_centers / num_neighbors / sa_widths: one entry per SA level.
    fp_widths: one entry per FP level (coarse to fine), as many as SA levels.
    global_widths: MLP of the group-all level; its last width is the global dim.
    token_dim: width of the per-point tokens.
    num_categories: classes of the pre-training classification head.
  """
  num_centers: Sequence[int] = (32, 8)
  num_neighbors: Sequence[int] = (16, 8)
  sa_widths: Sequence[Sequence[int]] = ((64, 64, 128), (128, 128, 256))
  fp_widths: Sequence[Sequence[int]] = ((256, 256), (128, 128))
  global_widths: Sequence[int] = (256, 512)
  token_dim: int = 128
  num_categories: int = 32

  @property
  def global_dim(self) -> int:
    return self.global_widths[-1]

  @nn.compact
  def __call__(self, points: jnp.ndarray) -> dict:
    if points.ndim != 3 or points.shape[-1] != 3:
      raise ValueError(f"PointEncoder: points must be [B, N, 3], got shape {points.shape}.")
    if not (len(self.num_centers) == len(self.num_neighbors) == len(self.sa_widths) == len(self.fp_widths)):
      raise ValueError("PointEncoder: num_centers, num_neighbors, sa_widths and fp_widths need one entry per level.")
    xyz = points - jnp.mean(points, axis=1, keepdims=True)  # Translation invariant, metric scale kept.
    levels = [(xyz, xyz)]  # (positions, features) per level; level 0 = the input points.
    for i, (m, k, w) in enumerate(zip(self.num_centers, self.num_neighbors, self.sa_widths)):
      levels.append(SetAbstraction(m, k, tuple(w), name=f"sa{i}")(*levels[-1]))
    top_xyz, top_feats = levels[-1]
    g = SharedMLP(tuple(self.global_widths), name="global_mlp")(jnp.concatenate([top_xyz, top_feats], -1))
    g = jnp.max(g, axis=1)  # [B, G]

    feats = top_feats
    for j, w in enumerate(self.fp_widths):
      fine_xyz, fine_feats = levels[-2 - j]
      coarse_xyz = levels[-1 - j][0]
      up = interpolate(fine_xyz, coarse_xyz, feats)
      feats = SharedMLP(tuple(w), name=f"fp{j}")(jnp.concatenate([up, fine_feats], -1))
    g_b = jnp.broadcast_to(g[:, None, :], feats.shape[:2] + g.shape[-1:])
    tokens = nn.Dense(self.token_dim, name="token_proj")(jnp.concatenate([feats, g_b], -1))
    tokens = nn.LayerNorm(name="token_norm")(tokens)
    return {
        "tokens": tokens,  # [B, N, token_dim]
        "global": g,  # [B, G]
        "category_logits": nn.Dense(self.num_categories, name="category_head")(g),
        "affordance_logits": nn.Dense(1, name="affordance_head")(nn.relu(tokens))[..., 0],  # [B, N]
    }


def pretrain_loss(params, points, category, affordance, *, encoder: PointEncoder | None = None,
                  affordance_weight: float = 1.0, weights=None):
  """Cross-entropy on the category plus per-point BCE on the affordance (contact) labels.

  Args:
    params: the encoder's parameters (``{"params": ...}`` variables or the bare tree).
    points: [B, N, 3] object points (e.g. the 64 template points, augmented).
    category: int [B] class index in the *pre-training* library (never used downstream).
    affordance: [B, N] in [0, 1], 1 where the surface is a contact region.
    encoder: the module (default: ``PointEncoder()``); must match ``params``.
    affordance_weight: weight of the per-point term.
    weights: optional [B] example weights (batch padding = 0).

  Returns:
    (loss, metrics) with metrics {ce, bce, accuracy, affordance_accuracy}.
  """
  encoder = encoder if encoder is not None else PointEncoder()
  variables = params if "params" in params else {"params": params}
  out = encoder.apply(variables, points)
  w = jnp.ones(points.shape[:1], jnp.float32) if weights is None else weights
  denom = jnp.maximum(jnp.sum(w), 1.0)
  ce = optax.softmax_cross_entropy_with_integer_labels(out["category_logits"], category)
  bce = jnp.mean(optax.sigmoid_binary_cross_entropy(out["affordance_logits"], affordance), axis=-1)
  acc = (jnp.argmax(out["category_logits"], -1) == category).astype(jnp.float32)
  aff_acc = jnp.mean(((out["affordance_logits"] > 0) == (affordance > 0.5)).astype(jnp.float32), -1)
  metrics = {k: jnp.sum(v * w) / denom for k, v in
             (("ce", ce), ("bce", bce), ("accuracy", acc), ("affordance_accuracy", aff_acc))}
  loss = metrics["ce"] + affordance_weight * metrics["bce"]
  return loss, metrics
