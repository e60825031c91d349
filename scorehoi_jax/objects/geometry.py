"""The JAX-side object geometry the guidance and models consume.

``ObjectGeometry`` is a pytree holding just arrays: the 64 template points
(the paper's object point set O, in the canonical frame) and the SDF grid
Φ used by the penetration term. One object has template [64, 3] and a grid
[R, R, R]; a batch has a leading batch axis on every leaf (built with
``stack_geometries``), which ``object_sdf`` understands. ``surface`` [P, 3]
(optional) is a denser, even set of surface points for the silhouette fit
(reconstruct.fit_to_masks): 64 points outline an object too coarsely to fit
its mask.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from scorehoi_jax.geometry.sdf import SDFGrid, sdf_lookup


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ObjectGeometry:
  template: jnp.ndarray  # [..., 64, 3] canonical-frame template points (metres).
  sdf: SDFGrid  # values [..., R, R, R], lo/hi [..., 3]; negative inside.
  surface: jnp.ndarray | None = None  # [..., P, 3] canonical-frame surface points (silhouette fit); None: none.

  @property
  def batch_shape(self) -> tuple[int, ...]:
    return tuple(self.template.shape[:-2])


def stack_geometries(geometries: Sequence[ObjectGeometry]) -> ObjectGeometry:
  """Stack objects into one batched ObjectGeometry (leading axis = len); NumPy arrays stay on the host.

  Raises:
    ValueError: if the objects differ in template size or SDF resolution
      (rebuild them with the same ``sdf_resolution``).
  """
  geometries = list(geometries)
  if not geometries:
    raise ValueError("stack_geometries needs at least one ObjectGeometry")
  shapes = {(g.template.shape, g.sdf.values.shape, getattr(g.surface, "shape", None)) for g in geometries}
  if len(shapes) != 1:
    raise ValueError("cannot stack object geometries with different template/SDF/surface shapes: "
                     f"{sorted(shapes, key=str)}; build all objects with the same sdf_resolution")
  host = all(isinstance(x, np.ndarray) for x in jax.tree_util.tree_leaves(geometries))
  return jax.tree_util.tree_map(lambda *xs: (np.stack if host else jnp.stack)(xs), *geometries)


def object_sdf(geometry: ObjectGeometry, points: jnp.ndarray) -> jnp.ndarray:
  """Φ(points) in the object's canonical frame, for one object or a batch.

  Args:
    geometry: one object (template [64, 3]) or a batch (template [B, 64, 3]).
    points: [..., 3] for one object; [B, ..., 3] for a batch of B objects.

  Returns:
    Signed distances [...] / [B, ...] (negative inside), differentiable in points.
  """
  batch_dims = geometry.sdf.values.ndim - 3
  if batch_dims == 0:
    return sdf_lookup(geometry.sdf, points)
  fn = sdf_lookup
  for _ in range(batch_dims):
    fn = jax.vmap(fn)
  return fn(geometry.sdf, points)
