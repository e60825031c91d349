"""Fallback backend: exact ray casting with trimesh (+ embreex), shaded in NumPy.

Needs no system packages, so it runs wherever pip does; it also serves as the
exact reference in tests. One ray per pixel centre (no anti-aliasing). Ray
directions have z = 1, so the hit's z coordinate is the depth. With embreex
this runs at ~17 fps at 256² (notes/renderer.md §3.3); without it trimesh
falls back to a pure-Python intersector that takes seconds per frame, usable
only for tiny images.
"""

from __future__ import annotations

import numpy as np
import trimesh

from scorehoi_jax.render.core import DEFAULT_LIGHT, Camera, Light, RenderOutput, Scene, shade


def has_embree() -> bool:
  try:
    import embreex  # noqa: F401
    return True
  except ImportError:
    return False


def render_raycast(scene: Scene, camera: Camera, background: np.ndarray,
                   light: Light = DEFAULT_LIGHT, shading: bool = True) -> RenderOutput:
  h, w = camera.height, camera.width
  rgb = background.copy()
  instance = np.zeros(h * w, np.uint8)
  depth = np.zeros(h * w, np.float32)
  if len(scene.faces):
    mesh = trimesh.Trimesh(scene.vertices.astype(np.float64), scene.faces, process=False, validate=False)
    if has_embree():
      from trimesh.ray.ray_pyembree import RayMeshIntersector
    else:
      from trimesh.ray.ray_triangle import RayMeshIntersector
    dirs = camera.rays()
    origins = np.zeros_like(dirs)
    tri, ray, loc = RayMeshIntersector(mesh).intersects_id(
        origins, dirs, multiple_hits=False, return_locations=True)
    keep = (loc[:, 2] >= camera.near) & (loc[:, 2] <= camera.far)
    tri, ray, loc = tri[keep], ray[keep], loc[keep]
    instance[ray] = scene.face_ids[tri]
    depth[ray] = loc[:, 2]
    if shading:
      f = scene.faces[tri]
      bary = trimesh.triangles.points_to_barycentric(scene.vertices[f].astype(np.float64), loc)
      color = np.einsum("nk,nkc->nc", bary, scene.colors[f])
      normal = np.einsum("nk,nkc->nc", bary, scene.normals[f])
      rgb.reshape(-1, 3)[ray] = shade(color, normal, loc, light)
  out = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
  return RenderOutput(out, instance.reshape(h, w), depth.reshape(h, w))
