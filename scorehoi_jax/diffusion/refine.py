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

Schedules (research surface; structure static, values traced; defaults change nothing):
  ρ per round            weights.rho_rounds [N] multiplies ρ in round n;
  λ(t) per term          settings.term_schedules (('pt', 'linear'), …): λ_k(t) = λ_k^end + (λ_k − λ_k^end) s(t),
                         s = ddim.guidance_weight (1 at the noisiest step, → 0 at t = 0), λ_k^end = weights.lambda_end[k];
  guidance window        weights.t_lo ≤ t ≤ weights.t_hi (other steps unguided);
  K gradient steps per t settings.grad_steps;
  DDIM η > 0             settings.stochastic with weights.eta and weights.seed;
  per-part step scale    weights.scale_{body,hands,obj_rot,obj_trans,betas} multiply the guidance gradient.

Traces (settings.trace, off by default): RefineOutput.trace holds, per round and sampling step, every
LossTerms field at the x̂0 the guidance saw, the norm of each term's ∇_{x̂0} per part of x (PARTS), the
sizes of the prior's and the guidance's updates, optionally (settings.trace_x0) the x̂0 trajectory, and
per round the number of mask entries on and flipped since the previous round.

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
from scorehoi_jax.diffusion.losses import (CAMERA_UP, SCHEDULE_FIELDS, GuidanceWeights, LossTerms,
                                           estimate_ground_plane, physical_loss)
from scorehoi_jax.diffusion.schedule import cosine_schedule
from scorehoi_jax.diffusion.xpack import BETAS, OBJ_ROT, OBJ_TRANS, POSE, X_DIM, BetasStats, Decoded, decode_x

# Parts of x for per-part step scales and gradient norms: pelvis + 21 body joints, the 30 hand joints, the
# object's rotation and translation, the betas.
PARTS = (("body", slice(0, 22 * 6)), ("hands", slice(22 * 6, POSE.stop)), ("obj_rot", OBJ_ROT),
         ("obj_trans", OBJ_TRANS), ("betas", BETAS))
PART_NAMES = tuple(n for n, _ in PARTS)
TERM_NAMES = tuple(f for f in LossTerms._fields if f != "total")
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
  # One threshold for every head, or (human, object, floor): models trained with the class-balanced
  # contact BCE store calibrated ones (evaluation/calibration.py; config value "model").
  mask_threshold: float | tuple = 0.5
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
  # Then pose_fit_steps Adam steps on L_mask + pose_fit_prior·‖x − x_start‖² over all of x and the pelvis
  # (image_evidence.fit_pose, an SMPLify-style silhouette fit) before the guided refinement.
  pose_fit_steps: int = 0
  pose_fit_prior: float = 1.0
  # ... + pose_fit_gmm·(−log p(body pose)) under the pose classes' Gaussian mixture (body/pose_prior.py,
  # assets/pose_prior.npz): a pull toward plausible poses rather than toward the start; the polish after
  # the sampling (final_pose_fit_steps) adds it too. 0: off.
  pose_fit_gmm: float = 0.0
  # The fits also start from each pose class's typical body pose (assets/pose_hypotheses.npz); each sample
  # keeps the start whose silhouette fits best (reconstruct.fit_to_masks).
  pose_hypotheses: bool = False
  # ... and each of those starts turned about the body's vertical axis by every multiple of 360°/root_turns
  # (2: also 180°, for a person whom the regressor faces the wrong way; 4: also ±90°, seen from the side):
  # root_turns times the starts.
  root_turns: int = 1
  # After the best body start is chosen, the object is tried turned by every multiple of 360°/object_turns
  # about its own vertical (template +y) axis, each fitted HYPOTHESIS_STEPS steps, the best silhouette kept:
  # a box or a chair seen from a turned side, which the regressor's rotation rarely finds by a local fit.
  object_turns: int = 1
  # The starts are judged by L_mask + start_physical·(λ_of L_of + λ_pt L_pt)/λ_mask (the guidance's own balance,
  # the floor masks predicted on the regressor's estimate; reconstruct.start_physics): two starts whose
  # silhouettes fit alike, a person seated on a chair and one standing with the chair floating at their hip,
  # are told apart by the physics. 0: by the silhouette alone.
  start_physical: float = 0.0
  # The fit_finalists best starts after the short fits (1: the best alone) each take HYPOTHESIS_STEPS more steps
  # on the long fit's dense points and all mask samples, and the best of them then goes on: the short fits'
  # ranking reads 128 mask pixels and the sparse body, and near-ties flip on it.
  fit_finalists: int = 1
  # After the guided sampling, final_fit_steps Adam steps move the pelvis position (cam_trans) alone onto the
  # masks, the refined x fixed: the sampling's changes of pose shift the silhouette, and the pair moves as one,
  # so every pelvis-relative or aligned 3D metric stays as it was (reconstruct.make_reconstruct_fn).
  final_fit_steps: int = 0
  # Before that, final_pose_fit_steps Adam steps polish all of x on L_mask + L_P/λ_mask (the last round's
  # contact masks) + final_pose_fit_prior·‖x − x̃0‖² (reconstruct.polish): the silhouette the sampling gave
  # back, with the physical terms kept in the loss so the fit does not undo them.
  final_pose_fit_steps: int = 0
  final_pose_fit_prior: float = 1.0
  # Schedules (module docstring): λ(t) shapes per term, K guidance corrections per step, DDIM η > 0.
  term_schedules: tuple = ()  # ((term, 'constant' | 'linear' | 'cosine'), ...), term in TERM_NAMES.
  grad_steps: int = 1
  stochastic: bool = False
  trace: bool = False  # RefineOutput.trace (per-step terms, per-part gradient norms, step sizes, mask flips).
  trace_x0: bool = False  # Also the x̂0 trajectory [R, S, B, 331] (needs trace).

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
    for item in self.term_schedules:
      if not (isinstance(item, tuple) and len(item) == 2 and item[0] in TERM_NAMES and item[1] in ddim.SCHEDULES):
        raise ValueError(f"RefineSettings.term_schedules: {item!r}; expected (term, shape) with term in "
                         f"{TERM_NAMES} and shape in {ddim.SCHEDULES}.")
    thr = self.mask_threshold if isinstance(self.mask_threshold, tuple) else (self.mask_threshold,)
    if len(thr) not in (1, 3) or not all(isinstance(t, float) and 0.0 <= t < 1.0 for t in thr):
      raise ValueError(f"RefineSettings.mask_threshold={self.mask_threshold!r}; expected a float in [0, 1) or "
                       "a (human, object, floor) tuple of them.")
    if self.root_turns < 1:
      raise ValueError(f"RefineSettings.root_turns must be >= 1, got {self.root_turns}.")
    if self.start_physical < 0:
      raise ValueError(f"RefineSettings.start_physical must be >= 0, got {self.start_physical}.")
    if self.fit_finalists < 1:
      raise ValueError(f"RefineSettings.fit_finalists must be >= 1, got {self.fit_finalists}.")
    if self.object_turns < 1:
      raise ValueError(f"RefineSettings.object_turns must be >= 1, got {self.object_turns}.")
    if self.fit_finalists > 1 and not self.pose_hypotheses:
      raise ValueError("RefineSettings.fit_finalists > 1 ranks the pose hypotheses again: it needs "
                       "pose_hypotheses=True.")
    if self.root_turns > 1 and not self.pose_hypotheses:
      raise ValueError("RefineSettings.root_turns > 1 turns the pose hypotheses: it needs pose_hypotheses=True.")
    if (self.fit_steps or self.pose_fit_steps or self.pose_hypotheses or self.final_fit_steps
        or self.final_pose_fit_steps or self.object_turns > 1) and not self.use_mask:
      raise ValueError("RefineSettings.fit_steps / pose_fit_steps / pose_hypotheses / object_turns / "
                       "final_fit_steps / final_pose_fit_steps need use_mask=True (they fit to the masks).")
    if self.grad_steps < 1:
      raise ValueError(f"RefineSettings.grad_steps must be >= 1, got {self.grad_steps}.")
    if self.grad_steps > 1 and self.through_denoiser:
      raise ValueError("RefineSettings.grad_steps > 1 needs through_denoiser=False (the gradient through the "
                       "denoiser is taken at x_t and would repeat unchanged).")
    if self.trace_x0 and not self.trace:
      raise ValueError("RefineSettings.trace_x0=True needs trace=True.")


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


class RefineTrace(NamedTuple):
  """Diagnostics of settings.trace (R rounds, S sampling steps, B batch, P = len(PARTS))."""
  timesteps: jnp.ndarray  # [S] t of each sampling step (noisiest first).
  terms: LossTerms  # Each [R, S, B]: every term at the x̂0 of each step (λ(t) in total), that round's masks.
  grad_norm: LossTerms  # Each [R, S, B, P]: ‖∇_{x̂0} term‖ over each part of x (before ρ, w(t), clipping).
  prior_step: jnp.ndarray  # [R, S, B] ‖x_{t'}^prior − x_t‖ (the unguided DDIM update).
  guidance_step: jnp.ndarray  # [R, S, B] ‖x_{t'} − x_{t'}^prior‖ (what guidance adds).
  mask_on: tuple  # (h [R, B], o [R, B], of [R, B]) mask entries on in each round.
  mask_flipped: tuple  # Same shapes: entries that changed since the previous round (0 in round 1).
  x0_hat: Any = None  # [R, S, B, 331] with settings.trace_x0.


class RefineOutput(NamedTuple):
  x0: jnp.ndarray  # [B, 331] refined x_0^N.
  decoded: Decoded  # x0 decoded on the (subset) body model passed in.
  contacts: tuple  # (p_h [R, B, Nh], p_o [R, B, K], p_of [R, B, K]) used in each round.
  losses: LossTerms  # Each [R + 1, B]: at x_init (row 0) and after each round, with that round's masks.
  step_losses: jnp.ndarray  # [R, S, B] guidance loss at x̂0 of every sampling step.
  x_rounds: jnp.ndarray  # [R, B, 331] x_0^n after each round n = 1 … N (x0 is the last).
  trace: Any = None  # RefineTrace with settings.trace.


def masks_from_probs(probs, settings: RefineSettings):
  if settings.mask_mode == "soft":
    return probs
  return tuple((p > t).astype(p.dtype) for p, t in zip(probs, head_thresholds(settings.mask_threshold)))


CONTACT_HEADS = ("human", "object", "floor")  # p_h, p_o, p_of: RefineOutput.contacts and the thresholds' order.


def head_thresholds(threshold) -> tuple[float, float, float]:
  """RefineSettings.mask_threshold as (human, object, floor)."""
  return tuple(threshold) if isinstance(threshold, tuple) else (threshold,) * 3


def physical_terms(x0, masks, inputs: RefineInputs, body_model, stats, weights: GuidanceWeights,
                   settings: RefineSettings) -> tuple[LossTerms, Decoded]:
  """Per-sample L_P [B] at x0 without the image evidence (L_ho, L_of, L_pt) and the decoded geometry."""
  dec = decode_x(x0, body_model, inputs.objects.template, stats, settings.hand_mean)
  b = x0.shape[0]
  weights = dataclasses.replace(weights, **{k: None for k in SCHEDULE_FIELDS})  # The loss reads none of these.
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
  return terms, dec


def loss_terms(x0, masks, inputs: RefineInputs, body_model, stats, weights: GuidanceWeights,
               settings: RefineSettings) -> tuple[LossTerms, Decoded]:
  """Per-sample L_P [B] at x0 (decoded on body_model) and the decoded geometry: physical_terms, plus
  λ_mask·L_mask with settings.use_mask."""
  terms, dec = physical_terms(x0, masks, inputs, body_model, stats, weights, settings)
  if settings.use_mask:
    if inputs.evidence is None:
      raise ValueError("refine: settings.use_mask=True but RefineInputs.evidence is None.")
    m = batched_mask_loss(dec.human_points, dec.object_points, inputs.evidence)
    lam = jnp.broadcast_to(jnp.asarray(weights.lambda_mask, jnp.float32), m.shape)
    terms = terms._replace(mask=m, total=terms.total + lam * m)
  return terms, dec


def predict_contacts(x, inputs: RefineInputs, body_model, stats, contact_fn: ContactFn,
                     settings: RefineSettings) -> tuple:
  """(p_h, p_o, p_of) of the contact predictor on x decoded (the masks' source each round)."""
  dec = decode_x(x, body_model, inputs.objects.template, stats, settings.hand_mean)
  return tuple(contact_fn(dec.human_points, dec.object_points, inputs.aux))


def weights_at(weights: GuidanceWeights, t, settings: RefineSettings) -> GuidanceWeights:
  """weights with λ_k(t) = λ_k^end + (λ_k − λ_k^end) s_k(t) for each (k, s_k) of settings.term_schedules.

  t: [B] int timesteps; s_k = ddim.guidance_weight(shape, t, top of the grid) is 1 at the noisiest step.
  """
  if not settings.term_schedules:
    return weights
  top = int(ddim.timesteps(settings.tau, settings.dt)[-1])
  repl = {}
  for term, shape in settings.term_schedules:
    lam = getattr(weights, f"lambda_{term}")
    end = jnp.asarray(weights.lambda_end.get(term, 0.0), jnp.float32)
    repl[f"lambda_{term}"] = end + (lam - end) * ddim.guidance_weight(shape, t, top)
  return dataclasses.replace(weights, **repl)


def part_scale(weights: GuidanceWeights) -> jnp.ndarray:
  """[331] (or [B, 331]) per-entry multipliers of the guidance gradient from weights.scale_<part>."""
  vals = jnp.broadcast_arrays(*[jnp.asarray(getattr(weights, f"scale_{n}"), jnp.float32) for n in PART_NAMES])
  return jnp.concatenate([jnp.repeat(v[..., None], sl.stop - sl.start, axis=-1) for v, (_, sl) in zip(vals, PARTS)],
                         axis=-1)


def part_norms(g) -> jnp.ndarray:
  """[..., P] norm of g [..., 331] over each part of x."""
  return jnp.stack([jnp.sqrt(jnp.sum(g[..., sl] ** 2, axis=-1)) for _, sl in PARTS], axis=-1)


def mask_stats(probs, settings: RefineSettings) -> tuple[tuple, tuple]:
  """((on_h, on_o, on_of), (flipped_h, ...)) each [R, B] from per-round probabilities [R, B, N]."""
  on, flipped = [], []
  for mask in masks_from_probs(tuple(probs), settings):  # Each head with its own threshold.
    m = mask > 0.5  # Soft masks: 'on' where M > 0.5.
    on.append(jnp.sum(m, axis=-1).astype(jnp.int32))
    flips = jnp.sum(m[1:] != m[:-1], axis=-1).astype(jnp.int32)
    flipped.append(jnp.concatenate([jnp.zeros_like(on[-1][:1]), flips], axis=0))
  return tuple(on), tuple(flipped)


def refine_output(x_final, probs, terms: LossTerms, step_losses, x_rounds, inputs: RefineInputs, body_model,
                  stats, weights: GuidanceWeights, settings: RefineSettings, trace=None) -> RefineOutput:
  """The RefineOutput of rounds scanned from inputs.x_init: prepends L_P at x_init (with the first round's
  masks) to the per-round terms and decodes the final x. Shared by refine and the baselines."""
  init_terms, _ = loss_terms(inputs.x_init, masks_from_probs(tuple(p[0] for p in probs), settings), inputs,
                             body_model, stats, weights, settings)
  losses = jax.tree_util.tree_map(lambda i, r: jnp.concatenate([i[None], r], 0), init_terms, terms)
  dec = decode_x(x_final, body_model, inputs.objects.template, stats, settings.hand_mean)
  return RefineOutput(x_final, dec, tuple(probs), losses, step_losses, x_rounds, trace)


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
  rho_rounds = weights.rho_rounds
  if rho_rounds.ndim > 1 or (rho_rounds.ndim == 1 and rho_rounds.shape[0] != settings.num_rounds):
    raise ValueError(f"refine: GuidanceWeights.rho_rounds has shape {rho_rounds.shape}; expected a scalar or "
                     f"[{settings.num_rounds}] (one ρ multiplier per round).")
  unknown = set(weights.lambda_end) - {k for k, _ in settings.term_schedules}
  if unknown:
    raise ValueError(f"refine: GuidanceWeights.lambda_end names {sorted(unknown)}, which have no entry in "
                     f"RefineSettings.term_schedules {settings.term_schedules}.")
  terms_at = lambda x, m, w=weights: loss_terms(x, m, inputs, body_model, stats, w, settings)

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

  scale = part_scale(weights)
  step_t = jnp.asarray(ddim.timesteps(settings.tau, settings.dt)[:0:-1])  # [S] t of each sampling step.

  def step_trace(x0_hat, masks):
    """(LossTerms [S, B], per-term per-part ∇_{x̂0} norms LossTerms [S, B, P]) along an x̂0 trajectory."""
    def one(args):
      xh, t = args
      f = lambda x: terms_at(x, masks, weights_at(weights, jnp.full(x.shape[:1], t), settings))[0]
      terms, vjp = jax.vjp(f, xh)
      k = len(terms)
      onehot = lambda i: type(terms)(*[jnp.ones_like(v) if j == i else jnp.zeros_like(v) for j, v in enumerate(terms)])
      return terms, type(terms)(*[part_norms(vjp(onehot(i))[0]) for i in range(k)])
    return jax.lax.map(one, (x0_hat, step_t))

  def round_fn(carry, xs):
    x0, x_lat = carry
    n, rho_n = xs
    probs = predict(x0) if settings.cdir else frozen
    masks = masks_from_probs(probs, settings)
    start = x0 if settings.carry == "x0" else x_lat
    x_tau = ddim.ddim_invert(eps_fn, start, a, settings.tau, settings.dt, settings.invert_iters)
    grad_fn = None
    if settings.use_guidance:
      loss_fn = lambda x, t: terms_at(x, masks, weights_at(weights, t, settings))[0].total
      grad_fn = ddim.make_guidance_grad_fn(loss_fn, a, eps_fn, settings.through_denoiser, with_t=True)
    noise = {}
    if settings.stochastic:
      noise = dict(eta=weights.eta, key=jax.random.fold_in(jax.random.PRNGKey(weights.seed), n))
    x_new, aux = ddim.ddim_sample(eps_fn, x_tau, a, settings.tau, settings.dt, grad_fn, rho=weights.rho * rho_n,
                                  schedule=settings.schedule, grad_mode=settings.grad_mode,
                                  grad_clip=weights.grad_clip, return_aux=True, window=(weights.t_lo, weights.t_hi),
                                  grad_scale=scale, grad_steps=settings.grad_steps, trace=settings.trace, **noise)
    terms, _ = terms_at(x_new, masks)
    tr = None
    if settings.trace:
      tr = step_trace(aux.x0_hat, masks) + (aux.prior_step, aux.guidance_step,
                                            aux.x0_hat if settings.trace_x0 else None)
    return (x_new, aux.x_latent), (probs, terms, aux.loss, x_new, tr)

  rounds = (jnp.arange(settings.num_rounds, dtype=jnp.int32), jnp.broadcast_to(rho_rounds, (settings.num_rounds,)))
  (x_final, _), (probs, terms, step_losses, x_rounds, tr) = jax.lax.scan(round_fn, (x_init, x_init), rounds)
  trace = None
  if settings.trace:
    on, flipped = mask_stats(probs, settings)
    trace = RefineTrace(timesteps=step_t, terms=tr[0], grad_norm=tr[1], prior_step=tr[2], guidance_step=tr[3],
                        mask_on=on, mask_flipped=flipped, x0_hat=tr[4])
  return refine_output(x_final, probs, terms, step_losses, x_rounds, inputs, body_model, stats, weights, settings,
                       trace)


def make_refine_fn(denoiser, contact_fn: ContactFn, settings: RefineSettings, alphas_cumprod=None):
  """A jitted ``fn(params, inputs, body_model, stats, weights) -> RefineOutput``.

  Compiled once per input shapes/dtypes; new parameter, weight, body-model or
  input *values* reuse the compiled program.
  """

  def fn(params, inputs, body_model, stats, weights):
    return refine(params, inputs, body_model, stats, weights, denoiser=denoiser, contact_fn=contact_fn,
                  settings=settings, alphas_cumprod=alphas_cumprod)

  return jax.jit(fn)
