"""Benchmark of the renderer backends, the input pipeline and the stored dataset size.

Run:  python experiments/bench_data.py [--quick] [--out experiments/results/data_pipeline.md]

Measures
1. Render time per frame (RGB + instance ids + depth) of the default body
   (13,718 vertices) and a procedural chair, GL (moderngl/EGL, 4x MSAA) vs
   trimesh/embree ray casting, at 256² and 512²; "dynamic" = new vertex
   positions every frame (the data-generation loop).
2. Input pipeline: decode a stored record (JPEG image + PNG masks); crop and
   augment it to 128² / 256² with 5 channels, with today's code (OpenCV) and
   with the code of ``--before`` (scipy.ndimage per channel), loaded from git;
   then examples/s of the Grain training input (data/loader.py: shuffle,
   decode, crop, augment, batch) against the number of worker processes.
   The machine load (``uptime``'s 1-minute average) is recorded next to
   every number.
3. Size of stored frames per 1,000 (JPEG q92 images + PNG masks + targets), by
   writing frames with a TFDS builder to ArrayRecord and measuring the files.
Timings on a shared 2-core CPU are noisy (other jobs run at the same time);
treat them as order-of-magnitude. ``--only pipeline`` skips parts 1 and 3.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from scorehoi_jax import body as body_lib  # noqa: E402
from scorehoi_jax.data import loader  # noqa: E402
from scorehoi_jax.data import pipeline as pl  # noqa: E402
from scorehoi_jax.data import tfds_common  # noqa: E402
from scorehoi_jax.objects import get_object  # noqa: E402
from scorehoi_jax.render import Camera, Mesh, available_backends, backend_info, render  # noqa: E402
from results_io import write_markdown  # noqa: E402  (experiments/ is the script's folder)


def _scene(res: int, rng):
  model = body_lib.load_body_model()
  verts = np.asarray(body_lib.body_forward(model, np.tile(np.eye(3), (52, 1, 1)), np.zeros(10)).vertices)
  verts = verts * np.array([1, -1, -1]) + np.array([0.0, 0.0, 3.2])  # +Y up -> camera y down, facing us.
  chair = get_object("chairblack")
  cv = chair.vertices * np.array([1, -1, 1]) + np.array([0.45, 0.9, 3.4])
  cam = Camera((1.3 * res, 1.3 * res), ((res - 1) / 2, (res - 1) / 2), res, res)
  bg = (rng.random((res, res, 3)) * 0.3 + 0.4).astype(np.float32)
  return [Mesh(verts, np.asarray(model.faces), (0.8, 0.7, 0.6)), Mesh(cv, chair.faces, (0.3, 0.5, 0.8))], cam, bg


def bench_render(res: int, backend: str, n: int, rng) -> tuple[float, float]:
  meshes, cam, bg = _scene(res, rng)
  render(meshes, cam, background=bg, backend=backend)  # Warm-up (context, JIT of llvmpipe shaders).
  t = time.perf_counter()
  for _ in range(n):
    render(meshes, cam, background=bg, backend=backend)
  static = (time.perf_counter() - t) / n
  t = time.perf_counter()
  for i in range(n):
    moved = [Mesh(m.vertices + 0.001 * i, m.faces, m.color) for m in meshes]
    render(moved, cam, background=bg, backend=backend)
  return static, (time.perf_counter() - t) / n


def _record(res: int, rng) -> dict:
  meshes, cam, bg = _scene(res, rng)
  out = render(meshes, cam, background=bg)
  return {"frame_id": "bench", "image": out.rgb, "human_mask": out.instance == 1, "object_mask": out.instance == 2,
          "pose": np.tile(np.eye(3, dtype=np.float32), (52, 1, 1)), "betas": np.zeros(10), "cam_trans": [0, 0, 3.2],
          "obj_rot": np.eye(3), "obj_trans": [0.45, 0.9, 3.4], "focal": cam.focal, "princpt": cam.princpt,
          "object_template": np.zeros((64, 3)), "object_id": 7, "object_name": "chairblack",
          "human_contact": np.zeros(431), "object_contact": np.zeros(64), "object_floor_contact": np.zeros(64)}


def pipeline_at(rev: str):
  """The pipeline module as it was at git revision ``rev`` (for the before/after comparison)."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  code = subprocess.run(["git", "show", f"{rev}:scorehoi_jax/data/pipeline.py"], cwd=root, check=True,
                        capture_output=True, text=True).stdout
  path = os.path.join(tempfile.mkdtemp(), f"pipeline_{rev}.py")
  with open(path, "w") as f:
    f.write(code)
  spec = importlib.util.spec_from_file_location(f"pipeline_{rev}", path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module  # dataclasses looks the module up while the file runs.
  spec.loader.exec_module(module)
  return module


def load1() -> float:
  return os.getloadavg()[0]


def bench_decode(stored, n: int) -> float:
  t = time.perf_counter()
  for _ in range(n):
    tfds_common.decode_record(stored)
  return (time.perf_counter() - t) / n


def bench_crop(module, rec: dict, size: int, n: int) -> tuple[float, float]:
  """(wall, CPU) seconds per example of crop + augmentation (make_example on a decoded record).

  Best of 3 rounds of n. CPU time (process_time) counts only this process's work, so it moves
  much less than wall time with the load of other jobs on a shared machine.
  """
  cfg = module.PipelineConfig(size=size, augment=True)
  module.make_example(rec, cfg, module.example_rng(0, 0, 0))
  wall = cpu = float("inf")
  for _ in range(3):
    t, c = time.perf_counter(), time.process_time()
    for i in range(n):
      module.make_example(rec, cfg, module.example_rng(0, 0, i))
    wall, cpu = min(wall, (time.perf_counter() - t) / n), min(cpu, (time.process_time() - c) / n)
  return wall, cpu


def bench_loader(stored: list, size: int, workers: int, batch: int, num_batches: int):
  """(examples/s in steady state, CPU ms per example of this process, seconds to the first batch).

  With workers = 0 the CPU time is the whole input pipeline's cost per example (decode, crop,
  augment, batch), which bounds what one core can feed whatever the load.
  """
  t0 = time.perf_counter()
  it = iter(loader.train_batches(stored, pl.PipelineConfig(size=size, augment=True), batch, seed=0,
                                 workers=workers))
  next(it)
  first = time.perf_counter() - t0
  t, c = time.perf_counter(), time.process_time()
  for _ in range(num_batches):
    next(it)
  rate = batch * num_batches / (time.perf_counter() - t)
  cpu_ms = (time.process_time() - c) / (batch * num_batches) * 1e3
  it.close()
  return rate, cpu_ms, first


class BenchHoi(tfds_common.make_builder_class("bench_hoi")):
  """A throwaway builder that writes the frames given as ``frames=``."""

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples("train", self.reader_kwargs["frames"])}


def bench_size(res: int, n: int, rng) -> float:
  """Bytes per 1,000 frames on disk (ArrayRecord) for distinct rendered frames."""
  frames = []
  for i in range(n):
    rec = _record(res, rng)
    rec["frame_id"] = f"f{i}"
    frames.append(rec)
  with tempfile.TemporaryDirectory() as d:
    tfds_common.prepare(BenchHoi(data_dir=d, frames=frames))
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs if "array_record" in f)
  return size / n * 1000


def pipeline_section(args, rng) -> list[str]:
  n = 20 if args.quick else 100
  frames = [_record(args.source, rng) for _ in range(8)]
  stored = [tfds_common.encode_record(dict(f, frame_id=f"f{i}")) for i, f in enumerate(frames)]
  # 1,024 entries over the 8 frames: Grain's index shuffle is slow for tiny datasets (~25 ms per index at n = 4).
  source = [stored[i % len(stored)] for i in range(1024)]
  rec = tfds_common.decode_record(stored[0])
  before = pipeline_at(args.before)
  cv2_threads = cv2.getNumThreads()
  now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
  out = ["", f"## Input pipeline (stored {args.source}² frame: JPEG q92 image + PNG masks; augmentation on)", "",
         f"Measured {now}; `python experiments/bench_data.py --only pipeline --batches {args.batches}`. "
         "Load = `uptime`'s 1-minute average right after each number (2 cores; above 2 other jobs take "
         "most of the CPU and wall-clock numbers inflate; CPU times barely move).", "",
         f"Decode (JPEG + 2 PNG, PIL): {bench_decode(stored[0], n) * 1e3:.2f} ms per record (load {load1():.1f}).", "",
         "Crop + augmentation per example (`make_example` on a decoded record, one process, best of 3 × "
         f"{n}); before = `{args.before}` (scipy.ndimage, one channel at a time), after = this tree (OpenCV "
         "warpAffine: RGB in one call, both masks in one call):", "",
         "| crop | before ms (wall) | before ms (CPU) | load | after ms (wall) | after ms (CPU) | load | "
         "speed-up (CPU) |", "|---|---|---|---|---|---|---|---|"]
  cv2.setNumThreads(1)  # One core per example, as in a loader worker (the pipeline's workers do the same).
  for size in (128, 256):
    (bw, bc), lb = bench_crop(before, rec, size, n), load1()
    (aw, ac), la = bench_crop(pl, rec, size, n), load1()
    out.append(f"| {size}² | {bw * 1e3:.2f} | {bc * 1e3:.2f} | {lb:.1f} | {aw * 1e3:.2f} | {ac * 1e3:.2f} | {la:.1f} | "
               f"{bc / ac:.1f}× |")
    crop_256 = (aw, la)
    print(out[-1], flush=True)
  cv2.setNumThreads(cv2_threads)
  bs = 32
  out += ["", f"Grain training input (`loader.train_batches`: global shuffle, decode, crop, augment, batch {bs}), "
          f"{os.cpu_count()} CPU cores; steady state over {args.batches} batches after the first; "
          "workers = 0 is a read-ahead thread in the consuming process, whose CPU time is then the pipeline's "
          "whole cost per example (its inverse is what one idle core feeds):", "",
          "| crop | workers | examples/s | load | CPU ms per example (workers = 0) | ⇒ examples/s per idle core | "
          "first batch (s) |", "|---|---|---|---|---|---|---|"]
  rates_256 = []
  for size in (128, 256):
    for workers in (0, 1, 2):
      rate, cpu_ms, first = bench_loader(source, size, workers, bs, args.batches)
      per_core = f"{cpu_ms:.2f} | {1e3 / cpu_ms:.0f}" if workers == 0 else "– | –"
      out.append(f"| {size}² | {workers} | {rate:.0f} | {load1():.1f} | {per_core} | {first:.1f} |")
      if size == 256:
        rates_256.append((rate, workers, load1()))
      print(out[-1], flush=True)
  best = max(rates_256)
  ok = lambda c: "met" if c else "NOT met"
  out += ["", f"Issue 14's targets: crop + augmentation ≤ 3 ms per example at 256²: {crop_256[0] * 1e3:.2f} ms wall "
          f"(load {crop_256[1]:.1f}), {ok(crop_256[0] <= 3e-3)}; ≥ 150 examples/s at 256² on this CPU: "
          f"{best[0]:.0f} with {best[1]} workers (load {best[2]:.1f}), {ok(best[0] >= 150)}."]
  return out


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--quick", action="store_true")
  ap.add_argument("--out", default="experiments/results/data_pipeline.md")
  ap.add_argument("--only", choices=("all", "pipeline"), default="all")
  ap.add_argument("--source", type=int, default=256, help="size of the stored frames of the pipeline benchmark")
  ap.add_argument("--batches", type=int, default=16, help="batches timed per loader measurement")
  ap.add_argument("--before", default="64dc2e3", help="git revision of the scipy pipeline (issue 14's 'before')")
  args = ap.parse_args()
  n = 3 if args.quick else 10
  rng = np.random.default_rng(0)
  if args.only == "pipeline":  # Replace only the pipeline section of an existing report.
    section = pipeline_section(args, rng)
    with open(args.out) as f:
      old = f.read().split("\n")
    start = next(i for i, l in enumerate(old) if l.startswith("## Input pipeline"))
    end = next(i for i, l in enumerate(old) if l.startswith("## Stored size"))
    write_markdown(args.out, old[:start - 1] + section + [""] + old[end:])
    print(f"updated the input-pipeline section of {args.out}")
    return
  lines = ["# Renderer, input pipeline and dataset size", "",
           f"Date: {datetime.date.today()}; machine: {platform.node()}, {os.cpu_count()} cores, "
           f"{platform.processor() or platform.machine()}; GL: {backend_info('gl') if 'gl' in available_backends() else 'unavailable'}.",
           "Shared 2-core CPU with other jobs running: timings are noisy and inflated, order-of-magnitude only "
           f"(load average at start {os.getloadavg()[0]:.1f}; notes/renderer.md measured GL at 19 ms (256², "
           "4x MSAA) on an idle machine).", "",
           "## Render (body 13,718 vertices + chair), ms per frame", "",
           "| backend | size | static ms | dynamic ms | dynamic fps |", "|---|---|---|---|---|"]
  for backend in available_backends():
    for res in (256, 512):
      s, d = bench_render(res, backend, n, rng)
      lines.append(f"| {backend} | {res}² | {s * 1e3:.1f} | {d * 1e3:.1f} | {1 / d:.1f} |")
      print(lines[-1], flush=True)
  lines += pipeline_section(args, rng)
  lines += ["", "## Stored size (ArrayRecord, JPEG q92 + PNG masks + targets)", "", "| image size | MB per 1,000 frames |",
            "|---|---|"]
  for res in (256, 512):
    per_k = bench_size(res, 8 if args.quick else 24, rng)
    lines.append(f"| {res}² | {per_k / 1e6:.1f} |")
    print(lines[-1], flush=True)
  lines += ["", "Background of the benchmark frames: uniform noise in [0.4, 0.7] (JPEG-unfriendly, so sizes are an "
            "upper bound for smooth procedural backgrounds)."]
  write_markdown(args.out, lines)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
