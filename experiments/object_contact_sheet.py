"""Render every procedural object into one PNG contact sheet.

Run:  python experiments/object_contact_sheet.py [--out experiments/results/objects_contact_sheet.png]

Each panel shows the shaded mesh (matplotlib Poly3DCollection, Lambert shading
with a fixed light), the 64 template points in red, and the name with its
size in metres. A seeded instance row at the bottom shows size variation.
"""

from __future__ import annotations

import argparse
import os
import sys

import matplotlib

matplotlib.use("Agg")  # Headless.
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from scorehoi_jax.objects import get_object, procedural_names  # pylint: disable=g-import-not-at-top

# Our frame is +Y up; matplotlib's 3D axes are +Z up. (x, y, z) -> (x, -z, y) is a rotation.
_TO_MPL = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])


def draw(ax, obj, title):
  v = obj.vertices @ _TO_MPL.T
  tri = v[obj.faces]
  n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
  n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
  light = np.array([0.4, -0.7, 0.6])
  light /= np.linalg.norm(light)
  shade = 0.35 + 0.65 * np.clip(n @ light, 0, 1)
  colors = np.clip(shade[:, None] * np.array([0.55, 0.68, 0.85]), 0, 1)
  ax.add_collection3d(Poly3DCollection(tri, facecolors=colors, edgecolors="none", linewidths=0))
  t = obj.template @ _TO_MPL.T
  ax.scatter(t[:, 0], t[:, 1], t[:, 2], s=3, c="crimson", depthshade=False)
  lo, hi = v.min(0), v.max(0)
  c, r = (lo + hi) / 2, (hi - lo).max() / 2
  ax.set_xlim(c[0] - r, c[0] + r)
  ax.set_ylim(c[1] - r, c[1] + r)
  ax.set_zlim(c[2] - r, c[2] + r)
  ax.set_box_aspect((1, 1, 1))
  ax.view_init(elev=22, azim=-60)
  ax.set_axis_off()
  ext = obj.mesh.extents
  ax.set_title(f"{title}\n{ext[0]:.2f}×{ext[1]:.2f}×{ext[2]:.2f} m", fontsize=8)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "objects_contact_sheet.png"))
  args = parser.parse_args()
  names = procedural_names()
  extra = [("chairwood", 7), ("tablesquare", 3), ("boxmedium", 5), ("stool", 11)]
  cols = 6
  rows = (len(names) + len(extra) + cols - 1) // cols
  fig = plt.figure(figsize=(cols * 2.4, rows * 2.6))
  for i, name in enumerate(names):
    draw(fig.add_subplot(rows, cols, i + 1, projection="3d"), get_object(name, sdf_resolution=16), name)
  for j, (name, seed) in enumerate(extra):
    draw(fig.add_subplot(rows, cols, len(names) + j + 1, projection="3d"),
         get_object(name, seed=seed, sdf_resolution=16), f"{name} seed={seed}")
  fig.suptitle("scorehoi_jax procedural objects (+Y up; red: 64-point templates)", fontsize=11)
  fig.tight_layout()
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  fig.savefig(args.out, dpi=90)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
