"""Attention blocks shared by the ContactFormer and the CRFormer (CONTHO, notes §3.4–3.5).

Both transformers are built from one layer: queries from one token stream
attend to keys/values of a stream (itself for self-attention, the other one
for cross-attention), then a GELU MLP, each with a residual.

Departure from the released layer (post-norm, one head, 259-d, an unused
``linear``/``norm1`` pair): we use *pre-norm* residual blocks and a final
LayerNorm in the caller. The CRFormer stacks 12 layers per stream; pre-norm
trains such depths without warm-up, and the number of heads is a field.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

_gelu = lambda x: nn.gelu(x, approximate=False)  # Exact erf GELU, as released.


class AttentionLayer(nn.Module):
  """x ← x + MHA(LN(x), LN(ctx)); x ← x + MLP(LN(x)). ctx=None: self-attention."""
  num_heads: int = 4
  mlp_ratio: float = 1.0  # Released FFN width = token width.

  @nn.compact
  def __call__(self, x: jnp.ndarray, ctx: jnp.ndarray | None = None) -> jnp.ndarray:
    dim = x.shape[-1]
    q = nn.LayerNorm(name="norm_q")(x)
    kv = q if ctx is None else nn.LayerNorm(name="norm_kv")(ctx)
    x = x + nn.MultiHeadDotProductAttention(num_heads=self.num_heads, name="attn")(q, kv)
    h = nn.LayerNorm(name="norm_mlp")(x)
    h = nn.Dense(int(dim * self.mlp_ratio), name="fc1")(h)
    return x + nn.Dense(dim, name="fc2")(_gelu(h))


class TwoWayCrossLayer(nn.Module):
  """Human tokens attend to object tokens and vice versa, both from the previous state.

  The two updates are simultaneous (released: transformer.py:63-66), so the
  layer is symmetric in its two streams.
  """
  num_heads: int = 4
  mlp_ratio: float = 1.0

  @nn.compact
  def __call__(self, h: jnp.ndarray, o: jnp.ndarray):
    h_new = AttentionLayer(self.num_heads, self.mlp_ratio, name="human_to_object")(h, o)
    o_new = AttentionLayer(self.num_heads, self.mlp_ratio, name="object_to_human")(o, h)
    return h_new, o_new


class SelfStack(nn.Module):
  """``num_layers`` self-attention layers on one stream."""
  num_layers: int
  num_heads: int = 4
  mlp_ratio: float = 1.0

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    for i in range(self.num_layers):
      x = AttentionLayer(self.num_heads, self.mlp_ratio, name=f"layer{i}")(x)
    return x


class CrossStack(nn.Module):
  """``num_layers`` two-way cross-attention layers on a pair of streams."""
  num_layers: int
  num_heads: int = 4
  mlp_ratio: float = 1.0

  @nn.compact
  def __call__(self, h: jnp.ndarray, o: jnp.ndarray):
    for i in range(self.num_layers):
      h, o = TwoWayCrossLayer(self.num_heads, self.mlp_ratio, name=f"layer{i}")(h, o)
    return h, o
