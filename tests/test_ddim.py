"""Schedule and DDIM samplers against closed forms.

For Gaussian data x0 ~ N(μ, σ²I) the exact noise predictor is
ε(x_t, t) = √(1−ᾱ)(x_t − √ᾱ μ)/(ᾱσ² + 1 − ᾱ), and the DDIM ODE has the exact
solution x_t/√ᾱ_t − μ ∝ √(σ² + (1−ᾱ_t)/ᾱ_t): the samplers must follow it.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scorehoi_jax.diffusion import ddim
from scorehoi_jax.diffusion.schedule import cosine_schedule

A = cosine_schedule()
MU, SIGMA = 0.3, 0.5


def gaussian_eps(x, t):
  a = jnp.asarray(A)[t][:, None]
  return jnp.sqrt(1.0 - a) * (x - jnp.sqrt(a) * MU) / (a * SIGMA**2 + 1.0 - a)


def _x0(b=3, d=7, seed=0):
  return jnp.asarray(MU + SIGMA * np.random.default_rng(seed).normal(size=(b, d)), jnp.float32)


def test_cosine_schedule_matches_released_table():
  # notes/official-code-notes.md §2.1 (measured on the released code).
  table = {0: (0.999959, 0.00643, 4.1e-5), 5: (0.999679, 0.01790, 3.2e-4), 25: (0.997350, 0.05147, 2.66e-3),
           45: (0.993090, 0.08313, 6.96e-3), 50: (0.991725, 0.09097, 8.34e-3)}
  for t, (abar, s, r) in table.items():
    assert A[t] == pytest.approx(abar, abs=1e-6)
    assert np.sqrt(1 - A[t]) == pytest.approx(s, rel=2e-3)
    assert (1 - A[t]) / A[t] == pytest.approx(r, rel=2e-2)
  assert 1 - A[0] == pytest.approx(4.13e-5, rel=1e-2)  # β_0.
  assert 1 - A[-1] / A[-2] == pytest.approx(0.999, rel=1e-6)  # β_999 clipped.
  assert A.shape == (1000,) and np.all(np.diff(A) < 0)


def test_timesteps_grid_and_errors():
  np.testing.assert_array_equal(ddim.timesteps(50, 5), np.arange(0, 51, 5))
  np.testing.assert_array_equal(ddim.timesteps(25, 2), np.arange(0, 25, 2))  # Largest grid point ≤ τ.
  with pytest.raises(ValueError, match="dt"):
    ddim.timesteps(50, 0)
  with pytest.raises(ValueError, match="tau"):
    ddim.timesteps(2, 5)


def test_inversion_follows_exact_gaussian_ode_and_round_trips():
  x0 = _x0()
  tau = 50
  sbar = lambda t: (1 - A[t]) / A[t]
  y0 = np.asarray(x0, np.float64) / np.sqrt(A[0]) - MU
  ref = (MU + y0 * np.sqrt((SIGMA**2 + sbar(tau)) / (SIGMA**2 + sbar(0)))) * np.sqrt(A[tau])
  # DDIM is Euler on the ODE in (x/√ᾱ, √((1−ᾱ)/ᾱ)): first-order error, shrinking with Δt.
  errs = {dt: float(np.max(np.abs(ddim.ddim_invert(gaussian_eps, x0, A, tau, dt) - ref))) for dt in (1, 2, 5)}
  assert errs[2] < 1e-3
  assert errs[1] < 0.6 * errs[2] and errs[2] < 0.6 * errs[5]
  dt = 2
  x_tau = ddim.ddim_invert(gaussian_eps, x0, A, tau, dt)
  x_back, aux = ddim.ddim_sample(gaussian_eps, x_tau, A, tau, dt, return_aux=True)
  # Back to the t = 0 latent (Euler there and back: O(Δt) error, a few 1e-4 of |x0 − μ| ≈ 0.5).
  np.testing.assert_allclose(aux.x_latent, x0, atol=3e-3)
  # x̃0 of the last step is x̂0(x_Δt), which also shrinks slightly towards μ.
  np.testing.assert_allclose(x_back, x0, atol=3e-3)
  assert np.max(np.abs(x_back - x0)) < 0.2 * np.max(np.abs(x_tau - x0))

  def round_trip_err(step):
    xt = ddim.ddim_invert(gaussian_eps, x0, A, tau, step)
    return float(np.max(np.abs(ddim.ddim_sample(gaussian_eps, xt, A, tau, step, return_aux=True)[1].x_latent - x0)))

  assert round_trip_err(1) < 0.6 * round_trip_err(5)
  assert aux.loss.shape == (tau // dt, 3) and np.all(aux.loss == 0)


def test_one_step_equals_hand_formula():
  x0 = np.asarray(_x0(seed=1), np.float64)
  a0, a5 = np.float64(A[0]), np.float64(A[5])
  eps_np = lambda x, a: np.sqrt(1 - a) * (x - np.sqrt(a) * MU) / (a * SIGMA**2 + 1 - a)
  e0 = eps_np(x0, a0)
  x5_ref = np.sqrt(a5) * (x0 - np.sqrt(1 - a0) * e0) / np.sqrt(a0) + np.sqrt(1 - a5) * e0
  x5 = ddim.ddim_invert(gaussian_eps, jnp.asarray(x0, jnp.float32), A, 5, 5)
  np.testing.assert_allclose(x5, x5_ref, rtol=1e-5, atol=1e-6)
  e5 = eps_np(x5_ref, a5)
  x0_ref = (x5_ref - np.sqrt(1 - a5) * e5) / np.sqrt(a5)
  out = ddim.ddim_sample(gaussian_eps, jnp.asarray(x5_ref, jnp.float32), A, 5, 5)
  np.testing.assert_allclose(out, x0_ref, rtol=1e-5, atol=1e-6)


def _quadratic_grad_fn(c):
  loss = lambda x: 0.5 * jnp.sum((x - c) ** 2, axis=-1)
  return loss, ddim.make_guidance_grad_fn(loss, A)


@pytest.mark.parametrize("t", [5, 50])
def test_guidance_shift_is_exact_in_no_backprop_mode(t):
  x_t = _x0(seed=2)
  c = jnp.asarray(np.random.default_rng(3).normal(size=x_t.shape), jnp.float32)
  _, grad_fn = _quadratic_grad_fn(c)
  rho = 3.0
  plain = ddim.ddim_sample(gaussian_eps, x_t, A, t, t)
  guided = ddim.ddim_sample(gaussian_eps, x_t, A, t, t, guidance_grad_fn=grad_fn, rho=rho)
  x0_hat = np.asarray(plain, np.float64)
  expected = x0_hat - rho * (1 - A[t]) / A[t] * (x0_hat - np.asarray(c))  # ∇L = x̂0 − c.
  np.testing.assert_allclose(guided, expected, rtol=1e-5, atol=1e-6)


def test_through_denoiser_gradient_matches_chain_rule():
  # The Gaussian ε is linear in x_t: ∂x̂0/∂x_t = (1 − √(1−ᾱ) k) / √ᾱ with k = √(1−ᾱ)/(ᾱσ²+1−ᾱ).
  t = 40
  x_t = _x0(seed=4)
  c = jnp.zeros_like(x_t)
  loss = lambda x: 0.5 * jnp.sum((x - c) ** 2, axis=-1)
  bp = ddim.make_guidance_grad_fn(loss, A, eps_fn=gaussian_eps, through_denoiser=True)
  nobp = ddim.make_guidance_grad_fn(loss, A)
  tb = jnp.full((3,), t, jnp.int32)
  a = np.float64(A[t])
  x0_hat = (x_t - jnp.sqrt(1 - a) * gaussian_eps(x_t, tb)) / jnp.sqrt(a)
  g_bp, l_bp = bp(x_t, tb, x0_hat)
  g_no, l_no = nobp(x_t, tb, x0_hat)
  k = np.sqrt(1 - a) / (a * SIGMA**2 + 1 - a)
  np.testing.assert_allclose(g_bp, np.asarray(x0_hat) * (1 - np.sqrt(1 - a) * k) / np.sqrt(a), rtol=1e-4)
  np.testing.assert_allclose(g_no, np.asarray(x0_hat) / np.sqrt(a), rtol=1e-5)
  np.testing.assert_allclose(l_bp, l_no, rtol=1e-5)


def test_schedules_and_grad_processing():
  t = jnp.asarray([0, 25, 50])
  np.testing.assert_allclose(ddim.guidance_weight("constant", t, 50), [1, 1, 1])
  np.testing.assert_allclose(ddim.guidance_weight("linear", t, 50), [0, 0.5, 1])
  np.testing.assert_allclose(ddim.guidance_weight("cosine", t, 50), [0, 0.5, 1], atol=1e-6)
  np.testing.assert_allclose(ddim.guidance_weight(lambda t, tau: (t / tau) ** 2, t, 50), [0, 0.25, 1])
  with pytest.raises(ValueError, match="schedule"):
    ddim.guidance_weight("bogus", t, 50)
  g = jnp.asarray([[3.0, 4.0], [0.3, 0.4]])
  clipped, norm = ddim._process_grad(g, "clip", jnp.asarray(1.0))
  np.testing.assert_allclose(norm, [5.0, 0.5], rtol=1e-6)
  np.testing.assert_allclose(clipped, [[0.6, 0.8], [0.3, 0.4]], rtol=1e-6)
  unit, _ = ddim._process_grad(g, "normalize", jnp.asarray(2.0))
  np.testing.assert_allclose(jnp.linalg.norm(unit, axis=-1), [2.0, 2.0], rtol=1e-6)


def test_per_sample_rho_and_linear_schedule_jit():
  x_t = _x0(b=2, seed=5)
  c = jnp.ones_like(x_t)
  _, grad_fn = _quadratic_grad_fn(c)
  run = jax.jit(lambda x, rho: ddim.ddim_sample(gaussian_eps, x, A, 10, 5, grad_fn, rho=rho,
                                                schedule="linear", return_aux=True))
  out, aux = run(x_t, jnp.asarray([0.0, 2.0]))
  plain = ddim.ddim_sample(gaussian_eps, x_t, A, 10, 5)
  np.testing.assert_allclose(out[0], plain[0], rtol=1e-6)  # ρ = 0 row is unguided.
  assert not np.allclose(out[1], plain[1])
  np.testing.assert_allclose(aux.weight, [1.0, 0.5])  # w(t)·mean(ρ) at t = 10, 5.
