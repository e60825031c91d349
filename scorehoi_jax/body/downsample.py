"""A sparse vertex subset of a body mesh for guidance and contact tokens.

The released code downsamples SMPL-H's 6890 vertices to 431 with GraphCMR's
averaging matrices, which exist only for that topology. We take a *subset* of
the model's own vertices instead, which works for any body model and has a
useful property: LBS is row-wise in the vertices, so a BodyModel restricted to
those rows (``subset_body_model``) gives exactly the full model's vertices at
those indices while skinning 431 vertices instead of 13,718. That is most of
the guidance cost saved, with no approximation.

The subset is a farthest-point sampling on the rest mesh in which distances
near the hands count double, so hands, where most contact happens, get about
twice the density of the torso (SMPL-H's own mesh is similarly denser there).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
from scipy.spatial import cKDTree

from scorehoi_jax.body.model import BodyModel

NUM_GUIDANCE_VERTICES = 431  # As released (GraphCMR's second level), so sizes compare.
_HAND_JOINTS = np.arange(20, 52)  # Wrists and fingers.
_HAND_WEIGHT = 2.0


def guidance_vertex_indices(model: BodyModel, num: int = NUM_GUIDANCE_VERTICES) -> np.ndarray:
  """Deterministic, well-spread vertex indices [num] (hand regions denser)."""
  v = np.asarray(model.v_template, np.float64)
  if num > len(v):
    raise ValueError(f"asked for {num} guidance vertices but the model has {len(v)}.")
  w = np.asarray(model.weights, np.float64)
  hand = w[:, _HAND_JOINTS].sum(1) > 0.5
  scale = np.where(hand, _HAND_WEIGHT, 1.0)
  # Start from the vertex nearest the centroid so the result does not depend on vertex order.
  first = int(np.argmin(np.sum((v - v.mean(0)) ** 2, 1)))
  chosen = np.empty(num, np.int64)
  chosen[0] = first
  dist = np.sqrt(np.sum((v - v[first]) ** 2, 1)) * scale
  for i in range(1, num):
    nxt = int(np.argmax(dist))
    chosen[i] = nxt
    dist = np.minimum(dist, np.sqrt(np.sum((v - v[nxt]) ** 2, 1)) * scale)
  return chosen


def subset_body_model(model: BodyModel, indices) -> BodyModel:
  """A BodyModel whose vertices are the full model's vertices at ``indices``.

  Joints stay exact: a regressor-based model is converted to the equivalent
  ``j_template``/``j_shapedirs`` form (joints are linear in the betas), since
  the regressor needs the full mesh.
  """
  idx = np.asarray(indices)
  j_template, j_shapedirs = model.j_template, model.j_shapedirs
  if j_template is None:
    j_template = model.j_regressor @ model.v_template
    j_shapedirs = jnp.einsum("jv,vcb->jcb", model.j_regressor, model.shapedirs)
  posedirs = None
  if model.posedirs is not None:
    cols = (idx[:, None] * 3 + np.arange(3)[None]).reshape(-1)
    posedirs = model.posedirs[:, cols]
  return dataclasses.replace(
      model,
      v_template=model.v_template[idx],
      shapedirs=model.shapedirs[idx],
      weights=model.weights[idx],
      faces=jnp.zeros((0, 3), jnp.int32),
      posedirs=posedirs,
      j_regressor=None,
      j_template=j_template,
      j_shapedirs=j_shapedirs,
      name=f"{model.name}[{len(idx)}]",
  )


def upsample_matrix(model: BodyModel, indices, k: int = 3) -> np.ndarray:
  """[V, n] interpolation from subset values to all vertices; rows sum to 1.

  Inverse-distance weights over the k nearest subset vertices on the rest
  mesh; a subset vertex maps to itself exactly.
  """
  v = np.asarray(model.v_template, np.float64)
  idx = np.asarray(indices)
  dist, nn = cKDTree(v[idx]).query(v, k=k)
  w = 1.0 / np.maximum(dist, 1e-9) ** 2
  exact = dist[:, 0] < 1e-9
  w[exact] = 0.0
  w[exact, 0] = 1.0
  w /= w.sum(1, keepdims=True)
  up = np.zeros((len(v), len(idx)), np.float32)
  np.add.at(up, (np.repeat(np.arange(len(v)), k), nn.reshape(-1)), w.reshape(-1))
  return up
