"""The ``synthetic_hoi`` dataset: our generator's frames as a TFDS dataset.

Two stages, each resumable on its own:
  1. ``generate`` writes raw ``.npz`` shards under ``<out>/raw/`` (the slow
     part; complete shards survive an interruption and are skipped);
  2. the TFDS builder encodes the shards into ArrayRecord files under
     ``<out>/synthetic_hoi/<version>/`` (minutes; TFDS redoes it whole if it
     was interrupted, the shards stay).
The train and test splits use disjoint object instances and body shapes
(SyntheticConfig.split) and their own frame-seed streams.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from scorehoi_jax.data.synthetic import SyntheticConfig, generate, iter_frames
from scorehoi_jax.data.tfds_common import DatasetError, make_builder_class, prepare
from scorehoi_jax.errors import ScoreHOIError

NAME = "synthetic_hoi"
EXTRA_FEATURES = {
    "interaction": ((), "text"),
    "seed": ((), np.int64),
    "object_seed": ((), np.int64),
    "crop_box": ((4,), np.float32),
}
_TEST_SEED_OFFSET = 1_000_003  # The test split's frame seeds: a stream apart from train's.


def raw_dir(out_dir: str) -> str:
  return os.path.join(out_dir, "raw")


def _records(raw: str, split: str):
  from scorehoi_jax.objects import list_objects
  names = list_objects()
  for frame in iter_frames(raw, split):
    if not frame["human_mask"].any() or not frame["object_mask"].any():
      yield {"skip": "empty_mask"}  # The pipeline needs both masks to crop.
      continue
    rec = dict(frame)
    rec["frame_id"] = f"{split}-{int(frame['seed']):010d}"
    rec["object_id"] = names.index(frame["object_name"]) if frame["object_name"] in names else -1
    yield rec


class SyntheticHoi(make_builder_class(NAME, EXTRA_FEATURES, description=(
    "Synthetic human-object interactions: the embedded open body model posed with procedural "
    "objects by scorehoi_jax.data.synthetic, rendered with masks and exact contact labels."))):
  """Reads the raw shards written by ``generate``; reader argument: raw (folder)."""

  def _split_generators(self, dl_manager):
    raw = self.reader_kwargs.get("raw")
    if not raw or not os.path.isdir(raw):
      raise DatasetError(f"{raw}: no raw synthetic shards folder.")
    splits = [s for s in ("train", "test")
              if any(p.startswith(f"{NAME}-{s}.npz-") for p in os.listdir(raw))]
    return {s: self._generate_examples(s, _records(raw, s)) for s in splits}


def prepare_synthetic(out_dir: str, num: int, seed: int = 0, resolution: int = 256, workers: int = 2,
                      test_fraction: float = 0.1, progress: bool = True, config: SyntheticConfig | None = None):
  """Generate ``num`` frames (train + test) and build the TFDS dataset in ``out_dir``."""
  if num < 1:
    raise ScoreHOIError(f"--num must be at least 1, got {num}.")
  if not 0.0 <= test_fraction < 1.0:
    raise ScoreHOIError(f"--test-fraction must be in [0, 1), got {test_fraction}.")
  num_test = int(round(num * test_fraction)) if num > 1 else 0
  base = config or SyntheticConfig(resolution=resolution)
  raw = raw_dir(out_dir)
  for split, n, split_seed in (("train", num - num_test, seed), ("test", num_test, seed + _TEST_SEED_OFFSET)):
    if n:
      generate(n, split_seed, raw, workers=workers, resolution=resolution, progress=progress,
               config=dataclasses.replace(base, split=split, resolution=resolution))
  return prepare(SyntheticHoi(data_dir=out_dir, raw=raw))
