"""The batched evaluator: every method, every stage, the field's metrics on full meshes.

For each method (METHODS: the regressor alone, the optimisation baseline and
ScoreHOI variants; paper Tables 3–4) one ``Reconstructor`` runs the whole
reconstruction of a batch under one ``jax.jit`` (fixed batch shape: the last
batch is padded with copies of a real frame marked valid = 0, so each method
compiles once). Every stage it returns is scored:

  regressor           x of the regressor ("w/o diffusion")
  round_1 … round_N   x after each refinement round (ScoreHOI round / baseline block)
  refined             the refinement's result
  final               after the CRFormer (contact-based mesh refiner)

Metrics (notes/contho-notes.md §4, paper §4 "Evaluation Details"), on the FULL
body mesh and the object's full mesh:
- CD human / object (cm) after ONE similarity Procrustes of the predicted
  human + object vertices onto the GT (metrics.make_hoi_chamfer, 6000 samples
  per mesh), jitted and batched over (stage, sample), nearest neighbours by
  the exact pruned search of nearest.py: all on device, no host round trip;
- contact from reconstruction, the field's protocol (default, ``contact='full'``):
  every vertex of the full body mesh is in contact when its nearest object
  *vertex* is closer than 5 cm, the GT contacts computed the same way from the
  GT meshes (CONTHO eval_utils; design decision 12). ``contact='guidance'``
  keeps our earlier variant: the 431 guidance vertices within 5 cm of the
  object *surface* (exact point-to-triangle, host side) against the record's
  ``human_contact`` labels, which are defined that way (data/synthetic/labels.py).
  P, R averaged over samples with a non-empty denominator, F1 from the averages;
- penetration: mean depth (cm) of the full-mesh human vertices inside the
  object (SDF grid) and the fraction of vertices inside;
- the physical loss terms L_P, L_ho, L_of, L_pt of the refinement at each
  stage (guidance body, that round's predicted masks; NaN for 'final').
A "ground_truth" entry scores the GT meshes themselves through the same code:
its CD is the floor of the metric (two independent 6000-sample sets on the
same mesh: ~1.7 cm human, ~1.1 cm object on the synthetic data), its contact
F1 is 1 (the same definition on the same meshes), its penetration the data's own.

Ground truth: the record's pose/betas through the full body model, pelvis-
centred; the object mesh posed with obj_rot and obj_trans relative to the
pelvis (data.pipeline.make_example subtracts cam_trans, the pelvis position),
the same frame x decodes to.

Timing: seconds per sample of the reconstruction call only (regressor +
refinement + CRFormer), measured after a first, untimed compile call, padded
rows included in the work but not in the count; metric computation excluded
(reported apart as scoring_seconds, its first call's compile included).

Compiled functions are reused: Reconstructors and scorers are cached per
static structure (settings, refine_fn, betas stats; weights are traced), so
a second evaluate() with other guidance weights compiles nothing; batches are
sharded over the ``data`` mesh of training (train/sharding.py).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial import cKDTree

from scorehoi_jax.diffusion.losses import penetration_depths
from scorehoi_jax.diffusion.refine import RefineSettings, head_thresholds
from scorehoi_jax.diffusion.xpack import decode_params
from scorehoi_jax.errors import ScoreHOIError
from scorehoi_jax.evaluation import metrics as M
from scorehoi_jax.evaluation import nearest as N
from scorehoi_jax.evaluation.baselines import BaselineConfig, make_optimization_refine
from scorehoi_jax.geometry.sampling import sample_surface
from scorehoi_jax.reconstruct import Bodies, Reconstructor, full_vertices, move_to_guidance_points

METHODS = {
    "regressor": "regressor only (Table 3 'w/o diffusion')",
    "optimisation": "Adam on L_P + data term, same gradient budget (CHORE/PHOSA-style baseline)",
    "no_guidance": "ScoreHOI without physical guidance (Table 3 'No guidance')",
    "no_cdir": "ScoreHOI with contacts frozen at the regressor's estimate (Table 3 'w/o CDIR')",
    "full": "ScoreHOI, paper settings",
}
DEFAULT_METHODS = tuple(METHODS)
STAGE_METRICS = ("cd_human", "cd_object", "fscore_human", "fscore_object", "pen_depth_cm", "pen_frac",
                 "loss_total", "loss_ho", "loss_of", "loss_pt")


class EvaluationError(ScoreHOIError):
  """A dataset, method name or object the evaluator cannot use; the message names it."""


def method_setup(name: str, settings: RefineSettings,
                 baseline: BaselineConfig = BaselineConfig()) -> tuple[RefineSettings, Callable | None]:
  """(RefineSettings, refine_fn or None) of a named method, from the refine config's settings."""
  if name == "regressor":
    return dataclasses.replace(settings, use_diffusion=False), None
  if name == "optimisation":
    return settings, make_optimization_refine(baseline)
  if name == "no_guidance":
    return dataclasses.replace(settings, use_guidance=False), None
  if name == "no_cdir":
    return dataclasses.replace(settings, cdir=False), None
  if name == "full":
    return settings, None
  raise EvaluationError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}.")


# ------------------------------------------------------------------------------------------------
# Objects: canonical vertices, surface samples, exact surface distance (cached per instance).
# ------------------------------------------------------------------------------------------------


class EvalObject:
  """One object instance prepared for evaluation (canonical frame, metres)."""

  def __init__(self, template, num_samples: int, seed: int = 0):
    self.name = template.name
    self.geometry = template.geometry()
    self.vertices = np.asarray(template.vertices, np.float32)
    faces = np.asarray(template.faces)
    self.gt_samples = sample_surface(self.vertices, faces, num_samples, seed).points.astype(np.float32)
    self.pred_samples = sample_surface(self.vertices, faces, num_samples, seed + 1).points.astype(np.float32)
    self._clusters: dict = {}
    self._tri = np.asarray(template.vertices, np.float64)[faces]
    centroids = self._tri.mean(1)
    self._radius = float(np.max(np.linalg.norm(self._tri - centroids[:, None], axis=2)))
    self._tree = cKDTree(centroids)

  def clusters(self, which: str, count: int) -> N.Clusters:
    """Clusters of the vertices ('vertices') or samples ('gt', 'pred'), padded to ``count`` (memoised)."""
    if (which, count) not in self._clusters:
      points = {"vertices": self.vertices, "gt": self.gt_samples, "pred": self.pred_samples}[which]
      size = VERTEX_CLUSTER if which == "vertices" else SAMPLE_CLUSTER
      self._clusters[(which, count)] = N.clusters(points, size, count)
    return self._clusters[(which, count)]

  def surface_distance(self, points, max_distance: float = 2 * M.CONTACT_THRESHOLD, k: int = 12) -> np.ndarray:
    """Unsigned distance [N] of canonical-frame points to the mesh surface (inf beyond max_distance).

    The same exact point-to-triangle distance as the synthetic labels
    (data/synthetic/labels.py): candidates are the k triangles with the
    nearest centroids (faces are ≤ 4 cm, so the nearest triangle is among
    them wherever the distance is near the 5 cm threshold).
    """
    from scorehoi_jax.geometry.mesh_distance import point_triangle_distance
    points = np.asarray(points, np.float64)
    k = min(k, len(self._tri))
    dc, idx = self._tree.query(points, k=k, distance_upper_bound=max_distance + self._radius)
    dc, idx = dc.reshape(len(points), k), idx.reshape(len(points), k)
    out = np.full(len(points), np.inf)
    rows = np.nonzero(np.isfinite(dc[:, 0]))[0]
    if len(rows):
      cand = idx[rows]
      ok = cand < len(self._tri)
      cand = np.where(ok, cand, cand[:, :1])
      t = self._tri[cand.reshape(-1)]
      d = point_triangle_distance(np.repeat(points[rows], k, axis=0), t[:, 0], t[:, 1], t[:, 2])
      out[rows] = np.where(ok, d.reshape(len(rows), k), np.inf).min(1)
    return out

  def contacts(self, human_points, rotmat, trans) -> np.ndarray:
    """bool [N]: human points (pelvis frame) within 5 cm of this object posed with (rotmat, trans)."""
    local = (np.asarray(human_points, np.float64) - np.asarray(trans, np.float64)) @ np.asarray(rotmat, np.float64)
    return self.surface_distance(local) < M.CONTACT_THRESHOLD


def _object_key(record) -> tuple[str, int | None]:
  name = record["object_name"]
  name = name.decode() if isinstance(name, bytes) else str(name)
  seed = record.get("object_seed")
  return name, (None if seed is None else int(seed))


class ObjectCache:
  """EvalObject per (name, seed); building one costs ~1 s (SDF), so each is built once.

  provider(name, seed) -> ObjectTemplate gives the exact object instance of a
  record; default ``objects.get_object`` (the synthetic data's library).
  """

  def __init__(self, num_samples: int, provider: Callable | None = None):
    self.num_samples = num_samples
    self.provider = provider
    self._memo: dict = {}

  def get(self, key) -> EvalObject:
    if key not in self._memo:
      from scorehoi_jax.objects import get_object
      try:
        template = (self.provider or (lambda n, s: get_object(n, seed=s)))(*key)
      except KeyError as e:
        raise EvaluationError(f"object {key[0]!r} (seed {key[1]}) of the dataset: {e.args[0]}") from None
      self._memo[key] = EvalObject(template, self.num_samples)
    return self._memo[key]


_OBJECT_CACHES: dict = {}


def shared_object_cache(num_samples: int, provider: Callable | None = None) -> ObjectCache:
  """One ObjectCache per (samples, provider) per process: evaluate() calls in a row (an ablation, a
  sweep) build each object instance once (~1 s each, hundreds in a test split)."""
  key = (num_samples, provider)
  if key not in _OBJECT_CACHES:
    _OBJECT_CACHES[key] = ObjectCache(num_samples, provider)
  return _OBJECT_CACHES[key]


def objects_from_dir(folder: str) -> Callable:
  """A provider (name, seed) -> ObjectTemplate of the user's own object meshes (``--objects DIR``).

  DIR is CONTHO's ``object_models/<dataset>`` folder (an ``_info.json`` of
  name -> {"path": mesh}; names also by mesh stem) or any folder holding
  ``<name>.<ext>`` or ``<name>/<name>.<ext>`` meshes (.obj/.ply/.glb/…, metres).
  """
  import json
  from scorehoi_jax.objects import ObjectError, load_object
  from scorehoi_jax.objects.loading import SUPPORTED_EXTENSIONS
  if not os.path.isdir(folder):
    raise EvaluationError(f"{folder}: object mesh folder not found.")
  paths = {}
  info = os.path.join(folder, "_info.json")
  if os.path.exists(info):
    try:
      with open(info) as f:
        entries = json.load(f)
      for name, entry in entries.items():
        path = entry["path"] if os.path.isabs(entry["path"]) else os.path.join(folder, entry["path"])
        paths[name] = path
        paths.setdefault(os.path.splitext(os.path.basename(path))[0], path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
      raise EvaluationError(f'{info}: expected {{"name": {{"path": mesh, ...}}, ...}}.') from None
  for root, _, files in os.walk(folder):
    if os.path.relpath(root, folder).count(os.sep) > 0:
      continue  # DIR and its direct subfolders only.
    for fname in sorted(files):
      stem, ext = os.path.splitext(fname)
      if ext.lower() in SUPPORTED_EXTENSIONS:
        paths.setdefault(stem, os.path.join(root, fname))

  def provider(name: str, seed=None):
    del seed  # Real objects have one instance.
    if name not in paths:
      raise KeyError(f"no mesh for object {name!r} in {folder} (have: {', '.join(sorted(paths)) or 'none'})")
    try:
      return load_object(paths[name], name=name)
    except ObjectError as e:
      raise EvaluationError(str(e)) from None

  return provider


# ------------------------------------------------------------------------------------------------
# The jitted scoring of all stages of a batch.
# ------------------------------------------------------------------------------------------------


def stage_names(num_rounds: int) -> list[str]:
  """The stages a scorer returns, in order (the last, 'ground_truth', scores the GT itself)."""
  return ["regressor"] + [f"round_{i + 1}" for i in range(num_rounds)] + ["refined", "final", "ground_truth"]


# Cluster sizes of the exact pruned searches (nearest.py): small clusters prune best on body-sized surfaces.
SAMPLE_CLUSTER = 16
VERTEX_CLUSTER = 32


def _sample_points(rest, s: M.FixedSamples, which: str) -> np.ndarray:
  face, bary = (s.gt_face, s.gt_bary) if which == "gt" else (s.pred_face, s.pred_bary)
  return np.einsum("skc,sk->sc", np.asarray(rest, np.float64)[s.faces[face]], bary)


def _tree(points) -> cKDTree:
  # Unbalanced, uncompacted trees build several times faster and query about as fast (SciPy's docs).
  return cKDTree(points, balanced_tree=False, compact_nodes=False)


def _host_frame(al: dict, pred_h, pred_ov, ow, n_st: int, b: int, i: int, contact: str, skip: frozenset) -> dict:
  """Every stage of frame i but those in ``skip`` (stage indices: their Chamfer is NaN, their contacts
  empty): the GT sample sets are the same for every stage (the Procrustes moves the prediction), so their
  trees are built once; hit [S, V] is the field's contact of each stage."""
  rows = [s * b + i for s in range(n_st)]
  out = {}
  for part in ("human", "object"):
    gt = al[f"{part}_gt"][rows[0]]
    gt_tree = _tree(gt)
    cd, fs = np.full(n_st, np.nan), np.full(n_st, np.nan)
    for s, r in enumerate(rows):
      if s in skip:
        continue
      pred = al[f"{part}_pred"][r]
      d_ab, _ = gt_tree.query(pred)
      d_ba, _ = _tree(pred).query(gt)
      cd[s] = 100.0 * (d_ab.mean() + d_ba.mean())
      fs[s] = M.fscore_from_distances(d_ab, d_ba, M.FSCORE_THRESHOLD)
    out[f"cd_{part}"], out[f"fscore_{part}"] = cd, fs
  if contact == "full":
    out["hit"] = np.stack([np.zeros(pred_h.shape[1], bool) if s in skip else
                           _tree(pred_ov[r][ow[r]]).query(pred_h[r], distance_upper_bound=M.CONTACT_THRESHOLD)[0]
                           < M.CONTACT_THRESHOLD for s, r in enumerate(rows)])
  return out


def _host_search(g: dict, contact: str, skip=(), gt_hit=None) -> dict:
  """The nearest-neighbour part of the scorer on the host (SciPy KD-trees), from ``geometry``'s arrays.

  The same values as the device search (exact nearest neighbours both ways); on a CPU this is the
  faster path (the device search's brute-force fallbacks dominate there). Frames run on a thread pool
  (the KD-tree releases the GIL). skip: stage indices not searched (their values are NaN / meaningless:
  the caller has them from an earlier method, or does not report them); gt_hit [B, V]: the GT stage's
  contacts when it is skipped. Returns {name: [S, B]}.
  """
  from concurrent.futures import ThreadPoolExecutor
  al = {k: np.asarray(v, np.float64) for k, v in g["aligned"].items()}
  pred_h, pred_ov = np.asarray(g["pred_h"], np.float64), np.asarray(g["pred_ov"], np.float64)
  ow = np.asarray(g["weight"]) > 0
  n_st, b = g["shape"]
  skip = frozenset(int(s) % n_st for s in skip)
  if contact == "full" and n_st - 1 in skip and gt_hit is None:
    raise ValueError("_host_search: the ground-truth stage is skipped, so its contacts (gt_hit) are needed.")
  work = functools.partial(_host_frame, al, pred_h, pred_ov, ow, n_st, b, contact=contact, skip=skip)
  with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
    frames = list(pool.map(lambda i: work(i=i), range(b)))
  res = {k: np.stack([f[k] for f in frames], 1).astype(np.float32)
         for k in ("cd_human", "fscore_human", "cd_object", "fscore_object")}  # [S, B]
  if contact == "full":
    hit = np.stack([f["hit"] for f in frames], 1)  # [S, B, V]
    if n_st - 1 in skip:
      hit[-1] = gt_hit
    cp, cr, vp, vr = (np.array(v) for v in M.contact_precision_recall(hit, np.broadcast_to(hit[-1], hit.shape)))
    res.update(contact_p=cp, contact_r=cr, contact_vp=vp, contact_vr=vr, gt_hit=hit[-1])
  return res


def make_scorer(bodies: Bodies, num_samples: int = M.NUM_CHAMFER_SAMPLES, hand_mean: bool = False,
                contact: str = "full", batch: int = 8, search: str = "auto"):
  """A jitted fn(stages, stats, gt, obj) -> per-(stage, sample) metrics {name: [S, B]}, all on device.

  S runs over ``stage_names`` (the GT last). stages: Stages of a
  Reconstructor call; stats: its BetasStats (x decoding);
  gt: {"pose", "betas", "obj_rot", "obj_trans"} [B, ...];
  obj: ``_object_arrays`` of the batch's objects (canonical frame).
  contact: 'full' (the field's protocol: every body vertex within 5 cm of the
    nearest object vertex, the GT contacts the same from the GT meshes; contact_p,
    contact_r and their validity flags per stage) or 'guidance' (the 431 guidance
    vertices are returned for the host-side scoring against the record's labels).
  batch: (stage, sample) pairs per step of the nearest-neighbour searches (memory).
  search: 'device' (exact clustered searches, nearest.py, no host round trip), 'host' (the aligned
    point sets come back and SciPy KD-trees search them: the same values; faster on a CPU backend), or
    'auto' (host on a CPU backend, else device).
  """
  search = resolve_search(search)
  if contact not in ("full", "guidance"):
    raise ValueError(f"make_scorer: contact={contact!r}, expected 'full' or 'guidance'.")
  rest = np.asarray(full_vertices(bodies, jnp.broadcast_to(jnp.eye(3), (1, 52, 3, 3)), jnp.zeros((1, 10)))[0])
  human = M.fixed_samples(rest, np.asarray(bodies.full.faces), num_samples)
  hs_gt = N.clusters(_sample_points(rest, human, "gt"), SAMPLE_CLUSTER)
  hs_pred = N.clusters(_sample_points(rest, human, "pred"), SAMPLE_CLUSTER)
  hv = N.clusters(rest, VERTEX_CLUSTER)
  chamfer = M.make_hoi_chamfer(human, return_samples=True)
  idx = jnp.asarray(bodies.indices)

  def pose_obj(v, r, t):
    return jnp.einsum("...vj,...ij->...vi", v, r) + t[..., None, :]

  def cd_fscore(a, a_idx, a_first, b, b_idx, b_first):
    d_ab = N.nearest(a, a_idx, b, b_idx, batch=batch)
    d_ba = N.nearest(b, b_idx, a, a_idx, batch=batch)
    cd = 100.0 * (N.cluster_mean(d_ab, a_first) + N.cluster_mean(d_ba, b_first))
    p = N.cluster_mean(d_ab < M.FSCORE_THRESHOLD, a_first)
    r = N.cluster_mean(d_ba < M.FSCORE_THRESHOLD, b_first)
    return cd, M.f1_score(p, r)

  def score(stages, stats, gt, obj, host: bool = False):
    b = stages.x_regressor.shape[0]
    xs = jnp.concatenate([stages.x_regressor[None], stages.x_rounds, stages.x_refined[None]], 0)  # [S1, B, 331]
    p = decode_params(xs, stats, bodies.full, hand_mean)
    rot, betas = p.rotmats, p.betas
    s1 = xs.shape[0]
    verts = full_vertices(bodies, rot.reshape((-1,) + rot.shape[2:]), betas.reshape(-1, betas.shape[-1]))
    verts = verts.reshape((s1, b) + verts.shape[1:])
    final = move_to_guidance_points(bodies, verts[-1], stages.final_human_points)  # x^N + CRFormer offsets.
    gt_h = full_vertices(bodies, gt["pose"], gt["betas"])
    # The ground truth itself is scored as one more stage, through the very same code.
    pred_h = jnp.concatenate([verts, final[None], gt_h[None]], 0)  # [S, B, V, 3]
    pred_r = jnp.concatenate([p.obj_rotmat, stages.final_obj_rotmat[None], gt["obj_rot"][None]], 0)
    pred_t = jnp.concatenate([p.obj_trans, stages.final_obj_trans[None], gt["obj_trans"][None]], 0)
    n_st = pred_h.shape[0]
    tile = lambda a: jnp.broadcast_to(a[None], (n_st,) + a.shape).reshape((-1,) + a.shape[1:])
    flat = lambda a: a.reshape((-1,) + a.shape[2:])
    pred_ov = flat(pose_obj(obj["vertices"][None], pred_r, pred_t))
    args = (flat(pred_h), tile(gt_h), pred_ov, tile(pose_obj(obj["vertices"], gt["obj_rot"], gt["obj_trans"])),
            tile(obj["weight"]), flat(pose_obj(obj["pred_samples"][None], pred_r, pred_t)),
            tile(pose_obj(obj["gt_samples"], gt["obj_rot"], gt["obj_trans"])))
    al = jax.vmap(chamfer)(*args)  # Aligned sample sets (one joint Procrustes per pair).
    out = {}
    sdf = jax.tree_util.tree_map(tile, obj["geometry"].sdf)
    depth = jax.vmap(penetration_depths)(flat(pred_h), flat(pred_r), flat(pred_t), sdf).reshape(n_st, b, -1)
    out["pen_depth_cm"] = 100.0 * jnp.mean(depth, -1)
    out["pen_frac"] = jnp.mean(depth > 0, -1).astype(jnp.float32)
    if contact == "guidance":
      out.update(guidance_points=pred_h[:, :, idx], rotmat=pred_r, trans=pred_t)
    if host:  # The searches run on the host (_host_search).
      return out, {"aligned": {k: al[k] for k in ("human_pred", "human_gt", "object_pred", "object_gt")},
                   "pred_h": flat(pred_h), "pred_ov": pred_ov, "weight": tile(obj["weight"])}
    out["cd_human"], out["fscore_human"] = cd_fscore(al["human_pred"], hs_pred.index, hs_pred.first, al["human_gt"],
                                                     hs_gt.index, hs_gt.first)
    out["cd_object"], out["fscore_object"] = cd_fscore(
        al["object_pred"], tile(obj["pred_index"]), tile(obj["pred_first"]), al["object_gt"],
        tile(obj["gt_index"]), tile(obj["gt_first"]))
    out = {k: v.reshape(n_st, b) for k, v in out.items()}
    if contact == "full":
      hit = M.field_contacts(flat(pred_h), pred_ov, hv.index, tile(obj["vertex_index"]),
                             batch=batch).reshape(n_st, b, -1)
      cp, cr, vp, vr = M.contact_precision_recall(hit, jnp.broadcast_to(hit[-1], hit.shape))  # GT: the GT stage's.
      out.update(contact_p=cp, contact_r=cr, contact_vp=vp, contact_vr=vr)
    return out

  if search == "device":
    return jax.jit(score)
  if search != "host":
    raise ValueError(f"make_scorer: search={search!r}, expected 'device' or 'host'.")
  geometry = jax.jit(functools.partial(score, host=True))

  def score_host(stages, stats, gt, obj, skip=(), gt_hit=None):
    out, g = jax.device_get(geometry(stages, stats, gt, obj))
    g["shape"] = np.asarray(out["pen_depth_cm"]).shape
    out.update(_host_search(g, contact, skip, gt_hit))
    return out

  return score_host


_SEARCHED = ("cd_", "fscore_", "contact_")  # Metrics of the nearest-neighbour searches (what a skip leaves out).


def score_shared(scorer, shared: dict | None, key, stages, stats, gt, obj, names, skip=()) -> dict:
  """A host scorer's (make_scorer(search='host')) metrics {name: [S, B]} with the searches an earlier call
  for the same batch ``key`` ran copied rather than repeated.

  The first call per key keeps, in ``shared[key]``, the GT stage's contacts and the regressor stage's
  searched metrics (with its x). Later calls skip the GT stage's searches, and the regressor stage's too
  when their regressor estimate is the same array (every method and sweep point starts from it; checked,
  not assumed). names: the scorer's stages in order (stage_names; the GT last); skip: names searched by
  nobody (their rows hold no searched metric). shared=None: nothing kept or reused.
  """
  skip_i = {names.index(s) for s in skip}
  before = None if shared is None else shared.get(key)
  x_reg, kw, reuse = np.asarray(stages.x_regressor), {}, None
  if before is not None:
    skip_i.add(len(names) - 1)
    kw["gt_hit"] = before["gt_hit"]
    if 0 not in skip_i and before["regressor"] is not None and np.array_equal(before["x_regressor"], x_reg):
      skip_i.add(0)
      reuse = before["regressor"]
  per = {k: np.array(v) for k, v in scorer(stages, stats, gt, obj, skip=skip_i, **kw).items()}
  searched = [k for k in per if k.startswith(_SEARCHED)]
  if reuse is not None:
    for k in searched:
      per[k][0] = reuse[k]
  if shared is not None and key not in shared:
    shared[key] = {"x_regressor": x_reg, "gt_hit": per.get("gt_hit"),
                   "regressor": None if 0 in skip_i else {k: per[k][0].copy() for k in searched}}
  return per


def loss_rows(losses, num_rounds: int) -> dict:
  """Physical-loss terms per stage [S, B] (NaN for 'final', 'ground_truth'); rows of RefineOutput.losses are x_init, rounds."""
  out = {}
  for name, arr in (("loss_total", losses.total), ("loss_ho", losses.ho), ("loss_of", losses.of),
                    ("loss_pt", losses.pt)):
    arr = np.asarray(arr, np.float64)
    nan = np.full_like(arr[0], np.nan)
    rows = [arr[0]] + [arr[i + 1] for i in range(num_rounds)] + [arr[-1], nan, nan]
    out[name] = np.stack(rows)
  return out


def mask_counts(contacts, valid: int, threshold: float | tuple = 0.5) -> dict:
  """CDIR's masks per round, summed over the batch's valid rows: {'{human,object}_{on,flipped}': [R]}.

  contacts: RefineOutput.contacts (p_h [R, B, Nh], p_o [R, B, K], ...), the probabilities each round used;
  an entry is on above its head's ``threshold`` (RefineSettings.mask_threshold; the hard masks of
  RefineSettings.mask_mode='hard'); flipped counts entries that differ from the previous round's (0 in
  round 1). Frozen masks (w/o CDIR) flip nothing.
  """
  out = {}
  for name, p, t in zip(("human", "object"), contacts[:2], head_thresholds(threshold)):
    on = np.asarray(p, np.float64)[:, :valid] > t  # [R, b, n]
    flipped = np.concatenate([np.zeros_like(on[:1]), on[1:] != on[:-1]], 0)
    out[f"{name}_on"] = on.sum((1, 2)).astype(np.float64)
    out[f"{name}_flipped"] = flipped.sum((1, 2)).astype(np.float64)
  return out


# ------------------------------------------------------------------------------------------------
# The loop.
# ------------------------------------------------------------------------------------------------


class _StageAcc:
  """Sums over valid samples of the per-sample metrics of one stage, and its contact counts.

  The per-frame values are kept too (``frames``): confidence intervals are a bootstrap over frames
  (sweep.summarize), which needs them.
  """

  def __init__(self):
    self.sums = {k: 0.0 for k in STAGE_METRICS}
    self.counts = {k: 0 for k in STAGE_METRICS}
    self.prf = M.ContactPRF()
    self.per_frame = {k: [] for k in STAGE_METRICS + ("precision", "recall", "valid_p", "valid_r")}

  def add_contacts(self, p, r, valid_p, valid_r):
    """Per-sample contact precision / recall [B] with their validity flags (metrics.contact_precision_recall)."""
    acc = self.prf
    acc.sum_precision += float(np.sum(np.where(valid_p, p, 0.0)))
    acc.num_precision += int(np.sum(valid_p))
    acc.sum_recall += float(np.sum(np.where(valid_r, r, 0.0)))
    acc.num_recall += int(np.sum(valid_r))
    for k, v in (("precision", p), ("recall", r), ("valid_p", valid_p), ("valid_r", valid_r)):
      self.per_frame[k].extend(np.asarray(v, np.float64).tolist())

  def add(self, name: str, values: np.ndarray):
    values = np.asarray(values, np.float64)
    ok = np.isfinite(values)
    self.sums[name] += float(values[ok].sum())
    self.counts[name] += int(ok.sum())
    self.per_frame[name].extend(values.tolist())  # NaN kept: frame i is entry i of every list.

  def frames(self) -> dict:
    """{metric: [F]} per frame (contact entries only under the 'full' protocol)."""
    return {k: v for k, v in self.per_frame.items() if v}

  def result(self) -> dict:
    out = {k: (self.sums[k] / self.counts[k] if self.counts[k] else float("nan")) for k in STAGE_METRICS}
    c = self.prf.result()
    out.update(contact_precision=c["precision"], contact_recall=c["recall"], contact_f1=c["f1"],
               contact_num_precision=c["num_precision"], contact_num_recall=c["num_recall"])
    return out


def _open(data_dir: str, split: str, dataset: str, limit: int | None):
  from scorehoi_jax.data.tfds_common import data_source
  src = data_source(data_dir, dataset, split)  # DatasetError names a missing folder or split.
  if limit is not None and limit < 1:
    raise EvaluationError(f"--limit must be at least 1, got {limit}.")
  n = len(src) if limit is None else min(int(limit), len(src))
  if n == 0:
    raise EvaluationError(f"{data_dir}: split '{split}' of {dataset} is empty.")
  return src, n


def _object_arrays(objs, vo: int) -> dict:
  """Stacked arrays of a batch's EvalObjects: vertices padded to ``vo`` (weight 0), samples, cluster indices."""
  verts = np.zeros((len(objs), vo, 3), np.float32)
  weight = np.zeros((len(objs), vo), np.float32)
  for i, o in enumerate(objs):
    verts[i, :len(o.vertices)] = o.vertices
    weight[i, :len(o.vertices)] = 1.0
  from scorehoi_jax.objects.geometry import stack_geometries
  n_s = len(objs[0].gt_samples)
  cv, cs = N.num_clusters_for(vo, VERTEX_CLUSTER), N.num_clusters_for(n_s, SAMPLE_CLUSTER)
  out = {"vertices": verts, "weight": weight, "gt_samples": np.stack([o.gt_samples for o in objs]),
         "pred_samples": np.stack([o.pred_samples for o in objs]),
         "vertex_index": np.stack([o.clusters("vertices", cv).index for o in objs]),
         "geometry": stack_geometries([o.geometry for o in objs])}
  for which in ("gt", "pred"):
    c = [o.clusters(which, cs) for o in objs]
    out[f"{which}_index"] = np.stack([x.index for x in c])
    out[f"{which}_first"] = np.stack([x.first for x in c])
  return out


def _batches(src, n: int, batch_size: int, image_size: int, cache: ObjectCache, vo: int):
  """(batch dict, objects, object arrays, number of valid rows) with the last batch padded (valid = 0)."""
  from scorehoi_jax.data.pipeline import PipelineConfig, make_example, stack
  from scorehoi_jax.data.tfds_common import decode_record
  cfg = PipelineConfig(size=image_size)
  for start in range(0, n, batch_size):
    recs = [decode_record(src[i]) for i in range(start, min(n, start + batch_size))]
    exs = [make_example(r, cfg)[0] for r in recs]
    objs = [cache.get(_object_key(r)) for r in recs]
    valid = len(exs)
    # Padding repeats a real frame (finite everywhere) and is flagged invalid; only valid rows are counted.
    exs += [dict(exs[0], valid=np.zeros_like(exs[0]["valid"]))] * (batch_size - valid)
    objs += [objs[0]] * (batch_size - valid)
    yield stack(exs), objs, _object_arrays(objs, vo), valid


def _settings_dict(s: RefineSettings) -> dict:
  return {k: (v if isinstance(v, (int, float, str, bool, type(None))) else str(v))
          for k, v in dataclasses.asdict(s).items()}


# Compiled functions reused across evaluate() calls (a sweep, several configs): keyed by the static
# structure only (weights are traced arguments). Values hold their model, so an id() is never reused.
_RECONSTRUCTORS: dict = {}
_SCORERS: dict = {}


def _stats_key(stats) -> tuple:
  return tuple(np.asarray(v, np.float32).tobytes() for v in jax.tree_util.tree_leaves(stats))


def cached_reconstructor(model, cfg, settings: RefineSettings, refine_fn: Callable | None) -> Reconstructor:
  """A Reconstructor for (model, static settings, refine_fn, betas stats, condition switches), built once.

  Guidance weights are not part of the key: pass ``weights_from_config(cfg)`` to the call.
  """
  from scorehoi_jax.diffusion.sampler import betas_stats_from_config
  den = cfg.get("denoiser", {})
  switches = (bool(den.get("use_image_cond", True)), bool(den.get("use_geo_cond", True)))  # Static: the network.
  key = (id(model), settings, refine_fn, _stats_key(betas_stats_from_config(cfg)), switches)
  if key not in _RECONSTRUCTORS:
    if len(_RECONSTRUCTORS) >= 16:
      _RECONSTRUCTORS.pop(next(iter(_RECONSTRUCTORS)))
    _RECONSTRUCTORS[key] = (model, Reconstructor(model, cfg, settings=settings, refine_fn=refine_fn))
  return _RECONSTRUCTORS[key][1]


def resolve_search(search: str) -> str:
  """'auto' → 'host' on a CPU backend (KD-trees beat the device search's brute-force fallbacks there),
  'device' on an accelerator."""
  if search == "auto":
    return "host" if jax.default_backend() == "cpu" else "device"
  return search


def cached_scorer(bodies: Bodies, num_samples: int, hand_mean: bool, contact: str, search: str = "auto"):
  search = resolve_search(search)
  key = (id(bodies), num_samples, hand_mean, contact, search)
  if key not in _SCORERS:
    _SCORERS[key] = (bodies, make_scorer(bodies, num_samples, hand_mean=hand_mean, contact=contact, search=search))
  return _SCORERS[key][1]


def evaluate(model, data_dir: str, split: str = "test", methods=DEFAULT_METHODS, *, limit: int | None = None,
             batch_size: int = 16, refine_config=None, num_samples: int = M.NUM_CHAMFER_SAMPLES,
             dataset: str = "synthetic_hoi", baseline: BaselineConfig = BaselineConfig(),
             extra_methods: dict | None = None, objects: Callable | None = None, progress: bool = True,
             contact: str = "full", mesh=None, per_frame: bool = False, score_rounds: bool = True,
             search: str = "auto", stages=None) -> dict:
  """Score methods on a prepared dataset split; returns a JSON-ready dict.

  Args:
    model: a TrainedModel (model_store.load_model).
    data_dir: the folder given to ``scorehoi prepare --out``.
    split: dataset split.
    methods: names from METHODS (or keys of ``extra_methods``).
    limit: score only the first ``limit`` frames.
    batch_size: fixed batch shape (the last batch is padded); a multiple of the devices of ``mesh``.
    refine_config: refine config (configs/refine_paper.py layout); default the paper's.
    num_samples: surface samples per mesh for the Chamfer distance (field: 6000).
    dataset: TFDS dataset name under data_dir.
    baseline: settings of the optimisation baseline.
    extra_methods: {name: (RefineSettings, refine_fn or None[, GuidanceWeights])} evaluated like the
      built-in ones; the optional weights replace the refine config's for that method (traced: methods that
      differ only in weights share one compiled program).
    search: nearest neighbours on 'device' (nearest.py), on the 'host' (SciPy KD-trees; same values,
      faster on a CPU backend: make_scorer), or 'auto' (host on a CPU backend, else device).
    score_rounds: also score x after every refinement round (round_1 … round_N). Off, only the
      regressor, refined, final and GT stages are scored: scoring is most of an evaluation's cost on a
      CPU (each stage is a nearest-neighbour search per mesh), and every method then shares one scorer.
    stages: the stages to score and report among "regressor", "refined" and "final" (default all three;
      rounds: ``score_rounds``). A sweep over one stage scores a third of the stages. With the host search
      the regressor's stage and the GT's are scored once per frame for all methods (every method starts
      from the same regressor estimate, checked frame by frame) and copied to the others.
    per_frame: also return every stage's per-frame metrics (``methods[name]["frames"]``), for
      bootstrap intervals over frames (sweep.summarize).
    objects: (name, seed) -> ObjectTemplate, the exact object mesh of a record (GT and contacts are
      measured on it). Default: the object library (right for synthetic_hoi only; real datasets need
      their own meshes, e.g. via objects.load_object).
    progress: tqdm progress bars.
    contact: 'full' (default, the field's protocol: every body vertex, in contact within 5 cm of the
      nearest object vertex, GT contacts the same from the GT meshes) or 'guidance' (the 431 guidance
      vertices within 5 cm of the object surface against the record's ``human_contact`` labels).
    mesh: the device mesh (one ``data`` axis, train/sharding.py); default every device.

  Returns:
    {"dataset", "split", "num_frames", "batch_size", "num_samples", "backend", "settings", "contact",
     "methods": {name: {"description", "settings", "stages": {stage: metrics}, "seconds_per_sample",
     "compile_seconds", "refine_seconds", "scoring_seconds", "wall_seconds"}}, "ground_truth": metrics}
  """
  from tqdm import tqdm
  from scorehoi_jax.diffusion.sampler import settings_from_config, weights_from_config
  from scorehoi_jax.reconstruct import default_refine_config
  from scorehoi_jax.train import sharding
  extra_methods = dict(extra_methods or {})
  methods = [m.strip() for m in (methods.split(",") if isinstance(methods, str) else methods) if m.strip()]
  for m in methods:
    if m not in METHODS and m not in extra_methods:
      raise EvaluationError(f"unknown method {m!r}; known methods: {', '.join(list(METHODS) + list(extra_methods))}.")
  if not methods:
    raise EvaluationError("no method to evaluate.")
  if batch_size < 1:
    raise EvaluationError(f"--batch must be at least 1, got {batch_size}.")
  if contact not in ("full", "guidance"):
    raise EvaluationError(f"contact protocol {contact!r}: expected 'full' or 'guidance'.")
  mesh = mesh if mesh is not None else sharding.make_mesh()
  sharding.check_batch_size(batch_size, mesh)
  cfg = refine_config if refine_config is not None else default_refine_config()
  search = resolve_search(search)
  base_settings = settings_from_config(cfg, model.config)
  weights = weights_from_config(cfg)
  if objects is None and dataset != "synthetic_hoi":
    raise EvaluationError(f"evaluating {dataset} needs the dataset's own object meshes (--objects DIR, or "
                          "objects=... from Python); the built-in library holds procedural stand-ins, which "
                          "would be a wrong ground truth.")
  wanted = ("regressor", "refined", "final") if stages is None else tuple(stages)
  if not wanted or set(wanted) - {"regressor", "refined", "final"}:
    raise EvaluationError(f"stages {wanted!r}: expected some of 'regressor', 'refined', 'final'.")
  src, n = _open(data_dir, split, dataset, limit)
  cache = shared_object_cache(num_samples, objects)
  keys = sorted({_object_key(src[i]) for i in range(n)}, key=str)
  vo = max(len(cache.get(k).vertices) for k in tqdm(keys, desc="objects", disable=not progress, leave=False))
  image_size = int(model.config.data.image_size)
  result = {"dataset": dataset, "split": split, "num_frames": n, "batch_size": batch_size,
            "num_samples": num_samples, "backend": jax.default_backend(), "devices": int(mesh.devices.size),
            "device": str(jax.devices()[0].device_kind), "settings": _settings_dict(base_settings),
            "contact": contact, "methods": {}}
  gt_acc = None
  # Per batch, from the first method: its regressor estimate, that stage's searched metrics and the GT
  # stage's contacts (host search), so later methods skip those searches.
  shared: dict[int, dict] = {}
  for name in methods:
    spec = tuple(extra_methods[name]) if name in extra_methods else method_setup(name, base_settings, baseline)
    settings, refine_fn = spec[:2]
    method_weights = spec[2] if len(spec) > 2 and spec[2] is not None else weights
    recon = cached_reconstructor(model, cfg, settings, refine_fn)
    variables = sharding.replicate(recon.variables, mesh)
    scorer = cached_scorer(recon.bodies, num_samples, settings.hand_mean, contact, search)
    refined_rounds = settings.num_rounds if (settings.use_diffusion or refine_fn is not None) else 0
    rounds = refined_rounds if score_rounds else 0  # Rounds scored.
    all_names = stage_names(rounds)  # The scorer's stages, in its order.
    names = [s for s in all_names if s not in ("regressor", "refined", "final") or s in wanted]
    if gt_acc is not None:
      names.remove("ground_truth")  # Identical for every method: scored once.
    accs = {s: _StageAcc() for s in names}
    non_finite, mask_sum = [], None
    run_time, compile_time, score_time, t_wall = 0.0, 0.0, 0.0, time.perf_counter()
    bar = tqdm(total=n, desc=name, unit="frame", disable=not progress)
    for bi, (batch, objs, arrays, valid) in enumerate(_batches(src, n, batch_size, image_size, cache, vo)):
      inputs = sharding.shard_batch(recon.inputs(batch), mesh)
      arrays = sharding.shard_batch(arrays, mesh)
      call = lambda: recon._fn(*recon.arguments(inputs, arrays["geometry"], method_weights, variables))  # pylint: disable=protected-access
      if bi == 0:  # Compile (untimed), then time the same batch like every other one.
        t0 = time.perf_counter()
        jax.block_until_ready(call())
        compile_time = time.perf_counter() - t0
      t0 = time.perf_counter()
      stages = jax.block_until_ready(call())
      run_time += time.perf_counter() - t0
      # A frame whose refinement diverged is named; its metrics are non-finite and left out of every mean
      # (_StageAcc.add), and the rows of a batch are independent, so its batch mates are unaffected.
      bad = ~np.all(np.isfinite(np.asarray(stages.x_refined)[:valid]), axis=-1)
      non_finite += [bi * batch_size + int(i) for i in np.nonzero(bad)[0]]
      t0 = time.perf_counter()
      gt = sharding.shard_batch({k: np.asarray(batch[k]) for k in ("pose", "betas", "obj_rot", "obj_trans")}, mesh)
      scored = stages if rounds == refined_rounds else stages._replace(x_rounds=stages.x_rounds[:0])
      if search == "host":
        skipped = [s for s in all_names if s not in names and s != "ground_truth"]
        per = score_shared(scorer, shared, bi, scored, recon.stats, gt, arrays, all_names, skipped)
      else:
        per = jax.device_get(scorer(scored, recon.stats, gt, arrays))
      losses_ = stages.refine.losses
      if rounds != refined_rounds:  # Keep the rows of x_init and of the last round only.
        losses_ = jax.tree.map(lambda a: jnp.stack([a[0], a[-1]]), losses_)
      per.update(loss_rows(losses_, rounds))
      if refined_rounds and stages.refine.contacts is not None and len(stages.refine.contacts[0]):
        counts = mask_counts(jax.device_get(stages.refine.contacts), valid, settings.mask_threshold)
        mask_sum = counts if mask_sum is None else {k: mask_sum[k] + v for k, v in counts.items()}
      if contact == "guidance":
        labels = np.asarray(batch["human_contact"]) > 0.5
      for si, stage in enumerate(all_names):
        if stage not in accs:
          continue
        acc = accs[stage]
        for k in STAGE_METRICS:
          acc.add(k, per[k][si, :valid])
        if contact == "full":
          acc.add_contacts(*(per[k][si, :valid] for k in ("contact_p", "contact_r", "contact_vp", "contact_vr")))
        else:
          pred = np.stack([objs[i].contacts(per["guidance_points"][si, i], per["rotmat"][si, i], per["trans"][si, i])
                           for i in range(valid)])
          acc.prf.update(pred, labels[:valid])
      score_time += time.perf_counter() - t0
      bar.update(valid)
    bar.close()
    if gt_acc is None:
      gt_acc = accs["ground_truth"]
    result["methods"][name] = {
        "description": METHODS.get(name, "user-defined"), "settings": _settings_dict(settings),
        "stages": {s: accs[s].result() for s in names if s != "ground_truth"},
        "seconds_per_sample": run_time / n, "compile_seconds": compile_time, "refine_seconds": run_time,
        "scoring_seconds": score_time, "wall_seconds": time.perf_counter() - t_wall,
        "non_finite_frames": non_finite}
    if mask_sum is not None:  # Mean entries per frame, per round: does CDIR change the masks?
      result["methods"][name]["masks"] = {k: (v / n).tolist() for k, v in mask_sum.items()}
    if per_frame:
      result["methods"][name]["frames"] = {s: accs[s].frames() for s in names if s != "ground_truth"}
  result["ground_truth"] = gt_acc.result()
  return result
