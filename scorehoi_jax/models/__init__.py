"""Flax modules: regressor, point encoder, contact former, denoiser, mesh refiner."""
from scorehoi_jax.models.denoiser import Denoiser, compat_denoiser, denoiser_from_config, init_params_numpy
