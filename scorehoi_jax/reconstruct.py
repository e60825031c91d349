"""Image → regressor → ScoreHOI refinement → final mesh refiner: the one composition.

The CLI (`scorehoi reconstruct`, `scorehoi demo`) and the evaluator
(evaluation/evaluator.py) both call ``Reconstructor``; one jitted function
runs a whole batch:

  geo      ← point encoder(object template K)                 (frozen, stage 0)
  F, x_reg ← HOINet backbone + regressor(image, K, camera)     (stage 1)
  x^N      ← refine(x_reg; c_I = GAP(F), c_G = geo tokens)      (paper Alg. 1; contacts from the
                                                                 learned ContactFormer every round)
  final    ← ContactFormer + CRFormer on the decoded x^N        (paper §3.4 end; CONTHO's refiner)

Every stage is returned (the regressor's x, x after each round, the refined
x, the CRFormer's points), so the evaluator scores them all from one call.
The refinement step is pluggable (``refine_fn``): ablations are other
RefineSettings, the optimisation baseline is another function with the
same signature (evaluation/baselines.py).

Coordinates: body points are pelvis-centred in camera axes (OpenCV: x right,
y down, z forward); ``cam_trans`` (the regressor's) places the pelvis in the
camera frame, the object translation in x is relative to the pelvis.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from scorehoi_jax import body as body_lib
from scorehoi_jax import export_cache, jax_cache
from scorehoi_jax.body.pose_prior import PosePrior, load_pose_prior, pose_nll
from scorehoi_jax.diffusion.image_evidence import (ImageEvidence, batched_mask_loss, fit_placement, fit_pose,
                                                   load_pose_hypotheses, mask_evidence_arrays)
from scorehoi_jax.diffusion.losses import GuidanceWeights, estimate_ground_plane, plane_under_body
from scorehoi_jax.diffusion.refine import (RefineInputs, RefineOutput, RefineSettings, masks_from_probs,
                                           physical_terms, predict_contacts, refine)
from scorehoi_jax.config import load_config
from scorehoi_jax.diffusion.sampler import betas_stats_from_config, settings_from_config, weights_from_config
from scorehoi_jax.diffusion.schedule import cosine_schedule
from scorehoi_jax.diffusion.xpack import (OBJ_ROT, OBJ_TRANS, BetasStats, XParams, decode_params, decode_x,
                                          default_betas_stats, orthonormalize_x, pack_x)
from scorehoi_jax.model_store import TrainedModel, check_variables
from scorehoi_jax.models.build import Networks, build_networks
from scorehoi_jax.models.contact_former import make_contact_fn
from scorehoi_jax.models.denoiser import image_condition
from scorehoi_jax.objects.geometry import ObjectGeometry


class Stages(NamedTuple):
  """Everything one call produces (B = batch, R = rounds, Nh = guidance vertices, K = 64)."""
  x_regressor: jnp.ndarray  # [B, 331] the regressor's estimate ("w/o diffusion").
  x_rounds: jnp.ndarray  # [R, B, 331] after each refinement round (R = 0 without diffusion).
  x_refined: jnp.ndarray  # [B, 331] the refinement's result.
  cam_trans: jnp.ndarray  # [B, 3] pelvis position in the camera frame (regressor's; with use_mask, the fits').
  refine: RefineOutput  # Contacts used per round, loss terms, per-step losses.
  contacts: tuple  # (p_h [B, Nh], p_o [B, K], p_of [B, K]) predicted on the refined estimate.
  final_human_points: jnp.ndarray  # [B, Nh, 3] after the CRFormer (pelvis-centred).
  final_obj_rotmat: jnp.ndarray  # [B, 3, 3] after the CRFormer (Procrustes of its points).
  final_obj_trans: jnp.ndarray  # [B, 3] relative to the pelvis.


def default_refine_config() -> ml_collections.ConfigDict:
  """The paper's refinement settings, scorehoi_jax/configs/refine_paper.py."""
  return load_config("refine_paper")


def sparse_upsampling(full: body_lib.BodyModel, indices) -> tuple[np.ndarray, np.ndarray]:
  """(idx [V, k], w [V, k]) of body.upsample_matrix: subset values → every vertex, as a gather."""
  up = body_lib.upsample_matrix(full, indices)
  idx = np.argsort(-up, axis=1)[:, :3]
  w = np.take_along_axis(up, idx, 1)
  return idx.astype(np.int32), (w / w.sum(1, keepdims=True)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Bodies:
  full: body_lib.BodyModel
  guidance: body_lib.BodyModel  # The 431-vertex subset the networks and the guidance use.
  indices: np.ndarray
  up_idx: np.ndarray
  up_w: np.ndarray

  @functools.cached_property
  def fit(self) -> body_lib.BodyModel:
    """The FIT_VERTICES subset the silhouette fit's long stage reads (fit_to_masks). Built on first use
    (~1 s of farthest-point sampling): only configs that fit to masks pay for it."""
    host = jax.device_get(self.full)
    return jax.device_put(body_lib.subset_body_model(host, body_lib.guidance_vertex_indices(host, FIT_VERTICES)))


# Vertices of the body the silhouette fit's long stage projects: 431 guidance vertices lie ~2–3 crop pixels
# apart, too sparse to outline a limb. 40 capture test frames, fit only, human IoU: 431 vertices and 128
# mask samples 0.712; 2,000 and 128: 0.721; 2,000 and 512: 0.730; 4,000 and 1,024: 0.732 at 2.5× the time.
FIT_VERTICES = 2000


@functools.lru_cache(maxsize=4)
def make_bodies(path: str | None = None) -> Bodies:
  """The body models of a file (default: embedded), built once per path: every method of an evaluation
  and every Reconstructor share them (the guidance subset and upsampling take ~0.4 s to build)."""
  full = body_lib.load_body_model(path or None)
  idx = body_lib.guidance_vertex_indices(full)
  up_idx, up_w = sparse_upsampling(full, idx)
  # The subset is taken on the host: on device each array's gather compiles (or looks up) its own program.
  guidance = jax.device_put(body_lib.subset_body_model(jax.device_get(full), idx))
  return Bodies(full, guidance, idx, up_idx, up_w)


def full_vertices(bodies: Bodies, rotmats, betas):
  """Pelvis-centred full-mesh vertices [B, V, 3] of the parameters."""
  out = body_lib.body_forward(bodies.full, rotmats, betas)
  return out.vertices - out.joints[..., :1, :]


def move_to_guidance_points(bodies: Bodies, vertices, guidance_points):
  """Full-mesh ``vertices`` [B, V, 3] moved so its guidance vertices land on ``guidance_points``
  [B, Nh, 3] (e.g. the CRFormer's): the offsets there are spread to every vertex (inverse-distance weights)."""
  offsets = guidance_points - vertices[:, bodies.indices]
  return vertices + jnp.einsum("bvkc,vk->bvc", offsets[:, bodies.up_idx], bodies.up_w)


def floor_plane(x, batch, body, stats, settings: RefineSettings):
  """The ground plane [B, 4] the refinement's L_of uses (pelvis-centred coordinates), or None.

  settings.floor 'body': the plane under the starting body (through its lowest point), with the data's
  normal where the example has one (batch "ground_plane", camera coordinates of the virtual camera; zeros =
  unknown), otherwise the normal the feet give (losses.estimate_ground_plane).

  Only the data's *normal* is used: its offset, moved to pelvis-centred coordinates, would need the
  pelvis's true position, and the regressor's depth is off by decimetres (its error along n put the
  floor centimetres above or below the feet, and L_of pulled objects there: on 120 capture test frames
  L_of made CD object worse by 1.2 cm with the data's offset).
  """
  if settings.floor != "body":
    return None
  dec = decode_x(x, body, batch["object_template"], stats, settings.hand_mean)
  estimated = jax.vmap(estimate_ground_plane)(dec.human_points, dec.rotmats)
  given = batch.get("ground_plane")
  if given is None:
    return estimated
  n = given[:, :3]
  known = jnp.linalg.norm(n, axis=-1, keepdims=True) > 0.5
  unit = n / jnp.maximum(jnp.linalg.norm(n, axis=-1, keepdims=True), 1e-9)
  data = jax.vmap(plane_under_body)(dec.human_points, unit)
  return jnp.where(known, data, estimated)


BODY_POSE = slice(6, 132)  # Joints 1–21 (the body without the global orientation and the hands) in x.
# The root's 6D is R's first two columns interleaved: entries 0, 2, 4 are column 0, entries 1, 3, 5 column 1.
ROOT_COL0, ROOT_COL1 = jnp.array([0, 2, 4]), jnp.array([1, 3, 5])
HYPOTHESIS_STEPS = 100  # Pose-fit steps from every start before the best one is kept (fit_to_masks).
HYPOTHESIS_SAMPLES = 128  # Mask pixel samples those short fits read (memory: [B·K, samples, points]).
FINAL_FIT_LEARNING_RATE = 0.002  # Metres per Adam step of the pelvis re-fit after the sampling (final_fit_steps).


def project_points(x, body, template, stats: BetasStats, settings: RefineSettings):
  """(human [B, Nh, 3], object [B, K, 3]) of x, pelvis-centred: what the silhouette fits project."""
  d = decode_x(x, body, template, stats, settings.hand_mean)
  return d.human_points, d.object_points


def turn_root(x, angle: float, offset: int = 0):
  """x with the body turned by ``angle`` (radians) about its own vertical (rest-pose y) axis: R → R·R_y(angle).

  Column 1 (the body's up) stays; column 0 becomes cos·c0 − sin·c2 with c2 = c0 × c1 (x is orthonormal 6D, so
  c2 is R's third column). angle = π is the old 180° turn, c0 → −c0. offset: where the 6D sits in x (0: the
  root; OBJ_ROT.start: the object, whose template is +y up too, turn_object).
  """
  c, s = round(math.cos(angle), 12), round(math.sin(angle), 12)  # Exact 0 and ±1 at the quarter turns.
  col0, col1 = ROOT_COL0 + offset, ROOT_COL1 + offset
  c0, c1 = x[..., col0], x[..., col1]
  return x.at[..., col0].set(c * c0 - s * jnp.cross(c0, c1))


def turn_object(x, angle: float):
  """x with the object turned by ``angle`` about its template's vertical (+y) axis through the template's origin
  (the footprint's centre: objects are centred in x and z, objects/procedural.py): R_o → R_o·R_y(angle)."""
  return turn_root(x, angle, OBJ_ROT.start)


def fit_assets(settings: RefineSettings) -> tuple:
  """(pose hypotheses [K, 21, 6] or None, PosePrior or None): the shipped arrays the silhouette fits of these
  settings read. The compiled program closes over them, so they are part of a cached program's key too."""
  hypotheses = load_pose_hypotheses() if settings.use_mask and settings.pose_hypotheses else None
  prior = load_pose_prior() if settings.use_mask and settings.pose_fit_gmm > 0 else None
  return hypotheses, prior


def pose_plausibility(pose_prior: PosePrior | None, settings: RefineSettings):
  """x [B, 331] -> settings.pose_fit_gmm · (−log p(body pose)) [B] under the pose classes' mixture, the term
  both silhouette fits add (fit_to_masks, polish); None when off."""
  if pose_prior is None or settings.pose_fit_gmm <= 0:
    return None
  return lambda x: settings.pose_fit_gmm * pose_nll(pose_prior, x[:, BODY_POSE])


def _keep_best(loss, b: int, k: int, x, evidence: ImageEvidence, n: int = 1):
  """(x [B·n, 331], evidence) of the n candidates with the lowest loss per sample, best first: loss [B·K],
  x [B·K, 331] and the evidence's arrays [B·K, ...] hold each sample's K candidates in consecutive rows,
  and so do the n kept."""
  _, best = jax.lax.top_k(-loss.reshape(b, k), n)  # [B, n]
  pick = lambda a: a.reshape((b, k) + a.shape[1:])[jnp.arange(b)[:, None], best].reshape((b * n,) + a.shape[1:])
  return pick(x), jax.tree.map(pick, evidence)


def physical_cost(x, masks, inputs: RefineInputs, body, stats: BetasStats, weights: GuidanceWeights,
                  settings: RefineSettings) -> jnp.ndarray:
  """L_P / λ_mask [B] at x [B, 331] (refine.physical_terms, no mask term): the guidance's physical terms in
  units of L_mask, the balance the guidance itself strikes (L_P weighs L_mask by λ_mask). The silhouette fits
  add it to L_mask: polish, and the judge of the starts (start_physics)."""
  w_mask = jnp.maximum(weights.lambda_mask, 1e-6)
  return physical_terms(x, masks, inputs, body, stats, weights, settings)[0].total / w_mask


def start_physics(masks, inputs: RefineInputs, batch: dict, body, stats: BetasStats, weights: GuidanceWeights,
                  settings: RefineSettings) -> Callable:
  """judge(x [B·k, 331], k) -> [B·k]: settings.start_physical · (λ_of L_of + λ_pt L_pt) / λ_mask of every
  start, the guidance's terms in the guidance's balance (as polish weighs them), with the floor masks of
  ``masks`` (p_h, p_o, p_of) [B, ...] held fixed.

  Not L_ho: its masks name the body vertices in contact *in the pose they were predicted on*, and the starts
  are other poses (charging them ranked the starts by their likeness to that pose: first 40 capture test
  frames, human IoU −0.043, CD human +1.96 cm at start_physical = 1). Which object points rest on the floor,
  and that no body point is inside the object, hold whatever the pose.

  Each sample's k starts (consecutive rows) share its masks, object and weights: the starts are mapped over,
  not copied (an SDF grid per start would be k times the memory). The floor is floor_plane's for each start.
  """
  no_contacts = dataclasses.replace(settings, use_ho=False)

  def one(x):  # [B, 331]: the j-th start of every sample.
    plane = floor_plane(x, batch, body, stats, settings)
    return physical_cost(x, masks, dataclasses.replace(inputs, x_init=x, ground_plane=plane), body, stats, weights,
                         no_contacts)

  def judge(x, k):
    total = jax.vmap(one, in_axes=1, out_axes=1)(x.reshape(-1, k, x.shape[-1]))  # [B, k]
    return settings.start_physical * total.reshape(-1)

  return judge


def fit_to_masks(x, evidence: ImageEvidence, template, body, stats: BetasStats, settings: RefineSettings,
                 hypotheses=None, fit_body=None, fit_template=None,
                 pose_prior: PosePrior | None = None,
                 judge: Callable | None = None) -> tuple[jnp.ndarray, ImageEvidence]:
  """The refinement's start fitted to the user's masks: (x [B, 331], evidence with the fitted pelvis).

  settings.fit_steps: the pelvis and the object's translation (pose fixed, image_evidence.fit_placement);
  settings.pose_fit_steps: then all of x (image_evidence.fit_pose). hypotheses [K, 126] (6D of joints
  1–21, settings.pose_hypotheses): the placement fit and the first HYPOTHESIS_STEPS pose-fit steps also
  run from the regressor's estimate with its body pose replaced by each hypothesis; each sample keeps
  the start whose silhouette then fits its masks best (lowest L_mask), the regressor's own included,
  and only that one takes the remaining steps. settings.fit_finalists = n > 1: the n best take
  HYPOTHESIS_STEPS more steps with what the long stage reads (fit_body, fit_template, every mask sample)
  and are ranked again before one is kept (the short fits' ranking reads few pixels and the sparse body).
  A local fit cannot turn a standing estimate into the seated person of the photo; a fit from a seated
  start can. settings.root_turns = n: every start is also
  tried turned by 360°·j/n (j = 1 … n − 1) about the body's own vertical axis (turn_root; nK starts), for a
  person whom the regressor faces the wrong way or sees from the wrong side, which no local fit undoes either.
  settings.object_turns = m: then the chosen start's object is tried turned by 360°·j/m about its own vertical
  axis (turn_object), each copy fitted HYPOTHESIS_STEPS steps (the dense object outline), the best kept.

  fit_body, fit_template [B, P, 3] (ObjectGeometry.surface): the denser body and object points the long
  stage projects (default: body, template); the short fits of the many starts keep the sparse ones (memory).
  pose_prior: the mixture of settings.pose_fit_gmm (every fit adds its weight times the body pose's −log p).
  judge: start_physics (settings.start_physical): a start's score is its L_mask plus judge's physical cost,
  for the body starts and the object turns alike; None: L_mask alone.
  """
  def points(x_, tmpl, b=body):
    return project_points(x_, b, tmpl, stats, settings)

  plausible = pose_plausibility(pose_prior, settings)

  def score(x_, tmpl, ev, k, pts=body):  # How well each of k starts per sample explains the image (lower: better).
    fit = batched_mask_loss(*points(x_, tmpl, pts), ev)
    return fit if judge is None else fit + judge(x_, k)

  def pose_fit(x_, ev, tmpl, steps, b=body):  # The pose, the shape and the object too (silhouette fit).
    x_fit, cam = fit_pose(x_, lambda v: points(v, tmpl, b), ev, steps, settings.pose_fit_prior, extra=plausible)
    return orthonormalize_x(x_fit), dataclasses.replace(ev, cam_trans=cam)  # The denoiser knows only true 6D.

  def fit_and_keep(xs, ev, tmpl, m, steps, pts=body, n=1):  # Each sample's m candidates (consecutive rows)
    if steps:  # fitted ``steps`` steps, then its n best kept (best first).
      xs, ev = pose_fit(xs, ev, tmpl, steps, pts)
    return _keep_best(score(xs, tmpl, ev, m, pts), b, m, xs, ev, n)

  repeat = lambda tree, m: jax.tree.map(lambda a: jnp.repeat(a, m, axis=0), tree)  # Each row m times.
  b = x.shape[0]
  k = 1 if hypotheses is None else 1 + hypotheses.shape[0]
  starts = template
  full_evidence = evidence
  # The placement and the short fits of every start read the first HYPOTHESIS_SAMPLES pixel samples of
  # each mask (a random subset: mask_evidence_arrays permutes them); only the long fit reads all.
  evidence = dataclasses.replace(evidence, samples_h=evidence.samples_h[:, :HYPOTHESIS_SAMPLES],
                                 weight_h=evidence.weight_h[:, :HYPOTHESIS_SAMPLES],
                                 samples_o=evidence.samples_o[:, :HYPOTHESIS_SAMPLES],
                                 weight_o=evidence.weight_o[:, :HYPOTHESIS_SAMPLES])
  if k > 1:  # [B, K, 331] → [B·K, 331], row b·K + 0 the regressor's own start.
    xs = jnp.broadcast_to(x[:, None], (b, k, x.shape[-1]))
    x = xs.at[:, 1:, BODY_POSE].set(jnp.broadcast_to(hypotheses.reshape(k - 1, -1)[None], (b, k - 1, 126)))
    if settings.root_turns > 1:  # Each start also turned about the body's own vertical axis, the unturned first.
      n = settings.root_turns
      x = jnp.concatenate([turn_root(x, 2.0 * math.pi * j / n) for j in range(n)], axis=1)  # j = 0: x itself.
      k *= n
    x = x.reshape(b * k, -1)
    evidence = repeat(evidence, k)
    starts = repeat(template, k)
  if settings.fit_steps > 0:  # Place the person and the object on their masks.
    human, obj = points(x, starts)
    cam_trans, offset = fit_placement(human, obj, evidence, settings.fit_steps)
    x = x.at[:, OBJ_TRANS].add(offset)
    evidence = dataclasses.replace(evidence, cam_trans=cam_trans)
  steps = settings.pose_fit_steps
  long_template = template if fit_template is None else fit_template
  long_body = body if fit_body is None else fit_body
  if k > 1:  # A short fit from every start, then the rest of the steps from the best one only.
    short = min(steps, HYPOTHESIS_STEPS)
    n = min(settings.fit_finalists, k)
    x, evidence = fit_and_keep(x, evidence, starts, k, short, n=n)
    steps -= short
    if n > 1:  # The n best go on with the long fit's dense points and all samples; the best of them is kept.
      more = min(steps, HYPOTHESIS_STEPS)
      ev_n = dataclasses.replace(repeat(full_evidence, n), cam_trans=evidence.cam_trans)
      x, evidence = fit_and_keep(x, ev_n, repeat(long_template, n), n, more, long_body)
      steps -= more
  if settings.object_turns > 1:  # The chosen start with the object turned about its vertical, the best kept.
    m = settings.object_turns
    short = min(steps, HYPOTHESIS_STEPS)
    xs = jnp.stack([turn_object(x, 2.0 * math.pi * j / m) for j in range(m)], axis=1).reshape(b * m, -1)
    # The dense object outline (an object's side is told by its outline), the sparse body (it does not turn).
    x, evidence = fit_and_keep(xs, repeat(evidence, m), repeat(long_template, m), m, short)
    steps -= short
  evidence = dataclasses.replace(full_evidence, cam_trans=evidence.cam_trans)
  if steps > 0:
    x, evidence = pose_fit(x, evidence, long_template, steps, long_body)
  return x, evidence


def polish(res: RefineOutput, inputs: RefineInputs, body, stats: BetasStats, weights: GuidanceWeights,
           settings: RefineSettings, fit_body, outline, pose_prior: PosePrior | None = None
           ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """(x [B, 331], cam_trans [B, 3]): the refined x̃0 polished by settings.final_pose_fit_steps Adam steps.

  The loss is the long silhouette fit's (L_mask on fit_body and the outline, fit_to_masks) plus L_P / λ_mask
  with the last round's contact masks (the guidance's own terms in the guidance's own balance: L_P already
  weighs L_mask by λ_mask) and final_pose_fit_prior·‖x − x̃0‖². The guided sampling pulls the pose toward
  the learned distribution and the silhouette drifts off the masks; a fit on L_mask alone would undo the
  contacts and the penetration the guidance fixed. pose_prior: as in fit_to_masks (settings.pose_fit_gmm).
  """
  masks = masks_from_probs(tuple(p[-1] for p in res.contacts), settings)
  plausible = pose_plausibility(pose_prior, settings)

  def physical(x):  # L_P without its mask term (the fit reads the denser one), in units of L_mask.
    more = 0.0 if plausible is None else plausible(x)
    return physical_cost(x, masks, inputs, body, stats, weights, settings) + more

  decode = lambda x: project_points(x, fit_body, outline, stats, settings)
  x, cam = fit_pose(res.x0, decode, inputs.evidence, settings.final_pose_fit_steps, settings.final_pose_fit_prior,
                    extra=physical)
  return orthonormalize_x(x), cam


def make_reconstruct_fn(nets: Networks, settings: RefineSettings, image_size: int, image_cond: str = "pooled",
                        refine_fn: Callable | None = None, alphas_cumprod=None, assets=None) -> Callable:
  """A jitted ``fn(variables, batch, objects, guidance_body, stats, weights) -> Stages``.

  batch: {"image" [B,S,S,5], "object_template" [B,K,3], "focal", "princpt" [B,2]} (data.pipeline);
  objects: ObjectGeometry [B] (template + SDF) for the penetration term; its surface points (when given) are
    the object outline of the silhouette fits (fit_to_masks, settings.final_fit_steps).
  refine_fn: replaces diffusion.refine (same keyword interface), e.g. the optimisation baseline.
  assets: fit_assets(settings) when the caller has read them already (Reconstructor: they key its cache too).
  """
  contact_fn = make_contact_fn(nets.net.contact_former)  # Its parameters ride in aux (traced).
  alphas = jnp.asarray(cosine_schedule() if alphas_cumprod is None else alphas_cumprod, jnp.float32)
  refine_impl = refine_fn or refine
  hypotheses, pose_prior = jax.tree.map(jnp.asarray, fit_assets(settings) if assets is None else assets)

  def fn(variables, batch, objects: ObjectGeometry, body, stats: BetasStats, weights: GuidanceWeights,
         fit_body) -> Stages:
    net_vars = variables["net"]
    geo = nets.point_encoder.apply(variables["point_encoder"], batch["object_template"])
    geo = {"global": geo["global"], "tokens": geo["tokens"]}
    args = (batch["image"], batch["object_template"], batch["focal"], batch["princpt"], geo, body)
    out = nets.net.apply(net_vars, *args, train=False)
    fmap = out["feature_map"]
    # The denoiser knows only 6D of true rotations: start from what the regressor's 6D decode to.
    x_reg = orthonormalize_x(pack_x(out["pose6d"], out["obj_rot6d"], out["obj_trans"], out["betas"], stats))
    x_start, cam_trans, evidence = x_reg, out["cam_trans"], None
    # The denser body and object outline the silhouette fits project (fit_to_masks, final_fit_steps).
    dense_body = body if fit_body is None else fit_body
    outline = batch["object_template"] if objects.surface is None else objects.surface
    aux = lambda cam: {"feature_map": fmap, "cam_trans": cam, "focal": batch["focal"], "princpt": batch["princpt"],
                       "image_size": image_size, "contact_params": net_vars["params"]["contact_former"],
                       "geometry_tokens": geo["tokens"]}
    inputs = RefineInputs(x_init=x_reg, objects=objects, c_img=image_condition(fmap, image_cond), c_geo=geo["tokens"],
                          aux=aux(cam_trans))
    if settings.use_mask:
      evidence = ImageEvidence(batch["distance"], batch["samples_h"], batch["weight_h"], batch["samples_o"],
                               batch["weight_o"], cam_trans, batch["focal"], batch["princpt"])
      judge = None
      if settings.start_physical > 0:  # The starts judged with the contacts the network sees on its own estimate.
        masks = masks_from_probs(predict_contacts(x_reg, inputs, body, stats, contact_fn, settings), settings)
        judge = start_physics(masks, inputs, batch, body, stats, weights, settings)
      x_start, evidence = fit_to_masks(x_reg, evidence, batch["object_template"], body, stats, settings, hypotheses,
                                       dense_body, outline, pose_prior, judge)
      cam_trans = evidence.cam_trans
    inputs = dataclasses.replace(inputs, x_init=x_start, aux=aux(cam_trans), evidence=evidence,
                                 ground_plane=floor_plane(x_start, batch, body, stats, settings))
    res = refine_impl(variables["denoiser"], inputs, body, stats, weights, denoiser=nets.denoiser,
                      contact_fn=contact_fn, settings=settings, alphas_cumprod=alphas)
    if settings.final_pose_fit_steps:  # All of x back onto the masks, L_P kept (polish).
      x_polished, cam_trans = polish(res, inputs, body, stats, weights, settings, dense_body, outline, pose_prior)
      res = res._replace(x0=x_polished, decoded=decode_x(x_polished, body, objects.template, stats, settings.hand_mean))
      evidence = dataclasses.replace(evidence, cam_trans=cam_trans)
    if settings.final_fit_steps:  # The pelvis back onto the masks: the pair moves as one (RefineSettings).
      cam_trans, _ = fit_placement(*project_points(res.x0, dense_body, outline, stats, settings), evidence,
                                   settings.final_fit_steps, FINAL_FIT_LEARNING_RATE, move_object=False)
    # Final refiner (CRFormer) on the refined estimate, with contacts re-predicted on it.
    dec = decode_x(res.x0, body, batch["object_template"], stats, settings.hand_mean)
    cf = nets.net.contact_former.apply({"params": net_vars["params"]["contact_former"]}, fmap, dec.human_points,
                                       dec.object_points, cam_trans, batch["focal"], batch["princpt"],
                                       image_size, geo["tokens"])
    ref = nets.net.mesh_refiner.apply({"params": net_vars["params"]["mesh_refiner"]}, cf["human_tokens"],
                                      cf["object_tokens"], cf["p_h"], cf["p_o"], dec.human_points,
                                      dec.object_points, batch["object_template"])
    return Stages(x_regressor=x_reg, x_rounds=res.x_rounds, x_refined=res.x0, cam_trans=cam_trans,
                  refine=res, contacts=(cf["p_h"], cf["p_o"], cf["p_of"]),
                  final_human_points=ref["human_points"], final_obj_rotmat=ref["obj_rotmat"],
                  final_obj_trans=ref["obj_trans"])

  return jax.jit(fn)


def with_condition_switches(nets: Networks, refine_config, where: str = "model") -> Networks:
  """The networks with the refine config's condition switches (paper Table 3 "w/o c_I", "w/o c_G") applied.

  A condition the model's denoiser was trained with and the config turns off
  is dropped at inference: its decoupled cross-attention term is removed
  (Denoiser.drop_streams), the other terms are untouched. A condition the
  config asks for but the denoiser was trained without is an error.
  """
  den = refine_config.get("denoiser", {})
  drop = []
  for stream, field in (("image", "use_image_cond"), ("geometry", "use_geo_cond")):
    want, has = bool(den.get(field, True)), bool(getattr(nets.denoiser, field))
    if want and not has:
      raise ValueError(f"{where}: the refine config sets denoiser.{field}=True but this model's denoiser was "
                       f"trained without the {stream} condition.")
    if has and not want:
      drop.append(stream)
  return nets._replace(denoiser=nets.denoiser.clone(drop_streams=tuple(drop))) if drop else nets


def abstract_variables(nets: Networks, image_size: int, guidance: body_lib.BodyModel, image_cond: str = "pooled"):
  """Shapes of every variable the networks need (no compute), for checking a checkpoint.

  image_cond: the model's c_I ('pooled': one token; 'map': the h·w feature-map tokens, whose positional
  embedding is a variable of that length).
  """
  b, k = 1, 64
  image = jax.ShapeDtypeStruct((b, image_size, image_size, 5), jnp.float32)
  tmpl = jax.ShapeDtypeStruct((b, k, 3), jnp.float32)
  cam = jax.ShapeDtypeStruct((b, 2), jnp.float32)
  rng = jax.random.key(0)
  pe = jax.eval_shape(nets.point_encoder.init, rng, tmpl)
  geo = jax.eval_shape(lambda v, t: nets.point_encoder.apply(v, t), pe, tmpl)
  net = jax.eval_shape(lambda r, i, t, f, p, g: nets.net.init(r, i, t, f, p, g, guidance, train=False),
                       rng, image, tmpl, cam, cam, {"global": geo["global"], "tokens": geo["tokens"]})
  fmap = jax.eval_shape(lambda v, i, g: nets.net.apply(v, i, g, False, method=type(nets.net).features),
                        net, image, geo["global"])
  c_img = jax.eval_shape(lambda f: image_condition(f, image_cond), fmap)
  x = jax.ShapeDtypeStruct((b, 331), jnp.float32)
  t = jax.ShapeDtypeStruct((b,), jnp.int32)
  den = jax.eval_shape(nets.denoiser.init, rng, x, t, c_img, geo["tokens"])
  return {"net": dict(net), "point_encoder": dict(pe), "denoiser": dict(den)}


_DEFAULT = object()


class Reconstructor:
  """A trained model, its networks, the body models and one compiled reconstruct function.

  Args:
    model: a TrainedModel (model_store.load_model()).
    refine_config: a refine config (scorehoi_jax/configs/refine_paper.py layout); default the paper's settings.
    settings: overrides the RefineSettings built from refine_config (ablations).
    refine_fn: replaces the refinement (baselines).
    body_model: path of an SMPL-H-layout model; default the one the model was trained with.
    program_cache: folder of traced programs and parameter shapes (export_cache.py): calls run the
      jax.export program stored there (traced and written on the first call), so a new process skips
      tracing. Default jax_cache.program_dir(): set once the CLI has enabled its cache, else None
      (trace in-process, as ``_fn``). Not used with ``refine_fn``.
  """

  def __init__(self, model: TrainedModel, refine_config: ml_collections.ConfigDict | None = None,
               settings: RefineSettings | None = None, refine_fn: Callable | None = None,
               body_model: str | None = None, program_cache: str | None = _DEFAULT):  # type: ignore[assignment]
    self.model = model
    cfg = refine_config if refine_config is not None else default_refine_config()
    self.refine_config = cfg
    self.settings = settings if settings is not None else settings_from_config(cfg, model.config)
    if self.settings.hand_mean:
      # Our regressor, denoiser and dataset readers all hold absolute hand rotations (CONTHO-style
      # offsets are converted on reading, data/ground_truth.py): adding the MANO mean again would
      # offset every hand of a real SMPL-H model by its mean pose.
      raise ValueError("Reconstructor: refine.hand_mean=True, but models of this package hold absolute hand "
                       "rotations in x; the MANO mean would be added twice. Set refine.hand_mean=False.")
    self.weights = weights_from_config(cfg)
    # The betas bounds belong to the model (its denoiser was trained on betas normalised with them).
    self.stats = betas_stats_from_config(model.config) if "betas_stats" in model.config else default_betas_stats()
    self.image_size = int(model.config.data.image_size)
    self.nets = with_condition_switches(build_networks(model.config.model), cfg, model.path)
    self.bodies = make_bodies(body_model or model.config.get("body_model") or None)
    folder = jax_cache.program_dir() if program_cache is _DEFAULT else program_cache
    image_cond = model.config.model.get("image_cond", "pooled")
    # What fixes the traced program besides the argument shapes (not the guidance weights: they are traced).
    assets = fit_assets(self.settings)  # Read once: the program closes over them and its key hashes them.
    key = dict(model=model.config.model.to_json_best_effort(sort_keys=True), image_size=self.image_size,
               image_cond=image_cond, drop_streams=self.nets.denoiser.drop_streams, settings=repr(self.settings),
               assets=export_cache.array_digest(*jax.tree.leaves(assets)))
    guidance_avals = [str(jax.typeof(v)) for v in jax.tree.leaves(self.bodies.guidance)]
    expected = export_cache.cached_shapes(
        folder, "variables", dict(model=key["model"], image_size=self.image_size, body=guidance_avals),
        lambda: abstract_variables(self.nets, self.image_size, self.bodies.guidance, image_cond))
    check_variables(expected, model.variables, model.path)
    self.variables = jax.device_put(model.variables)
    self._fn = make_reconstruct_fn(self.nets, self.settings, self.image_size, image_cond, refine_fn, assets=assets)
    self.program = (export_cache.CachedProgram(self._fn.__wrapped__, folder, "reconstruct", key)
                    if folder is not None and refine_fn is None else None)

  def inputs(self, batch: dict) -> dict:
    """The host arrays the compiled function takes from a pipeline batch (the image evidence is made here,
    on the host, with SciPy, when the settings use it)."""
    keys = ("image", "object_template", "focal", "princpt") + (("ground_plane",) if "ground_plane" in batch else ())
    b = {k: np.asarray(batch[k]) for k in keys}
    if self.settings.use_mask:
      b.update(mask_evidence_arrays(b["image"][..., 3:5]))
    return b

  def arguments(self, inputs: dict, objects: ObjectGeometry, weights: GuidanceWeights | None = None,
                variables=None) -> tuple:
    """The compiled function's arguments for ``inputs`` (self.inputs of a batch): ``self._fn(*args)``."""
    return (self.variables if variables is None else variables, inputs, objects, self.bodies.guidance, self.stats,
            self.weights if weights is None else weights, self.bodies.fit if self.settings.use_mask else None)

  def __call__(self, batch: dict, objects: ObjectGeometry, weights: GuidanceWeights | None = None) -> Stages:
    fn = self.program or self._fn  # Host arrays go in as they are: the call transfers them.
    return fn(*self.arguments(self.inputs(batch), objects, weights))

  def decode(self, x) -> XParams:
    """x [..., 331] → (rotation matrices as fed to LBS, betas, object rotation, object translation)."""
    return decode_params(jnp.asarray(x), self.stats, self.bodies.full, self.settings.hand_mean)
