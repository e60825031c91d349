"""The body-pose hypotheses the silhouette fit starts from (refine.pose_hypotheses), one per pose class.

  python experiments/pose_hypotheses.py --data /work/data/syn --limit 1200

For each pose class of the synthetic training split (stand, sit, bend, squat, ...), the medoid of the
class's body poses (joints 1–21, 6D; the frame whose pose is nearest the class mean) is written to
scorehoi_jax/assets/pose_hypotheses.npz. Why: the regressor gives one pose; when its class is wrong (a
seated person reconstructed standing) a local fit cannot recover, but a fit from each class's typical
pose, judged by how well its silhouette fills the masks, can (reconstruct.py, image_evidence.py). Only
training frames are read; the file is a few KiB.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pose_prior import read_poses  # noqa: E402  (experiments/pose_prior.py: the same poses, the same classes)

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scorehoi_jax", "assets",
                   "pose_hypotheses.npz")


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--data", required=True)
  ap.add_argument("--split", default="train")
  ap.add_argument("--limit", type=int, default=1200)
  ap.add_argument("--out", default=OUT)
  args = ap.parse_args(argv)
  body6d, classes = read_poses(args.data, args.split, args.limit)
  by_class = collections.defaultdict(list)
  for pose, cls in zip(body6d, classes):
    by_class[str(cls)].append(pose)
  names, poses, counts = [], [], []
  for cls in sorted(by_class):
    p = np.stack(by_class[cls])
    medoid = p[np.argmin(np.sum((p - p.mean(0)) ** 2, -1))]
    names.append(cls)
    poses.append(medoid.reshape(21, 6))
    counts.append(len(p))
  np.savez(args.out, body6d=np.stack(poses).astype(np.float32), names=np.asarray(names), counts=np.asarray(counts),
           source=np.asarray(f"{args.split} split of {os.path.basename(os.path.normpath(args.data))}, "
                             f"{sum(counts)} frames"))
  for n, c in zip(names, counts):
    print(f"{n}: {c} frames")
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
