"""Pure train steps for both stages: ``train_step(state, batch, rng) -> (state, metrics)``.

Stage 1 (paper §4.1): backbone, regressor heads, ContactFormer and CRFormer
trained jointly with CONTHO's losses; the affordance-aware point encoder is
frozen (its variables ride in ``state.frozen`` and get no gradient).
Stage 2: the denoiser ε_φ trained with L_DM on conditions from the frozen
stage-1 backbone (c_I) and the frozen point encoder (c_G), with an EMA of its
weights for sampling.

The steps are plain functions of pytrees, so the caller jits them with
explicit shardings over a ('data',) mesh (train/sharding.py, train/loop.py):
state replicated, batch split along its leading axis. BatchNorm statistics
and every loss are means over the *global* batch (the compiler inserts the
cross-device reductions), so N devices compute what one device computes on
the same global batch — tested on fake CPU devices.

Static pieces (modules, optimiser, body model, loss weights) are held by a
``Stage1Setup`` / ``Stage2Setup`` and closed over; body arrays are small
(431 vertices) and become compile-time constants.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from scorehoi_jax.body.model import BodyModel
from scorehoi_jax.diffusion.xpack import BetasStats, default_betas_stats, pack_x_from_matrices
from scorehoi_jax.models.denoiser import Denoiser, image_condition
from scorehoi_jax.models.hoi_net import HOINet
from scorehoi_jax.models.point_encoder import PointEncoder
from scorehoi_jax.train import losses


@flax.struct.dataclass
class Stage1State:
  step: jnp.ndarray
  params: Any  # HOINet parameters (optimised).
  batch_stats: Any  # HOINet BatchNorm statistics.
  opt_state: Any
  frozen: Any  # Point-encoder variables (not optimised).


@flax.struct.dataclass
class Stage2State:
  step: jnp.ndarray
  params: Any  # Denoiser parameters (optimised).
  ema_params: Any  # Exponential moving average of params, used for sampling.
  opt_state: Any
  frozen: Any  # {"net": stage-1 HOINet variables, "point_encoder": its variables}.


def adam(learning_rate: float = 1e-4, b1: float = 0.5, b2: float = 0.999, eps: float = 1e-8, decay_steps=(),
         decay: float = 0.1, grad_clip: float | None = None) -> optax.GradientTransformation:
  """Adam as released (β1 = 0.5 in CONTHO), ×``decay`` at each of ``decay_steps`` (paper: ÷10 after 30 epochs).

  eps: Adam's ε. Parameters whose true gradient is 0 (e.g. a BatchNorm bias
  behind a dead ReLU channel) get rounding noise as gradient, which ε = 1e-8
  turns into full-size steps; a larger ε makes runs reproducible across
  device counts (the tests use 1e-4).
  """
  lr = optax.piecewise_constant_schedule(learning_rate, {int(s): decay for s in decay_steps})
  parts = [optax.clip_by_global_norm(grad_clip)] if grad_clip else []
  return optax.chain(*parts, optax.adam(lr, b1=b1, b2=b2, eps=eps))


def _norm(tree) -> jnp.ndarray:
  return optax.tree.norm(tree)


def geometry_features(encoder: PointEncoder, variables, template: jnp.ndarray) -> dict:
  """Frozen point-encoder features of the template points: {"global", "tokens"} (no gradient)."""
  out = encoder.apply(variables, template)
  return jax.lax.stop_gradient({"global": out["global"], "tokens": out["tokens"]})


# ---------------------------------------------------------------------------------------------
# Stage 1.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Stage1Setup:
  """Everything static about a stage-1 run."""
  net: HOINet
  point_encoder: PointEncoder
  tx: optax.GradientTransformation
  body: BodyModel  # Guidance-vertex model (body.subset_body_model).
  edges: Any  # [E, 2] int numpy edges on its vertices (losses.knn_edges).
  weights: losses.Stage1Weights = losses.Stage1Weights()

  def forward(self, params, batch_stats, frozen, batch, train: bool):
    """HOINet outputs (and new BatchNorm statistics when train)."""
    geo = geometry_features(self.point_encoder, frozen, batch["object_template"])
    args = (batch["image"], batch["object_template"], batch["focal"], batch["princpt"], geo, self.body)
    variables = {"params": params, "batch_stats": batch_stats}
    if train:
      return self.net.apply(variables, *args, train=True, mutable=["batch_stats"])
    return self.net.apply(variables, *args, train=False), {"batch_stats": batch_stats}


def _arrays(batch: dict) -> dict:
  """The batch's numeric arrays (what a jitted init may take as arguments; names and the like stay out)."""
  return {k: v for k, v in batch.items() if getattr(v, "dtype", np.dtype(object)).kind in "biuf"}


def stage1_init(setup: Stage1Setup, rng: jax.Array, batch: dict, encoder_variables=None) -> Stage1State:
  """Initial state from an example batch (shapes only matter).

  encoder_variables: the pre-trained point encoder; if None a randomly
  initialised one is used (tests and smoke runs; say so in results).
  Jitted: an eager Flax init compiles every operation on its own (hundreds of compiles, ~30 s on a CPU).
  """
  def init(rng, batch, encoder_variables):
    k_net, k_enc = jax.random.split(rng)
    if encoder_variables is None:
      encoder_variables = setup.point_encoder.init(k_enc, batch["object_template"])
    geo = geometry_features(setup.point_encoder, encoder_variables, batch["object_template"])
    variables = setup.net.init(k_net, batch["image"], batch["object_template"], batch["focal"], batch["princpt"],
                               geo, setup.body, train=False)
    params = variables["params"]
    return Stage1State(step=jnp.zeros((), jnp.int32), params=params, batch_stats=variables.get("batch_stats", {}),
                       opt_state=setup.tx.init(params), frozen=encoder_variables)

  return jax.jit(init)(rng, _arrays(batch), encoder_variables)


def make_stage1_step(setup: Stage1Setup):
  """The pure stage-1 ``train_step(state, batch, rng) -> (state, metrics)``.

  rng is unused (no dropout; augmentation lives in the input pipeline) but
  kept so both stages share the loop's signature.
  """

  def train_step(state: Stage1State, batch: dict, rng: jax.Array):
    del rng

    def loss_fn(params):
      out, new_vars = setup.forward(params, state.batch_stats, state.frozen, batch, train=True)
      loss, metrics = losses.stage1_loss(out, batch, setup.body, setup.edges, setup.weights)
      return loss, (metrics, new_vars["batch_stats"])

    grads, (metrics, batch_stats) = jax.grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = setup.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics, grad_norm=_norm(grads), param_norm=_norm(params))
    return state.replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state), metrics

  return train_step


def make_stage1_eval(setup: Stage1Setup):
  """``eval_step(state, batch) -> (outputs, metrics)`` with running BatchNorm statistics."""

  def eval_step(state: Stage1State, batch: dict):
    out, _ = setup.forward(state.params, state.batch_stats, state.frozen, batch, train=False)
    _, metrics = losses.stage1_loss(out, batch, setup.body, setup.edges, setup.weights)
    return out, metrics

  return eval_step


# ---------------------------------------------------------------------------------------------
# Stage 2.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Stage2Setup:
  """Everything static about a stage-2 run."""
  denoiser: Denoiser
  net: HOINet  # Frozen stage-1 network (only its backbone runs).
  point_encoder: PointEncoder
  tx: optax.GradientTransformation
  alphas_cumprod: Any  # ᾱ [T] numpy (diffusion.schedule.cosine_schedule()).
  betas_stats: BetasStats = dataclasses.field(default_factory=default_betas_stats)
  ema_decay: float = 0.999
  image_cond: str = "pooled"  # 'pooled': c_I = GAP(F) (paper §3.5) | 'map': the h·w map tokens.

  def conditions(self, frozen, batch) -> dict:
    """c_I and c_G from the frozen networks (no gradient)."""
    geo = geometry_features(self.point_encoder, frozen["point_encoder"], batch["object_template"])
    fmap = self.net.apply(frozen["net"], batch["image"], geo["global"], False, method=HOINet.features)
    c_img = image_condition(fmap, self.image_cond)
    return jax.lax.stop_gradient({"image": c_img, "geometry": geo["tokens"]})

  def x0(self, batch) -> jnp.ndarray:
    """The clean optimisation vector of the true parameters (xpack layout)."""
    return pack_x_from_matrices(batch["pose"], batch["obj_rot"], batch["obj_trans"], batch["betas"],
                                self.betas_stats)

  def eps_fn(self, params, x_t, t, cond):
    return self.denoiser.apply({"params": params}, x_t, t, cond["image"], cond["geometry"])


def stage2_init(setup: Stage2Setup, rng: jax.Array, batch: dict, stage1_variables, encoder_variables) -> Stage2State:
  """Initial stage-2 state. stage1_variables: {"params", "batch_stats"} of the trained HOINet. Jitted (stage1_init)."""
  def init(rng, batch, frozen):
    cond = setup.conditions(frozen, batch)
    x0 = setup.x0(batch)
    t = jnp.zeros((x0.shape[0],), jnp.int32)
    params = setup.denoiser.init(rng, x0, t, cond["image"], cond["geometry"])["params"]
    return params, setup.tx.init(params)

  frozen = {"net": stage1_variables, "point_encoder": encoder_variables}
  params, opt_state = jax.jit(init)(rng, _arrays(batch), frozen)
  # The EMA starts equal to the params but must not share their buffers: the
  # loop donates the state, and XLA refuses to donate one buffer twice.
  ema = jax.tree.map(jnp.copy, params)
  return Stage2State(step=jnp.zeros((), jnp.int32), params=params, ema_params=ema, opt_state=opt_state,
                     frozen=frozen)


def make_stage2_step(setup: Stage2Setup):
  """The pure stage-2 ``train_step(state, batch, rng) -> (state, metrics)``; rng draws t and ε."""

  def train_step(state: Stage2State, batch: dict, rng: jax.Array):
    cond = setup.conditions(state.frozen, batch)
    x0 = setup.x0(batch)
    valid = batch["valid"].astype(jnp.float32)

    def loss_fn(params):
      return losses.eps_loss(setup.eps_fn, params, x0, cond, rng, setup.alphas_cumprod, valid)

    grads, metrics = jax.grad(lambda p: loss_fn(p), has_aux=True)(state.params)
    updates, opt_state = setup.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    d = setup.ema_decay
    ema = jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, state.ema_params, params)
    metrics = dict(metrics, grad_norm=_norm(grads), param_norm=_norm(params))
    return state.replace(step=state.step + 1, params=params, ema_params=ema, opt_state=opt_state), metrics

  return train_step
