"""What the denoiser's conditions c_I and c_G are worth at each noise level: ε-prediction error by t.

  .venv/bin/python experiments/condition_value.py --data /work/data/syn \\
      --models full=/work/runs/cond/model_twin,w/o c_I=/work/runs/cond/model_noci,w/o c_G=/work/runs/cond/model_nocg

Every model sees the same test frames, the same ε and the same t (paired): per t, the mean over frames of
‖ε̂(x_t, t, c) − ε‖² / D, and each model's difference from the first with a 95 % bootstrap interval over
frames. The refinement only ever runs the denoiser at t ≤ τ (50 of 1000 in the paper's settings); a
condition can matter for generation from noise (large t) and not for refining an estimate (small t), which
is what Table 3's "w/o c_I" and "w/o c_G" rows measure. Writes experiments/results/condition_value.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from results_io import write_markdown  # noqa: E402

from scorehoi_jax.diffusion.sampler import betas_stats_from_config  # noqa: E402
from scorehoi_jax.diffusion.schedule import cosine_schedule  # noqa: E402
from scorehoi_jax.model_store import load_model  # noqa: E402
from scorehoi_jax.models import build as models_build  # noqa: E402
from scorehoi_jax.train import losses, run, steps  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
T_VALUES = (2, 10, 25, 50, 100, 250, 500, 750, 950)


def errors(model, data: str, limit: int, batch: int, seed: int = 0) -> np.ndarray:
  """[frames, len(T_VALUES)] per-frame ε-MSE of ``model`` on the first ``limit`` test frames."""
  cfg = model.config
  with cfg.unlocked():
    cfg.data.dir, cfg.batch_size, cfg.eval.num_examples = data, batch, limit
  nets = models_build.build_networks(cfg.model)
  alphas = cosine_schedule()
  setup = steps.Stage2Setup(nets.denoiser, nets.net, nets.point_encoder, None, alphas,
                            betas_stats=betas_stats_from_config(cfg), image_cond=cfg.model.get("image_cond", "pooled"))
  frozen = {"net": model.variables["net"], "point_encoder": model.variables["point_encoder"]}
  params = model.variables["denoiser"]["params"]

  @jax.jit
  def per_t(b, key):
    cond, x0 = setup.conditions(frozen, b), setup.x0(b)
    out = []
    for i, t in enumerate(T_VALUES):
      eps = jax.random.normal(jax.random.fold_in(key, i), x0.shape, x0.dtype)
      tt = np.full((x0.shape[0],), t, np.int32)
      x_t = losses.diffuse(x0, tt, eps, alphas)
      out.append(((setup.eps_fn(params, x_t, tt, cond) - eps) ** 2).mean(-1))
    return jax.numpy.stack(out, -1)

  rows = []
  for k, b in enumerate(run._eval_batches(cfg, "test")):
    valid = np.asarray(b["valid"], bool)
    arrays = {key: v for key, v in b.items() if isinstance(v, np.ndarray) and v.dtype != object}
    rows.append(np.asarray(per_t(arrays, jax.random.key(seed * 100003 + k)))[valid])
  return np.concatenate(rows)[:limit]


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--data", required=True)
  ap.add_argument("--models", required=True, help="label=model folder, comma-separated; the first is the reference")
  ap.add_argument("--limit", type=int, default=420)
  ap.add_argument("--batch", type=int, default=60)
  ap.add_argument("--out", default=os.path.join(RESULTS, "condition_value.md"))
  args = ap.parse_args(argv)
  t0, load0 = time.time(), os.getloadavg()[0]
  models = [tuple(m.split("=", 1)) for m in args.models.split(",")]
  err = {label: errors(load_model(path), args.data, args.limit, args.batch) for label, path in models}
  ref = models[0][0]
  n = len(err[ref])
  rng = np.random.default_rng(0)
  idx = rng.integers(0, n, size=(1000, n))
  lines = ["# What c_I and c_G are worth at each noise level (ε-prediction error by t)", "",
           f"Command: `.venv/bin/python experiments/condition_value.py --data {args.data} --models \"{args.models}\"`", "",
           f"- date {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; machine {platform.node()}, "
           f"{os.cpu_count()} cores, {platform.machine()}; JAX backend {jax.default_backend()}; load average "
           f"{load0:.1f} at start; {time.time() - t0:.0f} s",
           f"- {n} test frames, unaugmented; the same ε and t for every model (paired); cosine schedule, T = 1000",
           "- cell: mean ‖ε̂ − ε‖²/D over frames; Δ: row − reference, 95 % bootstrap interval over frames", "",
           "| t | " + " | ".join(label for label, _ in models) + " | "
           + " | ".join(f"Δ {label}" for label, _ in models[1:]) + " |",
           "|---|" + "---|" * (2 * len(models) - 1)]
  for j, t in enumerate(T_VALUES):
    cells = [f"{err[label][:, j].mean():.4f}" for label, _ in models]
    for label, _ in models[1:]:
      d = err[label][:, j] - err[ref][:, j]
      lo, hi = np.percentile(d[idx].mean(1), [2.5, 97.5])
      cells.append(f"{d.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]")
    lines.append(f"| {t} | " + " | ".join(cells) + " |")
  print(write_markdown(args.out, lines))
  print("\n".join(lines[-len(T_VALUES) - 2:]))
  return 0


if __name__ == "__main__":
  sys.exit(main())
