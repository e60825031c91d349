"""Signed distance grids and their differentiable trilinear lookup.

Sign convention: negative inside the object, positive outside (so penetration
depth of a point is ``max(-sdf, 0)``). A grid covers the axis-aligned box
[lo, hi] with R_x × R_y × R_z samples at the box corners-inclusive lattice
(sample (i, j, k) sits at lo + (i, j, k) * (hi - lo) / (R - 1)).

Outside the box we return ``border_value + distance_to_box``: the border value
is the grid's value at the clamped point, which is a correct upper bound of the
true distance and keeps gradients pointing back towards the object.
Grid building (from meshes) lives in scorehoi_jax.objects; this module only
holds the array container and the lookup so the diffusion guidance can use it
without depending on trimesh.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SDFGrid:
  values: jnp.ndarray  # [Rx, Ry, Rz] signed distances in metres (negative inside).
  lo: jnp.ndarray  # [3] box minimum corner.
  hi: jnp.ndarray  # [3] box maximum corner.


def sdf_lookup(grid: SDFGrid, points: jnp.ndarray) -> jnp.ndarray:
  """Trilinear SDF at points [..., 3] -> [...]; differentiable in the points."""
  values = grid.values
  res = jnp.asarray(values.shape, dtype=points.dtype)
  lo = grid.lo.astype(points.dtype)
  hi = grid.hi.astype(points.dtype)
  clamped = jnp.clip(points, lo, hi)
  outside = jnp.sqrt(jnp.sum((points - clamped) ** 2, axis=-1) + 1e-12) - 1e-6
  outside = jnp.maximum(outside, 0.0)
  # Continuous grid coordinates in [0, R-1].
  u = (clamped - lo) / (hi - lo) * (res - 1)
  i0 = jnp.clip(jnp.floor(u), 0, res - 2)
  f = u - i0  # Fractional part in [0, 1]; carries the gradient.
  i0 = i0.astype(jnp.int32).reshape(-1, 3)
  f = f.reshape(-1, 3)
  # One 2×2×2 window gather per point: on XLA:CPU about 3× faster than eight
  # scalar gathers (measured), with identical values.
  cube = jax.vmap(lambda i: jax.lax.dynamic_slice(values, i, (2, 2, 2)))(i0)  # [P, 2, 2, 2]
  fx, fy, fz = f[:, 0, None, None], f[:, 1, None], f[:, 2]
  c = cube[:, 0] * (1 - fx) + cube[:, 1] * fx  # [P, 2, 2] (y, z)
  c = c[:, 0] * (1 - fy) + c[:, 1] * fy  # [P, 2] (z)
  inside = c[:, 0] * (1 - fz) + c[:, 1] * fz
  return inside.reshape(points.shape[:-1]) + outside


def grid_points(lo, hi, resolution) -> jnp.ndarray:
  """The lattice positions [Rx, Ry, Rz, 3] of a grid (for building and tests)."""
  res = (resolution,) * 3 if isinstance(resolution, int) else tuple(resolution)
  axes = [jnp.linspace(lo[d], hi[d], res[d]) for d in range(3)]
  return jnp.stack(jnp.meshgrid(*axes, indexing="ij"), axis=-1)
