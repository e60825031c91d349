"""Object templates: registry, procedural library, user meshes, SDF grids.

The rest of the code uses:
- ``get_object(name) -> ObjectTemplate`` and ``load_object(path_or_name)``;
- ``ObjectTemplate.geometry() -> ObjectGeometry`` (template [64, 3] + SDFGrid + fit points),
  ``stack_geometries`` for batches and ``object_sdf`` to query them.
"""

from scorehoi_jax.objects.geometry import ObjectGeometry, object_sdf, stack_geometries
from scorehoi_jax.objects.loading import ObjectError, load_object, validate_mesh
from scorehoi_jax.objects.procedural import CATEGORIES, build_procedural, procedural_names
from scorehoi_jax.objects.registry import (
    DEFAULT_SDF_RESOLUTION,
    NUM_TEMPLATE_POINTS,
    ObjectTemplate,
    get_object,
    list_objects,
    make_template,
    register_object,
)
from scorehoi_jax.objects.sdf_build import build_sdf_grid, cache_dir, signed_distance, winding_numbers
