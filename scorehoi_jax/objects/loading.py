"""User meshes: load .obj / .ply / .glb files as object templates.

The mesh is kept in the frame of the file (a dataset's object poses map that
frame to the camera), only scaled if asked. Non-watertight meshes are fine:
the SDF sign comes from generalised winding numbers (see sdf_build.py).
"""

from __future__ import annotations

import os

import numpy as np
import trimesh

from scorehoi_jax.objects import registry

SUPPORTED_EXTENSIONS = (".obj", ".ply", ".glb", ".gltf", ".off", ".stl")
_UNIT_SCALE = {"m": 1.0, "cm": 0.01, "mm": 0.001}
# Largest side of an object a person handles, sits on or leans against: a coin to a sofa or a
# wardrobe, with margin. Outside it the file is almost surely in other units (a 40 cm box saved
# in cm is 40 m across), which would give a confident but absurd reconstruction.
PLAUSIBLE_SIZE_M = (0.01, 5.0)


class ObjectError(ValueError):
  """A mesh that cannot be used as an object (the message names it and why)."""


def _resolve_scale(scale, where: str) -> float:
  if scale is None:
    return 1.0
  if isinstance(scale, str):
    if scale not in _UNIT_SCALE:
      raise ObjectError(f"{where}: unknown unit {scale!r} for scale; use a number or one of {sorted(_UNIT_SCALE)}")
    return _UNIT_SCALE[scale]
  scale = float(scale)
  if not np.isfinite(scale) or scale <= 0:
    raise ObjectError(f"{where}: scale must be a positive finite number, got {scale}")
  return scale


def _read_mesh(path: str) -> trimesh.Trimesh:
  """Read a file into one Trimesh (scenes are flattened), or raise ObjectError."""
  try:
    loaded = trimesh.load(path, process=False, maintain_order=True)
  except Exception as e:  # trimesh raises many types for malformed files.
    raise ObjectError(f"{path}: could not read mesh ({type(e).__name__}: {e})") from e
  if isinstance(loaded, trimesh.Scene):
    if not loaded.geometry:
      raise ObjectError(f"{path}: empty mesh (the file holds no geometry)")
    geoms = [g for g in loaded.dump() if isinstance(g, trimesh.Trimesh)]
    if not geoms:
      raise ObjectError(f"{path}: the file holds no triangle mesh (a scene with "
                        f"{len(loaded.geometry)} non-mesh geometries)")
    loaded = trimesh.util.concatenate(geoms)
  if not isinstance(loaded, trimesh.Trimesh):
    raise ObjectError(f"{path}: not a triangle mesh (got {type(loaded).__name__}, e.g. a point cloud "
                      "or polylines); objects need faces")
  return loaded


def validate_mesh(mesh: trimesh.Trimesh, where: str) -> trimesh.Trimesh:
  """Check a mesh is a usable object, return a cleaned copy, or raise ObjectError."""
  v = np.asarray(mesh.vertices)
  f = np.asarray(mesh.faces)
  if len(v) == 0 or len(f) == 0:
    raise ObjectError(f"{where}: empty mesh ({len(v)} vertices, {len(f)} faces)")
  if f.ndim != 2 or f.shape[1] != 3:
    raise ObjectError(f"{where}: faces must be triangles, got faces of shape {f.shape}")
  if not np.all(np.isfinite(v)):
    raise ObjectError(f"{where}: vertices contain NaN or inf")
  if f.min() < 0 or f.max() >= len(v):
    raise ObjectError(f"{where}: face indices out of range [0, {len(v)})")
  tri = v[f]
  areas = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=-1)
  extent = float(np.max(v.max(0) - v.min(0)))
  good = areas > (1e-10 * extent * extent)
  if not good.any():
    raise ObjectError(f"{where}: degenerate mesh: all {len(f)} faces have zero area "
                      f"(extent {extent:.3g})")
  # Drop zero-area faces (they carry no surface and upset normals) but keep every
  # vertex in file order: datasets index object vertices (contact labels, poses).
  return trimesh.Trimesh(v, f[good], process=False)


def check_size(mesh: trimesh.Trimesh, where: str, size_range=PLAUSIBLE_SIZE_M) -> None:
  """Refuse a mesh (in metres after scaling) whose largest side is outside ``size_range``."""
  extent = float(np.max(mesh.extents))
  lo, hi = size_range
  if lo <= extent <= hi:
    return
  hint = next((f" (in {u} it would be {extent * f:.3g} m: pass --object-scale {u})"
               for u, f in (("cm", 0.01), ("mm", 0.001)) if lo <= extent * f <= hi), "")
  raise ObjectError(f"{where}: the object is {extent:.3g} m across, implausible for an everyday object "
                    f"({lo * 100:g} cm to {hi:g} m); is the file in other units? Set its unit or a factor with "
                    f"--object-scale{hint}.")


def load_object(path_or_name: str, scale: float | str | None = None, *, name: str | None = None,
                category: str | None = None, sdf_resolution: int = registry.DEFAULT_SDF_RESOLUTION,
                seed: int | None = None, size_range=PLAUSIBLE_SIZE_M) -> registry.ObjectTemplate:
  """An ObjectTemplate from a registered name or a mesh file.

  Args:
    path_or_name: a name from ``list_objects()`` or a path to .obj/.ply/.glb (
      also .gltf/.off/.stl).
    scale: for files: multiply vertices by this number, or a unit of the file
      ('m', 'cm', 'mm') to convert to metres. None keeps the file's units.
    name: name of the template (default: the file stem).
    category: category string (default: the name).
    sdf_resolution: samples per axis of the SDF grid.
    seed: for registered procedural names, the instance seed.
    size_range: (min, max) largest side in metres after scaling; None accepts any size.

  Raises:
    ObjectError: the file is missing, unreadable, not a triangle mesh, empty,
      degenerate or of an implausible size (the message names --object-scale);
      or the name is unknown (the message lists the known names).
  """
  if not os.path.splitext(path_or_name)[1] and not os.path.exists(path_or_name):
    if path_or_name in registry.list_objects():
      return registry.get_object(path_or_name, seed=seed, sdf_resolution=sdf_resolution)
    raise ObjectError(f"unknown object {path_or_name!r}: not a file and not a registered name; "
                      f"known objects: {', '.join(registry.list_objects())}")
  path = path_or_name
  if not os.path.exists(path):
    raise ObjectError(f"{path}: no such file")
  ext = os.path.splitext(path)[1].lower()
  if ext not in SUPPORTED_EXTENSIONS:
    raise ObjectError(f"{path}: unsupported mesh format {ext!r}; use one of {', '.join(SUPPORTED_EXTENSIONS)}")
  mesh = validate_mesh(_read_mesh(path), path)
  mesh.apply_scale(_resolve_scale(scale, path))
  if size_range is not None:
    check_size(mesh, path, size_range)
  stem = name or os.path.splitext(os.path.basename(path))[0]
  return registry.make_template(stem, mesh, category=category or stem, floor_standing=False,
                                sdf_resolution=sdf_resolution)
