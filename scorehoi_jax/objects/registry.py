"""Object templates: what every other part of the code knows about an object.

An ``ObjectTemplate`` bundles a mesh in its canonical frame with what is
precomputed from it once on the host:
- ``template`` [64, 3]: the object point set O of the paper (the released code
  gets it offline from BPS, notes/official-code-notes.md §6.5; we take a
  deterministic farthest-point subset of exterior surface samples, which
  spreads the points evenly and needs no extra package);
- ``surface_points`` / ``surface_normals`` [S, 3]: area-weighted samples;
- ``fit_points`` [512, 3]: a farthest-point subset of them, the outline the
  silhouette fit projects (reconstruct.fit_to_masks);
- ``sdf``: an SDF grid Φ for the penetration term and contact-from-SDF.
``ObjectTemplate.geometry()`` gives the array-only pytree the guidance uses.

The registry maps names to templates: the procedural library is registered
under BEHAVE's category names; ``register_object`` adds more (e.g. a user's
BEHAVE meshes). Templates are built lazily and memoised per (name, seed,
resolution); SDF grids are also cached on disk (sdf_build.py).
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from typing import Callable, Sequence

import jax.numpy as jnp
import numpy as np
import trimesh

from scorehoi_jax.geometry.sampling import farthest_point_sampling, sample_with_normals
from scorehoi_jax.geometry.sdf import SDFGrid
from scorehoi_jax.objects import procedural
from scorehoi_jax.objects.geometry import ObjectGeometry
from scorehoi_jax.objects.sdf_build import build_sdf_grid, contains

NUM_TEMPLATE_POINTS = 64
NUM_SURFACE_SAMPLES = 4096
# Object points the silhouette fit projects. With the 64 template points, a fit started from the true
# parameters drifts to human / object IoU 0.896 / 0.854; with 500 surface points, 0.935 / 0.918
# (40 capture test frames, experiments/results/alignment.md).
NUM_FIT_POINTS = 512
# 48³ keeps the voxel under 3 cm for a 1.1 m chair and builds in ~1 s per part
# (experiments/results/geometry.md); the lookup cost does not depend on it.
DEFAULT_SDF_RESOLUTION = 48


@dataclasses.dataclass(frozen=True, eq=False)
class ObjectTemplate:
  """An object in its canonical frame (metres, +Y up) with its precomputed geometry."""
  name: str
  mesh: trimesh.Trimesh
  template: np.ndarray  # [64, 3] farthest-point samples of the exterior surface.
  surface_points: np.ndarray  # [S, 3]
  surface_normals: np.ndarray  # [S, 3] unit outward normals (of the face each point lies on).
  sdf: SDFGrid
  category: str
  floor_standing: bool = True
  parts: tuple = ()  # Watertight pieces of a composite object (empty for a single mesh).

  @functools.cached_property
  def fit_points(self) -> np.ndarray:
    """[NUM_FIT_POINTS, 3] an even subset of the surface samples (the silhouette fit's object outline)."""
    k = min(NUM_FIT_POINTS, len(self.surface_points))
    return self.surface_points[farthest_point_sampling(self.surface_points, k)].astype(np.float32)

  def geometry(self, host: bool = False) -> ObjectGeometry:
    """The JAX pytree (float32 template, SDF grid, fit points) for guidance and models.

    host=True: NumPy arrays, to stack on the host and send with the call (no per-array transfer or jit).
    """
    xp = np if host else jnp
    f32 = lambda a: xp.asarray(a, xp.float32)
    return ObjectGeometry(template=f32(self.template), sdf=SDFGrid(f32(self.sdf.values), f32(self.sdf.lo),
                                                                   f32(self.sdf.hi)),
                          surface=f32(self.fit_points))

  @property
  def vertices(self) -> np.ndarray:
    return np.asarray(self.mesh.vertices)

  @property
  def faces(self) -> np.ndarray:
    return np.asarray(self.mesh.faces)


def _exterior_mask(points, face_index, face_part, parts) -> np.ndarray:
  """True for samples not buried inside another part of a composite object."""
  keep = np.ones(len(points), bool)
  if len(parts) < 2:
    return keep
  for j, part in enumerate(parts):
    other = face_part[face_index] != j
    if not other.any():
      continue
    # Only the sign is needed (winding number), not the distance: much cheaper.
    # Samples lying exactly on this part's surface (coplanar contact) may go
    # either way; both are on the object's surface or hidden by it.
    idx = np.nonzero(other)[0]
    keep[idx[contains(points[other], part.vertices, part.faces)]] = False
  return keep


def make_template(name: str, mesh: trimesh.Trimesh, *, category: str | None = None,
                  parts: Sequence[trimesh.Trimesh] = (), floor_standing: bool = True,
                  sdf_resolution: int = DEFAULT_SDF_RESOLUTION, num_surface: int = NUM_SURFACE_SAMPLES,
                  seed: int = 0, use_cache: bool = True) -> ObjectTemplate:
  """Precompute template points, surface samples and the SDF grid of a mesh."""
  parts = tuple(parts)
  vertices, faces = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)
  # Oversample so that enough remain after dropping samples buried in other parts.
  samples, normals = sample_with_normals(vertices, faces, 2 * num_surface, seed)
  face_part = (np.repeat(np.arange(len(parts)), [len(p.faces) for p in parts])
               if parts else np.zeros(len(faces), np.int64))
  keep = _exterior_mask(samples.points, samples.face_index, face_part, parts)
  points, normals = samples.points[keep][:num_surface], normals[keep][:num_surface]
  template = points[farthest_point_sampling(points, NUM_TEMPLATE_POINTS)]
  sdf = build_sdf_grid(vertices, faces, sdf_resolution, use_cache=use_cache,
                       parts=[(p.vertices, p.faces) for p in parts] or None)
  return ObjectTemplate(name=name, mesh=mesh, template=template.astype(np.float32),
                        surface_points=points.astype(np.float32), surface_normals=normals.astype(np.float32),
                        sdf=sdf, category=category or name, floor_standing=floor_standing, parts=parts)


# ------------------------------------------------------------------------------------------------
# The registry.
# ------------------------------------------------------------------------------------------------

# name -> factory(seed, sdf_resolution) -> ObjectTemplate
_FACTORIES: dict[str, Callable[[int | None, int], ObjectTemplate]] = {}
_MEMO: dict[tuple, ObjectTemplate] = {}
_LOCK = threading.Lock()


def register_object(name: str, factory: Callable[[int | None, int], ObjectTemplate], overwrite: bool = False):
  """Register ``factory(seed, sdf_resolution) -> ObjectTemplate`` under ``name``."""
  if name in _FACTORIES and not overwrite:
    raise ValueError(f"object {name!r} is already registered (pass overwrite=True to replace it)")
  _FACTORIES[name] = factory
  with _LOCK:
    for key in [k for k in _MEMO if k[0] == name]:
      del _MEMO[key]


def list_objects() -> list[str]:
  """Names get_object() accepts."""
  return sorted(_FACTORIES)


def get_object(name: str, seed: int | None = None, sdf_resolution: int = DEFAULT_SDF_RESOLUTION) -> ObjectTemplate:
  """The template of a registered object (memoised).

  Args:
    name: a name from ``list_objects()`` (BEHAVE category names for the
      procedural library).
    seed: None for the nominal object; an int for a size-jittered instance
      (procedural objects; other factories may ignore it).
    sdf_resolution: samples per axis of the SDF grid.

  Raises:
    KeyError: for an unknown name; the message lists the known ones.
  """
  if name not in _FACTORIES:
    raise KeyError(f"unknown object {name!r}; known objects: {', '.join(list_objects())}. "
                   "Use scorehoi_jax.objects.load_object(path) for a mesh file.")
  key = (name, seed, int(sdf_resolution))
  with _LOCK:
    if key in _MEMO:
      return _MEMO[key]
  obj = _FACTORIES[name](seed, int(sdf_resolution))
  with _LOCK:
    _MEMO.setdefault(key, obj)
    return _MEMO[key]


def _procedural_factory(category: str):
  def factory(seed, sdf_resolution):
    mesh, parts = procedural.build_procedural(category, seed)
    name = category if seed is None else f"{category}_s{seed}"
    return make_template(name, mesh, category=category, parts=parts,
                         floor_standing=procedural.CATEGORIES[category], sdf_resolution=sdf_resolution)
  return factory


for _name in procedural.procedural_names():
  register_object(_name, _procedural_factory(_name))
