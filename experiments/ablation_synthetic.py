"""Ablation on the synthetic test split (paper Tables 3–4 layout), with 95 % bootstrap intervals.

  .venv/bin/python experiments/ablation_synthetic.py --data DATA [--checkpoint MODEL] [--limit N]
      [--no-ci-checkpoint MODEL] [--no-cg-checkpoint MODEL]   # stage-2 retrains without c_I / c_G
      [--rows regressor,full,...] [--work DIR] [--out DIR]
  .venv/bin/python experiments/ablation_synthetic.py --data /tmp/syn --limit 16 --batch 8   # development

Every row is one method of ``scorehoi_jax.evaluation.evaluator.evaluate`` scored at one stage:

  regressor         the regressor's estimate x_init (where the refinement starts)
  w/o diffusion     regressor + CRFormer: the network without the diffusion module (paper Table 3)
  no guidance       DDIM inversion + sampling without L_P (Table 3 "No guidance")
  w/o L_ho / L_of / L_pt   one guidance term's λ set to 0 (Table 3)
  w/o CDIR          contact masks frozen at the regressor's estimate (Table 3)
  w/o c_I / c_G     the denoiser without the image / geometry condition (Table 3): a stage-2 model
                    retrained without it when --no-ci/cg-checkpoint is given, else the condition's
                    cross-attention term dropped at inference (reconstruct.with_condition_switches)
  full              ScoreHOI, paper settings (configs/refine_paper.py), x^N
  full + CRFormer   x^N through the CRFormer
  Adam baseline     Adam on L_P + a data term, the same gradient budget (evaluation/baselines.py)
  N = 2             "Ours-Faster" (Table 2, Table 4 row 4)
  full + L_mask     the image-evidence term and placement fit of configs/refine_reconstruct.py
                    (beyond the paper; what `scorehoi reconstruct` runs)

Intervals are percentile bootstraps over frames (1000 resamples, sweep.bootstrap_stats); the Δ table is a
*paired* bootstrap against "full" (the same resampled frames for both rows), so a Δ interval that excludes 0
is a real difference on this split. Each method's evaluator output is kept in --work as soon as it is
done, so an interrupted run resumes where it stopped. Writes

  OUT/ablation_synthetic.md    tables: metrics with intervals; Δ vs full next to the paper's Δ (BEHAVE);
                               CDIR mask statistics per round; machine, batch, settings, date, load
  OUT/ablation_synthetic.png   every metric against the round, one line per refining row
  OUT/ablation_synthetic.json  the summaries and everything the evaluator returned (per-frame values aside)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from scorehoi_jax.config import load_config  # noqa: E402
from scorehoi_jax.diffusion.sampler import settings_from_config, weights_from_config  # noqa: E402
from scorehoi_jax.evaluation import evaluator  # noqa: E402
from scorehoi_jax.evaluation.metrics import NUM_CHAMFER_SAMPLES  # noqa: E402
from scorehoi_jax.model_store import default_model_path, load_model  # noqa: E402
from scorehoi_jax.sweep import bootstrap_indices, bootstrap_stats, interval, point_config  # noqa: E402
from results_io import write_markdown  # noqa: E402  (experiments/ is the script's folder)

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
# (label, metric key, digits, scale): cells of the tables.
COLUMNS = (("CD human (cm) ↓", "cd_human", 2, 1), ("CD object (cm) ↓", "cd_object", 2, 1),
           ("P ↑", "contact_precision", 3, 1), ("R ↑", "contact_recall", 3, 1), ("F1 ↑", "contact_f1", 3, 1),
           ("pen. depth (mm) ↓", "pen_depth_cm", 2, 10), ("inside (%) ↓", "pen_frac", 2, 100))
DELTA = ("cd_human", "cd_object", "contact_f1", "pen_depth_cm")
LOWER_IS_BETTER = {"cd_human": True, "cd_object": True, "contact_f1": False, "pen_depth_cm": True}
# Paper, BEHAVE test split: (CD human, CD object, contact P, R, F1); Table 3, and Table 4 row 4 (N = 2).
PAPER = {
    "w/o diffusion": (5.03, 8.48, 0.612, 0.523, 0.588), "w/o CDIR": (4.93, 7.98, 0.628, 0.545, 0.577),
    "w/o c_G": (4.87, 7.99, 0.628, 0.559, 0.591), "w/o c_I": (4.88, 8.03, 0.631, 0.566, 0.597),
    "no guidance": (4.93, 8.01, 0.624, 0.524, 0.570), "w/o L_ho": (4.87, 7.95, 0.632, 0.525, 0.574),
    "w/o L_pt": (4.87, 7.93, 0.619, 0.567, 0.592), "w/o L_of": (4.89, 7.95, 0.631, 0.577, 0.602),
    "full": (4.85, 7.86, 0.634, 0.586, 0.609), "N = 2": (4.87, 7.95, None, None, 0.604)}
PAPER_KEYS = ("cd_human", "cd_object", "contact_precision", "contact_recall", "contact_f1")


@dataclasses.dataclass(frozen=True)
class Method:
  """One evaluate() run: a built-in method under a refine config with overrides, on a model."""
  base: str  # evaluator.METHODS name
  config: str = "refine_paper"
  overrides: tuple = ()  # (("guidance.lambda_ho", "0"), ...)
  model: str = "main"  # 'main', 'no_ci' or 'no_cg' (checkpoints given on the command line)


METHODS = {
    "regressor": Method("regressor"), "full": Method("full"), "no_guidance": Method("no_guidance"),
    "no_cdir": Method("no_cdir"), "optimisation": Method("optimisation"),
    "no_ho": Method("full", overrides=(("guidance.lambda_ho", "0"),)),
    "no_of": Method("full", overrides=(("guidance.lambda_of", "0"),)),
    "no_pt": Method("full", overrides=(("guidance.lambda_pt", "0"),)),
    "no_ci": Method("full", overrides=(("denoiser.use_image_cond", "False"),), model="no_ci"),
    "no_cg": Method("full", overrides=(("denoiser.use_geo_cond", "False"),), model="no_cg"),
    "n2": Method("full", overrides=(("refine.num_rounds", "2"),)),
    "mask": Method("full", config="refine_reconstruct"),
}
# (row label, method, stage scored)
ROWS = (("regressor", "regressor", "regressor"), ("w/o diffusion", "regressor", "final"),
        ("no guidance", "no_guidance", "refined"), ("w/o L_ho", "no_ho", "refined"),
        ("w/o L_of", "no_of", "refined"), ("w/o L_pt", "no_pt", "refined"), ("w/o CDIR", "no_cdir", "refined"),
        ("w/o c_I", "no_ci", "refined"), ("w/o c_G", "no_cg", "refined"), ("full", "full", "refined"),
        ("full + CRFormer", "full", "final"), ("Adam baseline", "optimisation", "refined"),
        ("N = 2", "n2", "refined"), ("full + L_mask", "mask", "refined"))


def run_method(name: str, m: Method, models: dict, args, rounds: bool = False) -> dict:
  """The evaluator's result for one method (from --work when already done).

  rounds=False: every frame, the regressor / refined / final stages; rounds=True: the first
  --round-frames frames with every round scored too (the metric-vs-round plot). Scoring a stage costs
  more than refining it on a CPU, so the rounds are scored on a subset.
  """
  path = os.path.join(args.work, f"{name}{'_rounds' if rounds else ''}.json")
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  cfg = point_config(load_config(m.config), dict(m.overrides), source=f"ablation method {name}")
  model = models[m.model]  # A retrained model lacks the condition: the override then drops nothing.
  spec = {name: (*evaluator.method_setup(m.base, settings_from_config(cfg, model.config)), weights_from_config(cfg))}
  t0 = time.time()
  limit = min(args.limit or 10 ** 9, args.round_frames) if rounds else args.limit
  res = evaluator.evaluate(model, args.data, args.split, [name], limit=limit, batch_size=args.batch,
                           refine_config=cfg, num_samples=args.samples, extra_methods=spec, per_frame=True,
                           score_rounds=rounds, search=args.search)
  out = res["methods"][name]
  out.update(config=m.config, overrides=list(m.overrides), model=model.path, wall=time.time() - t0,
             num_frames=res["num_frames"], ground_truth=res["ground_truth"],
             env=dict(backend=res["backend"], device=res["device"], batch=res["batch_size"],
                      num_samples=res["num_samples"], settings=res["settings"]))
  os.makedirs(args.work, exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(out, f)
  os.replace(tmp, path)
  return out


def summarize_rows(results: dict, rows, resamples: int = 1000) -> dict:
  """{label: {"stats": {metric: interval}, "delta": {metric: interval of row − full (paired)}}}."""
  n = min(len(r["frames"]["regressor"]["cd_human"]) for r in results.values())
  idx = bootstrap_indices(n, resamples, seed=0)
  boot = {}
  for label, method, stage in rows:
    if method in results:
      fr = {k: np.asarray(v)[:n] for k, v in results[method]["frames"][stage].items()}
      boot[label] = bootstrap_stats(fr, idx)
  out = {}
  for label, b in boot.items():
    out[label] = {"stats": {k: interval(v) for k, v in b.items()}}
    if "full" in boot:
      out[label]["delta"] = {k: interval(b[k] - boot["full"][k]) for k in DELTA}
  return out


def _ci(s: dict, digits: int, scale: float) -> str:
  m, lo, hi = (scale * s[k] for k in ("mean", "lo", "hi"))
  return "–" if not np.isfinite(m) else f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _verdict(d: dict, key: str) -> str:
  """'better' / 'worse' than full when the paired interval excludes 0, else '≈'."""
  if not np.isfinite(d["lo"]):
    return "–"
  if d["lo"] > 0 or d["hi"] < 0:
    lower = d["mean"] < 0
    return "better" if lower == LOWER_IS_BETTER[key] else "worse"
  return "≈"


def _paper_dir(label: str, key: str) -> str:
  if label not in PAPER or "full" not in PAPER or key not in PAPER_KEYS:
    return "–"
  i = PAPER_KEYS.index(key)
  v, f = PAPER[label][i], PAPER["full"][i]
  if v is None:
    return "–"
  d = v - f
  word = "≈" if abs(d) < 1e-9 else ("better" if (d < 0) == LOWER_IS_BETTER[key] else "worse")
  return f"{d:+.3f} ({word})" if key == "contact_f1" else f"{d:+.2f} ({word})"


def tables(summary: dict, results: dict, rows) -> list[str]:
  head = "| row | " + " | ".join(c[0] for c in COLUMNS) + " |"
  lines = ["### Metrics (mean [95 % bootstrap interval] over frames)", "", head, "|" + "---|" * (len(COLUMNS) + 1)]
  for label, _, _ in rows:
    if label in summary:
      st = summary[label]["stats"]
      lines.append(f"| {label} | " + " | ".join(_ci(st[k], dg, sc) for _, k, dg, sc in COLUMNS) + " |")
  any_res = next(iter(results.values()))
  gt = any_res["ground_truth"]
  lines.append("| ground truth (metric floor) | " + " | ".join(
      "–" if gt.get(k) is None or not np.isfinite(gt[k]) else f"{sc * gt[k]:.{dg}f}" for _, k, dg, sc in COLUMNS) + " |")
  lines += ["", "### Each row against full (paired bootstrap of row − full) and the paper's direction", "",
            "A cell is Δ [95 % interval] and its verdict (better / worse than full when the interval excludes 0, "
            "else ≈); the paper's Δ is from its Tables 3–4 on BEHAVE (full: 4.85 cm, 7.86 cm, F1 0.609).", "",
            "| row | Δ CD human (cm) | paper | Δ CD object (cm) | paper | Δ F1 | paper | Δ pen. depth (mm) |",
            "|---|---|---|---|---|---|---|---|"]
  for label, _, _ in rows:
    if label not in summary or label == "full" or "delta" not in summary[label]:
      continue
    d = summary[label]["delta"]
    cells = []
    for k, dg, sc in (("cd_human", 2, 1), ("cd_object", 2, 1), ("contact_f1", 3, 1), ("pen_depth_cm", 2, 10)):
      cells.append(f"{_ci(d[k], dg, sc)} {_verdict(d[k], k)}")
      if k != "pen_depth_cm":
        cells.append(_paper_dir(label, k))
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
  lines += ["", "### CDIR: contact-mask entries per frame in each round (on / changed since the previous round)", "",
            "Human: 431 guidance vertices; object: 64 template points. Round 1 uses the regressor's contacts.", ""]
  for method in ("full", "no_cdir", "no_guidance", "mask"):
    if method in results and results[method].get("masks"):
      mk = results[method]["masks"]
      lines.append(f"- **{method}**: human on " + ", ".join(f"{v:.1f}" for v in mk["human_on"])
                   + "; flipped " + ", ".join(f"{v:.2f}" for v in mk["human_flipped"])
                   + ". Object on " + ", ".join(f"{v:.2f}" for v in mk["object_on"])
                   + "; flipped " + ", ".join(f"{v:.2f}" for v in mk["object_flipped"]) + ".")
  return lines


def plot(results: dict, rows, path: str, n: int) -> str:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  metrics = (("cd_human", "CD human (cm)"), ("cd_object", "CD object (cm)"), ("contact_f1", "contact F1"),
             ("pen_depth_cm", "penetration depth (cm)"))
  fig, axes = plt.subplots(1, len(metrics), figsize=(4.4 * len(metrics), 3.8))
  for ax, (key, label) in zip(axes, metrics):
    for row, method, stage in rows:
      if method not in results or stage != "refined":
        continue
      st = results[method]["stages"]
      rounds = sorted((s for s in st if s.startswith("round_")), key=lambda s: int(s.split("_")[1]))
      xs = [0] + [int(s.split("_")[1]) for s in rounds]
      ys = [st["regressor"][key]] + [st[s][key] for s in rounds]
      ax.plot(xs, ys, marker="o", ms=2.5, lw=1.2, label=row, ls="-" if row in ("full", "full + L_mask") else "--")
    if "regressor" in results:
      ax.axhline(results["regressor"]["stages"]["regressor"][key], color="k", ls=":", lw=1, label="regressor")
    ax.set_xlabel("round")
    ax.set_title(label)
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=7, ncol=2)
  fig.suptitle(f"synthetic_hoi test, first {n} frames: metric after each round (round 0 = regressor)")
  fig.tight_layout()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--data", required=True, help="synthetic data dir (scorehoi prepare synthetic --out)")
  ap.add_argument("--checkpoint", default=None, help="model folder (default: the shipped model)")
  ap.add_argument("--no-ci-checkpoint", default=None, help="stage-2 retrain without the image condition")
  ap.add_argument("--no-cg-checkpoint", default=None, help="stage-2 retrain without the geometry condition")
  ap.add_argument("--split", default="test")
  ap.add_argument("--limit", type=int, default=None)
  ap.add_argument("--batch", type=int, default=16)
  ap.add_argument("--samples", type=int, default=NUM_CHAMFER_SAMPLES, help="Chamfer samples per mesh")
  ap.add_argument("--search", default="auto", choices=("auto", "host", "device"),
                  help="nearest neighbours of the scoring (same values; host KD-trees are faster on a CPU)")
  ap.add_argument("--round-frames", type=int, default=60, help="frames whose every round is scored (plot)")
  ap.add_argument("--round-rows", default=None, help="rows of the metric-vs-round plot (default: all)")
  ap.add_argument("--rows", default=None, help="comma-separated row labels (default: all)")
  ap.add_argument("--work", default="/tmp/ablation_work", help="per-method results (resumable)")
  ap.add_argument("--out", default=RESULTS, help="folder for ablation_synthetic.{md,png,json}")
  ap.add_argument("--name", default="ablation_synthetic", help="output file stem")
  args = ap.parse_args(argv)
  rows = ROWS if not args.rows else tuple(r for r in ROWS if r[0] in {x.strip() for x in args.rows.split(",")})
  load0, t0 = os.getloadavg()[0], time.time()
  main_model = load_model(args.checkpoint or default_model_path())
  models = {"main": main_model,
            "no_ci": load_model(args.no_ci_checkpoint) if args.no_ci_checkpoint else main_model,
            "no_cg": load_model(args.no_cg_checkpoint) if args.no_cg_checkpoint else main_model}
  results, per_round = {}, {}
  for _, method, _ in rows:
    if method not in results:
      print(f"== {method}", flush=True)
      results[method] = run_method(method, METHODS[method], models, args)
  round_rows = None if not args.round_rows else {x.strip() for x in args.round_rows.split(",")}
  for label, method, stage in rows:  # Second pass, after every table row exists: the rounds of a subset.
    if round_rows is not None and label not in round_rows:
      continue
    if method not in per_round and (stage == "refined" or method == "regressor") and args.round_frames > 0:
      print(f"== {method} (every round, {args.round_frames} frames)", flush=True)
      per_round[method] = run_method(method, METHODS[method], models, args, rounds=True)
  summary = summarize_rows(results, rows)
  n = min(r["num_frames"] for r in results.values())
  env = next(iter(results.values()))["env"]
  s = env["settings"]
  info = main_model.info or {}
  timing = "; ".join(f"{m} {r['compile_seconds']:.0f} / {r['refine_seconds']:.0f} / {r['scoring_seconds']:.0f}"
                     for m, r in results.items())
  lines = [
      "# Ablation on the synthetic test split (paper Tables 3–4 layout)", "",
      f"Command: `.venv/bin/python experiments/ablation_synthetic.py --data {args.data} --checkpoint "
      f"{args.checkpoint or '(shipped model)'}" + (f" --no-ci-checkpoint {args.no_ci_checkpoint}" if args.no_ci_checkpoint else "")
      + (f" --no-cg-checkpoint {args.no_cg_checkpoint}" if args.no_cg_checkpoint else "")
      + (f" --limit {args.limit}" if args.limit else "") + f" --batch {args.batch} --samples {args.samples}`", "",
      f"- date {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; machine {platform.node()}, "
      f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}; JAX backend {env['backend']} "
      f"({env['device']}); load average {load0:.1f} at start, {os.getloadavg()[0]:.1f} at end; "
      f"{(time.time() - t0) / 60:.0f} min for this invocation (methods already in --work are reused)",
      f"- model: {main_model.path} (training step {info.get('step', '?')}, image size "
      f"{main_model.config.data.image_size} px); w/o c_I: "
      + (f"retrained `{args.no_ci_checkpoint}`" if args.no_ci_checkpoint else "dropped at inference")
      + "; w/o c_G: " + (f"retrained `{args.no_cg_checkpoint}`" if args.no_cg_checkpoint else "dropped at inference"),
      f"- data: {args.data} / {args.split}, {n} frames, batch {env['batch']}",
      f"- refinement (refine_paper): N = {s['num_rounds']}, τ = {s['tau']}, Δt = {s['dt']}, floor {s.get('floor')}, "
      f"clean endpoint {s.get('clean_endpoint')}, inversion fixed-point steps {s.get('invert_iters')}",
      "- metrics: the field's protocol. CD after one joint similarity Procrustes (human + object vertices), "
      f"{env['num_samples']} surface samples per mesh, cm; contact = every full-mesh body vertex within 5 cm "
      "of the nearest object vertex, predicted vs GT meshes, P/R averaged over frames with a non-empty "
      "denominator, F1 of the averages; penetration = mean depth of the full-mesh vertices inside the object "
      "(SDF) and the share inside",
      f"- compile / refine / scoring seconds per method: {timing}",
      f"- the table: all {n} frames (regressor / refined / final stages); the plot: every round of the first "
      f"{args.round_frames} frames", ""] + ([f"![metric vs round]({args.name}.png)", ""] if per_round else [])
  lines += tables(summary, results, rows)
  os.makedirs(args.out, exist_ok=True)
  slim = {m: {k: v for k, v in r.items() if k != "frames"} for m, r in results.items()}
  with open(os.path.join(args.out, f"{args.name}.json"), "w") as f:
    json.dump({"summary": summary, "methods": slim, "rows": rows}, f, indent=1)
  if per_round:
    plot(per_round, rows, os.path.join(args.out, f"{args.name}.png"),
         min(r["num_frames"] for r in per_round.values()))
  print(write_markdown(os.path.join(args.out, f"{args.name}.md"), lines))
  print("\n".join(tables(summary, results, rows)))
  return 0


if __name__ == "__main__":
  sys.exit(main())
