"""Training throughput of stages 1 and 2: the step alone, the input pipeline alone, both in the loop.

  .venv/bin/python experiments/bench_training.py [--sizes tiny,default,shipped] [--steps 5]
      [--batch 2,8] [--data DIR --workers 2] [--out experiments/results/training.md]

Sizes are built from configs, as ``scorehoi train`` builds them: ``tiny``
(configs/tiny.py), ``default`` (the training defaults: ResNet-50 at 256 px)
and ``shipped`` (configs/default_model.py, the model in scorehoi_jax/assets).
Stage 1 = backbone + regressor + ContactFormer + CRFormer (point encoder
frozen, randomly initialised: weights do not change the cost); stage 2 =
denoiser on frozen stage-1 features.

For each size and stage: the compiled step on one fixed batch (compile time
reported separately; mean over --steps steps after a warm-up step). With
``--data`` (a prepared synthetic_hoi dataset, e.g. from ``scorehoi prepare
synthetic``) also the Grain training input alone (data/loader.py at the
size's image size, augmentation on, --workers processes) and the step fed by
it, in the loop. Without --data the batches are random tensors in the example
spec. On a shared machine timings are noisy: the report records the load.
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
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from scorehoi_jax.config import load_config  # noqa: E402
from scorehoi_jax.data import loader  # noqa: E402
from scorehoi_jax.data.pipeline import PipelineConfig  # noqa: E402
from scorehoi_jax.data.tfds_common import data_source  # noqa: E402
from scorehoi_jax.diffusion.schedule import cosine_schedule  # noqa: E402
from scorehoi_jax.models import build as models_build  # noqa: E402
from scorehoi_jax.train import losses, run as train_run, steps  # noqa: E402
from scorehoi_jax.train.defaults import get_default_config  # noqa: E402
from test_train_steps import tiny_batch  # noqa: E402
from results_io import write_markdown  # noqa: E402  (experiments/ is the script's folder)

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "training.md")
CONFIGS = {"tiny": "tiny", "default": None, "shipped": "default_model:stage1"}
DEFAULT_BATCH = {"tiny": (4, 4), "default": (2, 8), "shipped": (4, 8)}


def size_config(size: str):
  if size not in CONFIGS:
    raise SystemExit(f"unknown size {size!r}; known: {', '.join(CONFIGS)}")
  return get_default_config() if CONFIGS[size] is None else load_config(CONFIGS[size])


def setups(config):
  """Stage-1 and stage-2 setups exactly as train/run.py builds them."""
  net, enc = train_run.build_networks(config)
  sub = train_run.guidance_body(config)
  o = config.optim
  s1 = steps.Stage1Setup(net, enc, steps.adam(o.learning_rate, b1=o.b1, eps=o.eps), sub,
                         losses.knn_edges(np.asarray(sub.v_template)))
  den = models_build.build_networks(config.model).denoiser
  s2 = steps.Stage2Setup(den, net, enc, steps.adam(o.learning_rate, b1=o.b1, eps=o.eps), cosine_schedule(),
                         ema_decay=o.ema_decay, image_cond=config.model.image_cond)
  return s1, s2


def count(tree) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def compile_step(step_fn, state, batch):
  t0 = time.perf_counter()
  compiled = jax.jit(step_fn, donate_argnums=0).lower(state, batch, jax.random.key(0)).compile()
  t_compile = time.perf_counter() - t0
  mem = compiled.memory_analysis()
  temp = getattr(mem, "temp_size_in_bytes", 0) if mem is not None else 0
  return compiled, t_compile, temp / 2**20


def time_steps(compiled, state, batches, n: int):
  """Mean seconds per step over n steps after one warm-up; ``batches`` yields host batches."""
  state, m = compiled(state, jax.device_put(next(batches)), jax.random.key(0))
  jax.block_until_ready(m["loss"])
  t0 = time.perf_counter()
  for i in range(n):
    state, m = compiled(state, jax.device_put(next(batches)), jax.random.key(i))
  jax.block_until_ready(m["loss"])
  return state, (time.perf_counter() - t0) / n


def fixed(batch):
  while True:
    yield batch


def input_alone(it, n: int, batch: int) -> float:
  next(it)
  t0 = time.perf_counter()
  for _ in range(n):
    next(it)
  return batch * n / (time.perf_counter() - t0)


def train_input(args, image: int, bs: int):
  src = data_source(args.data, "synthetic_hoi", "train")
  return iter(loader.train_batches(src, PipelineConfig(size=image, augment=True), bs, seed=0, workers=args.workers))


def bench_size(size: str, args) -> tuple[dict, list[dict]]:
  config = size_config(size)
  image = int(config.data.image_size)
  bs1, bs2 = [int(v) for v in args.batch.split(",")] if args.batch else DEFAULT_BATCH[size]
  s1, s2 = setups(config)
  rows = []
  b1 = tiny_batch(bs1, image)
  st1 = jax.jit(lambda r, b: steps.stage1_init(s1, r, b))(jax.random.key(0), b1)
  counts = {k: count(v) for k, v in st1.params.items()}
  counts["point_encoder (frozen)"] = count(st1.frozen)
  b2 = tiny_batch(bs2, image)
  st2 = jax.jit(lambda r, b, v, e: steps.stage2_init(s2, r, b, v, e))(
      jax.random.key(1), b2, {"params": st1.params, "batch_stats": st1.batch_stats}, st1.frozen)
  counts["denoiser"] = count(st2.params)
  for stage, setup_step, state, batch, bs in (("1", steps.make_stage1_step(s1), st1, b1, bs1),
                                              ("2", steps.make_stage2_step(s2), st2, b2, bs2)):
    compiled, t_compile, temp = compile_step(setup_step, state, batch)
    state, step_s = time_steps(compiled, state, fixed(batch), args.steps)
    row = dict(size=size, stage=stage, image=image, batch=bs, step_s=step_s, compile_s=t_compile, temp_mb=temp,
               load=os.getloadavg()[0])
    if args.data:
      # The compiled step takes the keys of the example batch; the pipeline's batches carry more (camera_rot,
      # ground_plane), which the steps do not read.
      it = ({k: b[k] for k in batch} for b in train_input(args, image, bs))
      row["input_ex_s"] = input_alone(it, args.steps, bs)
      state, loop_s = time_steps(compiled, state, it, args.steps)
      row["loop_ex_s"] = bs / loop_s
      it.close()
    rows.append(row)
    print(row, flush=True)
  return counts, rows


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--sizes", default="tiny,default")
  ap.add_argument("--steps", type=int, default=5)
  ap.add_argument("--batch", default="", help="stage-1,stage-2 batch for every size (default: per size)")
  ap.add_argument("--data", default="", help="a prepared dataset folder: also time the input pipeline")
  ap.add_argument("--workers", type=int, default=2, help="input worker processes (with --data)")
  ap.add_argument("--out", default=RESULTS)
  args = ap.parse_args(argv)
  dev = jax.devices()[0]
  machine = f"{platform.node()} · {dev.platform} ({getattr(dev, 'device_kind', '')}) · {os.cpu_count()} CPUs"
  cmd = " ".join(sys.argv[1:] if argv is None else argv)
  lines = [f"# Training throughput ({datetime.date.today().isoformat()})", "",
           f"Machine: {machine}; load average at start {os.getloadavg()[0]:.1f} (shared machine: timings noisy).",
           f"jax {jax.__version__}. Command: `python experiments/bench_training.py {cmd}`.",
           "Step alone: one fixed batch of random tensors in the example spec; point encoder randomly initialised "
           "(frozen). " + (f"Input alone / in the loop: the Grain training input over `{args.data}` (augmentation "
                           f"on, {args.workers} worker processes), examples/s in steady state." if args.data else
                           "No --data: input pipeline not measured."), "",
           "| size | stage | image | batch | step (s) | examples/s (step alone) | examples/s (input alone) | "
           "examples/s (in the loop) | compile (s) | XLA temp (MiB) | load |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  count_lines = []
  for size in args.sizes.split(","):
    counts, rows = bench_size(size, args)
    for r in rows:
      extra = (f"{r['input_ex_s']:.1f} | {r['loop_ex_s']:.1f}" if "input_ex_s" in r else "– | –")
      lines.append(f"| {size} | {r['stage']} | {r['image']} | {r['batch']} | {r['step_s']:.4f} | "
                   f"{r['batch'] / r['step_s']:.1f} | {extra} | {r['compile_s']:.1f} | {r['temp_mb']:.0f} | "
                   f"{r['load']:.1f} |")
    parts = "; ".join(f"{k} {v:,}" for k, v in counts.items())
    count_lines.append(f"| {size} | {parts} | {sum(counts.values()):,} |")
    # Written after every size, so a run stopped by a time limit keeps what it measured.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = lines + ["", "Parameter counts:", "", "| size | parts | total |", "|---|---|---|"] + count_lines
    report += ["", f"Peak host RSS of the whole benchmark process: {rss:.0f} MiB."]
    write_markdown(args.out, report)
  print("\n".join(report))


if __name__ == "__main__":
  main()
