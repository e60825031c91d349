"""A small deterministic refinement problem shared by the trace and schedule tests.

Random SMPL-H-layout body (300 vertices, 48 guidance points), a random
NumPy-initialised small denoiser, a box SDF and the proximity contact stand-in:
every value is seeded, so a refine on it is a reproducible reference.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

from scorehoi_jax.body import from_arrays, guidance_vertex_indices, random_smplh_arrays, subset_body_model
from scorehoi_jax.diffusion import RefineInputs, default_betas_stats, pack_x
from scorehoi_jax.geometry import SDFGrid, axis_angle_to_rot6d, grid_points
from scorehoi_jax.models.denoiser import Denoiser, init_params_numpy
from scorehoi_jax.objects.geometry import ObjectGeometry

B = 3
STATS = default_betas_stats()


@functools.lru_cache(maxsize=1)
def bodies():
  """(full model, its 48-vertex guidance subset, the subset's vertex indices)."""
  full = from_arrays(random_smplh_arrays(3, num_vertices=300, num_betas=10, with_posedirs=True))
  idx = guidance_vertex_indices(full, 48)
  return full, subset_body_model(full, idx), idx


def guidance_body():
  return bodies()[1]


def inputs(seed: int = 0, b: int = B, trans_scale: float = 0.1) -> RefineInputs:
  """Seeded inputs; trans_scale: spread of the object translations (m)."""
  rng = np.random.default_rng(seed)
  f = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)
  pose = axis_angle_to_rot6d(f(b, 52, 3) * 0.2)
  x = pack_x(pose, axis_angle_to_rot6d(f(b, 3)), f(b, 3) * trans_scale, f(b, 10), STATS)
  lo, hi = -0.2 * np.ones(3), 0.2 * np.ones(3)
  sdf = np.max(np.abs(np.asarray(grid_points(lo, hi, 8))) - 0.1, axis=-1)
  grid = SDFGrid(jnp.asarray(np.broadcast_to(sdf, (b, 8, 8, 8)), jnp.float32),
                 jnp.asarray(np.broadcast_to(lo, (b, 3)), jnp.float32), jnp.asarray(np.broadcast_to(hi, (b, 3)), jnp.float32))
  objects = ObjectGeometry(template=f(b, 64, 3) * 0.1, sdf=grid)
  return RefineInputs(x_init=x, objects=objects, c_img=f(b, 16, 32), c_geo=f(b, 64, 24))


def denoiser() -> Denoiser:
  return Denoiser(model_dim=32, hidden_dim=48, num_blocks=1, time_dim=32, betas_model_dim=16, betas_hidden_dim=16,
                  num_betas_blocks=1, betas_time_dim=16, token_dim=16, attn_dim=16, num_heads=2)


@functools.lru_cache(maxsize=1)
def denoiser_params():
  inp = inputs()
  return init_params_numpy(denoiser(), 0, inp.x_init, jnp.zeros((B,), jnp.int32), inp.c_img, inp.c_geo)
