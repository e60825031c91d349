"""Summarise training runs (stage 0/1/2 work dirs) as one Markdown report with their curves.

  .venv/bin/python experiments/training_report.py --runs runs/d0 runs/d1 runs/d2 \
      --name default_model --title "The shipped default model" --notes "data: ..."

writes experiments/results/<name>.md and curves_<name>_stage<k>.png: per stage
the loss (mean of the first / last three logged steps), median throughput
and every validation record.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from scorehoi_jax.train import loop  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _stage(run: str) -> int:
  with open(os.path.join(run, "config.json")) as f:
    return int(json.load(f)["stage"])


def _section(run: str, name: str) -> list[str]:
  recs = loop.read_metrics(run)
  train = [r for r in recs if "loss" in r]
  val = [r for r in recs if any(k.startswith("val/") for k in r)]
  stage = _stage(run)
  lines = [f"## Stage {stage} (`{run}`, last logged step {train[-1]['step'] if train else '-'})", ""]
  if train:
    first = np.mean([r["loss"] for r in train[:3]])
    last = np.mean([r["loss"] for r in train[-3:]])
    rate = np.median([r["examples_per_s"] for r in train if "examples_per_s" in r] or [np.nan])
    lines.append(f"Training loss (mean of first / last 3 logged): {first:.3f} → {last:.3f}; median throughput "
                 f"{rate:.1f} examples/s.")
  curves = f"curves_{name}_stage{stage}.png"
  src = os.path.join(run, "curves.png")
  if os.path.exists(src):
    shutil.copy(src, os.path.join(RESULTS, curves))
    lines.append(f"Curves: `{curves}`.")
  if val:
    keys = sorted({k for r in val for k in r if k.startswith("val/")})
    lines += ["", "| step | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for r in val:
      lines.append(f"| {r['step']} | " + " | ".join(f"{r[k]:.3f}" if k in r else "" for k in keys) + " |")
  return lines + [""]


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--runs", nargs="+", required=True, help="training work dirs, in stage order")
  p.add_argument("--name", required=True, help="report file name (without .md)")
  p.add_argument("--title", default="Training runs")
  p.add_argument("--notes", default="", help="free text under the title (data, commands, machine)")
  args = p.parse_args(argv)
  os.makedirs(RESULTS, exist_ok=True)
  lines = [f"# {args.title}", "",
           f"Date: {datetime.date.today()}. Machine: {platform.machine()}, {os.cpu_count()} CPU cores"
           f" (load average at report time {os.getloadavg()[0]:.1f}).", ""]
  if args.notes:
    lines += [args.notes, ""]
  for run in args.runs:
    lines += _section(run, args.name)
  path = os.path.join(RESULTS, f"{args.name}.md")
  with open(path, "w") as f:
    f.write("\n".join(lines))
  print(path)


if __name__ == "__main__":
  main()
