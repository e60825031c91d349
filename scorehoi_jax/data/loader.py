"""Training input on Grain: a global shuffle, per-example augmentation, worker processes, resumable state.

The stream of a run is a ``grain.MapDataset`` over global positions
j = 0, 1, 2, ... of an endless sequence of epochs: position j is record
``shuffle_{seed, epoch}(j mod n)`` of epoch ``j // n`` (Grain reshuffles each
epoch), decoded and cropped by ``pipeline.make_example`` with the generator
``example_rng(seed, epoch, record)``, so an example depends on nothing but
(seed, epoch, record), whichever process or worker makes it.

Batches respect the ``data`` mesh: process p of P takes positions
p, p + P, p + 2P, ... and stacks ``global_batch / P`` of them, so global batch
k holds exactly positions [kB, (k+1)B) whatever the number of processes, and
each process feeds its own devices (``sharding.shard_batch``).

Worker processes (``mp_prefetch``) each build whole host batches. The
iterator's state (``get_state``) is small JSON; the training loop saves it
with Orbax next to the train state (grain's checkpoint handler), so a resumed
run continues the exact example stream. Workers are spawned processes: a
script of your own that iterates with workers > 0 needs the usual
``if __name__ == "__main__":`` guard (``scorehoi train`` has it). On this
project's 2-core VM the read-ahead thread (workers = 0) feeds more than
workers do (experiments/results/data_pipeline.md); workers pay off where
cores are many, as on GPU hosts.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import grain

from scorehoi_jax.data import pipeline
from scorehoi_jax.errors import ScoreHOIError


def _decode_default():
  from scorehoi_jax.data.tfds_common import decode_record
  return decode_record


def positions(n: int, seed: int, shuffle: bool = True) -> grain.MapDataset:
  """Endless (epoch, record index) pairs: a fresh global permutation of n records per epoch."""
  if n <= 0:
    raise ScoreHOIError("the dataset split is empty; nothing to train on.")
  ds = grain.MapDataset.range(n)
  if shuffle:
    ds = ds.shuffle(seed=int(seed) % 2**32)
  return ds.repeat().map_with_index(lambda j, i: (j // n, int(i)))


class _Example:
  """(epoch, index) -> example: decode the record, then crop and augment with its own generator."""

  def __init__(self, source, config: pipeline.PipelineConfig, seed: int, decode: Callable | None):
    self.source, self.config, self.seed, self.decode = source, config, int(seed), decode

  def __call__(self, epoch_index):
    epoch, i = epoch_index
    decode = self.decode or _decode_default()
    rec = decode(self.source[i])
    return pipeline.make_example(rec, self.config, pipeline.example_rng(self.seed, epoch, i))[0]


def examples(source, config: pipeline.PipelineConfig, *, seed: int = 0, shuffle: bool = True,
             decode: Callable[[object], dict] | None = None) -> grain.MapDataset:
  """The endless stream of training examples of an indexable record source (e.g. a tfds data source).

  ``decode`` turns a stored record into a decoded one (default
  ``tfds_common.decode_record``).
  """
  return positions(len(source), seed, shuffle).map(_Example(source, config, seed, decode))


def host_batches(stream: grain.MapDataset, global_batch: int, process_index: int | None = None,
                 process_count: int | None = None) -> grain.MapDataset:
  """This process's share of each global batch (see the module docstring)."""
  if process_index is None or process_count is None:
    import jax
    process_index, process_count = jax.process_index(), jax.process_count()
  if global_batch % process_count:
    raise ScoreHOIError(f"batch size {global_batch} is not divisible by the {process_count} processes; "
                        f"use a multiple of {process_count}.")
  return stream[process_index::process_count].batch(global_batch // process_count, batch_fn=pipeline.stack)


def _allow_unparsed_absl_flags():
  """Grain <= 0.2.18 reads an absl flag in mp_prefetch and fails in programs that never parse absl
  flags (google/grain#1355, fixed upstream by #1362): mark them parsed, so every flag keeps its default."""
  from absl import flags
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def _one_thread_per_worker(index: int, count: int):
  """Worker processes already use the cores; OpenCV's own thread pool would only oversubscribe them."""
  import cv2
  cv2.setNumThreads(1)


def iterable(batches: grain.MapDataset, workers: int = 0, buffer: int = 2) -> grain.IterDataset:
  """A checkpointable iterable of batches: ``workers`` processes (0: one read-ahead thread here).

  ``buffer`` batches are read ahead per worker (or by the thread), enough
  to hide the input behind a training step without holding many batches.
  """
  ds = batches.to_iter_dataset(grain.ReadOptions(num_threads=1 if workers == 0 else 0, prefetch_buffer_size=buffer))
  if workers > 0:
    _allow_unparsed_absl_flags()
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers, per_worker_buffer_size=buffer),
                        worker_init_fn=_one_thread_per_worker)
  return ds


def train_batches(source, config: pipeline.PipelineConfig, global_batch: int, *, seed: int = 0,
                  workers: int = 0, shuffle: bool = True, decode: Callable | None = None) -> grain.IterDataset:
  """Shuffled, augmented, endless host batches of a training split, ready for ``loop.run``."""
  return iterable(host_batches(examples(source, config, seed=seed, shuffle=shuffle, decode=decode), global_batch),
                  workers)


def eval_batches(source, config: pipeline.PipelineConfig, batch_size: int, num: int | None = None,
                 decode: Callable | None = None):
  """Records 0 .. num-1 in order, unaugmented, in batches; the last one padded (valid = 0)."""
  num = len(source) if num is None else min(num, len(source))
  make = _Example(source, dataclasses.replace(config, augment=False), 0, decode)
  ds = grain.MapDataset.range(num).map(lambda i: make((0, int(i))))
  ds = ds.batch(batch_size, batch_fn=lambda exs: pipeline.stack(exs, batch_size))
  return iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=2)))


def first_batch(source, config: pipeline.PipelineConfig, batch_size: int, decode: Callable | None = None) -> dict:
  """The first records, unaugmented (shapes for initialisation)."""
  return next(eval_batches(source, config, batch_size, batch_size, decode))

