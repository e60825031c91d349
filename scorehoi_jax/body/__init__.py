"""SMPL-H-layout body models: arrays as a pytree, LBS forward in JAX, loaders."""

from scorehoi_jax.body.io import (
    BodyModelError,
    default_model_path,
    from_arrays,
    load_body_model,
    random_smplh_arrays,
)
from scorehoi_jax.body.model import (
    NUM_JOINTS,
    SMPLH_JOINT_NAMES,
    SMPLH_PARENTS,
    BodyModel,
    BodyOutput,
    add_hand_mean,
    body_forward,
    forward_kinematics,
    shaped_rest,
)
from scorehoi_jax.body.downsample import (
    NUM_GUIDANCE_VERTICES,
    guidance_vertex_indices,
    subset_body_model,
    upsample_matrix,
)
