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


class SeparableDenoiser(nn.Module):
  """ε(x, t) = 0.3 x (1 + t/10) per entry: every entry of x evolves on its own, so a part that gets no
  guidance ends exactly where unguided sampling puts it."""

  def encode(self, c_img, c_geo):
    return None

  def denoise(self, x, t, cond):
    return 0.3 * x * (1.0 + t[:, None].astype(x.dtype) / 10.0)


_FNS = {}


def _sep(settings, weights, x_init=None):
  if settings not in _FNS:
    _FNS[settings] = make_refine_fn(SeparableDenoiser(), CONTACT, settings)
  inp = S.inputs()
  if x_init is not None:
    inp = dataclasses.replace(inp, x_init=x_init)
  return _FNS[settings]({}, inp, S.guidance_body(), S.STATS, weights.as_arrays())


GUIDED = RefineSettings(**SMALL, floor="body", clean_endpoint=True)
UNGUIDED1 = RefineSettings(num_rounds=1, tau=10, dt=5, floor="body", clean_endpoint=True, use_guidance=False)
W = GuidanceWeights(rho=20.0, lambda_pt=5.0, rho_rounds=jnp.ones(2))  # Same shapes throughout: one compile.


def test_window_round_scale_and_part_scale_against_unguided_sampling():
  unguided = lambda x: _sep(UNGUIDED1, dataclasses.replace(W, rho_rounds=jnp.ones(1)), x).x0
  x1_u = unguided(S.inputs().x_init)
  x2_u = unguided(x1_u)
  full = _sep(GUIDED, W)
  assert float(jnp.abs(full.x0 - x2_u).max()) > 1e-3  # Guidance moves x here.
  # A window outside the grid (t in 0..10): no step is guided.
  out = _sep(GUIDED, dataclasses.replace(W, t_lo=100.0, t_hi=200.0))
  np.testing.assert_allclose(out.x0, x2_u, rtol=0, atol=1e-7)
  # A window holding every step: the default.
  np.testing.assert_array_equal(_sep(GUIDED, dataclasses.replace(W, t_lo=5.0, t_hi=10.0)).x0, full.x0)
  # ρ per round [1, 0]: round 1 as the default, round 2 an unguided round from there.
  out = _sep(GUIDED, dataclasses.replace(W, rho_rounds=jnp.asarray([1.0, 0.0])))
  np.testing.assert_array_equal(out.x_rounds[0], full.x_rounds[0])
  np.testing.assert_allclose(out.x0, unguided(full.x_rounds[0]), rtol=0, atol=1e-7)
  # Per-part scale 0 on the object translation: it ends where unguided sampling puts it; the rest is guided.
  out = _sep(GUIDED, dataclasses.replace(W, scale_obj_trans=0.0))
  np.testing.assert_allclose(out.x0[:, OBJ_TRANS], x2_u[:, OBJ_TRANS], rtol=0, atol=1e-7)
  assert float(jnp.abs(full.x0[:, OBJ_TRANS] - x2_u[:, OBJ_TRANS]).max()) > 1e-4
  assert float(jnp.abs(out.x0[:, :312] - x2_u[:, :312]).max()) > 1e-3  # The pose is still guided.
  # Scale 2 on every part = ρ doubled.
  two = {f"scale_{n}": 2.0 for n, _ in PARTS}
  np.testing.assert_allclose(_sep(GUIDED, dataclasses.replace(W, **two)).x0,
                             _sep(GUIDED, dataclasses.replace(W, rho=40.0)).x0, rtol=1e-6, atol=1e-6)
  sizes = {k.use_guidance: f._cache_size() for k, f in _FNS.items()}
  assert sizes[True] == 1, sizes  # Every knob above is a traced value: one program for all the guided runs.
  with pytest.raises(ValueError, match="rho_rounds"):
    _sep(GUIDED, dataclasses.replace(W, rho_rounds=jnp.ones(3)))


def test_term_schedule_weights_closed_form():
  s = RefineSettings(tau=50, dt=2, term_schedules=(("ho", "linear"), ("pt", "cosine")))
  w = GuidanceWeights(lambda_ho=0.5, lambda_pt=5.0, lambda_end={"ho": 0.1, "pt": 1.0}).as_arrays()
  t = np.array([50, 26, 2])
  got = weights_at(w, jnp.asarray(t), s)
  np.testing.assert_allclose(got.lambda_ho, 0.1 + 0.4 * t / 50, rtol=1e-6)
  np.testing.assert_allclose(got.lambda_pt, 1.0 + 4.0 * np.sin(0.5 * np.pi * t / 50) ** 2, rtol=1e-6)
  assert float(got.lambda_of) == 0.5  # Not scheduled.
  with pytest.raises(ValueError, match="term_schedules"):
    RefineSettings(term_schedules=(("floor", "linear"),))


def _zero_eps(x, t):
  return jnp.zeros_like(x)


def test_k_gradient_steps_and_stochastic_eta_closed_form():
  """ε ≡ 0 and L = ½‖x̂0 − c‖²: each correction contracts x̂0 towards c by κ = wρ(1−ᾱ_t)/ᾱ_t (K times);
  η > 0 adds σ z with DDIM's σ; η = 0 on the stochastic path is the deterministic sampler."""
  a = np.asarray(cosine_schedule(), np.float64)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 5)).astype(np.float32)
  c = rng.normal(size=(2, 5)).astype(np.float32)
  loss = lambda x0: 0.5 * jnp.sum((x0 - c) ** 2, axis=-1)
  grad = ddim.make_guidance_grad_fn(loss, a)
  tau, dt, rho, k = 10, 5, 0.3, 3
  got = ddim.ddim_sample(_zero_eps, jnp.asarray(x), a, tau, dt, grad, rho=rho, grad_steps=k)
  ref = x.astype(np.float64)
  for t, tn in ((10, 5), (5, 0)):
    x0 = ref / np.sqrt(a[t])
    kappa = rho * (1 - a[t]) / a[t]
    x0 = c + (1 - kappa) ** k * (x0 - c)
    eps = (ref - np.sqrt(a[t]) * x0) / np.sqrt(1 - a[t])
    ref = np.sqrt(a[tn]) * x0 + np.sqrt(1 - a[tn]) * eps
  np.testing.assert_allclose(got, x0, rtol=1e-5, atol=1e-5)
  # η: x_{t'} = √ᾱ' x̂0 + σ z (ε = 0), the noise of step i drawn from fold_in(key, i).
  key = jax.random.PRNGKey(3)
  eta = 0.7
  lat, aux = ddim.ddim_sample(_zero_eps, jnp.asarray(x), a, tau, dt, eta=eta, key=key, return_aux=True)
  ref = x.astype(np.float64)
  for i, (t, tn) in enumerate(((10, 5), (5, 0))):
    sigma = eta * np.sqrt((1 - a[tn]) / (1 - a[t]) * (1 - a[t] / a[tn]))
    z = np.asarray(jax.random.normal(jax.random.fold_in(key, i), x.shape), np.float64)
    ref = np.sqrt(a[tn]) * ref / np.sqrt(a[t]) + sigma * z
  np.testing.assert_allclose(aux.x_latent, ref, rtol=1e-5, atol=1e-5)
  det = ddim.ddim_sample(_zero_eps, jnp.asarray(x), a, tau, dt, grad, rho=rho, return_aux=True)[1].x_latent
  sto = ddim.ddim_sample(_zero_eps, jnp.asarray(x), a, tau, dt, grad, rho=rho, eta=0.0, key=key, return_aux=True)
  np.testing.assert_array_equal(sto[1].x_latent, det)
