"""The demo behind ``scorehoi demo``: runs on embedded assets only, no downloads.

For now it poses the embedded open body model (a person reaching forward with
both hands, as when about to lift a box) and writes the mesh, its parameters
with smplx-style names, and a picture. It becomes the full image-to-HOI demo
once the reconstruction pipeline lands.
"""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np

from scorehoi_jax import body as body_lib
from scorehoi_jax.geometry import axis_angle_to_matrix
from scorehoi_jax.outputs import atomic_output_dir

# A reaching pose, as axis-angle per SMPL-H joint (radians, parent-relative).
_REACH_POSE = {
    "left_hip": (-0.5, 0.0, 0.05), "right_hip": (-0.5, 0.0, -0.05),
    "left_knee": (0.7, 0.0, 0.0), "right_knee": (0.7, 0.0, 0.0),
    "spine1": (0.25, 0.0, 0.0), "spine2": (0.1, 0.0, 0.0),
    "left_shoulder": (-1.0, 0.0, 0.25), "right_shoulder": (-1.0, 0.0, -0.25),
    "left_elbow": (-0.4, -0.3, 0.0), "right_elbow": (-0.4, 0.3, 0.0),
    "left_ankle": (-0.2, 0.0, 0.0), "right_ankle": (-0.2, 0.0, 0.0),
    "neck": (0.15, 0.0, 0.0),
}


def demo_pose() -> np.ndarray:
  aa = np.zeros((body_lib.NUM_JOINTS, 3), np.float32)
  for name, value in _REACH_POSE.items():
    aa[body_lib.SMPLH_JOINT_NAMES.index(name)] = value
  # Curl the fingers a little (rotation about each finger's bending axis).
  for j in range(22, 52):
    name = body_lib.SMPLH_JOINT_NAMES[j]
    if "thumb" not in name:
      aa[j] = (0.0, 0.0, 0.35 if name.startswith("left") else -0.35)
  return aa


def smplx_style_params(aa: np.ndarray, betas: np.ndarray) -> dict:
  """Axis-angle pose split with the names smplx uses (flat-hand semantics)."""
  return dict(global_orient=aa[0], body_pose=aa[1:22].reshape(-1),
              left_hand_pose=aa[22:37].reshape(-1), right_hand_pose=aa[37:52].reshape(-1),
              betas=betas)


def _preview_png(path: str, vertices: np.ndarray, faces: np.ndarray, title: str):
  """Front and side views, flat-shaded, drawn with matplotlib (painter's order)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from matplotlib.collections import PolyCollection

  fig, axes = plt.subplots(1, 2, figsize=(8, 5), dpi=110)
  light = np.array([0.3, 0.5, 1.0]) / np.linalg.norm([0.3, 0.5, 1.0])
  for ax, yaw, label in ((axes[0], 0.0, "front"), (axes[1], np.pi / 2, "side")):
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    v = vertices @ rot.T
    tri = v[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    visible = normal[:, 2] > 0
    order = np.argsort(tri[visible][:, :, 2].mean(1))  # Far first.
    shade = 0.25 + 0.75 * np.clip(normal[visible] @ light, 0, 1)
    colors = np.clip(np.array([0.85, 0.65, 0.55])[None] * shade[:, None], 0, 1)
    polys = tri[visible][order][:, :, :2]
    ax.add_collection(PolyCollection(polys, facecolors=colors[order], edgecolors=colors[order], linewidths=0.3))
    ax.set_xlim(v[:, 0].min() - 0.1, v[:, 0].max() + 0.1)
    ax.set_ylim(v[:, 1].min() - 0.05, v[:, 1].max() + 0.05)
    ax.set_aspect("equal")
    ax.set_title(label)
    ax.axis("off")
  fig.suptitle(title, fontsize=9)
  fig.savefig(path, bbox_inches="tight")
  plt.close(fig)


def run_body_demo(out: str = "demo_out", overwrite: bool = False, body_model: str | None = None,
                  seed: int = 0) -> str:
  """Pose the body model and write body.ply, params.npz and body.png to ``out``."""
  import trimesh

  model = body_lib.load_body_model(body_model)
  aa = demo_pose()
  betas = np.random.default_rng(seed).normal(size=model.num_betas).astype(np.float32) * 0.8
  output = body_lib.body_forward(model, axis_angle_to_matrix(jnp.asarray(aa)), jnp.asarray(betas))
  verts = np.asarray(output.vertices)
  faces = np.asarray(model.faces)
  with atomic_output_dir(out, overwrite=overwrite) as tmp:
    trimesh.Trimesh(verts, faces, process=False).export(os.path.join(tmp, "body.ply"))
    np.savez(os.path.join(tmp, "params.npz"), joints=np.asarray(output.joints),
             **smplx_style_params(aa, betas))
    _preview_png(os.path.join(tmp, "body.png"), verts, faces,
                 f"{model.name}: {model.num_vertices} vertices, {model.num_joints} joints")
  return os.path.abspath(out)


def list_outputs(out: str) -> list[str]:
  return [f for f in os.listdir(out) if not f.startswith(".")]
