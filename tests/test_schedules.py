"""Guidance schedules (issue 13 item 2): defaults reproduce the recorded refine, each knob against a closed form."""

import dataclasses
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import small_refine as S
from scorehoi_jax.diffusion import GuidanceWeights, RefineSettings, ddim, make_proximity_contact_fn, make_refine_fn
from scorehoi_jax.diffusion.refine import PARTS, weights_at
from scorehoi_jax.diffusion.schedule import cosine_schedule
from scorehoi_jax.diffusion.xpack import OBJ_TRANS

pytestmark = pytest.mark.usefixtures("fast_compile")

REFERENCE = os.path.join(os.path.dirname(__file__), "data", "refine_reference.npz")
SMALL = dict(num_rounds=2, tau=10, dt=5)
CONTACT = make_proximity_contact_fn(margin=0.3)


def _run(settings, weights, denoiser=None, params=None, inputs=None):
  den = denoiser if denoiser is not None else S.denoiser()
  params = params if params is not None else (S.denoiser_params() if denoiser is None else {})
  fn = make_refine_fn(den, CONTACT, settings)
  return fn(params, inputs if inputs is not None else S.inputs(), S.guidance_body(), S.STATS, weights)


# The cases of tests/data/record_refine_reference.py, run before the schedules existed.
CASES = {
    "default": (RefineSettings(**SMALL), GuidanceWeights(lambda_pt=5.0)),
    "paper": (RefineSettings(**SMALL, floor="body", clean_endpoint=True, invert_iters=1, schedule="linear",
                             grad_mode="clip"), GuidanceWeights(rho=2.0, lambda_pt=5.0, grad_clip=0.5)),
    "released": (RefineSettings(**SMALL, carry="latent", cdir=False, through_denoiser=True, mask_mode="soft"),
                 GuidanceWeights(rho=0.5)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_defaults_reproduce_the_recorded_refine(case):
  ref = np.load(REFERENCE)
  out = _run(*CASES[case])
  assert float(np.abs(out.x0 - S.inputs().x_init).max()) > 5e-4  # The reference moved x: a real check.
  np.testing.assert_allclose(out.x0, ref[f"{case}_x0"], rtol=0, atol=1e-6)
  np.testing.assert_allclose(out.x_rounds, ref[f"{case}_x_rounds"], rtol=0, atol=1e-6)
  np.testing.assert_allclose(out.step_losses, ref[f"{case}_step_losses"], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(out.losses.total, ref[f"{case}_total"], rtol=1e-6, atol=1e-6)
  assert out.trace is None
