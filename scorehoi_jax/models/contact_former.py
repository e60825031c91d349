"""ContactFormer: human/object contact and object–floor contact from image features
(CONTHO's contact estimation transformer, notes §3.4 and official-code-notes §5.2; paper §3.4).

Tokens: each human guidance vertex (431) and each posed object template point
(64) is projected into the crop with the camera, the backbone map F is
bilinearly sampled there, projected to ``dim − 3`` channels and concatenated
with the point's (pelvis-centred) xyz. Four layers of two-way cross-attention
(human queries object and object queries human, simultaneously) follow, then
three sigmoid heads: p_h [B, Nh], p_o [B, K], p_of [B, K].

Departures from the released code, each for a reason:
  * Projection uses the crop's real intrinsics (focal, princpt in pixels of
    the S×S crop) and maps pixel u to feature-map coordinate (u + ½)·w/S − ½,
    i.e. feature cells are centred on the pixels they pool. Released: a fixed
    virtual focal and align_corners sampling, which stretches by 8/7.
  * Human tokens get a learned per-vertex embedding (which vertex it is:
    a hand vertex and a hip vertex at the same place contact differently).
  * Optionally, object tokens get the frozen point encoder's per-point tokens
    (``use_geometry_tokens``): affordance awareness for the contact too.
  * Pre-norm attention layers (models/attention.py).
As released, sampling coordinates and the xyz in the tokens carry no gradient
(points are inputs, not outputs, of this module); features do.

``make_contact_fn`` adapts a trained module to the refinement's contact_fn
interface (diffusion/contact.py).
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from scorehoi_jax.models.attention import CrossStack


def project_to_pixels(points, cam_trans, focal, princpt):
  """Pelvis-centred points [B, N, 3] -> crop pixel coordinates [B, N, 2] (pixel centres at integers).

  cam_trans [B, 3] moves the pelvis to the camera frame; focal, princpt [B, 2].
  """
  p = points + cam_trans[:, None, :]
  z = jnp.maximum(p[..., 2:3], 1e-4)  # Behind-camera points land far outside and sample zeros.
  return p[..., :2] / z * focal[:, None, :] + princpt[:, None, :]


def pixels_to_feature_coords(uv, image_size, map_size):
  """Crop pixels -> feature-map coordinates (cell centres at integers), per axis.

  A stride-s map (s = S/w) has cell j centred on pixel s·j + (s − 1)/2.
  map_size: (h, w) of the feature map.
  """
  h, w = map_size
  scale = jnp.array([w, h], jnp.float32) / image_size
  return (uv + 0.5) * scale - 0.5


def bilinear_sample(feature_map, xy):
  """Bilinear samples of feature_map [B, h, w, C] at xy [B, N, 2] (x = column, y = row).

  Coordinates are in cells (cell centres at integers); outside the map the
  missing neighbours count as zeros (grid_sample's zeros padding).
  Differentiable in the features; the coordinates are treated as constants.
  """
  xy = jax.lax.stop_gradient(xy)
  _, h, w, _ = feature_map.shape
  x, y = xy[..., 0], xy[..., 1]
  x0, y0 = jnp.floor(x), jnp.floor(y)
  fx, fy = (x - x0)[..., None], (y - y0)[..., None]

  def corner(fm, xi, yi):
    ok = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
    v = fm[jnp.clip(yi, 0, h - 1).astype(jnp.int32), jnp.clip(xi, 0, w - 1).astype(jnp.int32)]
    return v * ok[..., None].astype(fm.dtype)

  def one(fm, x0, y0, fx, fy):
    return ((1 - fx) * (1 - fy) * corner(fm, x0, y0) + fx * (1 - fy) * corner(fm, x0 + 1, y0)
            + (1 - fx) * fy * corner(fm, x0, y0 + 1) + fx * fy * corner(fm, x0 + 1, y0 + 1))

  return jax.vmap(one)(feature_map, x0, y0, fx, fy)


def sample_at_points(feature_map, points, cam_trans, focal, princpt, image_size):
  """F sampled at the projections of pelvis-centred points: [B, N, C] (paper Alg. 1 line 4)."""
  uv = project_to_pixels(points, cam_trans, focal, princpt)
  xy = pixels_to_feature_coords(uv, image_size, feature_map.shape[1:3])
  return bilinear_sample(feature_map, xy)


class ContactFormer(nn.Module):
  """(F, V_h, P_o, camera) -> contact probabilities and the pre-transformer tokens.

  Attributes:
    dim: token width (the sampled feature is projected to dim − 3, xyz appended).
    num_layers: two-way cross-attention layers (4 as released).
    num_heads: attention heads (released 1, at width 259).
    mlp_ratio: FFN width / token width.
    use_geometry_tokens: add the point encoder's per-point tokens to the object tokens.
  """
  dim: int = 256
  num_layers: int = 4
  num_heads: int = 4
  mlp_ratio: float = 1.0
  use_geometry_tokens: bool = False

  @nn.compact
  def __call__(self, feature_map, human_points, object_points, cam_trans, focal, princpt, image_size,
               geometry_tokens=None) -> dict:
    """Shapes: F [B, h, w, C]; points [B, Nh, 3], [B, K, 3] pelvis-centred; cam_trans [B, 3];
    focal, princpt [B, 2] crop pixels; geometry_tokens [B, K, G] if use_geometry_tokens.

    Returns a dict: p_h [B, Nh], p_o [B, K], p_of [B, K] (sigmoid), their logits
    (logit_h, logit_o, logit_of) and human_tokens / object_tokens [B, ·, dim]
    (pre-transformer tokens, which the CRFormer takes, as released).
    """
    sample = lambda pts: sample_at_points(feature_map, pts, cam_trans, focal, princpt, image_size)
    h_xyz, o_xyz = jax.lax.stop_gradient(human_points), jax.lax.stop_gradient(object_points)
    h = jnp.concatenate([nn.Dense(self.dim - 3, name="human_in")(sample(human_points)), h_xyz], -1)
    o = jnp.concatenate([nn.Dense(self.dim - 3, name="object_in")(sample(object_points)), o_xyz], -1)
    h = h + self.param("human_index_embed", nn.initializers.normal(0.02), (h.shape[1], self.dim))
    if self.use_geometry_tokens:
      if geometry_tokens is None:
        raise ValueError("ContactFormer: use_geometry_tokens=True but no geometry_tokens were given "
                         "(pass aux['geometry_tokens'] from the point encoder).")
      o = o + nn.Dense(self.dim, name="geometry_in")(geometry_tokens)
    h_tokens, o_tokens = h, o
    h, o = CrossStack(self.num_layers, self.num_heads, self.mlp_ratio, name="cross")(h, o)
    h = nn.LayerNorm(name="human_norm")(h)
    o = nn.LayerNorm(name="object_norm")(o)
    logit_h = nn.Dense(1, name="human_contact_head")(h)[..., 0]
    logit_o = nn.Dense(1, name="object_contact_head")(o)[..., 0]
    logit_of = nn.Dense(1, name="object_floor_head")(o)[..., 0]
    return {"p_h": jax.nn.sigmoid(logit_h), "p_o": jax.nn.sigmoid(logit_o), "p_of": jax.nn.sigmoid(logit_of),
            "logit_h": logit_h, "logit_o": logit_o, "logit_of": logit_of,
            "human_tokens": h_tokens, "object_tokens": o_tokens}


def make_contact_fn(module: ContactFormer, params=None) -> Callable:
  """The refinement's contact predictor: (V_h [B,Nh,3], P_o [B,K,3], aux) -> (p_h, p_o, p_of).

  aux = {"feature_map": [B, h, w, C], "cam_trans": [B, 3], "focal": [B, 2],
  "princpt": [B, 2], "image_size": S, optional "geometry_tokens": [B, K, G]}.
  Points are pelvis-centred (cam_trans is added before projecting).
  params: the ContactFormer's parameter tree (or ``{"params": tree}``), fixed
  into the function; None: read from ``aux["contact_params"]`` at each call, so
  the parameters are traced values and new ones never recompile (reconstruct.py).
  """
  fixed = None if params is None else (params if "params" in params else {"params": params})

  def contact_fn(human_points, object_points, aux):
    variables = fixed if fixed is not None else {"params": aux["contact_params"]}
    out = module.apply(variables, aux["feature_map"], human_points, object_points, aux["cam_trans"],
                       aux["focal"], aux["princpt"], aux["image_size"], aux.get("geometry_tokens"))
    return out["p_h"], out["p_o"], out["p_of"]

  return contact_fn
