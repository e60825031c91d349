"""A contact sheet of library objects: one shaded panel per object with its 64 template points.

Each panel shows the mesh (matplotlib Poly3DCollection, Lambert shading with a
fixed light; no GL needed), the template points in red, and the name with the
size in metres. Used by ``scorehoi objects --sheet`` and
experiments/object_contact_sheet.py.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from scorehoi_jax.objects.registry import get_object, list_objects

# Our frame is +Y up; matplotlib's 3D axes are +Z up. (x, y, z) -> (x, -z, y) is a rotation.
_TO_MPL = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])


def draw(ax, obj, title: str) -> None:
  """One object (an ObjectTemplate) into a matplotlib 3D axis."""
  from mpl_toolkits.mplot3d.art3d import Poly3DCollection
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


def contact_sheet(out: str, names=None, extra=(), cols: int = 6, dpi: int = 90) -> str:
  """Draw ``names`` (default: every library object) then ``extra`` (name, seed) instances into ``out``.

  The PNG is written to a temporary file next to ``out`` and renamed, so a
  failed run leaves no partial image.
  """
  import matplotlib
  matplotlib.use("Agg")  # Headless; the sheet is a file.
  import matplotlib.pyplot as plt
  names = list(list_objects() if names is None else names)
  panels = [(n, None, n) for n in names] + [(n, s, f"{n} seed={s}") for n, s in extra]
  rows = max(1, -(-len(panels) // cols))
  fig = plt.figure(figsize=(cols * 2.4, rows * 2.6))
  try:
    for i, (name, seed, title) in enumerate(panels):
      draw(fig.add_subplot(rows, cols, i + 1, projection="3d"), get_object(name, seed=seed, sdf_resolution=16),
           title)
    fig.suptitle("scorehoi_jax objects (+Y up; red: 64-point templates)", fontsize=11)
    fig.tight_layout()
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".sheet-", suffix=".png", dir=folder)
    os.close(fd)
    try:
      fig.savefig(tmp, dpi=dpi)
      os.chmod(tmp, 0o644)
      os.replace(tmp, out)
    except BaseException:
      os.remove(tmp)
      raise
  finally:
    plt.close(fig)
  return out
