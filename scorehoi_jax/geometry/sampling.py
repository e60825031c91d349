"""Surface sampling of triangle meshes and farthest-point sampling.

Sampling is done once, in NumPy, with an explicit seed, and returned as
(face index, barycentric weights) so the *same* samples can be re-posed on any
mesh with the same topology (e.g. every predicted SMPL-H mesh) inside jit:
``points = Σ_k w_k · V[F[face, k]]``. This is how the batched evaluator avoids
re-sampling per mesh.

Area weighting follows trimesh's ``sample_surface``: a face is picked with
probability proportional to its area, then a uniform point in it via the
square-root trick (Osada et al. 2002).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class SurfaceSamples:
  """Surface samples of a mesh, reusable across poses of the same topology."""
  points: np.ndarray  # [S, 3] positions on the mesh they were drawn from.
  face_index: np.ndarray  # [S] int, face of each sample.
  barycentric: np.ndarray  # [S, 3] weights of the face's three vertices.


def face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
  """Triangle areas [F] of a mesh (NumPy)."""
  tri = np.asarray(vertices, np.float64)[np.asarray(faces)]
  return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=-1)


def sample_surface(vertices, faces, num_samples: int, seed: int = 0) -> SurfaceSamples:
  """Area-weighted uniform samples on a triangle mesh.

  Args:
    vertices: [V, 3] mesh vertices.
    faces: [F, 3] int triangle indices.
    num_samples: number of points S.
    seed: seed of the NumPy generator (the result depends only on it and the mesh).

  Returns:
    SurfaceSamples with points [S, 3], face_index [S] and barycentric [S, 3].

  Raises:
    ValueError: if the mesh has no face of positive area.
  """
  vertices = np.asarray(vertices, np.float64)
  faces = np.asarray(faces, np.int64)
  areas = face_areas(vertices, faces)
  total = areas.sum()
  if not np.isfinite(total) or total <= 0:
    raise ValueError(f"cannot sample a mesh with total area {total} ({len(faces)} faces)")
  rng = np.random.default_rng(seed)
  face_index = rng.choice(len(faces), size=num_samples, p=areas / total)
  r1 = np.sqrt(rng.random(num_samples))
  r2 = rng.random(num_samples)
  bary = np.stack([1.0 - r1, r1 * (1.0 - r2), r1 * r2], axis=-1)
  points = np.einsum("sk,skd->sd", bary, vertices[faces[face_index]])
  return SurfaceSamples(points=points, face_index=face_index, barycentric=bary)


def sample_with_normals(vertices, faces, num_samples: int, seed: int = 0):
  """Surface samples plus the unit normal [S, 3] of the face each one lies on."""
  samples = sample_surface(vertices, faces, num_samples, seed)
  tri = np.asarray(vertices, np.float64)[np.asarray(faces)[samples.face_index]]
  n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
  n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-20)
  return samples, n


def repose_samples(vertices, faces, face_index, barycentric) -> jnp.ndarray:
  """Place fixed samples on a (batch of) mesh(es): [..., V, 3] -> [..., S, 3].

  Pure JAX (jittable, differentiable in the vertices); faces, face_index and
  barycentric are constants from ``sample_surface``.
  """
  corner_ids = jnp.asarray(np.asarray(faces)[np.asarray(face_index)])  # [S, 3]
  corners = jnp.take(vertices, corner_ids, axis=-2)  # [..., S, 3, 3]
  return jnp.einsum("sk,...skd->...sd", jnp.asarray(barycentric, vertices.dtype), corners)


def farthest_point_sampling(points, k: int, start: int | None = None) -> np.ndarray:
  """Indices [k] of a deterministic farthest-point subset of points [N, 3].

  Starts from ``start`` or, by default, the point farthest from the centroid
  (so the result does not depend on the order of near-ties at the centre).
  """
  points = np.asarray(points, np.float64)
  n = len(points)
  if k > n:
    raise ValueError(f"cannot pick {k} farthest points out of {n}")
  if start is None:
    start = int(np.argmax(np.sum((points - points.mean(0)) ** 2, axis=-1)))
  chosen = np.empty(k, np.int64)
  chosen[0] = start
  dist = np.sum((points - points[start]) ** 2, axis=-1)
  for i in range(1, k):
    nxt = int(np.argmax(dist))
    chosen[i] = nxt
    dist = np.minimum(dist, np.sum((points - points[nxt]) ** 2, axis=-1))
  return chosen
