"""The optimisation vector x: the ONE place it is packed, unpacked and decoded.

Layout (as the released code, notes/official-code-notes.md §1; design.md §3):

  x[0:312]    52 × 6D joint rotations (pelvis, 21 body, 15 left hand, 15 right hand)
  x[312:318]  object rotation R_o, 6D
  x[318:321]  object translation t_o in metres, relative to the pelvis joint
  x[321:331]  betas, min/max-normalised per dimension to [−1, 1]

6D = first two columns of R, row-major (geometry.rotations). Decoding gives
pelvis-centred body vertices (on whatever BodyModel is passed; the guidance
uses the 431-vertex subset model) and the posed object template points
P_o = K R_oᵀ + t_o.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from scorehoi_jax.body.model import BodyModel, add_hand_mean, body_forward
from scorehoi_jax.geometry.rotations import matrix_to_rot6d, rot6d_to_matrix

NUM_JOINTS = 52
NUM_BETAS = 10
POSE = slice(0, 312)
OBJ_ROT = slice(312, 318)
OBJ_TRANS = slice(318, 321)
BETAS = slice(321, 331)
X_DIM = 331


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class BetasStats:
  """Per-dimension bounds used to map betas to [−1, 1] (released: betas_stats.pkl)."""
  betas_min: jnp.ndarray  # [10]
  betas_max: jnp.ndarray  # [10]


def default_betas_stats(lo: float = -3.0, hi: float = 3.0, num: int = NUM_BETAS) -> BetasStats:
  """±3 bounds: the open default body model's betas are ~N(0, 1)."""
  if not hi > lo:
    raise ValueError(f"BetasStats: betas_max ({hi}) must exceed betas_min ({lo}).")
  return BetasStats(jnp.full((num,), lo, jnp.float32), jnp.full((num,), hi, jnp.float32))


def normalize_betas(betas, stats: BetasStats):
  return 2.0 * (betas - stats.betas_min) / (stats.betas_max - stats.betas_min) - 1.0


def denormalize_betas(betas_n, stats: BetasStats):
  return 0.5 * (stats.betas_max - stats.betas_min) * (betas_n + 1.0) + stats.betas_min


class XParts(NamedTuple):
  """x split into its parts; betas are in model units (un-normalised)."""
  pose6d: jnp.ndarray  # [..., 52, 6]
  obj_rot6d: jnp.ndarray  # [..., 6]
  obj_trans: jnp.ndarray  # [..., 3]
  betas: jnp.ndarray  # [..., 10]


class Decoded(NamedTuple):
  """Geometry decoded from x (all pelvis-centred, camera-aligned axes)."""
  human_points: jnp.ndarray  # [..., V, 3] body vertices of the model passed in.
  joints: jnp.ndarray  # [..., 52, 3]
  object_points: jnp.ndarray  # [..., K, 3] P_o = K R_oᵀ + t_o.
  rotmats: jnp.ndarray  # [..., 52, 3, 3] as fed to LBS (hand mean included in compat).
  obj_rotmat: jnp.ndarray  # [..., 3, 3]
  obj_trans: jnp.ndarray  # [..., 3]
  betas: jnp.ndarray  # [..., 10]


def _check_x(x, where: str):
  if x.shape[-1] != X_DIM:
    raise ValueError(f"{where}: x has last dimension {x.shape[-1]}, expected {X_DIM} "
                     "(52×6 pose | 6 object rotation | 3 object translation | 10 betas).")


def pack_x(pose6d, obj_rot6d, obj_trans, betas, stats: BetasStats) -> jnp.ndarray:
  """Parts -> x [..., 331]. pose6d [..., 52, 6] (or [..., 312]); betas in model units."""
  pose6d = jnp.asarray(pose6d)
  lead = pose6d.shape[:-2] if pose6d.shape[-2:] == (NUM_JOINTS, 6) else pose6d.shape[:-1]
  pose = pose6d.reshape(lead + (312,))
  if jnp.shape(betas)[-1] != NUM_BETAS:
    raise ValueError(f"pack_x: betas have {jnp.shape(betas)[-1]} entries, x holds {NUM_BETAS}.")
  return jnp.concatenate([pose, jnp.asarray(obj_rot6d), jnp.asarray(obj_trans),
                          normalize_betas(jnp.asarray(betas), stats)], axis=-1)


def pack_x_from_matrices(rotmats, obj_rotmat, obj_trans, betas, stats: BetasStats) -> jnp.ndarray:
  """Like pack_x with rotation matrices [..., 52, 3, 3] and [..., 3, 3]."""
  return pack_x(matrix_to_rot6d(rotmats), matrix_to_rot6d(obj_rotmat), obj_trans, betas, stats)


def orthonormalize_x(x) -> jnp.ndarray:
  """x with every 6D rotation replaced by the first two columns of its Gram–Schmidt rotation.

  A regressor's raw 6D outputs are not orthonormal (columns off unit length by
  0.3, |a₁·a₂| up to 0.5 on the shipped model), but the denoiser was trained
  only on 6D of true rotations and Gram–Schmidt ignores the columns' lengths,
  so guidance could never correct them: refinement must start from the
  rotations they decode to. Decoding is unchanged by this.
  """
  _check_x(x, "orthonormalize_x")
  pose = matrix_to_rot6d(rot6d_to_matrix(x[..., POSE].reshape(x.shape[:-1] + (NUM_JOINTS, 6))))
  obj = matrix_to_rot6d(rot6d_to_matrix(x[..., OBJ_ROT]))
  return jnp.concatenate([pose.reshape(x.shape[:-1] + (312,)), obj, x[..., OBJ_TRANS], x[..., BETAS]], axis=-1)


def unpack_x(x, stats: BetasStats) -> XParts:
  _check_x(x, "unpack_x")
  return XParts(
      pose6d=x[..., POSE].reshape(x.shape[:-1] + (NUM_JOINTS, 6)),
      obj_rot6d=x[..., OBJ_ROT],
      obj_trans=x[..., OBJ_TRANS],
      betas=denormalize_betas(x[..., BETAS], stats),
  )


class XParams(NamedTuple):
  """x as model inputs: rotation matrices (hand mean included when asked) and betas in model units."""
  rotmats: jnp.ndarray  # [..., 52, 3, 3] as fed to LBS.
  betas: jnp.ndarray  # [..., 10]
  obj_rotmat: jnp.ndarray  # [..., 3, 3]
  obj_trans: jnp.ndarray  # [..., 3] relative to the pelvis.


def decode_params(x, stats: BetasStats, body_model: BodyModel | None = None, hand_mean: bool = False) -> XParams:
  """x [..., 331] -> rotation matrices and betas (no body model forward).

  hand_mean: released-code semantics (smplx ``flat_hand_mean=False``): the hand
  rotations in x are offsets from ``body_model``'s mean hand pose.
  """
  p = unpack_x(x, stats)
  rotmats = rot6d_to_matrix(p.pose6d)
  if hand_mean:
    if body_model is None:
      raise ValueError("decode_params: hand_mean=True needs the body model (its mean hand pose).")
    rotmats = add_hand_mean(body_model, rotmats)
  return XParams(rotmats, p.betas, rot6d_to_matrix(p.obj_rot6d), p.obj_trans)


def decode_x(x, body_model: BodyModel, template, stats: BetasStats,
             hand_mean: bool = False) -> Decoded:
  """x [..., 331] -> pelvis-centred body points and posed object points.

  Args:
    x: the optimisation vector(s).
    body_model: full or subset (``body.subset_body_model``) model.
    template: object template points K [..., K, 3] in the canonical frame.
    stats: betas normalisation bounds.
    hand_mean: released-code semantics (smplx ``flat_hand_mean=False``): the
      hand rotations in x are offsets from the model's mean hand pose.
  """
  p = decode_params(x, stats, body_model, hand_mean)
  out = body_forward(body_model, p.rotmats, p.betas)
  pelvis = out.joints[..., :1, :]
  obj = jnp.einsum("...kj,...ij->...ki", template, p.obj_rotmat) + p.obj_trans[..., None, :]
  return Decoded(human_points=out.vertices - pelvis, joints=out.joints - pelvis,
                 object_points=obj, rotmats=p.rotmats, obj_rotmat=p.obj_rotmat, obj_trans=p.obj_trans,
                 betas=p.betas)


def to_object_frame(points, obj_rotmat, obj_trans):
  """World (pelvis-centred) points [..., N, 3] -> object canonical frame: (p − t_o) R_o."""
  return jnp.einsum("...ni,...ij->...nj", points - obj_trans[..., None, :], obj_rotmat)
