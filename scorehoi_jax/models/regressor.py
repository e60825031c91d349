"""Regressor heads on the backbone feature map (paper §3.2; notes §3.1–3.2, §6.3–6.4).

From F [B, h, w, C] and the object's global geometry feature g:
  * human: SMPL-H pose as 52 × 6D (pelvis, 21 body, 15 left hand, 15 right
    hand), 10 betas, camera translation of the pelvis;
  * object: 6D rotation (canonical → camera) and translation relative to the
    pelvis (paper §3.2), from [GAP F ‖ spatial F ‖ g] (released: [GAP F ‖ g]).

Simpler than the released Hand4Whole on purpose: no hand-box network, no hand
crops and no second ResNet. A 1×1 convolution reduces F to a few channels and
the flattened map keeps *where* things are (the released heads get that from
features sampled at soft-argmax joint positions); an MLP then predicts
everything. Hands are therefore predicted from the 8×8 body map only, coarser
than Hand4Whole — fine for the synthetic data, a known gap on BEHAVE/InterCap.

Rotations are predicted as offsets from the identity in 6D (rest pose, object
in its canonical orientation) with zero-initialised output layers, so the
untrained network starts at the rest pose rather than at a random rotation.

Camera (released ``get_camera_trans``): cam_trans = [c0, c1, z_max·sigmoid(c2)]
with z_max = depth_scale · 2√(fx fy)/S. The released code has depth_scale = 1
and one fixed virtual focal; we use each crop's own focal, and depth_scale = 2
by default because synthetic cameras (field of view 28–62°) put people farther
than 2f/S metres.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

IDENTITY_6D = jnp.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0], jnp.float32)  # First two columns of I, row-major.


class Regressor(nn.Module):
  """Initial human and object parameters from the feature map.

  Attributes:
    reduce_dim: channels of the 1×1 reduction before flattening the map.
    hidden_dim: width of the two MLP layers of each head.
    num_joints / num_betas: SMPL-H layout (52 / 10).
    depth_scale: multiplier of the camera depth bound (see module docstring).
  """
  reduce_dim: int = 64
  hidden_dim: int = 1024
  num_joints: int = 52
  num_betas: int = 10
  depth_scale: float = 2.0

  @nn.compact
  def __call__(self, feature_map: jnp.ndarray, geo_feat: jnp.ndarray | None, focal: jnp.ndarray,
               image_size: float) -> dict:
    """feature_map [B, h, w, C]; geo_feat [B, G] or None; focal [B, 2] in crop pixels."""
    b = feature_map.shape[0]
    pooled = jnp.mean(feature_map, axis=(1, 2))
    spatial = nn.relu(nn.Conv(self.reduce_dim, (1, 1), name="reduce")(feature_map)).reshape(b, -1)
    zeros = nn.initializers.zeros

    # Human head.
    h = nn.relu(nn.Dense(self.hidden_dim, name="human_fc1")(jnp.concatenate([pooled, spatial], -1)))
    h = nn.relu(nn.Dense(self.hidden_dim, name="human_fc2")(h))
    pose6d = nn.Dense(self.num_joints * 6, kernel_init=zeros, name="pose_out")(h).reshape(b, self.num_joints, 6)
    pose6d = pose6d + IDENTITY_6D
    betas = nn.Dense(self.num_betas, kernel_init=zeros, name="betas_out")(h)
    cam = nn.Dense(3, kernel_init=zeros, name="cam_out")(h)
    z_max = self.depth_scale * 2.0 * jnp.sqrt(focal[:, 0] * focal[:, 1]) / image_size
    cam_trans = jnp.stack([cam[:, 0], cam[:, 1], z_max * jax.nn.sigmoid(cam[:, 2])], -1)

    # Object head (affordance-aware: sees the object's geometry feature).
    obj_in = [pooled, spatial] + ([geo_feat] if geo_feat is not None else [])
    o = nn.relu(nn.Dense(self.hidden_dim, name="object_fc1")(jnp.concatenate(obj_in, -1)))
    o = nn.relu(nn.Dense(self.hidden_dim // 2, name="object_fc2")(o))
    obj_rot6d = nn.Dense(6, kernel_init=zeros, name="obj_rot_out")(o) + IDENTITY_6D
    obj_trans = nn.Dense(3, kernel_init=zeros, name="obj_trans_out")(o)
    return {"pose6d": pose6d, "betas": betas, "cam_trans": cam_trans, "obj_rot6d": obj_rot6d,
            "obj_trans": obj_trans}
