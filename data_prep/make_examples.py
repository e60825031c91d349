"""Build the demo frames in scorehoi_jax/assets/examples/ with our synthetic generator.

  .venv/bin/python data_prep/make_examples.py [--out scorehoi_jax/assets/examples]

Each example is one frame of ``scorehoi_jax.data.synthetic.generate_frame``
(test split: object instances and body shapes the training split never
sees), restricted to one interaction and a few object categories so the
picture shows a clear interaction; the seeds below were picked by eye from
the first few seeds. A frame is a function of (seed, config) alone, so this
script rebuilds the same files. Written per example:

  <name>.jpg           the RGB image (JPEG quality 92: keeps the folder well under 1 MB)
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
    ("lift_box", "lift", ("boxmedium", "boxlarge"), 1001),
    ("sit_chair", "sit", ("chairwood", "chairblack"), 1001),
    ("hold_ball", "hold_one_hand", ("basketball",), 1000),
    ("carry_yogaball", "carry", ("yogaball", "suitcase", "boxsmall"), 1001),
)
RESOLUTION = 256
SPLIT = "test"
JPEG_QUALITY = 92


def default_out() -> str:
  return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scorehoi_jax", "assets",
                      "examples")


def make_examples(out: str) -> dict:
  from scorehoi_jax.data.synthetic import generator

  os.makedirs(out, exist_ok=True)
  entries = []
  for name, interaction, objects, seed in EXAMPLES:
    cfg = generator.SyntheticConfig(resolution=RESOLUTION, split=SPLIT, interactions=(interaction,),
                                    objects=objects)
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
        "generator": {"seed": seed, "resolution": RESOLUTION, "split": SPLIT, "interactions": [interaction],
                      "objects": list(objects)},
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
  make_examples(parser.parse_args().out)


if __name__ == "__main__":
  main()
