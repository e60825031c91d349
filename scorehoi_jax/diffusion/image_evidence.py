"""Image evidence (beyond the paper, design.md §11): the masks the user gives guide the refinement too.

The projected human and object must lie inside the masks and fill them:

  L_mask = E_i[(D(π(V_h,i)) / S)²] + E_j[(D(π(P_o,j)) / S)²]                 (inside)
         + E_{q ∈ M_h}[min_i |q − π(V_h,i)|² / S²] + E_{q ∈ M_o}[min_j |q − π(P_o,j)|² / S²]   (coverage)

π projects pelvis-centred points through the crop's virtual camera with the
pelvis at cam_trans (data/pipeline.py); D is the distance transform (pixels)
of the complement of the *union* of both masks, read bilinearly and
differentiably, less half a pixel and clipped at 0 (the region's edge lies half
a pixel beyond the last mask pixel's centre: outside_distance), so a body part
hidden behind the object (inside the object's mask) is not pulled out of it;
M_h, M_o are fixed pixel samples of each mask; S is the crop size, so the terms are in crop-widths². One more term of L_P
with a traced weight λ_mask; off in the refine_paper config (the paper has no
such term), on for ``scorehoi reconstruct`` (the refine_reconstruct config).

x does not hold the camera translation, so guidance alone cannot move the
person in the image. ``fit_placement`` therefore first moves the pelvis
(cam_trans) and the object (its translation in x) to the masks by a few Adam
steps on L_mask with the pose fixed; the guided refinement then works from
there.

``reconstruct.fit_to_masks`` then fits all of x to the silhouettes (fit_pose).
Its long stage projects a denser body (reconstruct.FIT_VERTICES vertices) and
a denser object outline (ObjectGeometry.surface, 512 points) and reads
NUM_MASK_SAMPLES samples per mask. With the 431 guidance vertices, which lie
2–3 crop pixels apart, the two terms cannot outline a limb; with the 64
template points, not an object. After the guided sampling, fit_placement with
move_object=False puts the refined pair back on the masks
(RefineSettings.final_fit_steps).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from scorehoi_jax.geometry.image_lookup import bilinear_lookup
from scorehoi_jax.models.contact_former import project_to_pixels

# Pixel samples per mask for the coverage term (the silhouette fit's long stage reads all of them, its
# short fits from every start the first reconstruct.HYPOTHESIS_SAMPLES).
NUM_MASK_SAMPLES = 512
POSE_HYPOTHESES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets",
                               "pose_hypotheses.npz")


def load_pose_hypotheses(path: str = POSE_HYPOTHESES) -> np.ndarray:
  """[K, 21, 6] body poses (joints 1–21, 6D), one per pose class of the training data
  (experiments/pose_hypotheses.py): the extra starts of the silhouette fit (RefineSettings.pose_hypotheses)."""
  with np.load(path) as z:
    return np.asarray(z["body6d"], np.float32)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ImageEvidence:
  """Per-batch mask evidence in crop pixels (B = batch, S = crop size, M = samples per mask)."""
  distance: Any  # [B, S, S] distance (pixels) to the union of the masks; 0 inside.
  samples_h: Any  # [B, M, 2] pixels of the human mask (x, y).
  weight_h: Any  # [B, M] 1 for real samples, 0 for padding (an empty mask has none).
  samples_o: Any  # [B, M, 2]
  weight_o: Any  # [B, M]
  cam_trans: Any  # [B, 3] pelvis in the virtual camera.
  focal: Any  # [B, 2]
  princpt: Any  # [B, 2]


def mask_evidence_arrays(masks: np.ndarray, num_samples: int = NUM_MASK_SAMPLES, seed: int = 0) -> dict:
  """Host side: distance transform and pixel samples of crop masks [B, S, S, 2] (human, object; > 0.5 inside)."""
  from scipy import ndimage
  masks = np.asarray(masks) > 0.5
  b = masks.shape[0]
  dist = np.stack([ndimage.distance_transform_edt(~(m[..., 0] | m[..., 1])) if m.any() else
                   np.full(m.shape[:2], float(m.shape[0])) for m in masks]).astype(np.float32)
  out = {"distance": dist}
  for c, key in ((0, "h"), (1, "o")):
    samples = np.zeros((b, num_samples, 2), np.float32)
    weight = np.zeros((b, num_samples), np.float32)
    for i in range(b):
      ys, xs = np.nonzero(masks[i, ..., c])
      if len(xs):
        # A fixed, spread-out subset: every k-th pixel of a seeded permutation (all of them if few).
        pick = np.random.default_rng(seed).permutation(len(xs))[:num_samples]
        samples[i, :len(pick)] = np.stack([xs[pick], ys[pick]], -1)
        weight[i, :len(pick)] = 1.0
    out["samples_" + key], out["weight_" + key] = samples, weight
  return out


def _coverage(samples, weight, uv, size):
  # The nearest projected point of each sample is found without gradient, then only its distance is
  # differentiated (the same gradient almost everywhere as min over all pairs): the backward pass then
  # scatters to M points instead of building an [M, N] selection mask, which made a 2,000-point fit
  # 2.6× slower.
  # The pairs' squared distances as |s|² + |u|² − 2 s·u: one matmul instead of an [M, N, 2] difference
  # (about half the time on this CPU; float32 rounding, ~1e-3 px², only matters for near-ties).
  u = jax.lax.stop_gradient(uv)
  near = jnp.argmin(jnp.sum(u ** 2, -1)[None, :] - 2.0 * samples @ u.T, axis=1)  # |s|² is the same in a row.
  d2 = jnp.sum((samples - uv[near]) ** 2, -1)
  return jnp.sum(weight * d2) / jnp.maximum(jnp.sum(weight), 1.0) / size ** 2


# A pixel belongs to a mask when its centre is covered, so the region's edge lies half a pixel beyond the last
# mask pixel's centre. The distance transform is measured between pixel centres: read as it is, it charges a
# point on the true edge 0.5 px and the fit shrinks every silhouette by about half a crop pixel all round.
# (A rasterised disc's loss is lowest 0.275 px inside its edge: tests/test_image_evidence.py.) On the first 40
# capture test frames, reconstruct's human silhouettes covered 96.4 % of the masks' area; with the edge, 99.0 %.
MASK_EDGE = 0.5


def outside_distance(distance, uv):
  """How far (pixels) the points uv [N, 2] lie outside the masks' region: the distance transform read
  bilinearly at uv, less the half pixel from the last mask pixel's centre to the region's edge (MASK_EDGE)."""
  return jnp.maximum(bilinear_lookup(distance, uv) - MASK_EDGE, 0.0)


def mask_loss(human, obj, distance, samples_h, weight_h, samples_o, weight_o, cam_trans, focal, princpt):
  """L_mask for one sample: human [Nh, 3] and object [K, 3] points pelvis-centred (module docstring)."""
  size = distance.shape[0]
  uv_h = project_to_pixels(human[None], cam_trans[None], focal[None], princpt[None])[0]
  uv_o = project_to_pixels(obj[None], cam_trans[None], focal[None], princpt[None])[0]
  inside = (jnp.mean((outside_distance(distance, uv_h) / size) ** 2)
            + jnp.mean((outside_distance(distance, uv_o) / size) ** 2))
  return inside + _coverage(samples_h, weight_h, uv_h, size) + _coverage(samples_o, weight_o, uv_o, size)


def batched_mask_loss(human, obj, ev: ImageEvidence, cam_trans=None):
  """L_mask [B] for a batch; cam_trans overrides ev.cam_trans (fit_placement differentiates it)."""
  cam = ev.cam_trans if cam_trans is None else cam_trans
  return jax.vmap(mask_loss)(human, obj, ev.distance, ev.samples_h, ev.weight_h, ev.samples_o, ev.weight_o, cam,
                             ev.focal, ev.princpt)


def fit_placement(human, obj, ev: ImageEvidence, steps: int, learning_rate: float = 0.005,
                  move_object: bool = True):
  """(cam_trans [B, 3], object offset [B, 3]) that bring the projections into the masks, pose fixed.

  human [B, Nh, 3], obj [B, K, 3] pelvis-centred. Adam on L_mask (per sample:
  the batch sum has independent terms) over the pelvis position and a common
  offset of the object points; ``steps`` is static. move_object=False: the
  pelvis position only (the offset stays zero), so the human–object pair moves
  as one and nothing pelvis-relative changes.
  """
  def loss(p):
    offset = p["obj"][:, None, :] if move_object else 0.0
    return jnp.sum(batched_mask_loss(human, obj + offset, ev, p["cam"]))

  start = {"cam": ev.cam_trans} | ({"obj": jnp.zeros_like(ev.cam_trans)} if move_object else {})
  p = _adam(loss, start, steps, learning_rate)
  return p["cam"], p.get("obj", jnp.zeros_like(ev.cam_trans))


def _adam(loss, params, steps: int, learning_rate: float):
  """params after ``steps`` Adam steps on loss(params) (one lax.scan: one compiled loop)."""
  tx = optax.adam(learning_rate)

  def step(carry, _):
    p, s = carry
    u, s = tx.update(jax.grad(loss)(p), s, p)
    return (optax.apply_updates(p, u), s), None

  (p, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
  return p


def fit_pose(x, decode, ev: ImageEvidence, steps: int, prior: float, learning_rate: float = 0.01, extra=None):
  """(x [B, 331], cam_trans [B, 3]) fitted to the masks: an SMPLify-style stage on silhouettes.

  Adam on L_mask + prior·‖x − x_start‖² (+ extra(x) [B]) over all of x (body and hand rotations, betas,
  the object's rotation and translation) and the pelvis position, from the placement fit's result. The
  prior keeps the pose near the network's (a silhouette alone does not fix a pose); the guided refinement
  that follows pulls the fit back toward the learned pose distribution. decode(x) -> (human [B, Nh, 3],
  object [B, K, 3]) pelvis-centred; ``steps`` is static. extra: more terms, e.g. the physical L_P of the
  polish after the sampling (reconstruct.polish).
  """
  def loss(p):
    human, obj = decode(p["x"])
    fit = batched_mask_loss(human, obj, ev, p["cam"])
    more = 0.0 if extra is None else extra(p["x"])
    return jnp.sum(fit + prior * jnp.sum((p["x"] - x) ** 2, -1) + more)

  p = _adam(loss, {"x": x, "cam": ev.cam_trans}, steps, learning_rate)
  return p["x"], p["cam"]
