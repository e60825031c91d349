"""`scorehoi sweep`: a grid of refine settings scored on a prepared split, one compile per static structure.

  scorehoi sweep --data DIR --grid guidance.rho=0.5,1,2 --grid guidance.lambda_pt=1,5,20 --limit 48 --out OUT

Every grid point is the refine config with those fields set (``config.apply_override``). Points whose
static part (RefineSettings) agrees share one ``Reconstructor``, i.e. one ``jax.jit``: their
GuidanceWeights are passed as traced arguments, so a grid over guidance.* compiles once (the count is
reported, from the jitted function's cache). Each point is scored on the ``stage`` it refines
('refined': x after refinement, what `scorehoi reconstruct` writes; or 'final', after the CRFormer)
with the evaluator's scorer, frame by frame, and written to OUT/points/<name>.json as soon as it is done:
a rerun skips finished points (resumable). Then:

  OUT/sweep.md, sweep.json  the table: mean and 95 % bootstrap interval over frames (1000 resamples,
                            contact F1 recomputed from resampled P and R) of every metric, plus the
                            regressor's row (the starting point, identical for every point);
  OUT/pareto.png            CD human vs contact F1 vs penetration, 2-D panels, non-dominated points marked;
  OUT/curves.png            per-step guidance loss terms (mean over frames) of the chosen points, from the
                            refine traces (RefineSettings.trace, on unless --no-trace).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import time

import numpy as np

from scorehoi_jax.errors import ScoreHOIError

METRICS = (("cd_human", "CD human (cm) ↓", 2), ("cd_object", "CD object (cm) ↓", 2),
           ("contact_precision", "contact P ↑", 3), ("contact_recall", "contact R ↑", 3),
           ("contact_f1", "contact F1 ↑", 3), ("pen_depth_cm", "penetration (cm) ↓", 3),
           ("pen_frac", "inside (%) ↓", 2))
PER_FRAME = ("cd_human", "cd_object", "fscore_human", "fscore_object", "pen_depth_cm", "pen_frac")


class SweepError(ScoreHOIError):
  """A grid, output folder or setting the sweep cannot use; the message names it."""


# ------------------------------------------------------------------------------------------------
# The grid.
# ------------------------------------------------------------------------------------------------


def parse_grid(items) -> list[tuple[str, list[str]]]:
  """["guidance.rho=0.5,1,2", ...] -> [("guidance.rho", ["0.5", "1", "2"]), ...] (values as written)."""
  out = []
  for item in items:
    key, sep, vals = item.partition("=")
    key = key.strip().removeprefix("config.")
    values = [v.strip() for v in vals.split(",") if v.strip()]
    if not sep or not key or not values:
      raise SweepError(f"--grid {item!r}: expected FIELD=V1,V2,... (e.g. guidance.rho=0.5,1,2).")
    if key in (k for k, _ in out):
      raise SweepError(f"--grid {key} given twice.")
    out.append((key, values))
  if not out:
    raise SweepError("no --grid given.")
  return out


def grid_points(grid) -> list[dict]:
  """The Cartesian product of the grid, in order (last field fastest): [{field: raw value}, ...]."""
  keys = [k for k, _ in grid]
  return [dict(zip(keys, combo)) for combo in itertools.product(*[v for _, v in grid])]


def point_name(point: dict) -> str:
  """A file-safe name of a grid point: 'rho=0.5_lambda_pt=5'."""
  text = "_".join(f"{k.split('.')[-1]}={v}" for k, v in point.items())
  return re.sub(r"[^A-Za-z0-9_.=+-]", "-", text)


def point_config(cfg, point: dict, source: str = "sweep grid"):
  """A copy of the refine config with the point's fields set (the same rules as --config.x=y)."""
  from scorehoi_jax.config import apply_override
  cfg = cfg.copy_and_resolve_references()
  for key, raw in point.items():
    apply_override(cfg, f"config.{key}={raw}", source=source)
  return cfg


# ------------------------------------------------------------------------------------------------
# Statistics.
# ------------------------------------------------------------------------------------------------


def bootstrap_indices(n: int, resamples: int = 1000, seed: int = 0) -> np.ndarray:
  """int [1 + resamples, n]: row 0 the frames themselves, then resamples with replacement.

  Two methods scored on the same frames and resampled with the same indices give a paired bootstrap
  of their difference (experiments/ablation_synthetic.py).
  """
  rng = np.random.default_rng(seed)
  return np.concatenate([np.arange(n)[None], rng.integers(0, n, size=(resamples, n))], 0)


def bootstrap_stats(frames: dict, idx: np.ndarray) -> dict:
  """{metric: [1 + resamples]}: each metric's mean over the frames of every row of ``idx``.

  frames: per-frame arrays [F] of PER_FRAME metrics and the contact "precision", "recall",
  "valid_p", "valid_r". Contact P and R are means over the resampled frames with a non-empty
  prediction (ground truth), F1 from those means, as the field computes it (metrics.ContactPRF).
  """
  from scorehoi_jax.evaluation.metrics import f1_score
  stats = {}
  for k in PER_FRAME:
    v = np.asarray(frames[k], np.float64)[idx]
    stats[k] = np.nanmean(v, axis=1)
  p, r = (np.asarray(frames[k], np.float64)[idx] for k in ("precision", "recall"))
  vp, vr = (np.asarray(frames[k], bool)[idx] for k in ("valid_p", "valid_r"))
  with np.errstate(invalid="ignore"):
    stats["contact_precision"] = np.sum(p * vp, 1) / np.sum(vp, 1)
    stats["contact_recall"] = np.sum(r * vr, 1) / np.sum(vr, 1)
  stats["contact_f1"] = f1_score(stats["contact_precision"], stats["contact_recall"])
  return stats


def interval(v: np.ndarray, level: float = 0.95) -> dict:
  """{"mean", "lo", "hi"} of bootstrap_stats' row: the data's value and the percentile interval."""
  q = 100 * (1 - level) / 2
  boot = v[1:][np.isfinite(v[1:])]
  lo, hi = (np.percentile(boot, [q, 100 - q]) if len(boot) else (np.nan, np.nan))
  return {"mean": float(v[0]), "lo": float(lo), "hi": float(hi)}


def summarize(frames: dict, resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
  """{metric: {"mean", "lo", "hi"}} with a percentile bootstrap over frames (see bootstrap_stats)."""
  idx = bootstrap_indices(len(frames["cd_human"]), resamples, seed)
  return {k: interval(v, level) for k, v in bootstrap_stats(frames, idx).items()}


def pareto_mask(cd, f1, pen) -> np.ndarray:
  """bool [P]: points no other point beats on all of (CD ↓, F1 ↑, penetration ↓) and strictly on one."""
  pts = np.stack([np.asarray(cd, float), -np.asarray(f1, float), np.asarray(pen, float)], 1)
  keep = np.ones(len(pts), bool)
  for i in range(len(pts)):
    others = np.delete(pts, i, 0)
    keep[i] = not np.any(np.all(others <= pts[i], 1) & np.any(others < pts[i], 1))
  return keep


# ------------------------------------------------------------------------------------------------
# Scoring one point (a thin layer over the evaluator's scorer and contact labels).
# ------------------------------------------------------------------------------------------------


class _Data:
  """The split's batches, prepared once and reused by every grid point."""

  def __init__(self, data_dir, split, dataset, limit, batch_size, image_size, num_samples, progress):
    from scorehoi_jax.evaluation import evaluator as E
    self.src, self.n = E._open(data_dir, split, dataset, limit)
    self.cache = E.shared_object_cache(num_samples)
    keys = sorted({E._object_key(self.src[i]) for i in range(self.n)}, key=str)
    vo = max(len(self.cache.get(k).vertices) for k in keys)
    self.batches = list(E._batches(self.src, self.n, batch_size, image_size, self.cache, vo))


def _score_point(recon, weights, data: _Data, scorer, stage: str, shared: dict | None = None):
  """(per-frame metrics {name: [F]}, regressor's per-frame metrics, per-step trace means or None, seconds).

  shared: per batch, the regressor stage's searched metrics and the GT stage's contacts of the first point
  scored (filled here): with the host search later points skip those searches (every point starts from the
  same regressor estimate, checked) and the stage they do not report ('final' or 'refined').
  """
  import jax
  import jax.numpy as jnp
  from scorehoi_jax.evaluation import evaluator as E
  names = E.stage_names(0)  # regressor, refined, final, ground_truth: the rounds are not scored here.
  rows = {s: {k: [] for k in PER_FRAME + ("precision", "recall", "valid_p", "valid_r")} for s in ("regressor", stage)}
  host = E.resolve_search("auto") == "host"
  trace_sum, seconds = None, 0.0
  for bi, (batch, objs, arrays, valid) in enumerate(data.batches):
    t0 = time.perf_counter()
    stages = jax.block_until_ready(recon(batch, arrays["geometry"], weights))
    seconds += time.perf_counter() - t0
    gt = {k: jnp.asarray(batch[k]) for k in ("pose", "betas", "obj_rot", "obj_trans")}
    obj = {k: (jnp.asarray(v) if k != "geometry" else v) for k, v in arrays.items()}
    # The evaluator's scorer, field protocol: contacts of every body vertex within 5 cm, GT from the GT meshes.
    scored = stages._replace(x_rounds=stages.x_rounds[:0])
    if host:
      per = E.score_shared(scorer, shared, bi, scored, recon.stats, gt, obj, names,
                           skip=("final" if stage == "refined" else "refined",))
    else:
      per = {k: np.array(v) for k, v in scorer(scored, recon.stats, gt, obj).items()}
    for s, acc in rows.items():
      si = names.index(s)
      for k in PER_FRAME:
        acc[k].extend(per[k][si, :valid].tolist())
      for k, src in (("precision", "contact_p"), ("recall", "contact_r"), ("valid_p", "contact_vp"),
                     ("valid_r", "contact_vr")):
        acc[k].extend(np.asarray(per[src][si, :valid], np.float64).tolist())
    tr = stages.refine.trace
    if tr is not None:
      sums = {f: np.asarray(getattr(tr.terms, f), np.float64)[..., :valid].sum(-1) for f in tr.terms._fields}
      sums["prior_step"] = np.asarray(tr.prior_step, np.float64)[..., :valid].sum(-1)
      sums["guidance_step"] = np.asarray(tr.guidance_step, np.float64)[..., :valid].sum(-1)
      trace_sum = sums if trace_sum is None else {k: trace_sum[k] + v for k, v in sums.items()}
  curves = None
  if trace_sum is not None:
    curves = {k: (v / data.n).reshape(-1).tolist() for k, v in trace_sum.items()}  # [R·S] rounds in order.
  return rows[stage], rows["regressor"], curves, seconds


# ------------------------------------------------------------------------------------------------
# The driver.
# ------------------------------------------------------------------------------------------------


def _write_json(path: str, obj) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=1, default=float)
  os.replace(tmp, path)  # A point's file exists whole or not at all: what makes the sweep resumable.


def run_sweep(model, data_dir: str, grid_items, out_dir: str, *, refine_config, split: str = "test",
              dataset: str = "synthetic_hoi", limit: int | None = None, batch_size: int = 16,
              num_samples: int | None = None, stage: str = "refined", trace: bool = True, curves=None,
              resamples: int = 1000, progress: bool = True, checkpoint_name: str = "") -> dict:
  """Run (or resume) a sweep; returns the summary written to OUT/sweep.json.

  Args:
    model: a TrainedModel. data_dir / split / dataset / limit: the frames (as `scorehoi evaluate`).
    grid_items: ["section.field=v1,v2,...", ...]; the grid is their Cartesian product.
    out_dir: results folder (created; a rerun with the same spec resumes, another spec is refused).
    refine_config: the base refine config. batch_size: fixed batch shape (last batch padded).
    num_samples: Chamfer surface samples per mesh (default: the field's 6000).
    stage: 'refined' (refinement output) or 'final' (after the CRFormer).
    trace: turn RefineSettings.trace on (per-step loss curves; adds per-term gradients to the program).
    curves: names of the points whose loss curves to plot (default: all, up to 9).
    resamples: bootstrap resamples.
  """
  from tqdm import tqdm
  from scorehoi_jax.diffusion.sampler import settings_from_config, weights_from_config
  from scorehoi_jax.evaluation import evaluator as E
  from scorehoi_jax.evaluation.metrics import NUM_CHAMFER_SAMPLES
  from scorehoi_jax.reconstruct import Reconstructor

  if stage not in ("refined", "final"):
    raise SweepError(f"--stage {stage!r}: expected 'refined' or 'final'.")
  if batch_size < 1:
    raise SweepError(f"--batch must be at least 1, got {batch_size}.")
  num_samples = num_samples or NUM_CHAMFER_SAMPLES
  grid = parse_grid(grid_items)
  points = grid_points(grid)
  base = refine_config.copy_and_resolve_references()
  if trace:
    base.refine.trace = True
  cfgs = [point_config(base, p) for p in points]  # Unknown fields fail here, before any work.
  names = [point_name(p) for p in points]
  spec = {"data": os.path.abspath(data_dir), "split": split, "dataset": dataset, "limit": limit,
          "batch_size": batch_size, "num_samples": num_samples, "stage": stage, "model": checkpoint_name,
          "config_hash": hashlib.sha256(base.to_json(sort_keys=True).encode()).hexdigest()[:16]}
  point_dir = os.path.join(out_dir, "points")
  os.makedirs(point_dir, exist_ok=True)
  spec_path = os.path.join(out_dir, "spec.json")
  if os.path.exists(spec_path):
    with open(spec_path) as f:
      old = json.load(f)
    if old != spec:
      diff = sorted(k for k in spec if old.get(k) != spec[k])
      raise SweepError(f"{out_dir}: holds a sweep with other {', '.join(diff)}; use another --out.")
  else:
    _write_json(spec_path, spec)

  # Group points by their static structure: one Reconstructor (one compile) per group.
  groups: dict = {}
  for i, cfg in enumerate(cfgs):
    try:
      groups.setdefault(settings_from_config(cfg, model.config), []).append(i)
    except ValueError as e:
      raise SweepError(f"grid point {names[i]}: {e}") from None
  data, scorer, compiles, ran, compile_seconds, shared = None, None, 0, [], [], {}
  for settings, members in groups.items():
    todo = [i for i in members if not os.path.exists(os.path.join(point_dir, names[i] + ".json"))]
    if not todo:
      continue
    recon = Reconstructor(model, cfgs[todo[0]], settings=settings)
    if data is None:
      data = _Data(data_dir, split, dataset, limit, batch_size, recon.image_size, num_samples, progress)
      scorer = E.cached_scorer(recon.bodies, num_samples, settings.hand_mean, "full")
    weights_of = {}
    for i in todo:
      try:
        weights_of[i] = weights_from_config(cfgs[i])
      except ValueError as e:
        raise SweepError(f"grid point {names[i]}: {e}") from None
    t0 = time.perf_counter()  # Compile once, untimed in the points' seconds per frame.
    import jax
    jax.block_until_ready(recon(data.batches[0][0], data.batches[0][2]["geometry"], weights_of[todo[0]]))
    compile_seconds.append(time.perf_counter() - t0)
    for i in tqdm(todo, desc=f"sweep ({len(todo)} points, one program)", disable=not progress):
      weights = weights_of[i]
      frames, reg, curve, seconds = _score_point(recon, weights, data, scorer, stage, shared)
      _write_json(os.path.join(point_dir, names[i] + ".json"),
                  {"name": names[i], "point": points[i], "frames": frames, "regressor_frames": reg,
                   "curves": curve, "refine_seconds": seconds, "num_frames": data.n})
      ran.append(names[i])
    compiles += recon._fn._cache_size()
  summary = write_report(out_dir, names, points, resamples=resamples, curves=curves)
  summary.update(compiles=compiles, ran=ran, skipped=[n for n in names if n not in ran],
                 static_structures=len(groups), compile_seconds=compile_seconds)
  _write_json(os.path.join(out_dir, "sweep.json"), summary)
  return summary


def _load_points(out_dir: str, names) -> list[dict]:
  out = []
  for n in names:
    with open(os.path.join(out_dir, "points", n + ".json")) as f:
      out.append(json.load(f))
  return out


def _cell(s: dict, digits: int, pct: bool) -> str:
  k = 100.0 if pct else 1.0
  if not np.isfinite(s["mean"]):
    return "–"
  return f"{k * s['mean']:.{digits}f} [{k * s['lo']:.{digits}f}, {k * s['hi']:.{digits}f}]"


def write_report(out_dir: str, names, points, resamples: int = 1000, curves=None) -> dict:
  """sweep.md (table with 95 % intervals), pareto.png and curves.png from the finished point files."""
  recs = _load_points(out_dir, names)
  rows = {r["name"]: summarize(r["frames"], resamples) for r in recs}
  reg = summarize(recs[0]["regressor_frames"], resamples)
  lines = [f"Frames: {recs[0]['num_frames']}. Cells: mean [95 % bootstrap interval over frames, {resamples} "
           "resamples].", "",
           "| point | " + " | ".join(m[1] for m in METRICS) + " | s/frame |",
           "|" + "---|" * (len(METRICS) + 2)]
  lines.append("| regressor (start) | " + " | ".join(_cell(reg[k], d, k == "pen_frac") for k, _, d in METRICS) + " | – |")
  for r in recs:
    cells = [_cell(rows[r["name"]][k], d, k == "pen_frac") for k, _, d in METRICS]
    lines.append(f"| {r['name']} | " + " | ".join(cells) + f" | {r['refine_seconds'] / r['num_frames']:.3f} |")
  front = pareto_mask([rows[n]["cd_human"]["mean"] for n in names], [rows[n]["contact_f1"]["mean"] for n in names],
                      [rows[n]["pen_depth_cm"]["mean"] for n in names])
  lines += ["", "Non-dominated (CD human ↓, contact F1 ↑, penetration ↓): " +
            ", ".join(n for n, k in zip(names, front) if k)]
  with open(os.path.join(out_dir, "sweep.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  plot_pareto(os.path.join(out_dir, "pareto.png"), names, rows, front, reg)
  chosen = [r for r in recs if r.get("curves") and (curves is None or r["name"] in curves)][:9]
  if chosen:
    plot_curves(os.path.join(out_dir, "curves.png"), chosen)
  return {"points": {n: rows[n] for n in names}, "regressor": reg, "pareto": [n for n, k in zip(names, front) if k],
          "table": lines}


def plot_pareto(path: str, names, rows: dict, front, reg: dict) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  axes_def = (("cd_human", "contact_f1"), ("cd_human", "pen_depth_cm"), ("contact_f1", "pen_depth_cm"))
  label = {k: t for k, t, _ in METRICS}
  fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
  for ax, (kx, ky) in zip(axes, axes_def):
    for n, on in zip(names, front):
      sx, sy = rows[n][kx], rows[n][ky]
      ax.errorbar(sx["mean"], sy["mean"], xerr=[[sx["mean"] - sx["lo"]], [sx["hi"] - sx["mean"]]],
                  yerr=[[sy["mean"] - sy["lo"]], [sy["hi"] - sy["mean"]]], fmt="o" if on else "x",
                  color="C3" if on else "C0", alpha=0.9 if on else 0.5, capsize=2, ms=5)
      ax.annotate(n, (sx["mean"], sy["mean"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.plot(reg[kx]["mean"], reg[ky]["mean"], "s", color="k", ms=6, label="regressor (start)")
    ax.set_xlabel(label[kx])
    ax.set_ylabel(label[ky])
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=7, loc="best")
  fig.suptitle("Sweep: red = non-dominated in (CD human ↓, contact F1 ↑, penetration ↓); bars: 95 % bootstrap")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_curves(path: str, recs) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  keys = [k for k in recs[0]["curves"]]
  fig, axes = plt.subplots(1, len(keys), figsize=(3.3 * len(keys), 3.4))
  for ax, k in zip(np.atleast_1d(axes), keys):
    for r in recs:
      ax.plot(r["curves"][k], label=r["name"], lw=1)
    ax.set_title(k, fontsize=9)
    ax.set_xlabel("sampling step (rounds in order)", fontsize=8)
    ax.grid(alpha=0.3)
  np.atleast_1d(axes)[0].legend(fontsize=6)
  fig.suptitle("Per-step guidance terms at x̂0 (mean over frames) and update sizes")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
