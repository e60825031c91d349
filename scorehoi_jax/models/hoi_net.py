"""The stage-1 network: image → backbone → regressor → contact former → mesh refiner.

One Flax module composes the parts so their parameters live in one tree with
stable names (``backbone``, ``regressor``, ``contact_former``,
``mesh_refiner``) and BatchNorm statistics in ``batch_stats``. The frozen
affordance-aware point encoder is *not* part of it: its outputs come in as
``geo`` (global feature and per-point tokens), so its parameters stay out of
the optimiser (paper §3.6: frozen during training).

The body model is an argument (a pytree of arrays), normally the 431-vertex
guidance subset (body/downsample.py): the contact and refinement tokens are
those vertices, and LBS on 431 vertices is cheap.

``features`` runs the backbone alone (stage 2 conditions on the frozen map).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from scorehoi_jax.body.model import BodyModel, body_forward
from scorehoi_jax.geometry.rotations import rot6d_to_matrix
from scorehoi_jax.models.contact_former import ContactFormer
from scorehoi_jax.models.mesh_refiner import MeshRefiner
from scorehoi_jax.models.regressor import Regressor
from scorehoi_jax.models.resnet import ResNet


def pose_template(template: jnp.ndarray, obj_rotmat: jnp.ndarray, obj_trans: jnp.ndarray) -> jnp.ndarray:
  """P_o = K R_oᵀ + t_o for template [B, K, 3] (as xpack.decode_x)."""
  return jnp.einsum("bkj,bij->bki", template, obj_rotmat) + obj_trans[:, None, :]


def pelvis_centred_body(body: BodyModel, rotmats: jnp.ndarray, betas: jnp.ndarray):
  """Body vertices and joints minus the pelvis joint: ([B, V, 3], [B, 52, 3])."""
  out = body_forward(body, rotmats, betas)
  pelvis = out.joints[..., :1, :]
  return out.vertices - pelvis, out.joints - pelvis


class HOINet(nn.Module):
  """Stage-1 network. Submodules are fields so each config builds its own sizes."""
  backbone: ResNet
  regressor: Regressor
  contact_former: ContactFormer
  mesh_refiner: MeshRefiner

  def features(self, image: jnp.ndarray, geo_global: jnp.ndarray | None, train: bool = False) -> jnp.ndarray:
    """The backbone map F [B, h, w, C] (c_I of stage 2 is its average pool)."""
    return self.backbone(image, geo_global, train=train)

  def __call__(self, image, template, focal, princpt, geo: dict, body: BodyModel, train: bool = False) -> dict:
    """Full stage-1 forward.

    Args:
      image: [B, S, S, 5] RGB + human mask + object mask.
      template: [B, K, 3] object template points (canonical frame).
      focal, princpt: [B, 2] crop intrinsics in pixels.
      geo: {"global": [B, G], "tokens": [B, K, T]} from the frozen point encoder.
      body: body model whose vertices are the guidance vertices.
      train: BatchNorm in training mode (needs ``mutable=["batch_stats"]``).

    Returns:
      dict with the regressor outputs (pose6d, betas, cam_trans, obj_rot6d,
      obj_trans), the initial geometry (human_points, joints, object_points),
      contacts (p_h, p_o, p_of and logits), the refined points
      (refined_human_points, refined_object_points, refined_obj_rotmat,
      refined_obj_trans, refined_object_points_rigid) and feature_map.
    """
    size = image.shape[1]
    fmap = self.backbone(image, geo["global"], train=train)
    reg = self.regressor(fmap, geo["global"], focal, size)
    human, joints = pelvis_centred_body(body, rot6d_to_matrix(reg["pose6d"]), reg["betas"])
    obj = pose_template(template, rot6d_to_matrix(reg["obj_rot6d"]), reg["obj_trans"])
    con = self.contact_former(fmap, human, obj, reg["cam_trans"], focal, princpt, size, geo.get("tokens"))
    ref = self.mesh_refiner(con["human_tokens"], con["object_tokens"], con["p_h"], con["p_o"], human, obj,
                            template)
    out = dict(reg)
    out.update(human_points=human, joints=joints, object_points=obj, feature_map=fmap)
    out.update({k: con[k] for k in ("p_h", "p_o", "p_of", "logit_h", "logit_o", "logit_of")})
    out.update({"refined_" + k: v for k, v in ref.items()})
    return out
