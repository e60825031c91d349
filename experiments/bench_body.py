"""Body-model throughput: forward and forward+grad, JAX vs smplx, on this machine.

  .venv/bin/python experiments/bench_body.py [--batches 1 16 256] [--out experiments/results/body.md]

Models: the embedded open default (13,718 vertices, no pose correctives), an
SMPL-H-sized random model (6,890 vertices, 459 pose correctives, regressor
joints), and the 431-vertex guidance subset of the default. smplx (torch CPU)
runs on the SMPL-H-sized arrays when installed. Median of repeated runs after
a warm-up (compile excluded; compile time reported separately).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
import types

import jax
import jax.numpy as jnp
import numpy as np

from scorehoi_jax import body
from results_io import write_markdown  # noqa: E402  (experiments/ is the script's folder)


def _median_time(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return float(np.median(times))


def bench_jax(model, batch: int, repeats: int):
  rng = np.random.default_rng(0)
  from scipy.spatial.transform import Rotation
  rot = jnp.asarray(Rotation.from_rotvec(rng.normal(size=(batch * 52, 3)) * 0.3).as_matrix()
                    .reshape(batch, 52, 3, 3), jnp.float32)
  betas = jnp.asarray(rng.normal(size=(batch, 10)), jnp.float32)
  fwd = jax.jit(lambda m, r, b: body.body_forward(m, r, b).vertices)
  loss = lambda m, r, b: jnp.sum(body.body_forward(m, r, b).vertices ** 2)
  grad = jax.jit(jax.grad(loss, argnums=(1, 2)))
  t0 = time.perf_counter()
  jax.block_until_ready(fwd(model, rot, betas))
  compile_fwd = time.perf_counter() - t0
  t0 = time.perf_counter()
  jax.block_until_ready(grad(model, rot, betas))
  compile_grad = time.perf_counter() - t0
  t_fwd = _median_time(lambda: jax.block_until_ready(fwd(model, rot, betas)), repeats)
  t_grad = _median_time(lambda: jax.block_until_ready(grad(model, rot, betas)), repeats)
  return t_fwd, t_grad, compile_fwd, compile_grad


def bench_smplx(arrays, batch: int, repeats: int):
  try:
    import smplx
    import torch
  except ImportError:
    return None
  torch.set_num_threads(os.cpu_count() or 1)
  layer = smplx.SMPLH(model_path=None, data_struct=types.SimpleNamespace(**arrays), use_pca=False,
                      flat_hand_mean=True, num_betas=10, create_transl=False)
  rng = np.random.default_rng(0)
  kw = dict(global_orient=torch.tensor(rng.normal(size=(batch, 3)) * 0.3, dtype=torch.float32),
            body_pose=torch.tensor(rng.normal(size=(batch, 63)) * 0.3, dtype=torch.float32),
            left_hand_pose=torch.tensor(rng.normal(size=(batch, 45)) * 0.3, dtype=torch.float32),
            right_hand_pose=torch.tensor(rng.normal(size=(batch, 45)) * 0.3, dtype=torch.float32),
            betas=torch.tensor(rng.normal(size=(batch, 10)), dtype=torch.float32))

  def fwd():
    with torch.no_grad():
      layer(**kw)

  def grad():
    leaves = {k: v.clone().requires_grad_(True) for k, v in kw.items()}
    (layer(**leaves).vertices ** 2).sum().backward()

  fwd()
  grad()
  return _median_time(fwd, repeats), _median_time(grad, repeats)


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--batches", type=int, nargs="+", default=[1, 16, 256])
  ap.add_argument("--repeats", type=int, default=10)
  ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "body.md"))
  args = ap.parse_args()

  default = body.load_body_model()
  subset = body.subset_body_model(default, body.guidance_vertex_indices(default))
  arrays = body.random_smplh_arrays(0)
  smplh = body.from_arrays(arrays)
  rows = []
  for name, model, arr in (("open default (13,718 V)", default, None),
                           ("guidance subset of default (431 V)", subset, None),
                           ("SMPL-H-sized random (6,890 V, posedirs)", smplh, arrays)):
    for b in args.batches:
      repeats = max(3, args.repeats // (1 + b // 64))
      t_fwd, t_grad, c_fwd, c_grad = bench_jax(model, b, repeats)
      rows.append((name, "JAX (jit)", b, t_fwd, t_grad, model.num_vertices, f"{c_fwd:.2f} / {c_grad:.2f}"))
      print(rows[-1], flush=True)
      if arr is not None:
        res = bench_smplx(arr, b, repeats)
        if res is not None:
          rows.append((name, "smplx (torch)", b, res[0], res[1], model.num_vertices, "-"))
          print(rows[-1], flush=True)

  lines = [
      "# Body-model throughput",
      "",
      f"Date: {datetime.date.today()}. Machine: {platform.processor() or platform.machine()}, "
      f"{os.cpu_count()} CPU cores, jax {jax.__version__} on {jax.devices()[0].platform}. "
      "float32; median over repeats after warm-up; forward+grad = gradient of sum(v²) w.r.t. rotations and betas.",
      "Timings on a shared 2-core machine are noisy (±30 % between runs).",
      "",
      "| model | implementation | batch | forward ms | samples/s | Mvertices/s | fwd+grad ms | samples/s | compile s (fwd / grad) |",
      "|---|---|---|---|---|---|---|---|---|",
  ]
  for name, impl, b, t_fwd, t_grad, nv, comp in rows:
    lines.append(f"| {name} | {impl} | {b} | {t_fwd * 1e3:.2f} | {b / t_fwd:.0f} | {b * nv / t_fwd / 1e6:.1f} "
                 f"| {t_grad * 1e3:.2f} | {b / t_grad:.0f} | {comp} |")
  write_markdown(args.out, lines)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
