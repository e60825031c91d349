"""Unguided drift of the refinement (issue: "Unguided drift"): how far do rounds without guidance move x?

With guidance off, a round is DDIM inversion to τ followed by DDIM sampling back; with a perfect
sampler it returns its input. We run the shipped model on the demo frames (regressor → N rounds, no
guidance) for each setting of the endpoint (ᾱ_0 of the schedule vs ᾱ_0 := 1) and of the fixed-point
inversion steps, and report the change of x after one round and after N rounds: max |Δx|, and the
object translation change in mm.

  .venv/bin/python experiments/drift.py   # writes experiments/results/drift.md
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import sys

import jax
import numpy as np

from scorehoi_jax import demo
from scorehoi_jax import reconstruct_io as rio
from scorehoi_jax.diffusion.xpack import OBJ_TRANS
from scorehoi_jax.data import pipeline
from scorehoi_jax.model_store import load_model, default_model_path
from scorehoi_jax.objects.geometry import stack_geometries
from scorehoi_jax.reconstruct import Reconstructor

VARIANTS = [("released: ᾱ_0 of the schedule, DDIM inversion", False, 0),
            ("ᾱ_0 := 1", True, 0),
            ("ᾱ_0 := 1, 1 fixed-point step", True, 1),
            ("ᾱ_0 := 1, 2 fixed-point steps", True, 2)]


def main(out="experiments/results/drift.md"):
  model = load_model(default_model_path())
  frames = demo.example_frames()
  objs = [rio.resolve_object(f.object, f.object_seed) for f in frames]
  batch = pipeline.stack([rio.load_frame(f, int(model.config.data.image_size), o.template)[0]
                          for f, o in zip(frames, objs)])
  geoms = stack_geometries([o.geometry() for o in objs])
  rows = []
  for name, clean, iters in VARIANTS:
    rec = Reconstructor(model)
    rec = Reconstructor(model, settings=dataclasses.replace(rec.settings, use_guidance=False, clean_endpoint=clean,
                                                           invert_iters=iters))
    st = jax.device_get(rec(batch, geoms))
    x0, xr = np.asarray(st.x_regressor), np.asarray(st.x_rounds)
    one, last = xr[0] - x0, xr[-1] - x0
    rows.append((name, np.abs(one).max(), 1000 * np.linalg.norm(one[:, OBJ_TRANS], axis=-1).max(),
                 np.abs(last).max(), 1000 * np.linalg.norm(last[:, OBJ_TRANS], axis=-1).max()))
    print(rows[-1], flush=True)
  n = rec.settings.num_rounds
  lines = ["# Unguided drift of the refinement", "",
           f"{datetime.date.today()}, {platform.machine()} CPU, jax {jax.__version__}, load {os.getloadavg()[0]:.1f}; "
           f"shipped model, the {len(frames)} demo frames, τ = {rec.settings.tau}, Δt = {rec.settings.dt}, "
           f"guidance off, N = {n}. Written by experiments/drift.py.", "",
           f"| setting | max abs Δx, 1 round | object t moved, 1 round (mm) | max abs Δx, {n} rounds | "
           f"object t moved, {n} rounds (mm) |", "|---|---|---|---|---|"]
  lines += [f"| {r[0]} | {r[1]:.4f} | {r[2]:.2f} | {r[3]:.4f} | {r[4]:.2f} |" for r in rows]
  os.makedirs(os.path.dirname(out), exist_ok=True)
  with open(out, "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main(*sys.argv[1:])
