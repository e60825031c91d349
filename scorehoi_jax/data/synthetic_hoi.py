"""The ``synthetic_hoi`` dataset: our generator's frames as a TFDS dataset.

Two stages, each resumable on its own:
  1. ``generate`` writes raw ``.npz`` shards under ``<out>/raw/`` (the slow
     part; complete shards survive an interruption and are skipped);
  2. the TFDS builder encodes the shards into ArrayRecord files under
     ``<out>/synthetic_hoi/<version>/`` (minutes; TFDS redoes it whole if it
     was interrupted, the shards stay).
The train and test splits use disjoint object instances and body shapes
(SyntheticConfig.split) and their own frame-seed streams.

With ``beam=True`` both stages become one Apache Beam pipeline instead
(synthetic_beam.py: frames are generated inside the pipeline, no raw shards,
no process pool), for datasets that outgrow one machine.
"""

from __future__ import annotations

import dataclasses
import os

from scorehoi_jax.data.synthetic import SyntheticConfig, generate, iter_frames
from scorehoi_jax.data.synthetic_records import EXTRA_FEATURES, NAME, frame_record
from scorehoi_jax.data.tfds_common import DatasetError, make_builder_class, prepare
from scorehoi_jax.errors import ScoreHOIError

_TEST_SEED_OFFSET = 1_000_003  # The test split's frame seeds: a stream apart from train's.


def raw_dir(out_dir: str) -> str:
  return os.path.join(out_dir, "raw")


def _records(raw: str, split: str):
  from scorehoi_jax.objects import list_objects
  names = list_objects()
  for frame in iter_frames(raw, split):
    yield frame_record(frame, split, names)


def split_plan(num: int, seed: int, test_fraction: float) -> list[tuple[str, int, int]]:
  """(split, number of frames, split seed) of the non-empty splits; frame i's seed is
  ``frame_seed(split seed, i)``. Shared by the process-pool and the Beam paths."""
  if num < 1:
    raise ScoreHOIError(f"--num must be at least 1, got {num}.")
  if not 0.0 <= test_fraction < 1.0:
    raise ScoreHOIError(f"--test-fraction must be in [0, 1), got {test_fraction}.")
  num_test = int(round(num * test_fraction)) if num > 1 else 0
  plan = (("train", num - num_test, seed), ("test", num_test, seed + _TEST_SEED_OFFSET))
  return [p for p in plan if p[1]]


class SyntheticHoi(make_builder_class(NAME, EXTRA_FEATURES, description=(
    "Synthetic human-object interactions: the embedded open body model posed with procedural "
    "objects by scorehoi_jax.data.synthetic, rendered with masks and exact contact labels."))):
  """Reads the raw shards written by ``generate``; reader argument: raw (folder).

  In Beam mode (reader argument ``beam_plan``, from synthetic_beam.beam_plan)
  it generates the frames inside the pipeline instead.
  """

  def _split_generators(self, dl_manager):
    if self.reader_kwargs.get("beam_plan") is not None:
      from scorehoi_jax.data import synthetic_beam
      return synthetic_beam.split_transforms(self)
    raw = self.reader_kwargs.get("raw")
    if not raw or not os.path.isdir(raw):
      raise DatasetError(f"{raw}: no raw synthetic shards folder.")
    splits = [s for s in ("train", "test")
              if any(p.startswith(f"{NAME}-{s}.npz-") for p in os.listdir(raw))]
    return {s: self._generate_examples(s, _records(raw, s)) for s in splits}

  def _process_pipeline_result(self, pipeline_result):
    # Only called in Beam mode: the written/skipped counts live in Beam counters.
    from scorehoi_jax.data import synthetic_beam
    synthetic_beam.record_counts(self, pipeline_result)


def prepare_synthetic(out_dir: str, num: int, seed: int = 0, resolution: int | None = None, workers: int = 2,
                      test_fraction: float = 0.1, progress: bool = True, config: SyntheticConfig | None = None,
                      beam: bool = False, beam_runner: str = "DirectRunner", beam_options: str | None = None,
                      layout: str | None = None):
  """Generate ``num`` frames (train + test) and build the TFDS dataset in ``out_dir``.

  ``layout`` ("capture" or "centred", SyntheticConfig.layout) and
  ``resolution`` (image width; None: the layout's default) override ``config``.

  ``beam=True`` runs generation and encoding as one Apache Beam pipeline on
  ``beam_runner`` with ``beam_options`` (a command-line string of Beam
  pipeline options; see synthetic_beam.py); ``workers`` is then unused.
  """
  from scorehoi_jax.locks import folder_lock
  plan = split_plan(num, seed, test_fraction)
  if config is None:
    base = SyntheticConfig(layout=layout or "capture", resolution=resolution)
  else:
    base = dataclasses.replace(config, **{k: v for k, v in (("layout", layout), ("resolution", resolution))
                                          if v is not None})
  with folder_lock(out_dir, "scorehoi prepare synthetic"):  # One writer per dataset folder.
    if beam:
      from scorehoi_jax.data import synthetic_beam
      beam_plan = synthetic_beam.beam_plan(plan, base, num=num, seed=seed, test_fraction=test_fraction)
      return synthetic_beam.prepare_with_beam(SyntheticHoi(data_dir=out_dir, beam_plan=beam_plan),
                                              runner=beam_runner, options=beam_options)
    raw = raw_dir(out_dir)
    for split, n, split_seed in plan:
      generate(n, split_seed, raw, workers=workers, progress=progress, config=dataclasses.replace(base, split=split))
    return prepare(SyntheticHoi(data_dir=out_dir, raw=raw))
