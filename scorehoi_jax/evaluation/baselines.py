"""The optimisation baseline: Adam on the physical objectives plus a data term (CHORE/PHOSA style).

Optimisation-based HOI methods (PHOSA, CHORE; paper §1 and Table 2) refine the
regressor's estimate by gradient descent on contact / collision objectives and
a term that keeps the result close to the image evidence. Here the image
evidence is the regressor's estimate itself (the same starting point
ScoreHOI gets), so the baseline differs from ScoreHOI in exactly one thing:
the diffusion prior is replaced by a quadratic pull towards x_init.

  L(x) = L_P(x; M) + Σ_parts w_part · ||x_part − x_init,part||²

L_P is ``diffusion.refine.loss_terms`` (the same λ_ho L_ho + λ_of L_of +
λ_pt L_pt, with the same switches in RefineSettings: use_ho / use_of /
pt_mode). The data term is a squared distance in x with one weight per part
(``DataWeights``): pose 6D entries and object 6D entries are unitless (a 0.1
change of a 6D entry ≈ 6° of rotation), the object translation is in metres
and gets a larger weight so that 5 cm costs about as much as ~3° of every
joint, and the normalised betas are kept near their estimate too. These are
a judgement call (no released code of ours to follow); they are fields so
sweeps are one line.

Budget: as many gradient evaluations as ScoreHOI spends at the same settings,
N × τ/Δt (paper settings: 10 × 25 = 250), organised in N blocks of τ/Δt Adam
steps; the contact masks are re-predicted before every block when
``settings.cdir`` (like CDIR; frozen at x_init otherwise).

``make_optimization_refine`` returns a function with the keyword interface of
``diffusion.refine.refine`` (it ignores the denoiser), so it plugs into
``Reconstructor(refine_fn=...)`` and returns the same ``RefineOutput``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from scorehoi_jax.diffusion import ddim
from scorehoi_jax.diffusion.losses import GuidanceWeights
from scorehoi_jax.diffusion.refine import (RefineInputs, RefineOutput, RefineSettings, loss_terms, masks_from_probs,
                                           predict_contacts, refine_output)
from scorehoi_jax.diffusion.xpack import BETAS, OBJ_ROT, OBJ_TRANS, POSE, X_DIM


@dataclasses.dataclass(frozen=True)
class DataWeights:
  """Per-part weights of the data term Σ w ||x − x_init||² (see the module docstring)."""
  pose: float = 1.0  # Per 6D entry of the 52 joints.
  obj_rot: float = 1.0  # Per 6D entry of the object rotation.
  obj_trans: float = 100.0  # Per metre²: 5 cm → 0.25.
  betas: float = 1.0  # Per normalised beta.


@dataclasses.dataclass(frozen=True)
class BaselineConfig:
  """Adam settings of the baseline; the budget comes from RefineSettings (N × τ/Δt)."""
  learning_rate: float = 0.01  # In x units: ~1 cm of translation or ~0.6° per step at most.
  data: DataWeights = DataWeights()
  physical_scale: float = 1.0  # Multiplies L_P (0: the data term alone, x stays at x_init).


def data_weight_vector(w: DataWeights) -> jnp.ndarray:
  """[331] per-entry weights of the data term."""
  v = jnp.zeros((X_DIM,), jnp.float32)
  for part, val in ((POSE, w.pose), (OBJ_ROT, w.obj_rot), (OBJ_TRANS, w.obj_trans), (BETAS, w.betas)):
    v = v.at[part].set(val)
  return v


def steps_per_round(settings: RefineSettings) -> int:
  """τ/Δt: the guided sampling steps of one ScoreHOI round (each one gradient evaluation)."""
  return len(ddim.timesteps(settings.tau, settings.dt)) - 1


def make_optimization_refine(config: BaselineConfig = BaselineConfig()):
  """A refine function (same keyword interface as ``diffusion.refine.refine``) running the baseline."""
  wvec = data_weight_vector(config.data)

  def optimization_refine(params, inputs: RefineInputs, body_model, stats, weights: GuidanceWeights, *,
                          denoiser=None, contact_fn, settings: RefineSettings, alphas_cumprod=None) -> RefineOutput:
    del params, denoiser, alphas_cumprod  # No diffusion prior: that is the point of the baseline.
    x_init = inputs.x_init
    if x_init.ndim != 2 or x_init.shape[-1] != X_DIM:
      raise ValueError(f"optimization_refine: x_init has shape {x_init.shape}, expected [B, {X_DIM}].")
    weights = weights.as_arrays()
    terms_at = lambda x, m: loss_terms(x, m, inputs, body_model, stats, weights, settings)

    predict = lambda x: predict_contacts(x, inputs, body_model, stats, contact_fn, settings)

    def objective(x, masks):
      """Sum over the batch of per-sample objectives: Adam is elementwise, so samples stay independent."""
      phys = terms_at(x, masks)[0].total
      data = jnp.sum(wvec * (x - x_init) ** 2, axis=-1)
      return jnp.sum(config.physical_scale * phys + data), phys

    tx = optax.adam(config.learning_rate)
    grad_fn = jax.grad(objective, has_aux=True)
    frozen = None if settings.cdir else predict(x_init)

    def step(carry, _, masks):
      x, opt = carry
      g, phys = grad_fn(x, masks)
      upd, opt = tx.update(g, opt, x)
      return (optax.apply_updates(x, upd), opt), phys

    def block(carry, _):
      x, opt = carry
      probs = predict(x) if settings.cdir else frozen
      masks = masks_from_probs(probs, settings)
      (x, opt), phys = jax.lax.scan(lambda c, s: step(c, s, masks), (x, opt), None,
                                    length=steps_per_round(settings))
      terms, _ = terms_at(x, masks)
      return (x, opt), (probs, terms, phys, x)

    if settings.num_rounds < 1:
      raise ValueError(f"optimization_refine: settings.num_rounds={settings.num_rounds}, expected >= 1.")
    (x_final, _), (probs, terms, step_losses, x_rounds) = jax.lax.scan(
        block, (x_init, tx.init(x_init)), None, length=settings.num_rounds)
    return refine_output(x_final, probs, terms, step_losses, x_rounds, inputs, body_model, stats, weights,
                         settings)

  return optimization_refine
