"""Which part of the start limits the silhouette fit? (issue "Land on the person"; alignment.md)

The fit of reconstruct.fit_to_masks without its extra starts (placement, then 600 pose-fit steps with the
dense body and object outline) runs from the regressor's x, and from the same x with one part replaced by
the truth. The gain in silhouette IoU says which error of the start the local fit cannot undo. Mean IoU
and paired 95 % bootstrap intervals over the first --limit frames of a prepared synthetic split.

  .venv/bin/python experiments/fit_start_diagnosis.py --data /work/data/syn --limit 40
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import alignment as A  # noqa: E402
from scorehoi_jax.diffusion.image_evidence import (ImageEvidence, fit_placement, fit_pose,  # noqa: E402
                                                   mask_evidence_arrays)
from scorehoi_jax.diffusion.xpack import (BETAS, OBJ_ROT, OBJ_TRANS, decode_x, orthonormalize_x,  # noqa: E402
                                          pack_x_from_matrices)
from scorehoi_jax.model_store import default_model_path, load_model  # noqa: E402
from scorehoi_jax.reconstruct import BODY_POSE  # noqa: E402

# The parts of x a variant takes from the truth (ROOT: the global orientation's 6D).
PARTS = {"+ true body pose (joints 1-21)": BODY_POSE, "+ true root orientation": slice(0, 6),
         "+ true shape": BETAS, "+ true object pose": slice(OBJ_ROT.start, OBJ_TRANS.stop)}


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--data", required=True)
  ap.add_argument("--limit", type=int, default=40)
  args = ap.parse_args(argv)
  model = load_model(default_model_path())
  src = A.data_source(args.data, "synthetic_hoi", "test")
  recs = [A.decode_record(src[i]) for i in range(min(args.limit, len(src)))]
  objs = [A.get_object(name, seed=None if seed < 0 else seed) for name, seed in map(A._object_key, recs)]
  rec = A.Reconstructor(model, A.methods(["regressor"])["regressor"])
  cfg = A.pipeline.PipelineConfig(size=int(model.config.data.image_size))
  b = A.pipeline.stack([A.pipeline.make_example(dict(r, object_template=ob.template), cfg)[0]
                        for r, ob in zip(recs, objs)])
  st = jax.device_get(rec(b, A.stack_geometries([ob.geometry() for ob in objs])))
  ev = mask_evidence_arrays(b["image"][..., 3:5])
  evidence = ImageEvidence(ev["distance"], ev["samples_h"], ev["weight_h"], ev["samples_o"], ev["weight_o"],
                           jnp.asarray(st.cam_trans), b["focal"], b["princpt"])
  x_gt = np.asarray(pack_x_from_matrices(b["pose"], b["obj_rot"], b["obj_trans"], b["betas"], rec.stats))
  outline = np.stack([ob.fit_points for ob in objs])

  def points(x):
    d = decode_x(x, rec.bodies.fit, outline, rec.stats, False)
    return d.human_points, d.object_points

  @jax.jit
  def fit(x, ev_):
    cam, offset = fit_placement(*points(x), ev_, 60)
    x, cam = fit_pose(x.at[:, OBJ_TRANS].add(offset), points, dataclasses.replace(ev_, cam_trans=cam), 600, 0.001)
    return orthonormalize_x(x), cam

  def ious(x, cam):
    p = rec.decode(x)
    verts = np.asarray(A.full_vertices(rec.bodies, p.rotmats, p.betas))
    rows = []
    for i, (r, ob) in enumerate(zip(recs, objs)):
      turn = np.asarray(b["camera_rot"][i], np.float64)
      c = turn @ np.asarray(cam[i], np.float64)
      obj = (np.asarray(ob.vertices) @ np.asarray(p.obj_rotmat[i]).T + np.asarray(p.obj_trans[i])) @ turn.T + c
      hm, om = A.silhouettes((verts[i] @ turn.T + c, np.asarray(rec.bodies.full.faces)), (obj, ob.faces),
                             A.camera_of(r))
      rows.append((A.mask_iou(hm, r["human_mask"] > 0), A.mask_iou(om, r["object_mask"] > 0)))
    return np.asarray(rows)

  x_reg = np.asarray(st.x_regressor)
  res = {}
  for name, part in [("regressor start", None)] + list(PARTS.items()):
    x = x_reg.copy()
    if part is not None:
      x[:, part] = x_gt[:, part]
    t = time.time()
    res[name] = ious(*map(np.asarray, fit(jnp.asarray(x), evidence)))
    print(f"{name}: human {res[name][:, 0].mean():.3f}, object {res[name][:, 1].mean():.3f} ({time.time() - t:.0f} s)")
  base = res["regressor start"]
  idx = np.random.default_rng(0).integers(0, len(base), (2000, len(base)))
  for name, v in res.items():
    d = v - base
    lo, hi = np.percentile(d[idx].mean(1), [2.5, 97.5], axis=0)
    print(f"{name}: Δ human {d[:, 0].mean():+.3f} [{lo[0]:+.3f}, {hi[0]:+.3f}], "
          f"Δ object {d[:, 1].mean():+.3f} [{lo[1]:+.3f}, {hi[1]:+.3f}]")


if __name__ == "__main__":
  main()
