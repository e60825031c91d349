"""Benchmark of the synthetic HOI generator, and a contact sheet of its frames.

Run:  python experiments/bench_synthetic.py [--num 64] [--resolution 256] [--backend gl|raycast|auto]

Measures
1. Per-frame time in one process after warm-up, split into scene solving
   (pose IK incl. rejected attempts) and the rest (camera, render, labels).
2. End-to-end throughput of ``generate`` (shards written to disk) with 1 and
   2 worker processes, including process start and JIT compilation, and the
   steady-state rate once the workers are warm.
3. Dataset size per 1,000 frames (compressed .npz shards).
4. A contact sheet of 16 random frames with their masks
   (experiments/results/synthetic_contact_sheet.png).
Writes experiments/results/synthetic.md. The machine's 2 cores are shared with
other jobs, so timings are noisy; treat them as order-of-magnitude.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=g-import-not-at-top
from scorehoi_jax import render as render_lib
from scorehoi_jax.data.synthetic import appearance, generator

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def contact_sheet(frames, path, tile=224):
  """4 x 4 frames, each as image | image with the masks tinted (human red, object blue)."""
  cells = []
  for f in frames:
    img = np.asarray(Image.fromarray(f["image"]).resize((tile, tile), Image.BILINEAR))
    hm = np.asarray(Image.fromarray(f["human_mask"] * 255).resize((tile, tile), Image.NEAREST)) > 0
    om = np.asarray(Image.fromarray(f["object_mask"] * 255).resize((tile, tile), Image.NEAREST)) > 0
    over = img.astype(np.float32) * 0.35
    over[hm] += np.array([230, 60, 60]) * 0.65
    over[om] += np.array([60, 90, 240]) * 0.65
    pair = Image.fromarray(np.concatenate([img, over.clip(0, 255).astype(np.uint8)], 1))
    draw = ImageDraw.Draw(pair)
    label = f"{f['interaction']} / {f['object_name']}"
    draw.rectangle([0, 0, 7 * len(label) + 6, 14], fill=(0, 0, 0))
    draw.text((3, 1), label, fill=(255, 255, 255))
    cells.append(np.asarray(pair))
  rows = [np.concatenate(cells[i:i + 4], 1) for i in range(0, 16, 4)]
  sheet = np.concatenate(rows, 0)
  # A 256-colour palette keeps the committed PNG near 1 MB (noise backgrounds compress badly).
  Image.fromarray(sheet).quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def render_times(frames, config, st):
  """Median wall / CPU time of the frame render and of the 64 px visibility preview, per backend."""
  from scorehoi_jax.objects import get_object  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  r = config.resolution
  cases = []
  for f in frames[:8]:
    out = st.forward(jnp.asarray(f["pose"]), jnp.asarray(f["betas"]))
    body = np.asarray(out.vertices - out.joints[0], np.float64) + f["cam_trans"]
    obj = get_object(str(f["object_name"]), seed=int(f["object_seed"]))
    obj_v = obj.vertices @ f["obj_rot"].T.astype(np.float64) + f["obj_trans"]
    cam = render_lib.Camera(tuple(map(float, f["focal"])), tuple(map(float, f["princpt"])), r, r)
    k = 64 / r
    small = render_lib.Camera(tuple(float(x) * k for x in f["focal"]),
                              tuple((float(c) + 0.5) * k - 0.5 for c in f["princpt"]), 64, 64)
    light = appearance.lighting(np.random.default_rng(int(f["seed"])))  # A random light of the generator's kind.
    colors = np.full((len(body), 3), 0.6), np.full((len(obj_v), 3), 0.4)
    cases.append(([(body, st.faces, colors[0]), (obj_v, obj.faces, colors[1])], cam, small, light))
  rows = ["## Render step alone (8 of the frames above, median over frames)", "",
          "| backend | frame render (RGB + ids + depth, a random light) | 64 px visibility preview (ids only) |",
          "|---|---|---|"]
  for backend in render_lib.available_backends():
    res = {"frame": [], "preview": []}
    for meshes, cam, small, light in cases:
      for key, fn in (("frame", lambda: render_lib.render(meshes, cam, light=light, backend=backend)),
                      ("preview", lambda: render_lib.render(meshes, small, backend=backend, rgb=False))):
        fn()  # Warm: GL context and shader compilation on first use.
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        res[key].append((time.perf_counter() - t0, time.process_time() - c0))
    cells = [f"{1e3 * np.median([w for w, _ in v]):.0f} ms wall / {1e3 * np.median([c for _, c in v]):.0f} ms CPU"
             for v in res.values()]
    rows.append(f"| {render_lib.backend_info(backend)} | {cells[0]} | {cells[1]} |")
  rows += ["", "The preview runs once per camera draw (up to 5 per frame). The GL context is per process, "
           "and on CPU it is Mesa llvmpipe, which uses a thread per core unless LP_NUM_THREADS is set "
           "(`generate` sets 1 in its workers).",
           ""]
  return rows


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--num", type=int, default=64, help="frames per throughput run")
  parser.add_argument("--resolution", type=int, default=256)
  parser.add_argument("--seed", type=int, default=2026)
  parser.add_argument("--backend", default=None, help="renderer backend (default: environment, else auto)")
  args = parser.parse_args()
  os.makedirs(RESULTS, exist_ok=True)
  config = generator.SyntheticConfig(resolution=args.resolution, backend=args.backend)
  lines = ["# Synthetic HOI generator: speed and size", "",
           f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. "
           f"Machine: {platform.machine()}, {os.cpu_count()} cores ({platform.processor() or 'CPU'}), "
           f"Python {platform.python_version()}. Resolution {args.resolution} px, solver "
           f"{config.solver_steps} Adam steps, renderer: {render_lib.backend_info(config.backend)}. The 2 cores "
           "are shared with other jobs: timings are noisy.", ""]

  # 1. In-process per-frame time after warm-up, and the contact sheet frames.
  rng = np.random.default_rng(args.seed)
  seeds = [int(s) for s in rng.integers(0, 2**31, 16)]
  generator.generate_frame(seeds[0], config)  # Warm-up: JIT compile, object instances.
  st = generator._state(config)  # pylint: disable=protected-access
  times, solve_times, frames, cpu_times = [], [], [], []
  for s in seeds:
    t0, c0 = time.perf_counter(), time.process_time()
    frames.append(generator.generate_frame(s, config))
    t1, c1 = time.perf_counter(), time.process_time()
    generator._solve_scene(s, config, st)  # pylint: disable=protected-access  (now with objects loaded)
    t2 = time.perf_counter()
    times.append(t1 - t0)
    cpu_times.append(c1 - c0)
    solve_times.append(t2 - t1)
  # Again with every object instance loaded: the steady state of a long run.
  steady_wall, steady_cpu = [], []
  for s in seeds:
    t0, c0 = time.perf_counter(), time.process_time()
    generator.generate_frame(s, config)
    steady_wall.append(time.perf_counter() - t0)
    steady_cpu.append(time.process_time() - c0)
  kinds = collections.Counter(f["interaction"] for f in frames)
  contact_sheet(frames, os.path.join(RESULTS, "synthetic_contact_sheet.png"))
  lines += ["## One process, warm (16 frames)", "",
            "| quantity | mean | median |", "|---|---|---|",
            f"| frame (all steps; first use of an object instance loads/builds it) | {np.mean(times):.3f} s | "
            f"{np.median(times):.3f} s |",
            f"| CPU time per frame (same run) | {np.mean(cpu_times):.3f} s | {np.median(cpu_times):.3f} s |",
            f"| frame, objects already loaded (steady state) | {np.mean(steady_wall):.3f} s | "
            f"{np.median(steady_wall):.3f} s |",
            f"| CPU time per frame, steady state | {np.mean(steady_cpu):.3f} s | {np.median(steady_cpu):.3f} s |",
            f"| scene + pose solve alone (incl. rejected attempts; objects loaded) | {np.mean(solve_times):.3f} s | "
            f"{np.median(solve_times):.3f} s |",
            f"| → frames/s, one process, steady state | {1 / np.mean(steady_wall):.2f} | |",
            "| → upper bound on 2 idle cores (2 workers: 2 / CPU time; excludes start-up) | "
            f"{2 / np.mean(steady_cpu):.2f} | |",
            "",
            f"Interactions in the sample: {dict(kinds)}.", ""]

  # 1b. The render step alone (scorehoi_jax.render), per backend, on the frames' own meshes and lights.
  lines += render_times(frames, config, st)

  # 2. generate() end to end with 1 and 2 workers.
  lines += ["## `generate` end to end (shards on disk)", "",
            "| workers | frames | wall (fresh process: start + JIT + object loads) | frames/s | frames/hour | "
            "CPU time (all processes) | load average after |", "|---|---|---|---|---|---|---|"]
  size_per_1000 = None
  for workers in (1, 2):
    out = tempfile.mkdtemp(prefix="synthetic_bench_")
    # A fresh interpreter per run, so both settings pay the same start-up and JIT costs.
    code = ("from scorehoi_jax.data.synthetic import generator; "
            f"generator.generate({args.num}, {args.seed}, {out!r}, workers={workers}, "
            f"resolution={args.resolution}, progress=False, frames_per_shard=16, "
            f"config=generator.SyntheticConfig(resolution={args.resolution}, backend={args.backend!r}))")
    t0 = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", code], check=True,
                   cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    load = os.getloadavg()[0]
    paths = [os.path.join(out, p) for p in os.listdir(out) if ".npz-" in p]
    rate = args.num / wall
    lines.append(f"| {workers} | {args.num} | {wall:.1f} s | {rate:.2f} | {rate * 3600:.0f} | {cpu:.0f} s | "
                 f"{load:.1f} |")
    size = sum(os.path.getsize(p) for p in paths)
    size_per_1000 = size / args.num * 1000 / 2**20
    shutil.rmtree(out)
  lines += ["", "Other agents' jobs share these 2 cores (load average above), so the 2-worker wall time "
            "mostly measures contention; the CPU-time columns are the stable numbers.", "",
            "## Dataset size", "",
            f"{size_per_1000:.0f} MiB per 1,000 frames at {args.resolution} px (compressed .npz: image, masks, "
            "float32 depth, all labels incl. the full-resolution human contact).", ""]
  with open(os.path.join(RESULTS, "synthetic.md"), "w") as fh:
    fh.write("\n".join(lines))
  print("\n".join(lines))


if __name__ == "__main__":
  main()
