"""Geometry at the bottom of the import graph: rotations, distances, SDF lookup."""

from scorehoi_jax.geometry.distances import chamfer_distance, nearest_distances, pairwise_sq_distances
from scorehoi_jax.geometry.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_rot6d,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    matrix_to_rot6d,
    quaternion_to_axis_angle,
    rot6d_to_axis_angle,
    rot6d_to_matrix,
)
from scorehoi_jax.geometry.sdf import SDFGrid, grid_points, sdf_lookup
from scorehoi_jax.geometry.procrustes import (
    align_similarity,
    apply_similarity,
    procrustes_rigid,
    procrustes_similarity,
)
from scorehoi_jax.geometry.sampling import (
    SurfaceSamples,
    face_areas,
    farthest_point_sampling,
    repose_samples,
    sample_surface,
    sample_with_normals,
)
