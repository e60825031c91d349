"""Physical guidance losses L_P = λ_ho L_ho + λ_of L_of + λ_pt L_pt (paper §3.3).

Every function is per sample (no batch axis; ``jax.vmap`` them) and pure.
L_ho and L_of are computed as the released code does (notes §4.1–4.2): a
squared hinge on masked nearest distances, *summed* over points, margin
δ = 0.02 m, with the mask multiplying the distance before the margin so
unmasked points contribute exactly 0.

L_pt departs from the released code on purpose. There it is a count of points
with a human-normal sign test — no gradient at all (notes §0.2, §4.3). Here it
is the paper's L_pt = E[|Φ⁻(V_h)|]: the mean penetration depth max(−Φ, 0) of
the human points inside the object, read from the object's SDF grid in its
canonical frame, and differentiable. ``penetration_inert`` reproduces the
released behaviour (a value, zero gradient) for the compat config.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from scorehoi_jax.diffusion.xpack import to_object_frame
from scorehoi_jax.geometry.sdf import SDFGrid, sdf_lookup

CONTACT_MARGIN = 0.02  # δ in metres (released guidance_losses.py).
CAMERA_UP = (0.0, -1.0, 0.0)  # Camera axes, y down: "up" is −y (released).


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class GuidanceWeights:
  """The traced knobs of the guidance: changing them never recompiles.

  Each may be a scalar or a [B] array (per-sample sweeps in one batch).
  """
  rho: jnp.ndarray = 1.0  # Guidance scale ρ.
  lambda_ho: jnp.ndarray = 0.5
  lambda_of: jnp.ndarray = 0.5
  lambda_pt: jnp.ndarray = 0.1
  margin: jnp.ndarray = CONTACT_MARGIN
  grad_clip: jnp.ndarray = 1.0  # Norm bound/target for grad_mode 'clip'/'normalize'.
  lambda_mask: jnp.ndarray = 0.0  # Image evidence (diffusion/image_evidence.py); used when settings.use_mask.
  # Schedules (diffusion/refine.py; SCHEDULE_FIELDS): not read by the loss itself. Defaults change nothing.
  rho_rounds: jnp.ndarray = 1.0  # Multiplies ρ per round: scalar or [N].
  lambda_end: dict = dataclasses.field(default_factory=dict)  # {term: λ at t = 0} for RefineSettings.term_schedules.
  t_lo: jnp.ndarray = -jnp.inf  # Guidance window: steps with t_lo ≤ t ≤ t_hi are guided.
  t_hi: jnp.ndarray = jnp.inf
  eta: jnp.ndarray = 0.0  # DDIM η of the sampling steps (used when RefineSettings.stochastic).
  seed: jnp.ndarray = 0  # Noise seed of η > 0 (int).
  scale_body: jnp.ndarray = 1.0  # Per-part multipliers of the guidance step: global + 21 body joints,
  scale_hands: jnp.ndarray = 1.0  # 30 hand joints,
  scale_obj_rot: jnp.ndarray = 1.0  # object rotation,
  scale_obj_trans: jnp.ndarray = 1.0  # object translation,
  scale_betas: jnp.ndarray = 1.0  # normalised betas.

  def as_arrays(self) -> "GuidanceWeights":
    out = jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float32), self)
    return dataclasses.replace(out, seed=jnp.asarray(self.seed, jnp.int32))


SCHEDULE_FIELDS = ("rho_rounds", "lambda_end", "t_lo", "t_hi", "eta", "seed", "scale_body", "scale_hands",
                   "scale_obj_rot", "scale_obj_trans", "scale_betas")


class LossTerms(NamedTuple):
  total: jnp.ndarray
  ho: jnp.ndarray
  of: jnp.ndarray
  pt: jnp.ndarray
  mask: jnp.ndarray  # L_mask, the image-evidence term (0 when settings.use_mask is off).


def _hinge_sq(d, m, margin):
  return jnp.sum(jnp.maximum(d * m - margin, 0.0) ** 2)


def nearest_pair_distances(human, obj):
  """(d_h [Nh], d_o [No]): distance of each point to the nearest point of the other set.

  Same values and gradients as min over the full distance matrix (the gradient
  of a min goes to its arg-min), computed so that XLA:CPU stays fast: the
  [Nh, No] matrix is built per coordinate without a gradient, the nearest
  partner is picked by a one-hot row (ties averaged) and a matmul, and only
  the Nh + No chosen pairs are differentiated. ~4× faster than
  differentiating ``min(pairwise_sq_distances)`` (measured, B = 64).
  """
  sq = jax.lax.stop_gradient(sum((human[:, None, c] - obj[None, :, c]) ** 2 for c in range(3)))
  pick_h = (sq <= jnp.min(sq, axis=1, keepdims=True)).astype(human.dtype)
  pick_o = (sq <= jnp.min(sq, axis=0, keepdims=True)).astype(human.dtype)
  near_h = (pick_h @ obj) / jnp.sum(pick_h, axis=1)[:, None]  # Nearest object point of each human point.
  near_o = (pick_o.T @ human) / jnp.sum(pick_o, axis=0)[:, None]
  d_h = jnp.sqrt(jnp.sum((human - near_h) ** 2, axis=-1) + 1e-12)
  d_o = jnp.sqrt(jnp.sum((obj - near_o) ** 2, axis=-1) + 1e-12)
  return d_h, d_o


def contact_loss(human, obj, m_h, m_o, margin=CONTACT_MARGIN):
  """L_ho: human [Nh, 3], object [No, 3], masks m_h [Nh], m_o [No] (0/1 or soft).

  Σ_i max(d_h,i m_h,i − δ, 0)² + Σ_j max(d_o,j m_o,j − δ, 0)², where d_h is each
  human point's distance to the nearest object point and d_o the converse.
  """
  d_h, d_o = nearest_pair_distances(human, obj)
  return _hinge_sq(d_h, m_h, margin) + _hinge_sq(d_o, m_o, margin)


def floor_heights(human, obj, up=CAMERA_UP, plane=None):
  """Height above the floor of each object point [No].

  plane None: the released implicit floor, a plane normal to ``up`` through the
  lowest of all human and object points (y down: max y). plane [4] = (n, c)
  with unit normal n pointing up: height = n·p + c (a known ground plane).
  """
  if plane is not None:
    return obj @ plane[:3] + plane[3]
  u = jnp.asarray(up, obj.dtype)
  lowest = jnp.minimum(jnp.min(human @ u), jnp.min(obj @ u))
  return obj @ u - lowest


BODY_UP = (0.0, 1.0, 0.0)  # The body model's up axis in its canonical frame (SMPL-H and the open model: +y).


FOOT_CHAINS = ((0, 1, 4, 7), (0, 2, 5, 8))  # Pelvis → hip → knee → ankle, left and right (SMPL-H).


def estimate_ground_plane(human, rotmats, body_up=BODY_UP):
  """[4] ground plane (n, c) from a posed body alone: n = the mean up axis of both feet, through the lowest point.

  For a photo with unknown camera pitch the feet are the best witnesses of the
  floor: people stand, walk, bend, lift, squat and sit with their feet flat on
  it, so each ankle's world rotation turns the rest pose's up axis (flat feet)
  into the floor's normal, whatever the trunk does. The pelvis would not do:
  it tilts 30–60° when a person bends to lift a box. The camera's −y axis —
  the released code's implicit floor — is off by the camera's pitch (7–35° on
  capture rigs), which tilts every object pulled onto it. The plane passes
  through the lowest body point along n. No gradient flows through it: it is
  a reference, not something guidance may move.

  human [Nh, 3] pelvis-centred points; rotmats [52, 3, 3] local joint rotations
  (joint 0 = global orientation in camera axes).
  """
  rotmats = jax.lax.stop_gradient(rotmats)
  up = jnp.asarray(body_up, rotmats.dtype)
  n = jnp.zeros(3, rotmats.dtype)
  for chain in FOOT_CHAINS:
    r = rotmats[chain[0]]
    for j in chain[1:]:
      r = r @ rotmats[j]
    n = n + r @ up
  return plane_under_body(human, n / jnp.linalg.norm(n))


def plane_under_body(human, n):
  """[4] the plane with unit up normal n [3] through the lowest of the pelvis-centred points human [Nh, 3]
  along n (no gradient: a reference for L_of, not something guidance may move)."""
  n = jax.lax.stop_gradient(n)
  c = -jnp.min(jax.lax.stop_gradient(human) @ n)
  return jnp.concatenate([n, c[None]])


def floor_loss(human, obj, m_of, margin=CONTACT_MARGIN, up=CAMERA_UP, plane=None):
  """L_of: Σ_j max(|h_j| m_of,j − δ, 0)² over object points flagged on the floor."""
  return _hinge_sq(jnp.abs(floor_heights(human, obj, up, plane)), m_of, margin)


def penetration_depths(human, obj_rotmat, obj_trans, sdf: SDFGrid):
  """max(−Φ(V_h), 0) [Nh]: how deep each human point is inside the object."""
  return jnp.maximum(-sdf_lookup(sdf, to_object_frame(human, obj_rotmat, obj_trans)), 0.0)


def penetration_loss(human, obj_rotmat, obj_trans, sdf: SDFGrid):
  """L_pt (paper): mean penetration depth E[|Φ⁻(V_h)|] over the human points."""
  return jnp.mean(penetration_depths(human, obj_rotmat, obj_trans, sdf))


def penetration_inert(human, obj_rotmat, obj_trans, sdf: SDFGrid):
  """Released-code stand-in: the fraction of points inside, with zero gradient."""
  phi = sdf_lookup(sdf, to_object_frame(human, obj_rotmat, obj_trans))
  return jax.lax.stop_gradient(jnp.mean((phi <= 0.0).astype(phi.dtype)))


def physical_loss(human, obj, obj_rotmat, obj_trans, sdf: SDFGrid, m_h, m_o, m_of,
                  weights: GuidanceWeights, pt_mode: str = "sdf", up=CAMERA_UP,
                  plane=None, use_ho: bool = True, use_of: bool = True) -> LossTerms:
  """λ_ho L_ho + λ_of L_of + λ_pt L_pt for one sample; returns every term.

  pt_mode: 'sdf' (paper, differentiable), 'inert' (released: no gradient),
  'off' (skip the SDF lookup entirely; L_pt reported as 0).
  use_ho / use_of: False skips that term's computation (reported as 0).
  """
  zero = jnp.zeros((), human.dtype)
  ho = contact_loss(human, obj, m_h, m_o, weights.margin) if use_ho else zero
  of = floor_loss(human, obj, m_of, weights.margin, up, plane) if use_of else zero
  if pt_mode == "sdf":
    pt = penetration_loss(human, obj_rotmat, obj_trans, sdf)
  elif pt_mode == "inert":
    pt = penetration_inert(human, obj_rotmat, obj_trans, sdf)
  elif pt_mode == "off":
    pt = zero
  else:
    raise ValueError(f"unknown pt_mode {pt_mode!r}; expected 'sdf', 'inert' or 'off'.")
  total = weights.lambda_ho * ho + weights.lambda_of * of + weights.lambda_pt * pt
  return LossTerms(total=total, ho=ho, of=of, pt=pt, mask=zero)
