"""Render every procedural object into one PNG contact sheet.

Run:  python experiments/object_contact_sheet.py [--out experiments/results/objects_contact_sheet.png]
(the same as `scorehoi objects --sheet OUT`, plus a row of seeded instances).

Each panel shows the shaded mesh, the 64 template points in red, and the name
with its size in metres (scorehoi_jax/objects/contact_sheet.py). The seeded
instance row at the bottom shows size variation.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from scorehoi_jax.objects import procedural_names  # pylint: disable=g-import-not-at-top
from scorehoi_jax.objects.contact_sheet import contact_sheet  # pylint: disable=g-import-not-at-top


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "objects_contact_sheet.png"))
  args = parser.parse_args()
  extra = [("chairwood", 7), ("tablesquare", 3), ("boxmedium", 5), ("stool", 11)]
  print(f"wrote {contact_sheet(args.out, procedural_names(), extra)}")


if __name__ == "__main__":
  main()
