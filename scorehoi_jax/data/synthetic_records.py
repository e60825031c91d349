"""What a ``synthetic_hoi`` record is: the dataset's name, its extra fields, frame -> record.

Shared by the two ways of building the dataset, the process pool
(synthetic_hoi.py) and Apache Beam (synthetic_beam.py), so that neither has to
import the other for it and both store identical records.
"""

from __future__ import annotations

import numpy as np

NAME = "synthetic_hoi"
EXTRA_FEATURES = {
    "interaction": ((), "text"),
    "seed": ((), np.int64),
    "object_seed": ((), np.int64),
    "crop_box": ((4,), np.float32),
    "pose_class": ((), "text"),  # What the body does (scenes.POSE_CLASSES).
    "ground_plane": ((4,), np.float32),  # Floor in camera coordinates: n·x + d = height above it.
}


def frame_record(frame: dict, split: str, names: list[str]) -> dict:
  """A generated frame -> the record the builder stores, or ``{"skip": reason}``."""
  if not frame["human_mask"].any() or not frame["object_mask"].any():
    return {"skip": "empty_mask"}  # The pipeline needs both masks to crop.
  rec = dict(frame)
  rec["frame_id"] = f"{split}-{int(frame['seed']):010d}"
  rec["object_id"] = names.index(frame["object_name"]) if frame["object_name"] in names else -1
  return rec
