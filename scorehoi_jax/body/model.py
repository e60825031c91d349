"""SMPL-H-layout body models as pytrees, and their linear-blend-skinning forward.

A ``BodyModel`` holds arrays only (plus static metadata), so it can be passed
through ``jax.jit``/``vmap`` as an argument and swapped without recompiling
when shapes agree. ``body_forward`` is the same computation as smplx's ``lbs``
(shape blendshapes, joint regression, optional pose correctives, forward
kinematics, skinning) with rotations given per joint as matrices, identity =
rest pose (smplx's ``flat_hand_mean=True``) and no global translation.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

NUM_JOINTS = 52  # SMPL-H: pelvis + 21 body + 15 left hand + 15 right hand.

# SMPL-H kinematic tree (parent of each of the 52 joints; -1 for the root).
SMPLH_PARENTS = np.array(
    [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
    + [20, 22, 23, 20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35]
    + [21, 37, 38, 21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50],
    dtype=np.int32)

SMPLH_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist",
) + tuple(f"{side}_{finger}{i}" for side in ("left", "right")
          for finger in ("index", "middle", "pinky", "ring", "thumb") for i in (1, 2, 3))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class BodyModel:
  """Arrays of an SMPL-H-layout model. Shapes: V vertices, J joints, B betas.

  Joints come either from ``j_regressor`` (J, V) applied to the shaped mesh
  (official SMPL-H files) or exactly from ``j_template + j_shapedirs @ betas``
  (the open default, whose joints are linear in the shape coefficients).
  ``posedirs`` is None when the model has no pose correctives; we never
  materialise zeros for it (a dense zero corrective costs a large matmul).
  """

  v_template: jnp.ndarray  # (V, 3)
  shapedirs: jnp.ndarray  # (V, 3, B)
  weights: jnp.ndarray  # (V, J)
  faces: jnp.ndarray  # (F, 3) int32
  posedirs: jnp.ndarray | None = None  # (9 * (J - 1), 3 * V)
  j_regressor: jnp.ndarray | None = None  # (J, V)
  j_template: jnp.ndarray | None = None  # (J, 3)
  j_shapedirs: jnp.ndarray | None = None  # (J, 3, B)
  hands_mean: jnp.ndarray | None = None  # (30, 3): left then right, axis-angle.
  parents: tuple = dataclasses.field(default=tuple(SMPLH_PARENTS.tolist()), metadata=dict(static=True))
  name: str = dataclasses.field(default="body", metadata=dict(static=True))
  gender: str = dataclasses.field(default="neutral", metadata=dict(static=True))
  licence: str = dataclasses.field(default="", metadata=dict(static=True))

  @property
  def num_vertices(self) -> int:
    return self.v_template.shape[0]

  @property
  def num_joints(self) -> int:
    return self.weights.shape[1]

  @property
  def num_betas(self) -> int:
    return self.shapedirs.shape[-1]


class BodyOutput(NamedTuple):
  vertices: jnp.ndarray  # [..., V, 3]
  joints: jnp.ndarray  # [..., J, 3]


def shaped_rest(model: BodyModel, betas: jnp.ndarray):
  """Rest-pose vertices and joints for betas [..., B'] (B' <= B)."""
  nb = betas.shape[-1]
  if nb > model.num_betas:
    raise ValueError(f"{nb} betas given but the model '{model.name}' has {model.num_betas}.")
  v = model.v_template + jnp.einsum("...b,vcb->...vc", betas, model.shapedirs[..., :nb])
  if model.j_template is not None:
    j = model.j_template + jnp.einsum("...b,jcb->...jc", betas, model.j_shapedirs[..., :nb])
  else:
    j = jnp.einsum("jv,...vc->...jc", model.j_regressor, v)
  return v, j


def _kinematic_levels(parents: tuple) -> list[list[int]]:
  """Joints grouped by depth in the tree, so FK runs one batched matmul per level."""
  depth = [0] * len(parents)
  for i, p in enumerate(parents):
    depth[i] = 0 if p < 0 else depth[p] + 1
  levels: list[list[int]] = [[] for _ in range(max(depth) + 1)]
  for i, d in enumerate(depth):
    levels[d].append(i)
  return levels


def forward_kinematics(rotmats: jnp.ndarray, joints: jnp.ndarray, parents: tuple):
  """World rotations and positions of every joint.

  rotmats [..., J, 3, 3] (relative to parent), joints [..., J, 3] (rest).
  Returns (R_world [..., J, 3, 3], posed joints [..., J, 3]).
  """
  parents_np = np.asarray(parents)
  rel = joints - jnp.where((parents_np >= 0)[:, None], joints[..., np.maximum(parents_np, 0), :], 0.0)
  n = len(parents)
  r_world = [None] * n
  t_world = [None] * n
  for level in _kinematic_levels(parents):
    idx = np.asarray(level)
    if parents[level[0]] < 0:
      for i in level:
        r_world[i] = rotmats[..., i, :, :]
        t_world[i] = joints[..., i, :]
      continue
    par = np.asarray([parents[i] for i in level])
    r_par = jnp.stack([r_world[p] for p in par], axis=-3)
    t_par = jnp.stack([t_world[p] for p in par], axis=-2)
    r_new = r_par @ rotmats[..., idx, :, :]
    t_new = t_par + jnp.einsum("...kij,...kj->...ki", r_par, rel[..., idx, :])
    for k, i in enumerate(level):
      r_world[i] = r_new[..., k, :, :]
      t_world[i] = t_new[..., k, :]
  return jnp.stack(r_world, axis=-3), jnp.stack(t_world, axis=-2)


def body_forward(model: BodyModel, rotmats: jnp.ndarray, betas: jnp.ndarray) -> BodyOutput:
  """Posed vertices and joints. rotmats [..., J, 3, 3], betas [..., B'].

  Leading dimensions of rotmats and betas broadcast against each other.
  """
  v_shaped, j_rest = shaped_rest(model, betas)
  batch = jnp.broadcast_shapes(rotmats.shape[:-3], betas.shape[:-1])
  v_shaped = jnp.broadcast_to(v_shaped, batch + v_shaped.shape[-2:])
  j_rest = jnp.broadcast_to(j_rest, batch + j_rest.shape[-2:])
  rotmats = jnp.broadcast_to(rotmats, batch + rotmats.shape[-3:])
  if model.posedirs is not None:
    feat = (rotmats[..., 1:, :, :] - jnp.eye(3, dtype=rotmats.dtype)).reshape(batch + (-1,))
    v_shaped = v_shaped + (feat @ model.posedirs).reshape(v_shaped.shape)
  r_world, j_posed = forward_kinematics(rotmats, j_rest, model.parents)
  # Skinning transform of joint k maps a rest point x to R_k (x - j_k) + J_k.
  t_world = j_posed - jnp.einsum("...kij,...kj->...ki", r_world, j_rest)
  r_v = jnp.einsum("vk,...kij->...vij", model.weights, r_world)
  t_v = jnp.einsum("vk,...ki->...vi", model.weights, t_world)
  verts = jnp.einsum("...vij,...vj->...vi", r_v, v_shaped) + t_v
  return BodyOutput(vertices=verts, joints=j_posed)


def add_hand_mean(model: BodyModel, rotmats: jnp.ndarray) -> jnp.ndarray:
  """smplx's default semantics (``flat_hand_mean=False``): hand pose is an offset.

  smplx adds the MANO mean pose to the hand axis-angles *before* Rodrigues, so
  given hand axis-angle offsets aa the absolute rotation is R(aa + mean). This
  helper takes rotations R(aa) and returns R(aa + mean) for joints 22..51.
  """
  from scorehoi_jax.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

  if model.hands_mean is None:
    return rotmats
  hand_aa = matrix_to_axis_angle(rotmats[..., 22:, :, :]) + model.hands_mean
  return jnp.concatenate([rotmats[..., :22, :, :], axis_angle_to_matrix(hand_aa)], axis=-3)
