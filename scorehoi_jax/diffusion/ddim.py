"""Deterministic DDIM inversion and physics-guided DDIM sampling (paper §3.3, Alg. A).

Both samplers are pure functions of a noise-prediction callable
``eps_fn(x_t [B, D], t [B] int32) -> ε̂ [B, D]``, so they can be tested against
closed-form models and reused with any denoiser. Each sweep is one
``lax.scan`` over the (t, t') pairs of the grid 0, Δt, 2Δt, …, ≤ τ (the
released code's ``range(0, τ + 1, Δt)``; notes §2.2). η = 0 (as released; η > 0 optional) and no clipping of
x̂0, as released.

Guided step (paper Eq. for ε′, Algorithm A lines 5–11):

  ε̂  = ε(x_t, t);   x̂0 = (x_t − √(1−ᾱ_t) ε̂) / √ᾱ_t
  ε̃  = ε̂ + w(t) ρ √(1−ᾱ_t) ∇_{x_t} L_P
  x̃0 = (x_t − √(1−ᾱ_t) ε̃) / √ᾱ_t
  x_{t'} = √ᾱ_{t'} x̃0 + √(1−ᾱ_{t'}) ε̃

With the released code's "no backprop through the denoiser" gradient,
∇_{x_t} L = ∇_{x̂0} L / √ᾱ_t and the step is x̃0 = x̂0 − w ρ (1−ᾱ_t)/ᾱ_t ∇_{x̂0} L.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

EpsFn = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]
# (x_t [B, D], t [B] int32, x̂0 [B, D]) -> (∇_{x_t} L [B, D], L per sample [B]).
GuidanceGradFn = Callable[[jnp.ndarray, jnp.ndarray, jnp.ndarray], tuple]
LossFn = Callable[[jnp.ndarray], jnp.ndarray]  # x0 [B, D] -> L [B].

SCHEDULES = ("constant", "linear", "cosine")
GRAD_MODES = ("none", "clip", "normalize")


class SampleAux(NamedTuple):
  """Per-step diagnostics of a guided sweep (S = number of sampling steps)."""
  x_latent: jnp.ndarray  # [B, D] the t = 0 latent after the last step (released code carries this).
  loss: jnp.ndarray  # [S, B] guidance loss at x̂0 of each step (0 without guidance).
  grad_norm: jnp.ndarray  # [S, B] ‖∇_{x_t} L‖ before clipping/normalisation.
  weight: jnp.ndarray  # [S] w(t)·ρ actually applied (ρ's batch dims averaged).
  # With trace=True (None otherwise):
  x0_hat: jnp.ndarray | None = None  # [S, B, D] the denoiser's x̂0 at each step (where the guidance is evaluated).
  prior_step: jnp.ndarray | None = None  # [S, B] ‖x_{t'}^prior − x_t‖: the unguided DDIM update.
  guidance_step: jnp.ndarray | None = None  # [S, B] ‖x_{t'} − x_{t'}^prior‖: what the guidance adds.


def timesteps(tau: int, dt: int) -> np.ndarray:
  """The DDIM grid 0, Δt, …, ≤ τ (ints). Errors name the offending value."""
  if int(dt) <= 0:
    raise ValueError(f"DDIM step size dt must be a positive integer, got {dt}.")
  if int(tau) < int(dt):
    raise ValueError(f"DDIM noise level tau={tau} must be >= the step size dt={dt}.")
  return np.arange(0, int(tau) + 1, int(dt), dtype=np.int32)


def guidance_weight(schedule, t: jnp.ndarray, tau: int) -> jnp.ndarray:
  """Per-timestep multiplier w(t) of the guidance scale ρ.

  schedule: None/'constant' (w = 1, the paper and the released code);
  'linear' (w = t/τ: strongest at the noisiest step, fading as x̂0 sharpens);
  'cosine' (w = sin²(π t / 2τ), the same ends with a softer start and finish);
  or a callable ``(t, tau) -> w`` of a traced integer t (user schedules).
  """
  u = t.astype(jnp.float32) / float(tau)
  if schedule is None or schedule == "constant":
    return jnp.ones_like(u)
  if callable(schedule):
    return jnp.asarray(schedule(t, tau), jnp.float32)
  if schedule == "linear":
    return u
  if schedule == "cosine":
    return jnp.sin(0.5 * jnp.pi * u) ** 2
  raise ValueError(f"unknown guidance schedule {schedule!r}; expected one of {SCHEDULES} or a callable.")


def _process_grad(g: jnp.ndarray, mode: str, clip: jnp.ndarray):
  """Per-sample clipping ('clip': ‖g‖ ≤ c) or normalisation ('normalize': ‖g‖ = c)."""
  norm = jnp.sqrt(jnp.sum(g * g, axis=-1, keepdims=True) + 1e-24)
  if mode == "none":
    return g, norm[..., 0]
  if mode == "clip":
    return g * jnp.minimum(1.0, clip / norm), norm[..., 0]
  if mode == "normalize":
    return g * (clip / norm), norm[..., 0]
  raise ValueError(f"unknown guidance grad_mode {mode!r}; expected one of {GRAD_MODES}.")


def _t_batch(t, x):
  return jnp.full(x.shape[:1], t, dtype=jnp.int32)


def clean_endpoint(alphas_cumprod, clean: bool = True) -> jnp.ndarray:
  """ᾱ with ᾱ_0 := 1 when ``clean``: grid point 0 is the clean x itself.

  The released sampler treats the clean estimate as the t = 0 *latent* (ᾱ_0 =
  0.99984 on the cosine schedule) on the way up but returns x̂0 — not that
  latent — on the way down, so every invert → sample round trip moves x by
  √(1−ᾱ_0)·ε ≈ 0.0125·ε even with a perfect denoiser: an unguided round
  drifts. With ᾱ_0 = 1 both ends mean the same thing.
  """
  a = jnp.asarray(alphas_cumprod, jnp.float32)
  return a.at[0].set(1.0) if clean else a


def ddim_invert(eps_fn: EpsFn, x0: jnp.ndarray, alphas_cumprod, tau: int, dt: int,
                fixed_point_iters: int = 0) -> jnp.ndarray:
  """Deterministic DDIM inversion x_0 → x_τ (paper Eq. for x_{t+1}; unguided).

  Args:
    eps_fn: noise predictor ε(x_t, t).
    x0: [B, D] clean estimate (the latent at grid point 0; see ``clean_endpoint``).
    alphas_cumprod: ᾱ [T].
    tau, dt: static ints; steps (0→Δt), (Δt→2Δt), … up to the largest grid point ≤ τ.
    fixed_point_iters: 0 uses ε(x_t, t) for the step t → t', as DDIM inversion
      does; k > 0 re-evaluates ε at the new point k times (ε ← ε(x_t'(ε), t')),
      so the step is the exact inverse of the sampler's step t' → t, which uses
      ε(x_t', t') (fixed-point inversion; k extra denoiser calls per step).

  Returns:
    x_τ [B, D].
  """
  times = timesteps(tau, dt)
  a = jnp.asarray(alphas_cumprod, jnp.float32)

  def step(x, tt):
    t, t_next = tt
    at, an = a[t], a[t_next]
    up = lambda e: jnp.sqrt(an) * (x - jnp.sqrt(1.0 - at) * e) / jnp.sqrt(at) + jnp.sqrt(1.0 - an) * e
    eps = eps_fn(x, _t_batch(t, x))
    for _ in range(fixed_point_iters):
      eps = eps_fn(up(eps), _t_batch(t_next, x))
    return up(eps), None

  x_tau, _ = jax.lax.scan(step, x0, (jnp.asarray(times[:-1]), jnp.asarray(times[1:])))
  return x_tau


def ddim_sample(eps_fn: EpsFn, x_tau: jnp.ndarray, alphas_cumprod, tau: int, dt: int,
                guidance_grad_fn: GuidanceGradFn | None = None, rho=1.0, schedule=None,
                grad_mode: str = "none", grad_clip=1.0, return_aux: bool = False, *, window=None,
                grad_scale=None, grad_steps: int = 1, eta=None, key=None, trace: bool = False):
  """DDIM sampling x_τ → x̃0 (deterministic unless ``eta``), optionally physics-guided.

  Args:
    eps_fn: noise predictor ε(x_t, t).
    x_tau: [B, D] latent at the top grid point (what ``ddim_invert`` returned).
    alphas_cumprod: ᾱ [T].
    tau, dt: static ints, the same grid as the inversion (steps τ→τ−Δt … Δt→0).
    guidance_grad_fn: None for plain DDIM, else ``(x_t, t, x̂0) -> (∇_{x_t} L, L)``,
      e.g. from ``make_guidance_grad_fn``. Every sampling step is guided (released).
    rho: guidance scale ρ, scalar or [B] (traced: changing it does not retrace).
    schedule: per-timestep multiplier of ρ, see ``guidance_weight``.
    grad_mode: 'none' | 'clip' | 'normalize' applied per sample to ∇ with ``grad_clip``.
    grad_clip: the norm bound / target norm for grad_mode.
    return_aux: also return ``SampleAux``.
    window: None, or (t_lo, t_hi) traced: only steps with t_lo ≤ t ≤ t_hi are guided (w(t) := 0 elsewhere).
    grad_scale: None, or [D] / [B, D] traced multipliers of the processed gradient (per-part step sizes).
    grad_steps: K (static): the guidance correction is applied K times per step, each at the x̂0 the previous
      one produced (K = 1: Algorithm A). Not with a gradient through the denoiser (it ignores x̂0).
    eta: None (η = 0, deterministic, as released) or a traced η ≥ 0: DDIM's stochastic step
      x_{t'} = √ᾱ_{t'} x̃0 + √(1−ᾱ_{t'}−σ²) ε̃ + σ z, σ = η √((1−ᾱ_{t'})/(1−ᾱ_t)) √(1−ᾱ_t/ᾱ_{t'}); needs ``key``.
    trace: also fill SampleAux.x0_hat / prior_step / guidance_step.

  Returns:
    x̃0 of the last step [B, D] (Algorithm A line 13), and SampleAux if asked.
  """
  times = timesteps(tau, dt)
  a = jnp.asarray(alphas_cumprod, jnp.float32)
  rho = jnp.asarray(rho, jnp.float32)
  rho_b = rho[:, None] if rho.ndim == 1 else rho
  clip = jnp.asarray(grad_clip, jnp.float32)
  clip = clip[:, None] if clip.ndim == 1 else clip
  top = int(times[-1])
  if grad_steps < 1:
    raise ValueError(f"ddim_sample: grad_steps must be >= 1, got {grad_steps}.")
  if eta is not None and key is None:
    raise ValueError("ddim_sample: eta needs a PRNG key.")
  per_sample = lambda v: v[:, None] if v.ndim == 1 else v  # Scalar or [B] → broadcasts against [B, D].

  def guide(x, tb, t, at, eps):
    """ε̃ of Algorithm A (K corrections), with the first correction's loss and gradient norm."""
    w_t = guidance_weight(schedule, t, top)
    if window is not None:
      lo, hi = (jnp.asarray(v, jnp.float32) for v in window)
      w_t = w_t * per_sample(((t >= lo) & (t <= hi)).astype(jnp.float32))
    loss = gnorm = None
    for _ in range(grad_steps):
      x0_hat = (x - jnp.sqrt(1.0 - at) * eps) / jnp.sqrt(at)
      g, l_k = guidance_grad_fn(x, tb, x0_hat)
      g, n_k = _process_grad(g, grad_mode, clip)
      if grad_scale is not None:
        g = g * grad_scale
      loss, gnorm = (l_k, n_k) if loss is None else (loss, gnorm)
      eps = eps + (w_t * rho_b) * jnp.sqrt(1.0 - at) * g
    return eps, loss, gnorm, jnp.mean(w_t) * jnp.mean(rho)

  def step(carry, tt):
    x, _ = carry
    t, t_next, i = tt
    tb = _t_batch(t, x)
    at, an = a[t], a[t_next]
    eps_hat = eps = eps_fn(x, tb)
    zeros = jnp.zeros(x.shape[:1], x.dtype)
    loss, gnorm, w = zeros, zeros, jnp.zeros((), jnp.float32)
    if guidance_grad_fn is not None:
      eps, loss, gnorm, w = guide(x, tb, t, at, eps)

    def move(e):
      x0_t = (x - jnp.sqrt(1.0 - at) * e) / jnp.sqrt(at)
      if eta is None:
        return x0_t, jnp.sqrt(an) * x0_t + jnp.sqrt(1.0 - an) * e
      sigma = per_sample(jnp.asarray(eta, jnp.float32)) * jnp.sqrt((1.0 - an) / (1.0 - at) * (1.0 - at / an))
      z = jax.random.normal(jax.random.fold_in(key, i), x.shape, x.dtype)
      return x0_t, jnp.sqrt(an) * x0_t + jnp.sqrt(jnp.maximum(1.0 - an - sigma**2, 0.0)) * e + sigma * z

    x0_t, x_next = move(eps)
    out = (loss, gnorm, w)
    if trace:
      x0_prior, x_prior = move(eps_hat)  # Same noise draw: the difference is the guidance's alone.
      norm = lambda v: jnp.sqrt(jnp.sum(v * v, axis=-1))
      out = out + (x0_prior, norm(x_prior - x), norm(x_next - x_prior))
    return (x_next, x0_t), out

  n = len(times) - 1
  pairs = (jnp.asarray(times[:0:-1]), jnp.asarray(times[-2::-1]), jnp.arange(n, dtype=jnp.int32))
  (x_last, x0), outs = jax.lax.scan(step, (x_tau, jnp.zeros_like(x_tau)), pairs)
  if return_aux:
    traced = dict(zip(("x0_hat", "prior_step", "guidance_step"), outs[3:]))
    return x0, SampleAux(x_latent=x_last, loss=outs[0], grad_norm=outs[1], weight=outs[2], **traced)
  return x0


def make_guidance_grad_fn(loss_fn: LossFn, alphas_cumprod, eps_fn: EpsFn | None = None,
                          through_denoiser: bool = False, with_t: bool = False) -> GuidanceGradFn:
  """∇_{x_t} L_P(x̂0(x_t)) from a per-sample loss on x0.

  Args:
    loss_fn: x0 [B, D] -> L [B] (``with_t``: (x0, t [B]) -> L, e.g. weights that follow t); samples must be
      independent (we differentiate the batch sum, which is per-sample exact under that assumption).
    alphas_cumprod: ᾱ [T].
    eps_fn: the denoiser; needed only when ``through_denoiser``.
    through_denoiser: False (released code): ε̂ is a constant, so
      ∇_{x_t} = ∇_{x̂0} / √ᾱ_t. True: backpropagate through ε(x_t, t) as well
      (one extra denoiser forward + backward per step).
  """
  a = jnp.asarray(alphas_cumprod, jnp.float32)

  def summed(x, t):
    per = loss_fn(x, t) if with_t else loss_fn(x)
    return jnp.sum(per), per

  if not through_denoiser:
    def grad_fn(x_t, t, x0_hat):
      (_, per), g0 = jax.value_and_grad(summed, has_aux=True)(x0_hat, t)
      return g0 / jnp.sqrt(a[t])[:, None], per
    return grad_fn

  if eps_fn is None:
    raise ValueError("make_guidance_grad_fn: through_denoiser=True needs eps_fn.")

  def grad_fn_bp(x_t, t, x0_hat):
    del x0_hat  # Recomputed as a function of x_t so the gradient sees ε(x_t).
    at = a[t][:, None]

    def of_xt(x):
      return summed((x - jnp.sqrt(1.0 - at) * eps_fn(x, t)) / jnp.sqrt(at), t)

    (_, per), g = jax.value_and_grad(of_xt, has_aux=True)(x_t)
    return g, per

  return grad_fn_bp
