"""Factories: from an ml_collections config (scorehoi_jax/configs/refine_*.py) to a compiled refiner.

The config is read here and only here; modules and pure functions receive
typed values (RefineSettings, GuidanceWeights, Denoiser fields), never the
config itself.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax.numpy as jnp

from scorehoi_jax.body.downsample import guidance_vertex_indices, subset_body_model
from scorehoi_jax.body.io import load_body_model
from scorehoi_jax.body.model import BodyModel
from scorehoi_jax.diffusion.contact import make_proximity_contact_fn
from scorehoi_jax.diffusion.losses import GuidanceWeights
from scorehoi_jax.diffusion.refine import CONTACT_HEADS, RefineSettings, make_refine_fn
from scorehoi_jax.diffusion.schedule import cosine_schedule
from scorehoi_jax.diffusion.xpack import BetasStats
from scorehoi_jax.models.denoiser import Denoiser, denoiser_from_config


def mask_threshold_from_config(value, model_config=None) -> float | tuple:
  """refine.mask_threshold: a number, a [human, object, floor] list, or "model" (the thresholds calibrated
  for the model, evaluation/calibration.py; 0.5 for a model without them)."""
  if isinstance(value, str):
    if value != "model":
      raise ValueError(f"refine.mask_threshold={value!r}; expected a number, a [human, object, floor] list "
                       "or 'model'.")
    t = model_config.get("contact_thresholds") if model_config is not None else None
    return tuple(float(t[h]) for h in CONTACT_HEADS) if t else 0.5
  if isinstance(value, (list, tuple)):
    return tuple(float(v) for v in value)
  return float(value)


def settings_from_config(cfg, model_config=None) -> RefineSettings:
  """cfg.refine -> RefineSettings (the static part); model_config resolves mask_threshold='model'."""
  r = cfg.refine
  pt_mode = r.pt_mode if r.get("use_pt", True) else "off"
  return RefineSettings(
      num_rounds=int(r.num_rounds), tau=int(r.tau), dt=int(r.dt), use_diffusion=bool(r.use_diffusion),
      use_guidance=bool(r.use_guidance), use_ho=bool(r.use_ho), use_of=bool(r.use_of), pt_mode=pt_mode,
      cdir=bool(r.cdir), carry=r.carry, through_denoiser=bool(r.through_denoiser),
      schedule=r.schedule, grad_mode=r.grad_mode, mask_mode=r.mask_mode,
      mask_threshold=mask_threshold_from_config(r.mask_threshold, model_config), floor=r.floor, up=tuple(r.up),
      hand_mean=bool(r.hand_mean),
      clean_endpoint=bool(r.get("clean_endpoint", False)), invert_iters=int(r.get("invert_iters", 0)),
      use_mask=bool(r.get("use_mask", False)), fit_steps=int(r.get("fit_steps", 0)),
      pose_fit_steps=int(r.get("pose_fit_steps", 0)), pose_fit_prior=float(r.get("pose_fit_prior", 1.0)),
      pose_fit_gmm=float(r.get("pose_fit_gmm", 0.0)),
      pose_hypotheses=bool(r.get("pose_hypotheses", False)),
      # Configs written before root_turns said pose_hypotheses_turned (True: 180°, two turns).
      root_turns=int(r.get("root_turns", 2 if r.get("pose_hypotheses_turned", False) else 1)),
      object_turns=int(r.get("object_turns", 1)),
      start_physical=float(r.get("start_physical", 0.0)),
      fit_finalists=int(r.get("fit_finalists", 1)),
      final_fit_steps=int(r.get("final_fit_steps", 0)),
      final_pose_fit_steps=int(r.get("final_pose_fit_steps", 0)),
      final_pose_fit_prior=float(r.get("final_pose_fit_prior", 1.0)),
      term_schedules=tuple(sorted((str(k), str(v)) for k, v in dict(r.get("term_schedules", {})).items())),
      grad_steps=int(r.get("grad_steps", 1)), stochastic=bool(r.get("stochastic", False)),
      trace=bool(r.get("trace", False)), trace_x0=bool(r.get("trace_x0", False)))


def weights_from_config(cfg) -> GuidanceWeights:
  """cfg.guidance -> GuidanceWeights (the traced part): every GuidanceWeights field the config sets."""
  g = cfg.guidance
  names = {f.name for f in dataclasses.fields(GuidanceWeights)}
  unknown = sorted(set(g.keys()) - names)
  if unknown:
    raise ValueError(f"config.guidance: unknown field(s) {unknown}; GuidanceWeights has {sorted(names)}.")
  vals = {k: (dict(v) if hasattr(v, "items") else v) for k, v in g.items()}
  vals = {k: (jnp.asarray(v) if isinstance(v, (list, tuple)) else v) for k, v in vals.items()}
  return GuidanceWeights(**vals).as_arrays()


def betas_stats_from_config(cfg) -> BetasStats:
  n = int(cfg.betas_stats.num)
  lo = jnp.broadcast_to(jnp.asarray(cfg.betas_stats.min, jnp.float32), (n,))
  hi = jnp.broadcast_to(jnp.asarray(cfg.betas_stats.max, jnp.float32), (n,))
  if not bool(jnp.all(hi > lo)):
    raise ValueError("config.betas_stats: every max must exceed the corresponding min.")
  return BetasStats(lo, hi)


def contact_fn_from_config(cfg):
  """The geometric stand-in (the learned ContactFormer is wired in by the caller)."""
  c = cfg.contact
  if c.predictor != "proximity":
    raise ValueError(f"config.contact.predictor={c.predictor!r}: only 'proximity' is built here; pass a "
                     "learned predictor to build_refiner(contact_fn=...).")
  return make_proximity_contact_fn(margin=c.margin, scale=c.scale, floor_margin=c.floor_margin,
                                   up=tuple(cfg.refine.up), use_plane=cfg.refine.floor == "plane")


def guidance_body_model(body_model: BodyModel, num: int) -> BodyModel:
  """The num-vertex subset model the guidance decodes on (exact vertices, fewer rows)."""
  return subset_body_model(body_model, guidance_vertex_indices(body_model, num))


class Refiner(NamedTuple):
  """Everything a caller needs to run ``fn(params, inputs, body, stats, weights)``."""
  fn: object  # The jitted refine.
  denoiser: Denoiser
  contact_fn: object
  settings: RefineSettings
  weights: GuidanceWeights
  stats: BetasStats
  body: BodyModel  # The guidance (subset) body model.
  full_body: BodyModel


def build_refiner(cfg, denoiser=None, contact_fn=None, body_model: BodyModel | None = None) -> Refiner:
  """Config -> compiled refiner plus its typed inputs.

  Args:
    cfg: a config from scorehoi_jax/configs/refine_paper.py or refine_compat.py.
    denoiser: a Flax module with encode/denoise; default built from cfg.denoiser.
    contact_fn: the contact predictor; default the proximity stand-in.
    body_model: the full body model; default ``load_body_model(cfg.body.path)``.
  """
  denoiser = denoiser if denoiser is not None else denoiser_from_config(cfg.denoiser)
  contact_fn = contact_fn if contact_fn is not None else contact_fn_from_config(cfg)
  full = body_model if body_model is not None else load_body_model(cfg.body.path)
  settings = settings_from_config(cfg)
  alphas = cosine_schedule(int(cfg.diffusion.T), float(cfg.diffusion.s))
  fn = make_refine_fn(denoiser, contact_fn, settings, alphas)
  return Refiner(fn=fn, denoiser=denoiser, contact_fn=contact_fn, settings=settings, weights=weights_from_config(cfg),
                 stats=betas_stats_from_config(cfg), body=guidance_body_model(full, int(cfg.body.num_guidance_vertices)),
                 full_body=full)
