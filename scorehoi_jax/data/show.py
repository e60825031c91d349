"""``scorehoi show``: one stored frame as a picture (image | masks | GT overlay | side view).

Works for every prepared dataset: the ground-truth body is rebuilt from the
stored pose and betas with the body model the dataset was made with (the
embedded default for synthetic_hoi; pass your SMPL-H file for BEHAVE and
friends), and the object is the library instance when the registry knows it,
otherwise its 64 template points drawn as small spheres.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from scorehoi_jax import body as body_lib
from scorehoi_jax.data.tfds_common import DatasetError, data_source, decode_record
from scorehoi_jax.render import Camera, Mesh
from scorehoi_jax.render.visualize import HUMAN_COLOR, contact_colors, hoi_panel, hstack, mask_image


def _object_mesh(rec: dict) -> tuple[np.ndarray, np.ndarray]:
  """Canonical-frame object vertices and faces for a record."""
  from scorehoi_jax.objects import get_object, list_objects
  name = str(rec.get("object_name", ""))
  if name in list_objects():
    seed = int(rec["object_seed"]) if "object_seed" in rec else None
    obj = get_object(name, seed=seed)
    return np.asarray(obj.mesh.vertices), np.asarray(obj.mesh.faces)
  import trimesh
  ball = trimesh.creation.icosphere(subdivisions=1, radius=0.01)
  pts = np.asarray(rec["object_template"])
  verts = np.concatenate([ball.vertices + p for p in pts])
  faces = np.concatenate([ball.faces + i * len(ball.vertices) for i in range(len(pts))])
  return verts, faces


def frame_panel(rec: dict, model: body_lib.BodyModel) -> np.ndarray:
  """The panel image (uint8) for a decoded record."""
  out = body_lib.body_forward(model, jnp.asarray(rec["pose"]), jnp.asarray(rec["betas"]))
  human = np.asarray(out.vertices) - np.asarray(out.joints)[0] + np.asarray(rec["cam_trans"])
  ov, of = _object_mesh(rec)
  obj = ov @ np.asarray(rec["obj_rot"]).T + np.asarray(rec["obj_trans"])
  image = rec["image"]
  h, w = image.shape[:2]
  cam = Camera(tuple(np.asarray(rec["focal"], float)), tuple(np.asarray(rec["princpt"], float)), w, h)
  full = rec.get("human_contact_full")
  h_mesh = Mesh(human, np.asarray(model.faces), HUMAN_COLOR)
  if full is not None and len(full) == len(human):
    h_mesh = Mesh(human, np.asarray(model.faces), contact_colors(np.asarray(full) > 0))
  panel = hoi_panel(image, h_mesh, Mesh(obj, of, (0.35, 0.55, 0.85)), cam)
  return hstack([panel, mask_image(rec["human_mask"], rec["object_mask"])])


def show(data_dir: str, index: int, out_png: str, split: str = "train", dataset: str = "synthetic_hoi",
         body_model: str | None = None) -> str:
  from PIL import Image
  source = data_source(data_dir, dataset, split)
  if not 0 <= index < len(source):
    raise DatasetError(f"{data_dir}/{dataset} {split}: index {index} out of range (0..{len(source) - 1}).")
  rec = decode_record(source[index])
  model = body_lib.load_body_model(body_model)
  if model.num_betas < len(rec["betas"]):
    rec["betas"] = rec["betas"][:model.num_betas]
  Image.fromarray(frame_panel(rec, model)).save(out_png)
  return out_png
