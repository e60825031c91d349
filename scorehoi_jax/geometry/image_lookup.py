"""Differentiable bilinear lookup of a 2-D field (e.g. a mask's distance transform) at image points."""

from __future__ import annotations

import jax.numpy as jnp


def bilinear_lookup(field: jnp.ndarray, xy: jnp.ndarray) -> jnp.ndarray:
  """field [H, W] read at xy [N, 2] (x = column, y = row; pixel centres at integers), differentiable in xy.

  Outside the grid the field continues with slope 1 from its border value
  (value at the clamped point + the distance to it), so a distance field
  keeps pulling points that project off the crop back towards it.
  """
  h, w = field.shape
  x = jnp.clip(xy[..., 0], 0.0, w - 1.0)
  y = jnp.clip(xy[..., 1], 0.0, h - 1.0)
  outside = jnp.sqrt((xy[..., 0] - x) ** 2 + (xy[..., 1] - y) ** 2 + 1e-12) - 1e-6
  x0 = jnp.clip(jnp.floor(x), 0, w - 2)
  y0 = jnp.clip(jnp.floor(y), 0, h - 2)
  fx, fy = x - x0, y - y0
  i, j = y0.astype(jnp.int32), x0.astype(jnp.int32)
  v = ((1 - fx) * (1 - fy) * field[i, j] + fx * (1 - fy) * field[i, j + 1]
       + (1 - fx) * fy * field[i + 1, j] + fx * fy * field[i + 1, j + 1])
  return v + jnp.maximum(outside, 0.0)
