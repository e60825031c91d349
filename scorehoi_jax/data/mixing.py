"""Several prepared datasets read as one training set (the paper's stage 2 adds IMHD).

ScoreHOI trains the diffusion model on BEHAVE or InterCap *and* IMHD's training
set (paper §4.1: "We only utilize the IMHD training set during the diffusion
training phase"); the released code names the merged datasets
(MergeDatasetObjIMHD) but does not ship them. Merging here is concatenation:
every frame of every dataset once per epoch, so each dataset counts in
proportion to its size, as in a merged PyTorch dataset.
"""

from __future__ import annotations

import bisect

import numpy as np


class ConcatSource:
  """Random-access view of several sources (``len`` + ``[i]``) one after another."""

  def __init__(self, sources):
    self.sources = list(sources)
    self._ends = np.cumsum([len(s) for s in self.sources]).tolist()

  def __len__(self) -> int:
    return self._ends[-1] if self._ends else 0

  def __getitem__(self, i):
    i = int(i)
    if i < 0:
      i += len(self)
    if not 0 <= i < len(self):
      raise IndexError(f"index {i} out of range for {len(self)} records")
    k = bisect.bisect_right(self._ends, i)
    return self.sources[k][i - (self._ends[k - 1] if k else 0)]


def mixed_source(data_dir: str, name: str, mix, split: str):
  """``name``'s split, followed by the same split of each dataset in ``mix`` (all under data_dir)."""
  from scorehoi_jax.data.tfds_common import data_source
  main = data_source(data_dir, name, split)
  if not mix:
    return main
  return ConcatSource([main] + [data_source(data_dir, m, split) for m in mix])
