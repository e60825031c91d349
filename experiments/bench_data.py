"""Benchmark of the renderer backends, the input pipeline and the stored dataset size.

Run:  python experiments/bench_data.py [--quick] [--out experiments/results/data_pipeline.md]

Measures
1. Render time per frame (RGB + instance ids + depth) of the default body
   (13,718 vertices) and a procedural chair, GL (moderngl/EGL, 4x MSAA) vs
   trimesh/embree ray casting, at 256² and 512²; "dynamic" = new vertex
   positions every frame (the data-generation loop).
2. Input pipeline: decode a stored record (JPEG image + PNG masks) and crop/
   augment it to 256² with 5 channels, one thread and through ``prefetch``.
3. Size of stored frames per 1,000 (JPEG q92 images + PNG masks + targets), by
   writing frames with a TFDS builder to ArrayRecord and measuring the files.
Timings on a shared 2-core CPU are noisy (other jobs run at the same time);
treat them as order-of-magnitude.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from scorehoi_jax import body as body_lib  # noqa: E402
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


def bench_pipeline(res: int, n: int, rng) -> tuple[float, float, float]:
  stored = tfds_common.encode_record(_record(res, rng))
  cfg = pl.PipelineConfig(size=256, augment=True)
  t = time.perf_counter()
  for i in range(n):
    rec = tfds_common.decode_record(stored)
  decode = (time.perf_counter() - t) / n
  t = time.perf_counter()
  for i in range(n):
    pl.make_example(rec, cfg, pl.example_rng(0, 0, i))
  crop = (time.perf_counter() - t) / n
  src = [stored] * n
  t = time.perf_counter()
  for _ in pl.prefetch(pl.batches(src, cfg, 8, shuffle=True)):
    pass
  batched = (time.perf_counter() - t) / n
  return decode, crop, batched


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


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--quick", action="store_true")
  ap.add_argument("--out", default="experiments/results/data_pipeline.md")
  args = ap.parse_args()
  n = 3 if args.quick else 10
  rng = np.random.default_rng(0)
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
  lines += ["", "## Input pipeline (stored record -> 256² 5-channel example, augmentation on)", "",
            "| source image | decode ms | crop+augment ms | batched+prefetch ms/example | examples/s (batched) |",
            "|---|---|---|---|---|"]
  for res in (256, 512):
    dec, crop, bat = bench_pipeline(res, 4 * n, rng)
    lines.append(f"| {res}² | {dec * 1e3:.1f} | {crop * 1e3:.1f} | {bat * 1e3:.1f} | {1 / bat:.0f} |")
    print(lines[-1], flush=True)
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
