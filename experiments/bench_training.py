"""Training-step throughput, parameter counts and memory of both stages.

  .venv/bin/python experiments/bench_training.py [--sizes tiny,default] [--steps 5]

Writes experiments/results/training.md. Stage 1 = backbone + regressor +
ContactFormer + CRFormer (point encoder frozen, randomly initialised here:
weights do not change the cost); stage 2 = denoiser with frozen stage-1
features. Timings exclude compilation (reported separately) and are means
over --steps steps after one warm-up step, on synthetic inputs in the example
spec. On a shared machine, timings are noisy: the table records the load.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from scorehoi_jax import body as body_lib  # noqa: E402
from scorehoi_jax.diffusion.schedule import cosine_schedule  # noqa: E402
from scorehoi_jax.models.contact_former import ContactFormer  # noqa: E402
from scorehoi_jax.models.denoiser import Denoiser  # noqa: E402
from scorehoi_jax.models.hoi_net import HOINet  # noqa: E402
from scorehoi_jax.models.mesh_refiner import MeshRefiner  # noqa: E402
from scorehoi_jax.models.point_encoder import PointEncoder  # noqa: E402
from scorehoi_jax.models.regressor import Regressor  # noqa: E402
from scorehoi_jax.models.resnet import ResNet  # noqa: E402
from scorehoi_jax.train import losses, steps  # noqa: E402
from test_train_steps import tiny_batch, tiny_setups  # noqa: E402
from results_io import write_markdown  # noqa: E402  (experiments/ is the script's folder)

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "training.md")


def default_setups(depth: int = 50):
  """Paper-scale networks: ResNet-50 at 256², 4-layer ContactFormer, 3×4-layer CRFormer."""
  try:
    model = body_lib.load_body_model()
  except Exception:  # Fallback for checkouts without the embedded model.
    model = body_lib.from_arrays(body_lib.random_smplh_arrays(0, num_vertices=6890, num_faces=13776, num_betas=10))
  sub = body_lib.subset_body_model(model, body_lib.guidance_vertex_indices(model, 431))
  net = HOINet(ResNet(depth), Regressor(), ContactFormer(), MeshRefiner())
  enc = PointEncoder()
  s1 = steps.Stage1Setup(net, enc, steps.adam(1e-4), sub, losses.knn_edges(np.asarray(sub.v_template)))
  s2 = steps.Stage2Setup(Denoiser(), net, enc, steps.adam(1e-4, b1=0.9), cosine_schedule())
  return s1, s2


def count(tree) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def bench(step_fn, state, batch, n, stage2):
  t0 = time.perf_counter()
  compiled = jax.jit(step_fn, donate_argnums=0).lower(state, batch, jax.random.key(0)).compile()
  t_compile = time.perf_counter() - t0
  mem = compiled.memory_analysis()
  temp = getattr(mem, "temp_size_in_bytes", 0) if mem is not None else 0
  state, m = compiled(state, batch, jax.random.key(0))
  jax.block_until_ready(m["loss"])
  t0 = time.perf_counter()
  for i in range(n):
    state, m = compiled(state, batch, jax.random.key(i))
  jax.block_until_ready(m["loss"])
  dt = (time.perf_counter() - t0) / n
  return state, dict(compile_s=t_compile, step_s=dt, temp_mb=temp / 2**20, loss=float(m["loss"]))


def run(size: str, n: int, bs1: int, bs2: int, image: int):
  if size == "tiny":
    s1, s2 = tiny_setups()
  else:
    s1, s2 = default_setups()
  b1 = tiny_batch(bs1, image)
  st1 = jax.jit(lambda r, b: steps.stage1_init(s1, r, b))(jax.random.key(0), b1)
  counts = {k: count(v) for k, v in st1.params.items()}
  counts["point_encoder (frozen)"] = count(st1.frozen)
  st1, r1 = bench(steps.make_stage1_step(s1), st1, b1, n, False)
  b2 = tiny_batch(bs2, image)
  st2 = jax.jit(lambda r, b, v, e: steps.stage2_init(s2, r, b, v, e))(
      jax.random.key(1), b2, {"params": st1.params, "batch_stats": st1.batch_stats}, st1.frozen)
  counts["denoiser"] = count(st2.params)
  _, r2 = bench(steps.make_stage2_step(s2), st2, b2, n, True)
  r1.update(batch=bs1, examples_s=bs1 / r1["step_s"])
  r2.update(batch=bs2, examples_s=bs2 / r2["step_s"])
  return counts, r1, r2


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--sizes", default="tiny,default")
  ap.add_argument("--steps", type=int, default=5)
  args = ap.parse_args()
  dev = jax.devices()[0]
  machine = f"{platform.node()} · {dev.platform} ({getattr(dev, 'device_kind', '')}) · {os.cpu_count()} CPUs"
  lines = [f"# Training-step throughput ({datetime.date.today().isoformat()})", "",
           f"Machine: {machine}; load average at start {os.getloadavg()[0]:.1f} (shared machine: timings noisy).",
           f"jax {jax.__version__}. Command: `.venv/bin/python experiments/bench_training.py --sizes {args.sizes}`.",
           "Inputs: random tensors in the example spec; point encoder randomly initialised (frozen).", "",
           "| size | stage | image | batch | step (s) | steps/s | examples/s | compile (s) | XLA temp (MiB) |",
           "|---|---|---|---|---|---|---|---|---|"]
  count_lines = []
  for size in args.sizes.split(","):
    image, bs1, bs2 = (32, 4, 4) if size == "tiny" else (256, 2, 8)
    counts, r1, r2 = run(size, args.steps, bs1, bs2, image)
    for stage, r in (("1", r1), ("2", r2)):
      lines.append(f"| {size} | {stage} | {image} | {r['batch']} | {r['step_s']:.4f} | {1 / r['step_s']:.2f} | "
                   f"{r['examples_s']:.1f} | {r['compile_s']:.1f} | {r['temp_mb']:.0f} |")
    parts = "; ".join(f"{k} {v:,}" for k, v in counts.items())
    count_lines.append(f"| {size} | {parts} | {sum(counts.values()):,} |")
    print(lines[-2], lines[-1], count_lines[-1], sep="\n", flush=True)
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  lines += ["", "Parameter counts:", "", "| size | parts | total |", "|---|---|---|"] + count_lines
  lines += ["", f"Peak host RSS of the whole benchmark process: {rss:.0f} MiB."]
  write_markdown(RESULTS, lines)
  print("\n".join(lines))


if __name__ == "__main__":
  main()
