"""Calibrate the contact-mask thresholds of a model on training frames and store them in its model.json.

  python experiments/calibrate_contacts.py --data /work/data/syn --model scorehoi_jax/assets/model \
      --limit 480 --check-split test

Writes experiments/results/contact_calibration.md: per head, the labels per frame, the mask size and
F1 at 0.5 and at the chosen threshold, on the calibration frames and (--check-split) on held-out frames.
Why the thresholds exist: evaluation/calibration.py.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from scorehoi_jax.evaluation import calibration as C  # noqa: E402
from scorehoi_jax.model_store import default_model_path, load_model  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--data", required=True)
  ap.add_argument("--model", default=default_model_path())
  ap.add_argument("--split", default="train")
  ap.add_argument("--limit", type=int, default=480)
  ap.add_argument("--check-split", default="test", help="held-out split scored at the chosen thresholds ('' = none)")
  ap.add_argument("--check-limit", type=int, default=420)
  ap.add_argument("--out", default=os.path.join(RESULTS, "contact_calibration.md"))
  args = ap.parse_args(argv)
  model = load_model(args.model)
  res = C.calibrate(model, args.data, args.split, limit=args.limit)
  check = C.contact_probabilities(model, args.data, args.check_split, limit=args.check_limit) if args.check_split else None
  C.write_thresholds(args.model, res)
  lines = ["# Contact-mask thresholds of the shipped model", "",
           f"{datetime.date.today()}, {platform.machine()} CPU, model `{os.path.relpath(args.model)}`. "
           f"Calibrated on {res['frames']} `{args.split}` frames of `{args.data}` (ContactFormer at the "
           "regressor's estimate, as CDIR's first round sees it); the threshold maximises mask F1 over every "
           "entry (evaluation/calibration.py). Written to model.json `config.contact_thresholds`; "
           "`refine.mask_threshold=\"model\"` uses them.", "",
           "| head | labels / frame | on / frame @0.5 | F1 @0.5 | threshold | on / frame | F1 | P | R |",
           "|---|---|---|---|---|---|---|---|---|"]
  for h in C.HEADS:
    r = res[h]
    lines.append(f"| {h} | {r['labels_per_frame']:.1f} | {r['on_at_0.5']:.1f} | {r['f1_at_0.5']:.3f} | "
                 f"{r['threshold']:.2f} | {r['on_per_frame']:.1f} | {r['f1']:.3f} | {r['precision']:.3f} | "
                 f"{r['recall']:.3f} |")
  if check is not None:
    n = len(check["human"][0])
    lines += ["", f"Held out: {n} `{args.check_split}` frames at the same thresholds.", "",
              "| head | labels / frame | on / frame @0.5 | F1 @0.5 | on / frame | F1 | P | R |", "|---|---|---|---|---|---|---|---|"]
    for h in C.HEADS:
      p, y = check[h]
      t = res[h]["threshold"]
      at, base = C.mask_f1(p, y, t), C.mask_f1(p, y, 0.5)
      lines.append(f"| {h} | {(y > 0.5).sum() / n:.1f} | {(p > 0.5).sum() / n:.1f} | {base['f1']:.3f} | "
                   f"{(p > t).sum() / n:.1f} | {at['f1']:.3f} | {at['precision']:.3f} | {at['recall']:.3f} |")
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out, "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
