"""The Gaussian-mixture body-pose prior of the silhouette fit (refine.pose_fit_gmm), one component per pose class.

  python experiments/pose_prior.py --data /work/data/syn

Reads the body poses (joints 1–21, 6D) and pose classes of the synthetic training split and writes
scorehoi_jax/assets/pose_prior.npz (body/pose_prior.py: each class's mean and shrunk covariance, the
classes' shares as weights). Only training frames are read. It also prints the mean −log p of the
test split's poses and of the same poses with every joint's 6D perturbed by noise of 0.1 (about 6°), as
a check that the prior tells a plausible pose from a bent one.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from scorehoi_jax.body.pose_prior import POSE_PRIOR, fit_class_gaussians, pose_nll, save_pose_prior  # noqa: E402
from scorehoi_jax.data.tfds_common import data_source  # noqa: E402
from scorehoi_jax.geometry.rotations import matrix_to_rot6d  # noqa: E402


def read_poses(data: str, split: str, limit: int):
  """(body 6D [N, 126], pose classes [N]) of the first ``limit`` frames of a prepared synthetic split."""
  src = data_source(data, "synthetic_hoi", split)
  poses, classes = [], []
  for i in range(min(limit, len(src))):
    rec = src[i]
    cls = rec["pose_class"].decode() if isinstance(rec["pose_class"], bytes) else str(rec["pose_class"])
    pose = np.asarray(rec["pose"], np.float32).reshape(52, 3, 3)
    poses.append(np.asarray(matrix_to_rot6d(pose[1:22])).reshape(-1))
    classes.append(cls)
  return np.stack(poses), np.asarray(classes)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--data", required=True)
  ap.add_argument("--limit", type=int, default=100000)
  ap.add_argument("--shrink", type=float, default=0.1)
  ap.add_argument("--out", default=POSE_PRIOR)
  args = ap.parse_args(argv)
  poses, classes = read_poses(args.data, "train", args.limit)
  prior, names = fit_class_gaussians(poses, classes, args.shrink)
  save_pose_prior(args.out, prior, names, f"train split of {os.path.basename(os.path.normpath(args.data))}, "
                  f"{len(poses)} frames, shrink {args.shrink}")
  for n in names:
    print(f"{n}: {int(np.sum(classes == n))} frames")
  test, _ = read_poses(args.data, "test", args.limit)
  rng = np.random.default_rng(0)
  for what, p in (("train", poses), ("test", test), ("test + noise 0.1", test + 0.1 * rng.standard_normal(test.shape))):
    print(f"mean -log p, {what}: {float(np.mean(np.asarray(pose_nll(prior, p.astype(np.float32))))):.1f}")
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
