"""Diffusion: schedule, DDIM inversion, guided DDIM sampling, guidance losses and
contact-driven iterative refinement (Algorithm 1) — pure and jittable."""

from scorehoi_jax.diffusion.contact import make_proximity_contact_fn
from scorehoi_jax.diffusion.ddim import (
    SampleAux,
    ddim_invert,
    ddim_sample,
    guidance_weight,
    make_guidance_grad_fn,
    timesteps,
)
from scorehoi_jax.diffusion.losses import (
    GuidanceWeights,
    LossTerms,
    contact_loss,
    floor_loss,
    penetration_inert,
    penetration_loss,
    physical_loss,
)
from scorehoi_jax.diffusion.refine import (
    RefineInputs,
    RefineOutput,
    RefineSettings,
    loss_terms,
    make_refine_fn,
    masks_from_probs,
    refine,
)
from scorehoi_jax.diffusion.sampler import Refiner, build_refiner, settings_from_config, weights_from_config
from scorehoi_jax.diffusion.schedule import cosine_schedule, linear_schedule
from scorehoi_jax.diffusion.xpack import (
    X_DIM,
    BetasStats,
    Decoded,
    XParts,
    decode_x,
    default_betas_stats,
    pack_x,
    pack_x_from_matrices,
    unpack_x,
)
