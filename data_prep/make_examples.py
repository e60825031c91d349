"""Build the demo frames in scorehoi_jax/assets/examples/ with our synthetic generator.

  .venv/bin/python data_prep/make_examples.py [--out scorehoi_jax/assets/examples]

Each example is one full frame of ``scorehoi_jax.data.synthetic.generate_frame``
in the capture layout (a 512 x 384 frame from a Kinect-like camera, the
person small and anywhere in it, as in real capture; test split: object
instances and body shapes the training split never sees), restricted to one
interaction and object category so the picture shows a clear interaction;
the seeds below were picked by eye (``--candidates N`` prints the first N
seeds' framings to choose from), two of them with the person well off the
image centre. A frame is a function of (seed, config) alone, so this script
rebuilds the same files. Written per example:

  <name>.jpg           the RGB image (JPEG quality 85: each file stays under 60 KB)
  <name>_human.png     human mask (0 / 255)
  <name>_object.png    object mask (0 / 255)

and ``examples.json``: per example the file names, the object (library name
+ instance seed, what ``scorehoi demo`` passes to ``get_object``), the
camera (focal, princpt in pixels) and how the frame was made.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
from PIL import Image

# (name, interaction, allowed object categories, generator seed).
EXAMPLES = (
    ("lift_box", "lift", ("boxmedium", "boxlarge"), 1005),  # Person at the left, low in the frame.
    ("sit_chair", "sit", ("chairwood", "chairblack"), 1004),  # At the left.
    ("hold_ball", "hold_one_hand", ("basketball",), 1002),  # At the right, far.
    ("carry_yogaball", "carry", ("yogaball",), 1000),
)
LAYOUT = "capture"
RESOLUTION = 512
SPLIT = "test"
JPEG_QUALITY = 85


def default_out() -> str:
  return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scorehoi_jax", "assets",
                      "examples")


def _config(interaction, objects):
  from scorehoi_jax.data.synthetic import generator
  return generator.SyntheticConfig(layout=LAYOUT, resolution=RESOLUTION, split=SPLIT, interactions=(interaction,),
                                   objects=objects)


def candidates(num: int, start: int = 1000) -> None:
  """Print, per example, the first ``num`` seeds' interaction, object and subject box (to pick seeds)."""
  from scorehoi_jax.data.synthetic import generator
  for name, interaction, objects, _ in EXAMPLES:
    for seed in range(start, start + num):
      f = generator.generate_frame(seed, _config(interaction, objects))
      h, w = f["human_mask"].shape
      x0, y0, x1, y1 = f["crop_box"]
      print(f"{name} seed {seed}: {f['interaction']} / {f['object_name']}, subject centre "
            f"({0.5 * (x0 + x1) / w:.2f}, {0.5 * (y0 + y1) / h:.2f}) of the frame, height {(y1 - y0) / h:.2f}")


def make_examples(out: str) -> dict:
  from scorehoi_jax.data.synthetic import generator

  os.makedirs(out, exist_ok=True)
  entries = []
  for name, interaction, objects, seed in EXAMPLES:
    cfg = _config(interaction, objects)
    frame = generator.generate_frame(seed, cfg)
    Image.fromarray(frame["image"]).save(os.path.join(out, f"{name}.jpg"), quality=JPEG_QUALITY)
    for key, suffix in (("human_mask", "human"), ("object_mask", "object")):
      Image.fromarray((frame[key] > 0).astype(np.uint8) * 255).save(os.path.join(out, f"{name}_{suffix}.png"),
                                                                    optimize=True)
    entries.append({
        "name": name,
        "image": f"{name}.jpg",
        "human_mask": f"{name}_human.png",
        "object_mask": f"{name}_object.png",
        "object": str(frame["object_name"]),
        "object_seed": int(frame["object_seed"]),
        "focal": [float(v) for v in frame["focal"]],
        "princpt": [float(v) for v in frame["princpt"]],
        "interaction": str(frame["interaction"]),
        "generator": {"seed": seed, "layout": LAYOUT, "resolution": RESOLUTION, "split": SPLIT,
                      "interactions": [interaction], "objects": list(objects)},
    })
    print(f"{name}: {frame['interaction']} with {frame['object_name']} (instance seed {int(frame['object_seed'])})")
  info = {"made_by": "data_prep/make_examples.py (scorehoi_jax.data.synthetic.generate_frame)",
          "examples": entries}
  with open(os.path.join(out, "examples.json"), "w") as f:
    json.dump(info, f, indent=1)
  return info


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=default_out())
  parser.add_argument("--candidates", type=int, default=0, help="print the first N seeds' framings instead")
  args = parser.parse_args()
  if args.candidates:
    candidates(args.candidates)
  else:
    make_examples(args.out)


if __name__ == "__main__":
  main()
