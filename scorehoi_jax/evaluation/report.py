"""Reporting evaluator results: the Markdown table and the metrics.json / metrics.md folder.

``evaluator.evaluate`` returns a JSON-ready dict; these functions turn it
into what ``scorehoi evaluate`` writes (atomically: both files or none).
"""

from __future__ import annotations

import json
import os

import numpy as np

from scorehoi_jax.outputs import atomic_output_dir

TABLE_COLUMNS = (("CD human (cm) ↓", "cd_human", 2), ("CD object (cm) ↓", "cd_object", 2),
                 ("contact P ↑", "contact_precision", 3), ("contact R ↑", "contact_recall", 3),
                 ("contact F1 ↑", "contact_f1", 3), ("penetration (cm) ↓", "pen_depth_cm", 3),
                 ("inside (%) ↓", "pen_frac", 1), ("L_P", "loss_total", 4))


def _fmt(v, digits: int, percent: bool = False) -> str:
  if v is None or (isinstance(v, float) and not np.isfinite(v)):
    return "–"
  return f"{100 * v:.{digits}f}" if percent else f"{v:.{digits}f}"


def table_lines(result: dict, stages: str = "all") -> list[str]:
  """A Markdown table: one row per (method, stage); stages 'all' or 'final' (the method's last stage only)."""
  head = "| method | stage | " + " | ".join(c[0] for c in TABLE_COLUMNS) + " | s/sample |"
  lines = [head, "|" + "---|" * (len(TABLE_COLUMNS) + 3)]
  for name, md in result["methods"].items():
    items = list(md["stages"].items())
    if stages == "final":
      items = [items[-1]]
    for stage, d in items:
      cells = [_fmt(d.get(k), dg, percent=(k == "pen_frac")) for _, k, dg in TABLE_COLUMNS]
      lines.append(f"| {name} | {stage} | " + " | ".join(cells) + f" | {md['seconds_per_sample']:.3f} |")
  gt = result.get("ground_truth")
  if gt:
    cells = [_fmt(gt.get(k), dg, percent=(k == "pen_frac")) for _, k, dg in TABLE_COLUMNS]
    lines.append("| ground truth | (metric floor) | " + " | ".join(cells) + " | – |")
  return lines


def markdown_lines(result: dict, title: str = "Evaluation") -> list[str]:
  """metrics.md: settings, the full per-stage table, and notes on the protocol."""
  s = result["settings"]
  lines = [f"# {title}", "",
           f"- data: {result['dataset']} / {result['split']}, {result['num_frames']} frames; batch "
           f"{result['batch_size']}; device {result['backend']} ({result['device']})",
           f"- refinement: N = {s['num_rounds']}, τ = {s['tau']}, Δt = {s['dt']}, pt_mode {s['pt_mode']}, "
           f"cdir {s['cdir']}, carry {s['carry']}",
           f"- Chamfer: joint similarity Procrustes (human + object vertices) onto the GT, "
           f"{result['num_samples']} surface samples per mesh, mean NN gt→pred + pred→gt, cm",
           "- contact: guidance-vertex (431) human points within 5 cm of the object mesh vs the record's "
           "labels; P/R averaged over samples with a non-empty denominator, F1 of the averages",
           "- penetration: mean depth of the full-mesh human vertices inside the object (SDF), cm; "
           "inside = share of vertices inside",
           "- L_P: the refinement's physical loss at that stage (guidance body, that round's predicted masks)",
           "- s/sample: reconstruction call only (regressor + refinement + CRFormer), compile excluded, "
           "padded rows included in the work", ""]
  lines += table_lines(result)
  lines += ["", "Per method: compile (s), scoring (s), wall (s): " + "; ".join(
      f"{n} {md['compile_seconds']:.1f} / {md['scoring_seconds']:.1f} / {md['wall_seconds']:.1f}"
      for n, md in result["methods"].items())]
  return lines


def write_results(result: dict, out_dir: str, overwrite: bool = False) -> str:
  """metrics.json + metrics.md in ``out_dir``, written atomically (an existing folder needs overwrite)."""
  with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
    with open(os.path.join(tmp, "metrics.json"), "w") as f:
      json.dump(result, f, indent=1, allow_nan=True)
    with open(os.path.join(tmp, "metrics.md"), "w") as f:
      f.write("\n".join(markdown_lines(result)) + "\n")
  return out_dir
