"""CRFormer: contact-based mesh refinement (CONTHO, notes §3.5, official-code-notes §5.3; paper §3.4 end).

Inputs are the ContactFormer's pre-transformer tokens (sampled image feature
‖ xyz) of the human guidance vertices and the object points, and its contact
probabilities. With hard masks M = [p > 0.5] (no gradient):
  A. ``num_layers`` self-attention layers per stream on all tokens;
  B. ``num_layers`` two-way cross-attention layers on the *contact* tokens
     (non-contact tokens zeroed, as released: no key-padding mask, so a
     sample without contacts still gets a well-defined attention);
  C. fuse (B + A), then ``num_layers`` self-attention layers per stream;
  heads: a 3-vector per token.

Departures from the released code:
  * The heads predict *offsets* from the input points (zero-initialised), not
    absolute positions: the untrained refiner is the identity and learns a
    correction, rather than learning to reproduce the whole mesh.
  * The object pose is recovered by a differentiable rigid Procrustes
    (Kabsch, geometry/procrustes.py) of the template onto the refined points,
    in JAX, batched. Released: per-sample NumPy Umeyama on the CPU, whose
    scale is dropped from R but kept in t (an inconsistency we do not copy).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from scorehoi_jax.geometry.procrustes import procrustes_rigid
from scorehoi_jax.models.attention import CrossStack, SelfStack


def object_pose_from_points(template: jnp.ndarray, points: jnp.ndarray):
  """Rigid (R, t) with template · Rᵀ + t ≈ points; template, points [B, K, 3].

  Returns (R [B, 3, 3], t [B, 3], posed template [B, K, 3]).
  """
  rot, t = procrustes_rigid(template, points)
  posed = jnp.einsum("bkj,bij->bki", template, rot) + t[:, None, :]
  return rot, t, posed


class MeshRefiner(nn.Module):
  """Contact-masked dual-stream transformer refining human and object points.

  Attributes:
    dim: width inside the refiner (input tokens are projected to it).
    num_layers: layers in each of the stages A, B, C (4 as released: 24 layers in all).
    num_heads: attention heads.
    mlp_ratio: FFN width / token width.
    threshold: contact probability above which a token counts as in contact.
  """
  dim: int = 256
  num_layers: int = 4
  num_heads: int = 4
  mlp_ratio: float = 1.0
  threshold: float = 0.5

  @nn.compact
  def __call__(self, human_tokens, object_tokens, p_h, p_o, human_points, object_points, template) -> dict:
    """tokens [B, Nh, D], [B, K, D]; p_h [B, Nh], p_o [B, K]; points [B, Nh, 3], [B, K, 3]
    pelvis-centred (the estimate the tokens were built from); template [B, K, 3] canonical.

    Returns a dict: human_points [B, Nh, 3], object_points [B, K, 3] (refined, free
    points), obj_rotmat [B, 3, 3], obj_trans [B, 3] and object_points_rigid [B, K, 3]
    (the template posed by Procrustes onto the refined object points).
    """
    h = nn.Dense(self.dim, name="human_in")(human_tokens)
    o = nn.Dense(self.dim, name="object_in")(object_tokens)
    m_h = jax.lax.stop_gradient((p_h > self.threshold).astype(h.dtype))[..., None]
    m_o = jax.lax.stop_gradient((p_o > self.threshold).astype(o.dtype))[..., None]
    stack = lambda name: SelfStack(self.num_layers, self.num_heads, self.mlp_ratio, name=name)
    a_h, a_o = stack("human_self_a")(h), stack("object_self_a")(o)
    c_h, c_o = CrossStack(self.num_layers, self.num_heads, self.mlp_ratio, name="contact_cross")(h * m_h, o * m_o)
    h = stack("human_self_c")(c_h + a_h)
    o = stack("object_self_c")(c_o + a_o)
    zeros = nn.initializers.zeros
    d_h = nn.Dense(3, kernel_init=zeros, name="human_out")(nn.LayerNorm(name="human_norm")(h))
    d_o = nn.Dense(3, kernel_init=zeros, name="object_out")(nn.LayerNorm(name="object_norm")(o))
    human = jax.lax.stop_gradient(human_points) + d_h
    obj = jax.lax.stop_gradient(object_points) + d_o
    rot, t, rigid = object_pose_from_points(template, obj)
    return {"human_points": human, "object_points": obj, "obj_rotmat": rot, "obj_trans": t,
            "object_points_rigid": rigid}
