"""Does the reconstruction land on the person and the object? (issue "Land on the person", Measure)

For each frame of a prepared synthetic split, the meshes of each method are drawn into the *full*
image with the image camera (what the overlay PNGs show) and compared with the input masks:
silhouette IoU of the human and of the object, and the image-plane offset of the pelvis against the
ground truth's, in pixels. Methods:

  regressor      the regressor's estimate (refine_paper, no diffusion);
  scorehoi       the paper's refinement (refine_paper);
  scorehoi+mask  the refinement with the image evidence (refine_reconstruct: placement fit + L_mask).

Every number carries a 95 % bootstrap confidence interval over frames (1000 resamples). CD and
contact F1 of the same methods come from `scorehoi evaluate` (evaluation.md / ablation_synthetic.md).

  .venv/bin/python experiments/alignment.py --data DATA --split test --limit 200 [--checkpoint MODEL] \
      [--name capture]            # appends a section to experiments/results/alignment.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys

import jax
import numpy as np
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from scorehoi_jax.config import load_config  # noqa: E402
from scorehoi_jax.data import pipeline  # noqa: E402
from scorehoi_jax.data.tfds_common import data_source, decode_record  # noqa: E402
from scorehoi_jax.evaluation.alignment import camera_of, mask_iou, pixel_of, silhouettes  # noqa: E402
from scorehoi_jax.model_store import default_model_path, load_model  # noqa: E402
from scorehoi_jax.objects import get_object  # noqa: E402
from scorehoi_jax.objects.geometry import stack_geometries  # noqa: E402
from scorehoi_jax.reconstruct import Reconstructor, full_vertices  # noqa: E402
from scorehoi_jax.sweep import bootstrap_indices, interval  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def methods(names=None):
  reg = load_config("refine_paper")
  reg.refine.use_diffusion = False
  fit = load_config("refine_reconstruct")  # The silhouette fit alone: where the guided sampling starts from.
  fit.refine.use_diffusion = False
  fit.refine.final_pose_fit_steps = 0  # The fit alone: no polish after the (skipped) sampling either.
  all_ = {"regressor": reg, "scorehoi": load_config("refine_paper"), "mask fit only": fit,
          "scorehoi+mask": load_config("refine_reconstruct")}
  return {k: v for k, v in all_.items() if names is None or k in names}


def bootstrap_ci(values, n: int = 1000, seed: int = 0) -> tuple[float, float, float]:
  """(mean, low, high): the mean over the finite frames and its 95 % percentile bootstrap interval
  (sweep.bootstrap_indices / interval, the package's one bootstrap)."""
  v = np.asarray(values, np.float64)
  v = v[np.isfinite(v)]
  if len(v) == 0:
    return float("nan"), float("nan"), float("nan")
  ci = interval(v[bootstrap_indices(len(v), n, seed)].mean(1))
  return ci["mean"], ci["lo"], ci["hi"]


def _object_key(record):
  name = record["object_name"]
  return (name.decode() if isinstance(name, bytes) else str(name)), int(record.get("object_seed", -1))


def ground_truth_rows(recs, objs, bodies):
  """The same measurement for the true meshes: the ceiling of the IoU (1 where the masks are the renderer's)."""
  rows = []
  for r in recs:
    ob = objs[_object_key(r)]
    cam = np.asarray(r["cam_trans"], np.float64)
    human = np.asarray(full_vertices(bodies, np.asarray(r["pose"])[None], np.asarray(r["betas"])[None]))[0] + cam
    # Records hold the object's pose in the image camera (make_example makes it pelvis-relative).
    obj = np.asarray(ob.vertices) @ np.asarray(r["obj_rot"], np.float64).T + np.asarray(r["obj_trans"], np.float64)
    camera = camera_of(r)
    hm, om = silhouettes((human, np.asarray(bodies.full.faces)), (obj, ob.faces), camera)
    rows.append((mask_iou(hm, r["human_mask"] > 0), mask_iou(om, r["object_mask"] > 0), 0.0))
  return np.asarray(rows)


def measure(model, data: str, split: str, limit: int, batch: int, names=None, lambda_mask=()):
  """{method: rows [n, 3] (human IoU, object IoU, pelvis offset px)}, n. lambda_mask: extra rows
  "scorehoi+mask λ=v", the reconstruct config with guidance.lambda_mask = v (traced: one compile)."""
  import dataclasses
  src = data_source(data, "synthetic_hoi", split)
  n = min(limit, len(src))
  recs = [decode_record(src[i]) for i in range(n)]
  objs = {}
  for r in recs:
    key = _object_key(r)
    if key not in objs:
      objs[key] = get_object(key[0], seed=None if key[1] < 0 else key[1])
  size = int(model.config.data.image_size)
  runs = [(name, cfg, None) for name, cfg in methods(names).items()]
  if lambda_mask:
    mask_cfg = methods()["scorehoi+mask"]
    runs += [(f"scorehoi+mask λ_mask={v:g}", mask_cfg, float(v)) for v in lambda_mask]
  out, recons = {}, {}
  for name, cfg, lam in runs:
    key = cfg.to_json_best_effort(sort_keys=True)
    rec = recons.get(key) or recons.setdefault(key, Reconstructor(model, cfg))
    weights = None if lam is None else dataclasses.replace(rec.weights, lambda_mask=np.float32(lam))
    rows = []
    for start in tqdm(range(0, n, batch), desc=name):
      chunk = recs[start:start + batch]
      o = [objs[_object_key(r)] for r in chunk]
      exs = [pipeline.make_example(dict(r, object_template=ob.template), pipeline.PipelineConfig(size=size))[0]
             for r, ob in zip(chunk, o)]
      pad = batch - len(chunk)
      b = pipeline.stack(exs + [exs[0]] * pad)
      st = jax.device_get(rec(b, stack_geometries([ob.geometry() for ob in o] + [o[0].geometry()] * pad), weights))
      p = rec.decode(st.x_refined)
      verts = np.asarray(full_vertices(rec.bodies, p.rotmats, p.betas))
      for i, (r, ob) in enumerate(zip(chunk, o)):
        turn = np.asarray(b["camera_rot"][i], np.float64)  # Virtual camera of the crop → image camera.
        cam = turn @ np.asarray(st.cam_trans[i], np.float64)
        human = verts[i] @ turn.T + cam
        obj = (np.asarray(ob.vertices) @ np.asarray(p.obj_rotmat[i]).T + np.asarray(p.obj_trans[i])) @ turn.T + cam
        camera = camera_of(r)
        hm, om = silhouettes((human, np.asarray(rec.bodies.full.faces)), (obj, ob.faces), camera)
        rows.append((mask_iou(hm, r["human_mask"] > 0), mask_iou(om, r["object_mask"] > 0),
                     float(np.linalg.norm(pixel_of(cam, camera) - pixel_of(r["cam_trans"], camera)))))
    out[name] = np.asarray(rows)
  if names is None or "ground truth" in names:
    out["ground truth"] = ground_truth_rows(recs, objs, Reconstructor(model, methods()["regressor"]).bodies)
  return out, n


def section(out: dict, n: int, args) -> list[str]:
  lines = [f"## {args.name}: {n} frames of `{args.data}` ({args.split})", "",
           f"{datetime.date.today()}, {platform.machine()} CPU ({os.cpu_count()} cores), jax {jax.__version__}, "
           f"batch {args.batch}, load {os.getloadavg()[0]:.1f}; model `{args.checkpoint or 'shipped'}`. "
           "Mean [95 % bootstrap CI] over frames.", "",
           "| method | human IoU ↑ | object IoU ↑ | pelvis offset (px) ↓ |", "|---|---|---|---|"]
  for name, rows in out.items():
    cells = [bootstrap_ci(rows[:, k]) for k in range(3)]
    lines.append(f"| {name} | " + " | ".join(f"{m:.3f} [{lo:.3f}, {hi:.3f}]" if k < 2 else f"{m:.1f} [{lo:.1f}, {hi:.1f}]"
                                             for k, (m, lo, hi) in enumerate(cells)) + " |")
  return lines + [""]


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--data", required=True)
  ap.add_argument("--split", default="test")
  ap.add_argument("--limit", type=int, default=200)
  ap.add_argument("--batch", type=int, default=16)
  ap.add_argument("--checkpoint", default=None)
  ap.add_argument("--name", default="synthetic")
  ap.add_argument("--lambda-mask", default="", help="comma-separated λ_mask values: extra scorehoi+mask rows")
  ap.add_argument("--methods", default=None,
                  help="comma-separated subset of: regressor, scorehoi, mask fit only, scorehoi+mask, ground truth")
  ap.add_argument("--out", default=os.path.join(RESULTS, "alignment.md"))
  ap.add_argument("--rows", default=None, help="also write each method's per-frame rows (human IoU, object IoU, "
                                               "pelvis px) to this .npz, for paired comparisons of later runs")
  args = ap.parse_args(argv)
  model = load_model(args.checkpoint or default_model_path())
  names = None if args.methods is None else [m.strip() for m in args.methods.split(",")]
  lams = [float(v) for v in args.lambda_mask.split(",") if v.strip()]
  out, n = measure(model, args.data, args.split, args.limit, args.batch, names, lams)
  if args.rows:
    np.savez(args.rows, **out)
  lines = section(out, n, args)
  head = [] if os.path.exists(args.out) else ["# Image alignment of the reconstructions", "",
                                               "Written by experiments/alignment.py (see its docstring).", ""]
  with open(args.out, "a") as f:
    f.write("\n".join(head + lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
