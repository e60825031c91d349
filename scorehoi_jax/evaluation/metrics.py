"""Evaluation metrics of the HOI reconstruction field, as CONTHO/ScoreHOI compute them.

Protocol (notes/contho-notes.md §4, notes/official-code-notes.md §7):
- Chamfer distance: per sample, fit ONE similarity Procrustes (Umeyama, with
  scale) from the prediction to the ground truth on the concatenated human +
  object vertices, apply it to both parts, draw 6000 area-weighted surface
  samples per mesh, and report CD = mean NN(gt→pred) + mean NN(pred→gt)
  (distances, not squared; the two directions summed) in cm, per part.
- Contact from reconstruction: a human vertex (every vertex of the full body
  mesh) is in contact when its nearest object *vertex* is closer than 5 cm
  (strict), no alignment; the GT contacts the same way from the GT meshes
  (``field_contacts``).
- Contact precision/recall: per sample P = TP/|pred| (kept only if |pred| > 0)
  and R = TP/|gt| (kept only if |gt| > 0), averaged over the kept samples;
  F = 2PR/(P+R) of the averages.
- F-score@1cm of the aligned surface samples (optional in the field).

Two implementations of the Chamfer metric:
- ``chamfer_after_procrustes``: the reference, one sample at a time, NumPy +
  SciPy KD-tree, fresh samples on each mesh with its own face areas (what
  trimesh.sample does in the released code; the global RNG there is replaced by
  an explicit seed: gt uses ``seed``, pred ``seed + 1``).
- ``make_batched_chamfer``: jitted and batched for the evaluator. Samples are
  drawn once per mesh topology (area weights from a reference mesh, e.g. the
  rest pose or the object template) and re-posed on every mesh with their
  barycentric weights. This differs from the reference only in that the
  sampling density follows the reference mesh's areas instead of each mesh's
  own; on posed bodies the two agree to ~0.1 cm (experiments/results/geometry.md).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial import cKDTree

from scorehoi_jax.geometry.distances import nearest_distances
from scorehoi_jax.geometry.procrustes import apply_similarity, procrustes_similarity
from scorehoi_jax.geometry.sampling import repose_samples, sample_surface

CONTACT_THRESHOLD = 0.05  # metres (CONTHO TEST.contact_thres).
FSCORE_THRESHOLD = 0.01  # metres.
NUM_CHAMFER_SAMPLES = 6000


# ------------------------------------------------------------------------------------------------
# Reference, one sample at a time.
# ------------------------------------------------------------------------------------------------


def align_prediction(pred_h, pred_o, gt_h, gt_o):
  """Similarity-align pred (human, object) to gt, fitted on all vertices jointly."""
  pred = np.concatenate([pred_h, pred_o], 0)
  gt = np.concatenate([gt_h, gt_o], 0)
  scale, rot, t = procrustes_similarity(jnp.asarray(pred, jnp.float32), jnp.asarray(gt, jnp.float32))
  aligned = np.asarray(apply_similarity(scale, rot, t, jnp.asarray(pred, jnp.float32)), np.float64)
  return aligned[:len(pred_h)], aligned[len(pred_h):]


def _two_way(a: np.ndarray, b: np.ndarray):
  """NN distances a→b and b→a with KD-trees."""
  d_ab, _ = cKDTree(b).query(a, k=1)
  d_ba, _ = cKDTree(a).query(b, k=1)
  return d_ab, d_ba


def f1_score(p, r):
  """Harmonic mean of precision and recall, 0 where both are 0: the one F formula of the package
  (F-score of point sets, contact F1, mask F1). Floats, NumPy arrays, or JAX arrays (jit-safe)."""
  xp = jnp if isinstance(p, jax.Array) or isinstance(r, jax.Array) else np
  s = p + r
  out = xp.where(s > 0, 2 * p * r / xp.maximum(s, 1e-12), 0.0)
  return float(out) if np.ndim(out) == 0 and xp is np else out


def fscore_from_distances(d_pred_to_gt, d_gt_to_pred, threshold) -> float:
  """F-score@threshold from the nearest-neighbour distances both ways (host arrays)."""
  return f1_score(float(np.mean(d_pred_to_gt < threshold)), float(np.mean(d_gt_to_pred < threshold)))


def reconstruction_metrics(pred_h, pred_o, gt_h, gt_o, faces_h, faces_o, num_samples: int = NUM_CHAMFER_SAMPLES,
                           seed: int = 0, fscore_threshold: float = FSCORE_THRESHOLD) -> dict:
  """Chamfer (cm) and F-score@threshold of human and object after joint Procrustes.

  Args:
    pred_h, gt_h: [Vh, 3] human vertices (metres), same topology ``faces_h``.
    pred_o, gt_o: [Vo, 3] object vertices (metres), same topology ``faces_o``.
    num_samples: surface samples per mesh.
    seed: sampling seed (gt uses seed, pred seed + 1).

  Returns:
    dict with cd_human, cd_object (cm) and fscore_human, fscore_object (0-1).
  """
  pred_h, pred_o, gt_h, gt_o = (np.asarray(x, np.float64) for x in (pred_h, pred_o, gt_h, gt_o))
  al_h, al_o = align_prediction(pred_h, pred_o, gt_h, gt_o)
  out = {}
  for part, (pv, gv, faces) in {"human": (al_h, gt_h, faces_h), "object": (al_o, gt_o, faces_o)}.items():
    gs = sample_surface(gv, faces, num_samples, seed).points
    ps = sample_surface(pv, faces, num_samples, seed + 1).points
    d_pg, d_gp = _two_way(ps, gs)
    out[f"cd_{part}"] = 100.0 * float(d_gp.mean() + d_pg.mean())
    out[f"fscore_{part}"] = fscore_from_distances(d_pg, d_gp, fscore_threshold)
  return out


def chamfer_after_procrustes(pred_h, pred_o, gt_h, gt_o, faces_h, faces_o, num_samples: int = NUM_CHAMFER_SAMPLES,
                             seed: int = 0) -> tuple[float, float]:
  """(CD human, CD object) in cm, the field's protocol (see module docstring)."""
  m = reconstruction_metrics(pred_h, pred_o, gt_h, gt_o, faces_h, faces_o, num_samples, seed)
  return m["cd_human"], m["cd_object"]


def fscore(pred_points, gt_points, threshold: float = FSCORE_THRESHOLD) -> float:
  """F-score of two point sets: harmonic mean of the fractions within ``threshold``."""
  d_pg, d_gp = _two_way(np.asarray(pred_points, np.float64), np.asarray(gt_points, np.float64))
  return fscore_from_distances(d_pg, d_gp, threshold)


# ------------------------------------------------------------------------------------------------
# Contact.
# ------------------------------------------------------------------------------------------------


def contact_from_reconstruction(human_verts, obj_verts, threshold: float = CONTACT_THRESHOLD, *,
                                obj_faces=None, to_surface: bool = False, chunk: int | None = 2048):
  """Human vertices closer than ``threshold`` to the object: bool [..., Vh].

  Args:
    human_verts: [..., Vh, 3]; obj_verts: [..., Vo, 3] (same frame, metres).
    threshold: contact distance (strict ``<``, as released).
    obj_faces: object faces, needed only with ``to_surface``.
    to_surface: measure to the nearest object surface point instead of the
      nearest object vertex (the released code uses vertices). Host-side,
      unbatched only.
    chunk: query chunk for the JAX nearest-vertex search (bounds memory to
      chunk × Vo distances).
  """
  if to_surface:
    if obj_faces is None:
      raise ValueError("contact_from_reconstruction(to_surface=True) needs obj_faces")
    from scorehoi_jax.objects.sdf_build import signed_distance  # pylint: disable=g-import-not-at-top
    d = np.abs(signed_distance(np.asarray(human_verts).reshape(-1, 3), obj_verts, obj_faces))
    return d.reshape(np.shape(human_verts)[:-1]) < threshold
  d, _ = nearest_distances(jnp.asarray(human_verts), jnp.asarray(obj_verts), chunk)
  return d < threshold


def field_contacts(human_verts, obj_verts, human_index, obj_index, threshold: float = CONTACT_THRESHOLD, **kw):
  """The field's contact labels, bool [..., Vh]: human vertices within ``threshold`` of the nearest object vertex.

  Jittable and exact (the pruned search of nearest.py, brute force where it
  proves nothing). human_verts [..., Vh, 3], obj_verts [..., Vo, 3] in one
  frame (metres); human_index / obj_index: cluster indices of the two vertex
  sets (``nearest.clusters(rest_vertices).index``; object rows not indexed,
  e.g. padding, are ignored). kw: ks, near, batch of ``nearest.within``.
  """
  from scorehoi_jax.evaluation import nearest  # pylint: disable=g-import-not-at-top
  return nearest.within(human_verts, human_index, obj_verts, obj_index, threshold, **kw)


def contact_precision_recall(pred, gt):
  """Per-sample contact P and R with validity masks, jittable.

  pred, gt: bool [..., V]. Returns (precision, recall, valid_p, valid_r), each
  [...]; a precision (recall) with an empty prediction (ground truth) is 0 and
  flagged invalid.
  """
  pred = jnp.asarray(pred, bool)
  gt = jnp.asarray(gt, bool)
  tp = jnp.sum(pred & gt, axis=-1)
  n_pred = jnp.sum(pred, axis=-1)
  n_gt = jnp.sum(gt, axis=-1)
  precision = jnp.where(n_pred > 0, tp / jnp.maximum(n_pred, 1), 0.0)
  recall = jnp.where(n_gt > 0, tp / jnp.maximum(n_gt, 1), 0.0)
  return precision, recall, n_pred > 0, n_gt > 0


@dataclasses.dataclass
class ContactPRF:
  """Dataset accumulator of contact precision / recall / F (field protocol)."""
  sum_precision: float = 0.0
  num_precision: int = 0
  sum_recall: float = 0.0
  num_recall: int = 0

  def update(self, pred, gt) -> "ContactPRF":
    """Add one sample (bool [V]) or a batch (bool [B, V])."""
    p, r, vp, vr = (np.asarray(x) for x in contact_precision_recall(pred, gt))
    self.sum_precision += float(np.sum(np.where(vp, p, 0.0)))
    self.num_precision += int(np.sum(vp))
    self.sum_recall += float(np.sum(np.where(vr, r, 0.0)))
    self.num_recall += int(np.sum(vr))
    return self

  def merge(self, other: "ContactPRF") -> "ContactPRF":
    return ContactPRF(self.sum_precision + other.sum_precision, self.num_precision + other.num_precision,
                      self.sum_recall + other.sum_recall, self.num_recall + other.num_recall)

  @property
  def precision(self) -> float:
    return self.sum_precision / self.num_precision if self.num_precision else math.nan

  @property
  def recall(self) -> float:
    return self.sum_recall / self.num_recall if self.num_recall else math.nan

  @property
  def f1(self) -> float:
    p, r = self.precision, self.recall
    if math.isnan(p) or math.isnan(r):
      return math.nan
    return f1_score(p, r)

  def result(self) -> dict:
    return {"precision": self.precision, "recall": self.recall, "f1": self.f1,
            "num_precision": self.num_precision, "num_recall": self.num_recall}


# ------------------------------------------------------------------------------------------------
# Batched, jitted Chamfer for the evaluator.
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FixedSamples:
  """Sample sets drawn once per topology: (face ids, barycentrics) for gt and pred."""
  faces: np.ndarray  # [F, 3]
  gt_face: np.ndarray  # [S]
  gt_bary: np.ndarray  # [S, 3]
  pred_face: np.ndarray  # [S]
  pred_bary: np.ndarray  # [S, 3]


def fixed_samples(reference_vertices, faces, num_samples: int = NUM_CHAMFER_SAMPLES, seed: int = 0) -> FixedSamples:
  """Two independent area-weighted sample sets on a reference mesh of a topology."""
  g = sample_surface(reference_vertices, faces, num_samples, seed)
  p = sample_surface(reference_vertices, faces, num_samples, seed + 1)
  return FixedSamples(np.asarray(faces), g.face_index, g.barycentric, p.face_index, p.barycentric)


def _cd_fscore(ps, gs, chunk: int, fscore_threshold: float):
  """Chamfer distance (cm) and F-score of sample sets [..., S, 3] (JAX, nearest neighbours by GEMM)."""
  d_pg, _ = nearest_distances(ps, gs, chunk)
  d_gp, _ = nearest_distances(gs, ps, chunk)
  cd = 100.0 * (d_gp.mean(-1) + d_pg.mean(-1))
  p = jnp.mean(d_pg < fscore_threshold, axis=-1)
  r = jnp.mean(d_gp < fscore_threshold, axis=-1)
  return cd, f1_score(p, r)


def make_batched_chamfer(human: FixedSamples, obj: FixedSamples, chunk: int = 2048,
                         fscore_threshold: float = FSCORE_THRESHOLD):
  """A jitted fn(pred_h, pred_o, gt_h, gt_o) -> dict of [B] metrics.

  Inputs are [B, Vh, 3] and [B, Vo, 3] in metres (one object topology per
  call: group a dataset by object). Outputs cd_human, cd_object (cm),
  fscore_human, fscore_object.
  """

  def part_metrics(pred_v, gt_v, s: FixedSamples):
    ps = repose_samples(pred_v, s.faces, s.pred_face, s.pred_bary)
    gs = repose_samples(gt_v, s.faces, s.gt_face, s.gt_bary)
    return _cd_fscore(ps, gs, chunk, fscore_threshold)

  @jax.jit
  def fn(pred_h, pred_o, gt_h, gt_o):
    n_h = pred_h.shape[-2]
    pred = jnp.concatenate([pred_h, pred_o], -2)
    gt = jnp.concatenate([gt_h, gt_o], -2)
    aligned = apply_similarity(*procrustes_similarity(pred, gt), pred)
    cd_h, f_h = part_metrics(aligned[..., :n_h, :], gt_h, human)
    cd_o, f_o = part_metrics(aligned[..., n_h:, :], gt_o, obj)
    return {"cd_human": cd_h, "cd_object": cd_o, "fscore_human": f_h, "fscore_object": f_o}

  return fn


def make_hoi_chamfer(human: FixedSamples, chunk: int = 2048, fscore_threshold: float = FSCORE_THRESHOLD,
                     return_samples: bool = False):
  """A jittable fn for ONE sample whose object may differ from its batch neighbours' (vmap / lax.map it).

  ``fn(pred_h [Vh,3], gt_h [Vh,3], pred_o [Vo,3], gt_o [Vo,3], obj_weight [Vo], pred_os [S,3], gt_os [S,3])``
  returns {cd_human, cd_object (cm), fscore_human, fscore_object}.

  Same protocol as ``make_batched_chamfer`` but with the object given per
  sample: its vertices (padded to a common Vo; ``obj_weight`` 1 on real
  vertices, 0 on padding) enter the joint Procrustes, and its surface samples
  come already posed (pred_os with the predicted pose, gt_os with the GT
  pose). Objects are rigid, so samples drawn once on the canonical mesh and
  posed are distributed exactly like fresh samples on the posed mesh.

  return_samples: return the aligned sample sets {human_pred, human_gt,
  object_pred, object_gt} instead (the evaluator searches them with the
  pruned exact search of nearest.py, far faster than brute force on a CPU).
  """

  def fn(pred_h, gt_h, pred_o, gt_o, obj_weight, pred_os, gt_os):
    w = jnp.concatenate([jnp.ones(pred_h.shape[:1], pred_h.dtype), obj_weight.astype(pred_h.dtype)])
    sim = procrustes_similarity(jnp.concatenate([pred_h, pred_o]), jnp.concatenate([gt_h, gt_o]), w)
    ps = repose_samples(apply_similarity(*sim, pred_h), human.faces, human.pred_face, human.pred_bary)
    gs = repose_samples(gt_h, human.faces, human.gt_face, human.gt_bary)
    pos = apply_similarity(*sim, pred_os)
    if return_samples:
      return {"human_pred": ps, "human_gt": gs, "object_pred": pos, "object_gt": gt_os}
    cd_h, f_h = _cd_fscore(ps, gs, chunk, fscore_threshold)
    cd_o, f_o = _cd_fscore(pos, gt_os, chunk, fscore_threshold)
    return {"cd_human": cd_h, "cd_object": cd_o, "fscore_human": f_h, "fscore_object": f_o}

  return fn
