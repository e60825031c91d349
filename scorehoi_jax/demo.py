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


def _preview_png(path: str, vertices: np.ndarray, faces: np.ndarray):
  """Front and side views of the body, rendered with the project's renderer."""
  from PIL import Image

  from scorehoi_jax.render import Camera, Mesh
  from scorehoi_jax.render.visualize import HUMAN_COLOR, hstack, side_view

  # Camera axes are OpenCV's (y down, z forward); the body is +Y up, facing +Z:
  # a half turn about x makes it upright and facing the camera, 3.2 m in front.
  v = vertices * np.array([1.0, -1.0, -1.0])
  v = v - 0.5 * (v.min(0) + v.max(0)) + np.array([0.0, 0.0, 3.2])
  cam = Camera(focal=(700.0, 700.0), princpt=(200.0, 256.0), width=400, height=512)
  mesh = Mesh(v, faces, HUMAN_COLOR)
  front = side_view([mesh], cam, angle_deg=0.0)
  side = side_view([mesh], cam, angle_deg=90.0)
  Image.fromarray(hstack([front, side])).save(path)


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
    _preview_png(os.path.join(tmp, "body.png"), verts, faces)
  return os.path.abspath(out)


def list_outputs(out: str) -> list[str]:
  return [f for f in os.listdir(out) if not f.startswith(".")]
