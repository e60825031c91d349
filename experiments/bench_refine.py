"""Benchmark of the compiled ScoreHOI refinement (random weights, synthetic scene).

  .venv/bin/python experiments/bench_refine.py                       # CPU defaults
  .venv/bin/python experiments/bench_refine.py --batch 64,1024,4096  # on a GPU
  .venv/bin/python experiments/bench_refine.py --config refine_compat --settings released \
      --config.denoiser.compat_widths=True                           # released widths end to end

For each setting (paper: N=10, τ=50, Δt=2; released: N=20, τ=50, Δt=5) and
batch it reports compile time, time per refinement, per-sample time and
samples/s, the compiled program's memory and the process peak RSS; then where
the time goes (denoiser call, body model fwd+bwd, distances, SDF, contact
predictor, each jitted alone and multiplied by its count per refinement), and
the per-call time of the denoiser at the released widths. Results go to
experiments/results/refine.md (CPU) or refine_<device>.md, with the machine,
date and load average (CPU timings on a shared machine are noisy).
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
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from scorehoi_jax.config import load_config, split_overrides  # noqa: E402
from scorehoi_jax.diffusion import losses as L  # noqa: E402
from scorehoi_jax.diffusion.refine import RefineInputs, loss_terms, masks_from_probs  # noqa: E402
from scorehoi_jax.diffusion.sampler import build_refiner  # noqa: E402
from scorehoi_jax.diffusion.xpack import decode_x, pack_x_from_matrices  # noqa: E402
from scorehoi_jax.geometry import SDFGrid, axis_angle_to_matrix, grid_points  # noqa: E402
from scorehoi_jax.models.denoiser import compat_denoiser, count_params, init_params_numpy  # noqa: E402
from scorehoi_jax.objects.geometry import ObjectGeometry  # noqa: E402
from results_io import write_markdown  # noqa: E402  (experiments/ is the script's folder)

SETTINGS = {"paper": dict(num_rounds=10, tau=50, dt=2), "released": dict(num_rounds=20, tau=50, dt=5)}
# Released PyTorch refinement, random weights, SMPL-H-sized body, 2 CPU threads (brief / notes §10.2).
RELEASED = [("denoiser call, batch 1", "0.12–0.21 s"), ("denoiser call, batch 8", "0.27–1.2 s"),
            ("one round (Δt=5), batch 1", "4.3–7.5 s"), ("one round (Δt=5), batch 8", "8.9 s"),
            ("one round (Δt=2), batch 8", "16.5 s"),
            ("full refinement, per sample", "≈20 s (batch 8) … 50–150 s (batch 1)")]
RELEASED_BEST_PER_SAMPLE = 20.0


def box_geometry(batch, half=0.08, res=48, extent=0.25, seed=0):
  """An analytic box SDF grid (as the objects package would build) and 64 surface points."""
  lo, hi = -extent * np.ones(3), extent * np.ones(3)
  p = np.asarray(grid_points(lo, hi, res))
  q = np.abs(p) - half
  sdf = np.linalg.norm(np.maximum(q, 0), axis=-1) + np.minimum(q.max(-1), 0)
  rng = np.random.default_rng(seed)
  k = rng.uniform(-half, half, (64, 3))
  k[np.arange(64), rng.integers(0, 3, 64)] = np.where(rng.random(64) < 0.5, -half, half)
  bc = lambda a: jnp.asarray(np.broadcast_to(a, (batch,) + a.shape), jnp.float32)
  return ObjectGeometry(template=bc(k), sdf=SDFGrid(bc(sdf), bc(lo), bc(hi)))


def synthetic_inputs(batch, body, stats, img_tokens, img_dim, geo_dim, seed=0):
  """Random poses near rest in camera axes, a box near the right hand, random conditions."""
  rng = np.random.default_rng(seed)
  aa = rng.normal(size=(batch, 52, 3)) * 0.15
  aa[:, 0] = [np.pi, 0.0, 0.0]  # Body up = camera −y.
  rot = axis_angle_to_matrix(jnp.asarray(aa, jnp.float32))
  x = pack_x_from_matrices(rot, jnp.tile(jnp.eye(3), (batch, 1, 1)), jnp.zeros((batch, 3)),
                           jnp.asarray(rng.normal(size=(batch, 10)), jnp.float32), stats)
  objects = box_geometry(batch)
  wrist = decode_x(x, body, objects.template, stats).joints[:, 21]
  x = x.at[:, 318:321].set(wrist + jnp.asarray(rng.normal(size=(batch, 3)) * 0.05, jnp.float32))
  f = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)
  return RefineInputs(x_init=x, objects=objects, c_img=f(batch, img_tokens, img_dim), c_geo=f(batch, 64, geo_dim))


def timeit(fn, *args, repeats=3):
  jax.block_until_ready(fn(*args))
  ts = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    ts.append(time.perf_counter() - t0)
  return float(np.min(ts)), float(np.median(ts))


def peak_rss_mb():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_refine(cfg, refiner, params, inp, repeats):
  fn = refiner.fn
  args = (params, inp, refiner.body, refiner.stats, refiner.weights)
  t0 = time.perf_counter()
  compiled = fn.lower(*args).compile()
  compile_s = time.perf_counter() - t0
  mem = compiled.memory_analysis()
  temp_mb = (getattr(mem, "temp_size_in_bytes", 0) or 0) / 2**20 if mem is not None else float("nan")
  best, med = timeit(compiled, *args, repeats=repeats)
  return dict(compile_s=compile_s, best_s=best, median_s=med, temp_mb=temp_mb, rss_mb=peak_rss_mb())


def breakdown(refiner, params, inp, repeats):
  """Per-call time of each jitted piece and its count per refinement."""
  s, den, body, stats, w = refiner.settings, refiner.denoiser, refiner.body, refiner.stats, refiner.weights
  b = inp.x_init.shape[0]
  steps = len(range(0, s.tau + 1, s.dt)) - 1
  cond = jax.jit(lambda p, ci, cg: den.apply(p, ci, cg, method="encode"))(params, inp.c_img, inp.c_geo)
  t = jnp.full((b,), 25, jnp.int32)
  x = inp.x_init
  dec = decode_x(x, body, inp.objects.template, stats)
  m_h, m_o = jnp.ones(dec.human_points.shape[:2]), jnp.ones((b, 64))
  wb = jax.tree_util.tree_map(lambda v: jnp.broadcast_to(v, (b,)), w)

  pieces = {}
  pieces["denoiser call"] = (jax.jit(lambda p, x, c: den.apply(p, x, t, c, method="denoise")),
                             (params, x, cond), s.num_rounds * 2 * steps * (2 if s.through_denoiser else 1))
  body_fn = jax.jit(jax.grad(lambda x: jnp.sum(decode_x(x, body, inp.objects.template, stats).human_points ** 2)))
  pieces["body model fwd+bwd (431 v)"] = (body_fn, (x,), s.num_rounds * steps)
  dist_fn = jax.jit(jax.grad(lambda h, o: jnp.sum(jax.vmap(L.contact_loss)(h, o, m_h, m_o)), argnums=(0, 1)))
  pieces["distances fwd+bwd (L_ho)"] = (dist_fn, (dec.human_points, dec.object_points), s.num_rounds * steps)
  if s.pt_mode != "off":
    sdf_fn = jax.jit(jax.grad(lambda h: jnp.sum(jax.vmap(L.penetration_loss)(h, dec.obj_rotmat, dec.obj_trans,
                                                                                 inp.objects.sdf))))
    pieces["SDF fwd+bwd (L_pt)"] = (sdf_fn, (dec.human_points,), s.num_rounds * steps)
  probs = refiner.contact_fn(dec.human_points, dec.object_points, inp.aux)
  masks = masks_from_probs(probs, s)
  full_g = jax.jit(jax.grad(lambda x: jnp.sum(loss_terms(x, masks, inp, body, stats, wb, s)[0].total)))
  pieces["= whole guidance gradient (L_P)"] = (full_g, (x,), s.num_rounds * steps)
  cfn = jax.jit(lambda h, o: refiner.contact_fn(h, o, inp.aux))
  pieces["contact predictor (stand-in)"] = (cfn, (dec.human_points, dec.object_points), s.num_rounds if s.cdir else 1)
  rows = []
  for name, (fn, args, count) in pieces.items():
    best, _ = timeit(fn, *args, repeats=max(repeats, 5))
    rows.append((name, best, count))
  return rows


ABLATIONS = (("whole refinement", {}),
             ("without guidance (denoiser + DDIM only)", dict(use_guidance=False)),
             ("without L_pt (no SDF lookups)", dict(pt_mode="off")),
             ("without L_ho (no human–object distances)", dict(use_ho=False)),
             ("contacts predicted once (frozen)", dict(cdir=False)))


def ablation_times(cfg, params, inp, repeats, body_model):
  """The whole compiled refinement with one piece switched off at a time.

  All variants are compiled first and then timed round-robin (best of
  ``repeats`` rounds), so load changes on a shared machine hit all alike.
  """
  runs = []
  for name, overrides in ABLATIONS:
    saved = {k: cfg.refine[k] for k in overrides}
    for k, v in overrides.items():
      cfg.refine[k] = v
    refiner = build_refiner(cfg, body_model=body_model)
    args = (params, inp, refiner.body, refiner.stats, refiner.weights)
    compiled = refiner.fn.lower(*args).compile()
    jax.block_until_ready(compiled(*args))
    runs.append((name, compiled, args))
    for k, v in saved.items():
      cfg.refine[k] = v
  best = {name: float("inf") for name, _, _ in runs}
  for _ in range(repeats):
    for name, compiled, args in runs:
      t0 = time.perf_counter()
      jax.block_until_ready(compiled(*args))
      best[name] = min(best[name], time.perf_counter() - t0)
  return [(name, best[name]) for name, _, _ in runs]


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--config", default="refine_paper", help="plus any --config.a.b=value overrides")
  ap.add_argument("--batch", default="1,8,64", help="comma-separated batch sizes")
  ap.add_argument("--settings", default="paper,released", help="comma-separated: paper, released")
  ap.add_argument("--rounds", type=int, default=None, help="override N for every setting")
  ap.add_argument("--repeats", type=int, default=2)
  ap.add_argument("--breakdown-batch", type=int, default=None, help="default: the largest batch")
  ap.add_argument("--compat-batch", default="1,8", help="batches for the released-width denoiser ('' to skip)")
  ap.add_argument("--img-tokens", type=int, default=64)
  ap.add_argument("--img-dim", type=int, default=2048)
  ap.add_argument("--geo-dim", type=int, default=256)
  ap.add_argument("--skip-ablations", action="store_true", help="skip the in-situ time breakdown")
  ap.add_argument("--skip-breakdown", action="store_true", help="skip the standalone per-piece times too")
  ap.add_argument("--out", default=None)
  overrides, rest = split_overrides(sys.argv[1:] if argv is None else list(argv))
  args = ap.parse_args(rest)
  args.overrides = overrides

  dev = jax.devices()[0]
  kind = dev.device_kind if dev.platform != "cpu" else "cpu"
  out = args.out or ("experiments/results/refine.md" if dev.platform == "cpu"
                     else f"experiments/results/refine_{kind.lower().replace(' ', '_')}.md")
  cfg = load_config(args.config, overrides)
  batches = [int(v) for v in args.batch.split(",") if v]
  load0 = os.getloadavg()
  lines = []
  results = {}
  params = None
  for name in [v for v in args.settings.split(",") if v]:
    for k, v in SETTINGS[name].items():
      setattr(cfg.refine, k, v)
    if args.rounds:
      cfg.refine.num_rounds = args.rounds
    refiner = build_refiner(cfg)
    for b in batches:
      inp = synthetic_inputs(b, refiner.body, refiner.stats, args.img_tokens, args.img_dim, args.geo_dim)
      if params is None:
        params = init_params_numpy(refiner.denoiser, 0, inp.x_init, jnp.zeros((b,), jnp.int32), inp.c_img, inp.c_geo)
      r = bench_refine(cfg, refiner, params, inp, args.repeats)
      r.update(setting=name, batch=b, rounds=refiner.settings.num_rounds, dt=refiner.settings.dt)
      results[(name, b)] = (r, refiner, inp)
      print(f"{name:8s} B={b:5d} compile {r['compile_s']:.1f}s  run {r['best_s']:.2f}s  "
            f"{b / r['best_s']:.2f} samples/s", flush=True)
      if args.skip_breakdown:  # Nothing is measured after the batches: keep the report current (time limits).
        write_report(out, args, cfg, dev, kind, results, [], r["best_s"], b, name, [], count_params(params), load0,
                     [])

  first = [v for v in args.settings.split(",") if v][0]
  bb = args.breakdown_batch or max(batches)
  _, refiner_b, inp_b = results[(first, bb)]
  rows = [] if args.skip_breakdown else breakdown(refiner_b, params, inp_b, args.repeats)
  total_b = results[(first, bb)][0]["best_s"]
  for k, v in SETTINGS[first].items():
    setattr(cfg.refine, k, v)
  if args.rounds:
    cfg.refine.num_rounds = args.rounds
  abl = ablation_times(cfg, params, inp_b, args.repeats, refiner_b.full_body) if not args.skip_ablations else []
  for name, t in abl:
    print(f"ablation: {name}: {t:.2f}s", flush=True)

  compat_rows = []
  for b in [int(v) for v in args.compat_batch.split(",") if v]:
    den = compat_denoiser()
    x = jnp.zeros((b, 331))
    t = jnp.full((b,), 25, jnp.int32)
    ci, cg = jnp.ones((b, args.img_tokens, args.img_dim)), jnp.ones((b, 64, args.geo_dim))
    p = init_params_numpy(den, 1, x, t, ci, cg)
    cond = jax.jit(lambda p, ci, cg: den.apply(p, ci, cg, method="encode"))(p, ci, cg)
    best, med = timeit(jax.jit(lambda p, x, c: den.apply(p, x, t, c, method="denoise")), p, x, cond,
                       repeats=max(args.repeats, 5))
    compat_rows.append((b, best, med, count_params(p)))
    del p, cond

  n_default = count_params(params)
  write_report(out, args, cfg, dev, kind, results, rows, total_b, bb, first, compat_rows, n_default, load0, abl)
  print(f"wrote {out}")


def write_report(out, args, cfg, dev, kind, results, rows, total_b, bb, first, compat_rows, n_default, load0, abl):
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
  except (OSError, StopIteration):
    pass
  now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
  L_ = []
  L_.append(f"# Refinement benchmark — {kind} ({dev.platform})\n")
  L_.append(f"- Date: {now}; machine: {cpu}, {os.cpu_count()} cores visible; device: {dev.device_kind}; "
            f"jax {jax.__version__}.")
  L_.append(f"- Load average at start / end: {load0[0]:.1f} / {os.getloadavg()[0]:.1f} "
            "(the CPU is shared with other jobs: timings are noisy, ±2× between runs is possible).")
  L_.append(f"- Config: `{args.config}` (denoiser {n_default / 1e6:.1f}M parameters, random weights; guidance "
            f"on 431 subset vertices × 64 object points; SDF grid 48³; image tokens {args.img_tokens}×{args.img_dim}, "
            f"geometry tokens 64×{args.geo_dim}; proximity contact stand-in).")
  L_.append(f"- Command: `python experiments/bench_refine.py --config {args.config} --batch {args.batch} "
            f"--settings {args.settings} {' '.join(args.overrides)}`\n")
  L_.append("## Whole refinement (one `jax.jit`)\n")
  L_.append("| setting | N | Δt | batch | compile (s) | time / refinement (s) best (median) | per sample (s) "
            "| samples/s | program temp memory (MiB) | process peak RSS (MiB) | vs released best (≈20 s/sample) |")
  L_.append("|---|---|---|---|---|---|---|---|---|---|---|")
  for (name, b), (r, _, _) in results.items():
    ps = r["best_s"] / b
    L_.append(f"| {name} | {r['rounds']} | {r['dt']} | {b} | {r['compile_s']:.1f} | {r['best_s']:.2f} "
              f"({r['median_s']:.2f}) | {ps:.3f} | {b / r['best_s']:.2f} | {r['temp_mb']:.0f} | {r['rss_mb']:.0f} | "
              f"{RELEASED_BEST_PER_SAMPLE / ps:.0f}× |")
  if rows or abl:
    L_.append(f"\n## Where the time goes ({first} settings, batch {bb})\n")
  if abl:
    L_.append("**In situ** (authoritative): the whole compiled refinement re-timed with one piece switched off "
              "(variants timed round-robin, best of the repeats); "
              "the difference to the whole refinement is that piece's cost inside the loop. The body model "
              "(LBS on 431 vertices, forward + backward) is the guidance cost not explained by the other rows.\n")
    L_.append("| variant | time (s) | difference = cost of the piece (s) | share |")
    L_.append("|---|---|---|---|")
    full = abl[0][1]
    for name, t in abl:
      diff = "" if name == abl[0][0] else f"{full - t:.2f}"
      share = "100%" if name == abl[0][0] else f"{100 * (full - t) / full:.0f}%"
      L_.append(f"| {name} | {t:.2f} | {diff} | {share} |")
    d = dict(abl)
    guid = full - d[ABLATIONS[1][0]]
    rest = guid - (full - d[ABLATIONS[2][0]]) - (full - d[ABLATIONS[3][0]])
    L_.append(f"| ⇒ denoiser + DDIM arithmetic | {d[ABLATIONS[1][0]]:.2f} | | "
              f"{100 * d[ABLATIONS[1][0]] / full:.0f}% |")
    L_.append(f"| ⇒ guidance gradient, all terms | {guid:.2f} | | {100 * guid / full:.0f}% |")
    L_.append(f"| ⇒ of which body model, floor term, bookkeeping | {rest:.2f} | | {100 * rest / full:.0f}% |")
    L_.append("")
  if rows:
    L_.append(("**Standalone**: " if abl else "") +
              "each piece jitted alone (best of ≥5), times its number of calls per refinement. The pieces of the "
              "guidance gradient overlap with the whole-gradient row (which is what the sampler runs); "
              "'rest' is the measured total minus denoiser, whole gradient and contact rows. Pieces timed alone "
              "run outside the loop and at other moments of a shared machine, so this table can over- or "
              "under-count (a negative 'rest' means it over-counts)" + ("; the in-situ table is the honest one." if abl
                                                                      else ".") + "\n")
    L_.append("| piece | per call (ms) | calls / refinement | total (s) | share of measured |")
    L_.append("|---|---|---|---|---|")
    accounted = 0.0
    for name, best, count in rows:
      tot = best * count
      if name.startswith(("denoiser", "=", "contact")):
        accounted += tot
      L_.append(f"| {name} | {best * 1e3:.2f} | {count} | {tot:.2f} | {100 * tot / total_b:.0f}% |")
    L_.append(f"| rest (DDIM arithmetic, decode/loss bookkeeping, scan overhead) | | | {total_b - accounted:.2f} | "
              f"{100 * (total_b - accounted) / total_b:.0f}% |")
    L_.append(f"| **measured refinement** | | | **{total_b:.2f}** | 100% |")
  if compat_rows:
    L_.append("\n## Denoiser at the released widths (hidden 2048, 3 + 2 blocks), per call\n")
    L_.append("Conditions' keys/values precomputed once per refinement, as our sampler does (the released code "
              "recomputes its inert condition path on every call).\n")
    L_.append("| batch | per call best (ms) | median (ms) | parameters |")
    L_.append("|---|---|---|---|")
    for b, best, med, n in compat_rows:
      L_.append(f"| {b} | {best * 1e3:.1f} | {med * 1e3:.1f} | {n / 1e6:.0f}M |")
  L_.append("\n## Released PyTorch refinement on 2 CPU threads, for comparison (random weights, measured, noisy)\n")
  L_.append("| quantity | time |")
  L_.append("|---|---|")
  for q, v in RELEASED:
    L_.append(f"| {q} | {v} |")
  write_markdown(out, L_)


if __name__ == "__main__":
  main()
