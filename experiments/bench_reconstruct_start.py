"""Whole-process time of `scorehoi reconstruct` on one demo image: cold (empty cache) and warm (cache filled).

  .venv/bin/python experiments/bench_reconstruct_start.py [--example lift_box] [--warm 2]
      [--source LABEL=DIR ...] [--out experiments/results/reconstruct_start.md]

Each run is a fresh ``python -m scorehoi_jax.cli reconstruct ... --quiet`` process
(start-up, imports, model load, the call, the files written), timed from outside with
``/usr/bin/time -v`` (wall clock and peak memory). The cold run starts from an empty
``SCOREHOI_CACHE_DIR``; the warm runs reuse what it stored. A last warm run under cProfile gives
the breakdown (top 15 by cumulative time). ``--source`` benchmarks other checkouts of the package
(``PYTHONPATH``), e.g. the commit before a change, in the same sitting. The load average is
written next to every number: on a shared machine a busy neighbour slows everything down.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import pstats
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results_io import write_markdown  # noqa: E402  (experiments/ is the script's folder)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _example_args(name: str) -> list[str]:
  folder = os.path.join(ROOT, "scorehoi_jax", "assets", "examples")
  with open(os.path.join(folder, "examples.json")) as f:
    e = {x["name"]: x for x in json.load(f)["examples"]}[name]
  return ["--image", os.path.join(folder, e["image"]), "--human-mask", os.path.join(folder, e["human_mask"]),
          "--object-mask", os.path.join(folder, e["object_mask"]), "--object", e["object"],
          "--object-seed", str(e["object_seed"]), "--focal", str(e["focal"][0]),
          "--princpt", str(e["princpt"][0]), str(e["princpt"][1])]


def _load() -> str:
  return " ".join(f"{v:.2f}" for v in os.getloadavg())


def run_once(source: str, cache: str, out: str, args: list[str], profile: str | None = None) -> dict:
  """One reconstruct process; its wall time (s), peak RSS (MiB) and the load average before and after."""
  env = dict(os.environ, SCOREHOI_CACHE_DIR=cache,
             PYTHONPATH=os.pathsep.join([source] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
  py = [sys.executable] + (["-m", "cProfile", "-o", profile] if profile else [])
  cmd = py + ["-m", "scorehoi_jax.cli", "reconstruct", *args, "--out", out, "--quiet", "--overwrite"]
  timer = ["/usr/bin/time", "-v"] if os.path.exists("/usr/bin/time") else []
  before = _load()
  t0 = datetime.datetime.now()
  # cwd: not a checkout, so `-m` imports the package from PYTHONPATH (the source asked for).
  proc = subprocess.run(timer + cmd, env=env, capture_output=True, text=True, check=False, cwd=os.path.dirname(out))
  wall = (datetime.datetime.now() - t0).total_seconds()
  if proc.returncode != 0:
    raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
  rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
  wall_v = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", proc.stderr)
  if wall_v:
    parts = [float(p) for p in wall_v.group(1).split(":")]
    wall = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
  return dict(wall=wall, rss_mib=int(rss.group(1)) / 1024 if rss else float("nan"), load_before=before,
              load_after=_load(), cmd=" ".join(cmd[len(py):]))


_WRAPPERS = re.compile(r"<frozen runpy>|<string>:1\(|builtins\.exec|builtins\.__import__|"
                       r"importlib\._bootstrap(_external)?>:\d+\((?!_find_and_load\))|traceback_util|profiler\.py")


def top_cumulative(profile: str, n: int = 15) -> str:
  """The top ``n`` functions by cumulative time, less the wrappers that only repeat their callee's time
  (runpy, exec, importlib internals but the one import total, JAX's traceback and profiler wrappers)."""
  s = io.StringIO()
  stats = pstats.Stats(profile, stream=s)
  stats.sort_stats("cumulative").print_stats(4 * n + 20)
  text = s.getvalue()
  lines = text[text.index("ncalls"):].splitlines() if "ncalls" in text else text.splitlines()
  body = [line for line in lines[1:] if line.strip() and not _WRAPPERS.search(line)]
  return "\n".join(lines[:1] + body[:n])


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--example", default="lift_box", help="demo example (scorehoi_jax/assets/examples)")
  p.add_argument("--warm", type=int, default=2, help="warm runs per source (after the cold one)")
  p.add_argument("--source", action="append", default=[],
                 help="LABEL=DIR: a checkout of the package to time (default: this one, labelled 'this')")
  p.add_argument("--no-profile", action="store_true", help="skip the cProfile run")
  p.add_argument("--out", default=os.path.join(ROOT, "experiments", "results", "reconstruct_start.md"))
  a = p.parse_args()
  sources = [s.split("=", 1) for s in a.source] or [["this", ROOT]]
  args = _example_args(a.example)
  rows, profiles, cmd = [], {}, ""
  work = tempfile.mkdtemp(prefix="bench_reconstruct_start-")
  try:
    for label, src in sources:
      cache = os.path.join(work, f"cache-{label}")
      runs = [("cold", run_once(src, cache, os.path.join(work, "out"), args))]
      runs += [(f"warm {i + 1}", run_once(src, cache, os.path.join(work, "out"), args)) for i in range(a.warm)]
      for kind, r in runs:
        rows.append(f"| {label} | {kind} | {r['wall']:.1f} | {r['rss_mib']:.0f} | {r['load_before']} | "
                    f"{r['load_after']} |")
        print(rows[-1], flush=True)
        cmd = r["cmd"]
      if not a.no_profile:
        prof = os.path.join(work, f"{label}.prof")
        r = run_once(src, cache, os.path.join(work, "out"), args, profile=prof)
        profiles[label] = (r, top_cumulative(prof))
  finally:
    shutil.rmtree(work, ignore_errors=True)
  cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
             platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
  lines = [
      "# `scorehoi reconstruct` of one image: cold and warm start",
      "",
      f"Made by `experiments/bench_reconstruct_start.py` on {datetime.date.today().isoformat()}; "
      f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}.",
      "",
      f"Command (each run a new process, timed with `/usr/bin/time -v`): `python {cmd}`, demo example "
      f"`{a.example}`. Cold: empty `SCOREHOI_CACHE_DIR`; warm: the cache the cold run filled "
      "(XLA executables, traced programs, parameter shapes; scorehoi_jax/jax_cache.py).",
      "",
      "Load average (1, 5, 15 min) before and after each run: other jobs on the machine slow every number down.",
      "",
      "| source | run | wall s | peak RSS MiB | load before | load after |",
      "|---|---|---:|---:|---|---|",
      *rows,
      "",
      "Sources: " + ", ".join(f"{label} = `{src}`" for label, src in sources) + ".",
  ]
  for label, (r, text) in profiles.items():
    lines += ["", f"## cProfile of a warm run ({label}): {r['wall']:.1f} s wall under the profiler, "
                  f"load {r['load_before']} → {r['load_after']}", "", "Top 15 by cumulative time (wrappers left out):", "", "```",
              text.rstrip(), "```"]
  print(write_markdown(a.out, lines))


if __name__ == "__main__":
  main()
