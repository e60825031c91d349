"""Benchmark of the synthetic HOI generator: what it draws, how fast, and a contact sheet.

Run:  python experiments/bench_synthetic.py [--layout capture|centred] [--stats 200] [--resolution W]
                                            [--throughput --num 64] [--backend gl|raycast|auto]

Measures
1. Distributions over ``--stats`` frames of one process (frame seeds of a
   fixed dataset seed, train split): camera height, pitch and roll, focal
   length and principal-point offset, subject (union of the masks) position
   and size in the frame, pose classes, interactions, object categories;
   and the time per frame (wall and CPU, with the load average).
2. The render step alone, per backend.
3. With ``--throughput``: end-to-end throughput of ``generate`` (shards
   written to disk) with 1 and 2 worker processes, and the dataset size.
4. A contact sheet of 16 frames with their masks
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
_CAPTURE_NOTE = (
    "What the capture layout draws (scorehoi_jax/data/synthetic/generator.py, camera.py, room.py): a 4:3 frame "
    "from a Kinect-like camera (BEHAVE colour: 2048 x 1536, fx = fy = 976, scaled to the width, ±3 %), the "
    "principal point within ±3 % of the centre, the camera 1–3 m high, pitched down 0–35°, no roll, 1.6–4.2 m "
    "from the subject and turned so that the subject lands anywhere its size allows (every vertex in the frame "
    "when any framing allows it). A box room with textured floor and walls, a lamp and a window gradient, up "
    "to four clutter objects behind the subject; lens and motion blur, vignetting, white balance, shot and read "
    "noise, JPEG quality 35–92. Object instances are shape variants (boxes of any aspect ratio, office chairs "
    "with or without wheels and arms, four-leg or cantilever chairs, four-leg or pedestal tables, "
    "objects/procedural.py). Eleven interaction types; the pose class is recorded per frame, as is the floor "
    "plane in camera coordinates (`ground_plane`). A scene that fails its checks in every attempt falls back to "
    "standing beside the object, which is why `stand` is more frequent than its weight. The centred layout "
    "(`--layout centred`) is the original generator, frame for frame.")


def contact_sheet(frames, path, tile=256):
  """16 frames in 4 rows of 2, each as image | image with the masks tinted (human red, object blue)."""
  cells = []
  for f in frames:
    h, w = f["image"].shape[:2]
    size = (tile, int(round(tile * h / w)))
    img = np.asarray(Image.fromarray(f["image"]).resize(size, Image.BILINEAR))
    hm = np.asarray(Image.fromarray(f["human_mask"] * 255).resize(size, Image.NEAREST)) > 0
    om = np.asarray(Image.fromarray(f["object_mask"] * 255).resize(size, Image.NEAREST)) > 0
    over = img.astype(np.float32) * 0.5
    over[hm] += np.array([230, 60, 60]) * 0.5
    over[om] += np.array([60, 90, 240]) * 0.5
    pair = Image.fromarray(np.concatenate([img, over.clip(0, 255).astype(np.uint8)], 1))
    draw = ImageDraw.Draw(pair)
    label = f"{f.get('pose_class', f['interaction'])} / {f['object_name']}"
    draw.rectangle([0, 0, 6 * len(label) + 6, 12], fill=(0, 0, 0))
    draw.text((3, 0), label, fill=(255, 255, 255))
    cells.append(np.asarray(pair))
  gap = np.full((cells[0].shape[0], 4, 3), 255, np.uint8)
  rows = [np.concatenate([cells[i], gap, cells[i + 1]], 1) for i in range(0, 16, 2)]
  rows = [np.concatenate([r, np.full((4, r.shape[1], 3), 255, np.uint8)], 0) for r in rows]
  sheet = np.concatenate(rows, 0)
  # A 256-colour palette keeps the committed PNG near 1 MB (noisy images compress badly).
  Image.fromarray(sheet).quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def frame_stats(f) -> dict:
  """Camera and framing of one frame (camera pose from cam_rot / cam_pos, subject from the masks)."""
  from scorehoi_jax.data.synthetic import camera as camera_lib  # pylint: disable=g-import-not-at-top
  h, w = f["image"].shape[:2]
  height, pitch = camera_lib.height_and_pitch(f["cam_rot"].astype(np.float64), f["cam_pos"].astype(np.float64))
  x0, y0, x1, y1 = f["crop_box"]
  roll = np.degrees(np.arcsin(np.clip(f["cam_rot"][0, 1], -1, 1)))
  return dict(height=height, pitch=pitch, roll=roll, focal_2048=float(f["focal"][0]) * 2048 / w,
              cx_off=100 * (f["princpt"][0] - (w - 1) / 2) / w, cy_off=100 * (f["princpt"][1] - (h - 1) / 2) / h,
              u=0.5 * (x0 + x1) / w, v=0.5 * (y0 + y1) / h, box_h=(y1 - y0) / h, box_w=(x1 - x0) / w,
              human_area=100 * f["human_mask"].mean(), object_area=100 * f["object_mask"].mean())


def _quantiles(values, fmt="{:.2f}"):
  q = np.percentile(values, [0, 5, 25, 50, 75, 95, 100])
  return " | ".join(fmt.format(x) for x in q)


def _histogram(values, edges, fmt="{:.2f}"):
  counts = np.histogram(values, bins=edges)[0]
  return " · ".join(f"[{fmt.format(a)}, {fmt.format(b)}): {c}" for a, b, c in zip(edges[:-1], edges[1:], counts))


def distribution_lines(frames) -> list[str]:
  stats = [frame_stats(f) for f in frames]
  col = {k: np.array([s[k] for s in stats]) for k in stats[0]}
  rows = [("camera height above the floor (m)", "height"), ("camera pitch, down (deg)", "pitch"),
          ("camera roll (deg)", "roll"), ("fx at 2048 px width (BEHAVE Kinect: 976)", "focal_2048"),
          ("principal point x offset (% of width)", "cx_off"), ("principal point y offset (% of height)", "cy_off"),
          ("subject centre x / width", "u"), ("subject centre y / height", "v"),
          ("subject height / image height", "box_h"), ("subject width / image width", "box_w"),
          ("human mask area (% of the image)", "human_area"), ("object mask area (% of the image)", "object_area")]
  lines = [f"## Distributions ({len(frames)} frames)", "",
           "Subject = the union of the human and object masks (the box the pipeline crops around).", "",
           "| quantity | min | 5% | 25% | median | 75% | 95% | max |", "|---|---|---|---|---|---|---|---|"]
  lines += [f"| {name} | {_quantiles(col[key])} |" for name, key in rows]
  grid = np.linspace(0, 1, 7)
  lines += ["", "Histograms:", "",
            f"- subject centre x / width: {_histogram(col['u'], grid)}",
            f"- subject centre y / height: {_histogram(col['v'], grid)}",
            f"- subject height / image height: {_histogram(col['box_h'], np.linspace(0, 1, 6))}",
            f"- camera height (m): {_histogram(col['height'], np.linspace(1, 3, 5))}",
            f"- pitch (deg): {_histogram(col['pitch'], np.linspace(0, 35, 8), '{:.0f}')}",
            ""]
  for key, title in (("pose_class", "Pose classes"), ("interaction", "Interactions"), ("object_name", "Objects")):
    counts = collections.Counter(str(f[key]) for f in frames if key in f)
    lines += [f"{title}: " + ", ".join(f"{k} {v}" for k, v in counts.most_common()) + ".", ""]
  seeds = collections.Counter((str(f["object_name"]), int(f["object_seed"])) for f in frames)
  lines += [f"Distinct object instances: {len(seeds)} in {len(frames)} frames.", ""]
  return lines


def render_times(frames, config, st):
  """Median wall / CPU time of the frame render and of the 64 px visibility preview, per backend."""
  from scorehoi_jax.objects import get_object  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  cases = []
  for f in frames[:8]:
    out = st.forward(jnp.asarray(f["pose"]), jnp.asarray(f["betas"]))
    body = np.asarray(out.vertices - out.joints[0], np.float64) + f["cam_trans"]
    obj = get_object(str(f["object_name"]), seed=int(f["object_seed"]))
    obj_v = obj.vertices @ f["obj_rot"].T.astype(np.float64) + f["obj_trans"]
    h, w = f["image"].shape[:2]
    cam = render_lib.Camera(tuple(map(float, f["focal"])), tuple(map(float, f["princpt"])), w, h)
    k = (160 if w != h else 64) / w  # The generator's visibility preview: 160 px wide (capture), 64 (centred).
    small = render_lib.Camera(tuple(float(x) * k for x in f["focal"]),
                              tuple((float(c) + 0.5) * k - 0.5 for c in f["princpt"]), round(w * k), round(h * k))
    light = appearance.lighting(np.random.default_rng(int(f["seed"])))  # A random light of the generator's kind.
    colors = np.full((len(body), 3), 0.6), np.full((len(obj_v), 3), 0.4)
    cases.append(([(body, st.faces, colors[0]), (obj_v, obj.faces, colors[1])], cam, small, light))
  rows = ["## Render step alone (8 of the frames above, median over frames)", "",
          "| backend | frame render (RGB + ids + depth, a random light) | visibility preview (ids only) |",
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
  parser.add_argument("--layout", default="capture", choices=("capture", "centred"))
  parser.add_argument("--stats", type=int, default=200, help="frames for the distributions and per-frame time")
  parser.add_argument("--throughput", action="store_true", help="also time generate() with 1 and 2 workers")
  parser.add_argument("--num", type=int, default=64, help="frames per throughput run")
  parser.add_argument("--resolution", type=int, default=None, help="image width (default: the layout's)")
  parser.add_argument("--seed", type=int, default=2026)
  parser.add_argument("--backend", default=None, help="renderer backend (default: environment, else auto)")
  args = parser.parse_args()
  os.makedirs(RESULTS, exist_ok=True)
  config = generator.SyntheticConfig(layout=args.layout, resolution=args.resolution, backend=args.backend)
  h = config.resolution * 3 // 4 if args.layout == "capture" else config.resolution
  lines = [f"# Synthetic HOI generator ({args.layout} layout): distributions, speed, contact sheet", "",
           f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. "
           f"Machine: {platform.machine()}, {os.cpu_count()} cores ({platform.processor() or 'CPU'}), "
           f"Python {platform.python_version()}. Image {config.resolution} x {h} px, "
           f"{config.object_instances} object instances per category, solver {config.solver_steps} Adam steps, "
           f"renderer: {render_lib.backend_info(config.backend)}. Command: `python experiments/bench_synthetic.py "
           f"{' '.join(sys.argv[1:])}`. The 2 cores are shared with other jobs: timings are noisy.", ""]
  if args.layout == "capture":
    lines += [_CAPTURE_NOTE, ""]

  # 1. Frames of one process: distributions and time per frame.
  seeds = [generator.frame_seed(args.seed, i) for i in range(args.stats)]
  load_before = _uptime()
  t_start = time.perf_counter()
  generator.generate_frame(seeds[0], config)  # Warm-up: JIT compile.
  warm = time.perf_counter() - t_start
  frames, wall, cpu = [], [], []
  for s in seeds:
    t0, c0 = time.perf_counter(), time.process_time()
    frames.append(generator.generate_frame(s, config))
    wall.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
  load_after = _uptime()
  contact_sheet(frames[:16], os.path.join(RESULTS, "synthetic_contact_sheet.png"))
  lines += distribution_lines(frames)
  st = generator._state(config)  # pylint: disable=protected-access
  steady_wall, steady_cpu = [], []  # Again, every object instance now built: a long run's steady state.
  for s in seeds[:16]:
    t0, c0 = time.perf_counter(), time.process_time()
    generator.generate_frame(s, config)
    steady_wall.append(time.perf_counter() - t0)
    steady_cpu.append(time.process_time() - c0)
  lines += [f"## Speed (one process, {len(frames)} frames)", "",
            f"Load before: `{load_before}`; after: `{load_after}`.", "",
            "| quantity | mean | median |", "|---|---|---|",
            f"| first frame (JIT compilation, objects) | {warm:.1f} s | |",
            f"| frame, wall (includes building each object instance on first use: SDF ~0.5–1.5 s) | "
            f"{np.mean(wall):.2f} s | {np.median(wall):.2f} s |",
            f"| frame, CPU time | {np.mean(cpu):.2f} s | {np.median(cpu):.2f} s |",
            f"| frame, wall, instances already built (16 frames again) | {np.mean(steady_wall):.2f} s | "
            f"{np.median(steady_wall):.2f} s |",
            f"| frame, CPU, instances already built | {np.mean(steady_cpu):.2f} s | {np.median(steady_cpu):.2f} s |",
            f"| → frames/s, one process (all {len(frames)} frames) | {len(frames) / np.sum(wall):.2f} | |",
            f"| → frames/s, one process, steady state | {1 / np.mean(steady_wall):.2f} | |",
            ""]

  # 2. The render step alone (scorehoi_jax.render), per backend, on the frames' own meshes and lights.
  lines += render_times(frames, config, st)

  # 3. generate() end to end with 1 and 2 workers.
  if args.throughput:
    lines += throughput_lines(args, config)
  with open(os.path.join(RESULTS, "synthetic.md"), "w") as fh:
    fh.write("\n".join(lines))
  print("\n".join(lines))


def _uptime() -> str:
  return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def throughput_lines(args, config) -> list[str]:
  lines = ["## `generate` end to end (shards on disk)", "",
           "| workers | frames | wall (fresh process: start + JIT + object loads) | frames/s | frames/hour | "
           "CPU time (all processes) | load average after |", "|---|---|---|---|---|---|---|"]
  size_per_1000 = None
  for workers in (1, 2):
    out = tempfile.mkdtemp(prefix="synthetic_bench_")
    # A fresh interpreter per run, so both settings pay the same start-up and JIT costs.
    code = ("from scorehoi_jax.data.synthetic import generator; "
            f"generator.generate({args.num}, {args.seed}, {out!r}, workers={workers}, progress=False, "
            f"frames_per_shard=16, config=generator.SyntheticConfig(layout={config.layout!r}, "
            f"resolution={config.resolution}, backend={args.backend!r}))")
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
  lines += ["", "## Dataset size", "",
            f"{size_per_1000:.0f} MiB per 1,000 frames (compressed .npz: image, masks, float32 depth, all labels "
            "incl. the full-resolution human contact).", ""]
  return lines


if __name__ == "__main__":
  main()
