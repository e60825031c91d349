"""Training losses: stage 1 as CONTHO (notes §3.8), stage 2 the ε-prediction loss (paper §3.5).

Stage 1 (every weight 1 as released), each term a per-example value averaged
over the real examples of the batch (``valid``):
  param    L1 on the initial 52×6D pose, betas, object 6D and object translation;
  coord    L1 on the initial pelvis-centred 3D joints, plus L1 on their 2D
           projection (pixels / S) with the predicted vs the true camera;
  vert     L1 on the refined human guidance vertices and refined object points;
  contact  BCE of the three contact heads (human, object, object–floor);
  edge     |edge length − true edge length| on the refined human points.
Departures: the released edge loss runs on the faces of the 6890-vertex mesh;
our refiner outputs the 431 guidance vertices only, so edges are those of a
k-nearest-neighbour graph on the rest-pose subset (``knn_edges``). The
released hand-box and positional-joint terms have no counterpart (no hand
crops, regressor.py). The object–floor head is supervised (new in ScoreHOI).

Stage 2: t ~ U{0..T−1}, ε ~ N(0, I), x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε,
L_DM = E ‖ε − ε_φ(x_t, t, c_I, c_G)‖² (mean over the 331 dimensions).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy.spatial import cKDTree

from scorehoi_jax.body.model import BodyModel
from scorehoi_jax.geometry.rotations import matrix_to_rot6d
from scorehoi_jax.models.contact_former import project_to_pixels
from scorehoi_jax.models.hoi_net import pelvis_centred_body, pose_template


@dataclasses.dataclass(frozen=True)
class Stage1Weights:
  """Loss weights (released: all 1.0)."""
  param: float = 1.0
  coord: float = 1.0
  coord_2d: float = 1.0
  vert: float = 1.0
  contact: float = 1.0
  edge: float = 1.0
  # Contact BCE balancing. 'none' (released): plain BCE. 'batch': positives weighted by n_neg/n_pos of
  # each head over the batch (capped at contact_max_pos_weight). Contacts are rare (≈2 % of the
  # guidance vertices, ≈1 of 64 template points), so plain BCE learns "never in contact": the shipped
  # model's object mask averaged 0.25–0.5 of 64 points and CDIR had nothing to re-predict.
  contact_balance: str = "none"
  contact_max_pos_weight: float = 50.0


def knn_edges(points, k: int = 6) -> np.ndarray:
  """Undirected edges [E, 2] (i < j) of the k-nearest-neighbour graph of points [N, 3]."""
  points = np.asarray(points, np.float64)
  k = min(k, len(points) - 1)
  _, nn = cKDTree(points).query(points, k=k + 1)
  i = np.repeat(np.arange(len(points)), k)
  j = nn[:, 1:].reshape(-1)
  pairs = np.unique(np.sort(np.stack([i, j], 1), axis=1), axis=0)
  return pairs.astype(np.int32)


def masked_mean(per_example: jnp.ndarray, valid: jnp.ndarray) -> jnp.ndarray:
  """Mean over the real examples; 0 if there are none."""
  return jnp.sum(per_example * valid) / jnp.maximum(jnp.sum(valid), 1.0)


def _l1(a, b):
  """Per-example mean absolute difference over all but the batch axis."""
  return jnp.mean(jnp.abs(a - b).reshape(a.shape[0], -1), axis=-1)


def _bce(logits, labels):
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels), axis=-1)


def balanced_bce(logits, labels, valid, max_pos_weight: float):
  """Per-example BCE [B] with positives weighted by w = n_neg / n_pos over the real examples of the
  batch (no gradient through w; capped), normalised so a batch of balanced weights averages like BCE:
  each example's value is Σ_i (w y_i ℓ⁺_i + (1 − y_i) ℓ⁻_i) / Σ_i (w y_i + 1 − y_i)."""
  v = valid[:, None]
  pos = jax.lax.stop_gradient(jnp.sum(labels * v))
  neg = jax.lax.stop_gradient(jnp.sum((1.0 - labels) * v))
  w = jnp.clip(neg / jnp.maximum(pos, 1.0), 1.0, max_pos_weight)
  weights = w * labels + (1.0 - labels)
  ell = optax.sigmoid_binary_cross_entropy(logits, labels)
  return jnp.sum(weights * ell, axis=-1) / jnp.sum(weights, axis=-1)


def edge_lengths(points: jnp.ndarray, edges) -> jnp.ndarray:
  d = points[..., edges[:, 0], :] - points[..., edges[:, 1], :]
  return jnp.sqrt(jnp.sum(d * d, -1) + 1e-12)


def ground_truth_geometry(batch: dict, body: BodyModel) -> dict:
  """Pelvis-centred true guidance vertices, joints and posed object points."""
  human, joints = pelvis_centred_body(body, batch["pose"], batch["betas"])
  obj = pose_template(batch["object_template"], batch["obj_rot"], batch["obj_trans"])
  return {"human_points": human, "joints": joints, "object_points": obj}


def stage1_loss(out: dict, batch: dict, body: BodyModel, edges, weights: Stage1Weights = Stage1Weights()):
  """CONTHO's stage-1 objective.

  Args:
    out: ``HOINet`` outputs.
    batch: the example spec (pose [B,52,3,3], betas, obj_rot, obj_trans,
      cam_trans, focal, princpt, object_template, contact labels, valid).
    body: the guidance-vertex body model the network used.
    edges: [E, 2] int edges on its vertices (``knn_edges``).
    weights: term weights.

  Returns:
    (loss, metrics) — metrics hold every term (unweighted) and the loss.
  """
  valid = batch["valid"].astype(jnp.float32)
  gt = ground_truth_geometry(batch, body)
  size = batch["image"].shape[1]

  param = (_l1(out["pose6d"], matrix_to_rot6d(batch["pose"])) + _l1(out["betas"], batch["betas"])
           + _l1(out["obj_rot6d"], matrix_to_rot6d(batch["obj_rot"])) + _l1(out["obj_trans"], batch["obj_trans"]))
  coord = _l1(out["joints"], gt["joints"])
  uv_pred = project_to_pixels(out["joints"], out["cam_trans"], batch["focal"], batch["princpt"])
  uv_gt = project_to_pixels(gt["joints"], batch["cam_trans"], batch["focal"], batch["princpt"])
  coord_2d = _l1(uv_pred / size, uv_gt / size)
  vert = (_l1(out["refined_human_points"], gt["human_points"])
          + _l1(out["refined_object_points"], gt["object_points"]))
  if weights.contact_balance == "batch":
    bce = lambda lg, lb: balanced_bce(lg, lb, valid, weights.contact_max_pos_weight)
  elif weights.contact_balance == "none":
    bce = _bce
  else:
    raise ValueError(f"Stage1Weights.contact_balance={weights.contact_balance!r}; expected 'none' or 'batch'.")
  contact = (bce(out["logit_h"], batch["human_contact"]) + bce(out["logit_o"], batch["object_contact"])
             + bce(out["logit_of"], batch["object_floor_contact"]))
  edge = _l1(edge_lengths(out["refined_human_points"], edges), edge_lengths(gt["human_points"], edges))

  terms = {"param": param, "coord": coord, "coord_2d": coord_2d, "vert": vert, "contact": contact, "edge": edge}
  metrics = {k: masked_mean(v, valid) for k, v in terms.items()}
  loss = sum(getattr(weights, k) * metrics[k] for k in terms)
  metrics["loss"] = loss
  # Reported, not optimised: the vertex error of the initial and refined human (metres).
  metrics["mpvpe_initial"] = masked_mean(_mean_dist(out["human_points"], gt["human_points"]), valid)
  metrics["mpvpe_refined"] = masked_mean(_mean_dist(out["refined_human_points"], gt["human_points"]), valid)
  return loss, metrics


def _mean_dist(a, b):
  return jnp.mean(jnp.sqrt(jnp.sum((a - b) ** 2, -1) + 1e-12), -1)


def diffuse(x0: jnp.ndarray, t: jnp.ndarray, eps: jnp.ndarray, alphas_cumprod: jnp.ndarray) -> jnp.ndarray:
  """q(x_t | x_0): √ᾱ_t x_0 + √(1−ᾱ_t) ε for integer t [B]."""
  ab = alphas_cumprod[t][:, None]
  return jnp.sqrt(ab) * x0 + jnp.sqrt(1.0 - ab) * eps


def eps_loss(eps_fn: Callable, params, x0: jnp.ndarray, cond, rng: jax.Array, alphas_cumprod,
             weights: jnp.ndarray | None = None):
  """The denoiser's ε-prediction loss (paper §3.5, L_DM).

  Args:
    eps_fn: (params, x_t [B, D], t int [B], cond) -> ε̂ [B, D].
    params: denoiser parameters (differentiated).
    x0: [B, D] clean vectors (xpack layout).
    cond: conditions passed to eps_fn untouched.
    rng: key for t and ε.
    alphas_cumprod: ᾱ [T] (diffusion.schedule.cosine_schedule).
    weights: optional [B] example weights (batch padding = 0).

  Returns:
    (loss, metrics) with metrics {eps_mse, loss}.
  """
  alphas_cumprod = jnp.asarray(alphas_cumprod)
  k_t, k_e = jax.random.split(rng)
  b = x0.shape[0]
  t = jax.random.randint(k_t, (b,), 0, alphas_cumprod.shape[0])
  eps = jax.random.normal(k_e, x0.shape, x0.dtype)
  x_t = diffuse(x0, t, eps, alphas_cumprod)
  per = jnp.mean((eps_fn(params, x_t, t, cond) - eps) ** 2, axis=-1)
  w = jnp.ones((b,), jnp.float32) if weights is None else weights.astype(jnp.float32)
  loss = masked_mean(per, w)
  return loss, {"eps_mse": loss, "loss": loss}
