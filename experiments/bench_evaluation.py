"""Refinement, scoring and compile seconds per method at one batch size (experiments/results/evaluation.md).

  PYTHONPATH=. python experiments/bench_evaluation.py --data /tmp/bench_eval --batch 64 --methods regressor,full

Makes a synthetic test split of --frames frames in --data if it has none (scorehoi prepare synthetic), then
runs evaluation.evaluator.evaluate with the shipped model and the paper's refine config, the field's
protocol (6000 samples, full-mesh contacts), and prints one JSON line per method plus the machine load
(CPU timings on a shared machine are noisy: the load is recorded with each run).
"""

import argparse
import json
import os
import time


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--data", default="/tmp/bench_eval")
  ap.add_argument("--frames", type=int, default=64)
  ap.add_argument("--batch", type=int, default=64)
  ap.add_argument("--methods", default="regressor,full")
  ap.add_argument("--samples", type=int, default=6000)
  ap.add_argument("--contact", default="full")
  ap.add_argument("--out", default=None, help="write the result JSON here")
  ap.add_argument("--no-rounds", action="store_true", help="score only the regressor/refined/final/GT stages")
  ap.add_argument("--stages", default=None, help="comma-separated stages to score (evaluate(stages=...))")
  args = ap.parse_args()
  from scorehoi_jax.data.synthetic_hoi import prepare_synthetic
  if not os.path.isdir(os.path.join(args.data, "synthetic_hoi")):
    prepare_synthetic(args.data, num=args.frames, seed=7, resolution=128, workers=2, test_fraction=0.99,
                      progress=False)
  import jax
  from scorehoi_jax.config import load_config
  from scorehoi_jax.evaluation import evaluator
  from scorehoi_jax.model_store import load_model
  load0 = os.getloadavg()[0]
  t0 = time.perf_counter()
  res = evaluator.evaluate(load_model(None), args.data, "test", args.methods, limit=args.frames,
                           batch_size=args.batch, refine_config=load_config("refine_paper"),
                           num_samples=args.samples, contact=args.contact, progress=False,
                           score_rounds=not args.no_rounds,
                           stages=None if args.stages is None else args.stages.split(","))
  wall = time.perf_counter() - t0
  for name, m in res["methods"].items():
    last = "final" if "final" in m["stages"] else "refined"
    print(json.dumps({"method": name, "frames": res["num_frames"], "batch": args.batch,
                      "stages_scored": list(m["stages"]),
                      "compile_s": round(m["compile_seconds"], 2), "refine_s": round(m["refine_seconds"], 2),
                      "scoring_s": round(m["scoring_seconds"], 2),
                      "scoring_over_refine": round(m["scoring_seconds"] / max(m["refine_seconds"], 1e-9), 3),
                      f"{last}_cd_human": round(m["stages"][last]["cd_human"], 2),
                      f"{last}_contact_f1": round(m["stages"][last]["contact_f1"], 3)}))
  print(json.dumps({"wall_s": round(wall, 1), "load_start": load0, "load_end": os.getloadavg()[0],
                    "backend": jax.default_backend(), "cpus": os.cpu_count()}))
  if args.out:
    with open(args.out, "w") as f:
      json.dump(res, f, indent=1)


if __name__ == "__main__":
  main()
