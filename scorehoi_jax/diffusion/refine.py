"""Contact-driven iterative refinement (paper §3.4, Algorithm 1 with Algorithm A inside).

One call refines a batch under a single ``jax.jit``:

  for n in 0 … N−1                                  (lax.scan over rounds)
    V_h, P_o   ← decode(x_0^n)                       (431-vertex subset model)
    p_h, p_o, p_of ← contact_fn(V_h, P_o, aux)       (every round: CDIR; or frozen)
    M          ← p > 0.5
    x_τ        ← DDIM-invert(x_0^n)                   (lax.scan, unguided)
    x_0^{n+1}  ← guided DDIM sampling(x_τ; L_P(·; M)) (lax.scan, every step guided)

Static choices (shapes, code paths) live in ``RefineSettings`` (hashable; a
change recompiles); the knobs researchers sweep (ρ, λ's, margin, clip) live in
``GuidanceWeights`` (traced; a change never recompiles), as do the denoiser
parameters, the body model arrays and the inputs.

Released-code behaviour (notes §0.3, §2.3–2.4, §5.1) is reachable with
``cdir=False`` (masks from the initial estimate, frozen), ``carry='latent'``
(the next round inverts from the t = 0 latent of the last step rather than
from x̃0) and ``pt_mode='inert'``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from scorehoi_jax.body.model import BodyModel
from scorehoi_jax.diffusion import ddim
from scorehoi_jax.diffusion.contact import ContactFn
from scorehoi_jax.diffusion.image_evidence import batched_mask_loss
from scorehoi_jax.diffusion.losses import CAMERA_UP, GuidanceWeights, LossTerms, estimate_ground_plane, physical_loss
from scorehoi_jax.diffusion.schedule import cosine_schedule
from scorehoi_jax.diffusion.xpack import X_DIM, BetasStats, Decoded, decode_x
from scorehoi_jax.objects.geometry import ObjectGeometry


@dataclasses.dataclass(frozen=True)
class RefineSettings:
  """Static structure of a refinement (paper Tables 3–4 switches). Hashable."""
  num_rounds: int = 10  # N
  tau: int = 50  # τ, an index into the T = 1000 schedule (paper "τ = 0.05").
  dt: int = 2  # Δt
  use_diffusion: bool = True  # Table 3 "w/o diffusion": return the initial estimate.
  use_guidance: bool = True  # Table 3 "No guidance".
  use_ho: bool = True  # Table 3 "w/o L_ho".
  use_of: bool = True  # Table 3 "w/o L_of".
  pt_mode: str = "sdf"  # 'sdf' (paper) | 'inert' (released: no gradient) | 'off' ("w/o L_pt").
  cdir: bool = True  # Re-predict contacts every round (paper); False = frozen (released, "w/o CDIR").
  carry: str = "x0"  # 'x0' (Alg. A line 13) | 'latent' (released: the t = 0 latent).
  through_denoiser: bool = False  # ∇ through ε_φ too (released: no).
  schedule: Any = "constant"  # Guidance weight over t: 'constant' | 'linear' | 'cosine' | callable.
  grad_mode: str = "none"  # 'none' | 'clip' | 'normalize' (per-sample, with weights.grad_clip).
  mask_mode: str = "hard"  # 'hard': M = [p > threshold] (released) | 'soft': M = p.
  mask_threshold: float = 0.5
  # 'lowest': the released implicit floor (normal −y of the camera, through the lowest point);
  # 'plane': inputs.ground_plane (known: dataset calibration, synthetic labels);
  # 'body': inputs.ground_plane when given, else estimated from the current body (losses.estimate_ground_plane).
  floor: str = "lowest"
  up: tuple = CAMERA_UP
  hand_mean: bool = False  # Hand rotations are offsets from the model's mean hand (released).
  # Unguided drift (an invert → sample round trip should return x): ᾱ_0 := 1 at the grid's clean end
  # (ddim.clean_endpoint; released: ᾱ_0 of the schedule), and fixed-point steps in the inversion.
  clean_endpoint: bool = False
  invert_iters: int = 0
  # Image evidence (beyond the paper; diffusion/image_evidence.py): L_mask joins L_P (weight λ_mask), and
  # reconstruct first fits the pelvis and object placement to the masks by fit_steps Adam steps.
  use_mask: bool = False
  fit_steps: int = 0

  def __post_init__(self):
    for name, val, ok in (("pt_mode", self.pt_mode, ("sdf", "inert", "off")),
                          ("carry", self.carry, ("x0", "latent")),
                          ("grad_mode", self.grad_mode, ddim.GRAD_MODES),
                          ("mask_mode", self.mask_mode, ("hard", "soft")),
                          ("floor", self.floor, ("lowest", "plane", "body"))):
      if val not in ok:
        raise ValueError(f"RefineSettings.{name}={val!r}; expected one of {ok}.")
    if self.use_diffusion and self.num_rounds < 1:
      raise ValueError(f"RefineSettings.num_rounds must be >= 1, got {self.num_rounds}.")
    ddim.timesteps(self.tau, self.dt)  # Validates τ and Δt.


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class RefineInputs:
  """Per-batch inputs (all traced). B = batch size."""
  x_init: jnp.ndarray  # [B, 331] the regressor's estimate, packed with xpack.pack_x.
  objects: ObjectGeometry  # template [B, K, 3] and SDF grids [B, R, R, R].
  c_img: Any = None  # [B, T_I, C_I] image tokens (or pooled [B, C_I]); None if unused.
  c_geo: Any = None  # [B, T_G, C_G] geometry tokens; None if unused.
  aux: Any = None  # Anything contact_fn needs (feature map, camera, ...).
  ground_plane: Any = None  # [B, 4] (unit up normal n, offset c; height = n·p + c, pelvis-centred p).
  evidence: Any = None  # image_evidence.ImageEvidence when settings.use_mask.


class RefineOutput(NamedTuple):
  x0: jnp.ndarray  # [B, 331] refined x_0^N.
  decoded: Decoded  # x0 decoded on the (subset) body model passed in.
  contacts: tuple  # (p_h [R, B, Nh], p_o [R, B, K], p_of [R, B, K]) used in each round.
  losses: LossTerms  # Each [R + 1, B]: at x_init (row 0) and after each round, with that round's masks.
  step_losses: jnp.ndarray  # [R, S, B] guidance loss at x̂0 of every sampling step.
  x_rounds: jnp.ndarray  # [R, B, 331] x_0^n after each round n = 1 … N (x0 is the last).


def masks_from_probs(probs, settings: RefineSettings):
  if settings.mask_mode == "soft":
    return probs
  return tuple((p > settings.mask_threshold).astype(p.dtype) for p in probs)


def loss_terms(x0, masks, inputs: RefineInputs, body_model, stats, weights: GuidanceWeights,
                settings: RefineSettings) -> tuple[LossTerms, Decoded]:
  """Per-sample L_P [B] at x0 (decoded on body_model) and the decoded geometry."""
  dec = decode_x(x0, body_model, inputs.objects.template, stats, settings.hand_mean)
  b = x0.shape[0]
  w = jax.tree_util.tree_map(lambda v: jnp.broadcast_to(jnp.asarray(v, jnp.float32), (b,)), weights)
  plane = inputs.ground_plane if settings.floor in ("plane", "body") else None
  if settings.floor == "plane" and plane is None:
    raise ValueError("refine: settings.floor='plane' but RefineInputs.ground_plane is None.")
  if settings.floor == "body" and plane is None:
    plane = jax.vmap(estimate_ground_plane)(dec.human_points, dec.rotmats)

  def one(h, o, r, t, sdf, m_h, m_o, m_of, wi, pl):
    return physical_loss(h, o, r, t, sdf, m_h, m_o, m_of, wi, pt_mode=settings.pt_mode,
                         up=settings.up, plane=pl, use_ho=settings.use_ho, use_of=settings.use_of)

  terms = jax.vmap(one)(dec.human_points, dec.object_points, dec.obj_rotmat, dec.obj_trans,
                        inputs.objects.sdf, *masks, w, plane)
  if settings.use_mask:
    if inputs.evidence is None:
      raise ValueError("refine: settings.use_mask=True but RefineInputs.evidence is None.")
    m = batched_mask_loss(dec.human_points, dec.object_points, inputs.evidence)
    terms = terms._replace(mask=m, total=terms.total + w.lambda_mask * m)
  return terms, dec


def predict_contacts(x, inputs: RefineInputs, body_model, stats, contact_fn: ContactFn,
                     settings: RefineSettings) -> tuple:
  """(p_h, p_o, p_of) of the contact predictor on x decoded (the masks' source each round)."""
  dec = decode_x(x, body_model, inputs.objects.template, stats, settings.hand_mean)
  return tuple(contact_fn(dec.human_points, dec.object_points, inputs.aux))


def refine_output(x_final, probs, terms: LossTerms, step_losses, x_rounds, inputs: RefineInputs, body_model,
                  stats, weights: GuidanceWeights, settings: RefineSettings) -> RefineOutput:
  """The RefineOutput of rounds scanned from inputs.x_init: prepends L_P at x_init (with the first round's
  masks) to the per-round terms and decodes the final x. Shared by refine and the baselines."""
  init_terms, _ = loss_terms(inputs.x_init, masks_from_probs(tuple(p[0] for p in probs), settings), inputs,
                             body_model, stats, weights, settings)
  losses = jax.tree_util.tree_map(lambda i, r: jnp.concatenate([i[None], r], 0), init_terms, terms)
  dec = decode_x(x_final, body_model, inputs.objects.template, stats, settings.hand_mean)
  return RefineOutput(x_final, dec, tuple(probs), losses, step_losses, x_rounds)


def refine(params, inputs: RefineInputs, body_model: BodyModel, stats: BetasStats,
           weights: GuidanceWeights, *, denoiser, contact_fn: ContactFn,
           settings: RefineSettings, alphas_cumprod=None) -> RefineOutput:
  """Algorithm 1. Pure; wrap with ``make_refine_fn`` (or jax.jit) to compile.

  Args:
    params: the denoiser's variables.
    inputs: RefineInputs.
    body_model: the body model the guidance decodes on (normally the
      431-vertex ``subset_body_model``; the full model works too, slower).
    stats: betas normalisation bounds.
    weights: GuidanceWeights (ρ, λ_ho, λ_of, λ_pt, margin, grad_clip).
    denoiser: a Flax module with ``encode(c_img, c_geo)`` and ``denoise(x, t, cond)``.
    contact_fn: the contact predictor, see diffusion/contact.py.
    settings: RefineSettings.
    alphas_cumprod: ᾱ [T]; default the cosine schedule with T = 1000.
  """
  x_init = inputs.x_init
  if x_init.ndim != 2 or x_init.shape[-1] != X_DIM:
    raise ValueError(f"refine: RefineInputs.x_init has shape {x_init.shape}, expected [B, {X_DIM}].")
  a = ddim.clean_endpoint(cosine_schedule() if alphas_cumprod is None else alphas_cumprod, settings.clean_endpoint)
  weights = weights.as_arrays()
  terms_at = lambda x, m: loss_terms(x, m, inputs, body_model, stats, weights, settings)

  predict = lambda x: predict_contacts(x, inputs, body_model, stats, contact_fn, settings)

  if not settings.use_diffusion:
    probs = predict(x_init)
    init_terms, dec = terms_at(x_init, masks_from_probs(probs, settings))
    one = jax.tree_util.tree_map(lambda v: v[None], init_terms)
    return RefineOutput(x_init, dec, tuple(p[None] for p in probs), one,
                        jnp.zeros((0, 0, x_init.shape[0]), x_init.dtype), jnp.zeros((0,) + x_init.shape, x_init.dtype))

  cond = denoiser.apply(params, inputs.c_img, inputs.c_geo, method="encode")
  eps_fn = lambda x, t: denoiser.apply(params, x, t, cond, method="denoise")
  frozen = None if settings.cdir else predict(x_init)

  def round_fn(carry, _):
    x0, x_lat = carry
    probs = predict(x0) if settings.cdir else frozen
    masks = masks_from_probs(probs, settings)
    start = x0 if settings.carry == "x0" else x_lat
    x_tau = ddim.ddim_invert(eps_fn, start, a, settings.tau, settings.dt, settings.invert_iters)
    grad_fn = None
    if settings.use_guidance:
      loss_fn = lambda x: terms_at(x, masks)[0].total
      grad_fn = ddim.make_guidance_grad_fn(loss_fn, a, eps_fn, settings.through_denoiser)
    x_new, aux = ddim.ddim_sample(eps_fn, x_tau, a, settings.tau, settings.dt, grad_fn, rho=weights.rho,
                                  schedule=settings.schedule, grad_mode=settings.grad_mode,
                                  grad_clip=weights.grad_clip, return_aux=True)
    terms, _ = terms_at(x_new, masks)
    return (x_new, aux.x_latent), (probs, terms, aux.loss, x_new)

  (x_final, _), (probs, terms, step_losses, x_rounds) = jax.lax.scan(
      round_fn, (x_init, x_init), None, length=settings.num_rounds)
  return refine_output(x_final, probs, terms, step_losses, x_rounds, inputs, body_model, stats, weights, settings)


def make_refine_fn(denoiser, contact_fn: ContactFn, settings: RefineSettings, alphas_cumprod=None):
  """A jitted ``fn(params, inputs, body_model, stats, weights) -> RefineOutput``.

  Compiled once per input shapes/dtypes; new parameter, weight, body-model or
  input *values* reuse the compiled program.
  """

  def fn(params, inputs, body_model, stats, weights):
    return refine(params, inputs, body_model, stats, weights, denoiser=denoiser, contact_fn=contact_fn,
                  settings=settings, alphas_cumprod=alphas_cumprod)

  return jax.jit(fn)
