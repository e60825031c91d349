"""Datasets and the input pipeline.

- ``tfds_common``: the stored record spec, codecs, contact labels, the TFDS
  builder base (ArrayRecord, read with ``tfds.data_source``; no TensorFlow).
- ``behave``, ``intercap``, ``imhd``: readers of the real datasets' release
  layouts and their builders; ``ground_truth``/``contho_format`` are shared.
- ``synthetic``: our procedural HOI generator.
- ``pipeline``: crop/augment records into the model's 5-channel examples
  (training and a user's image alike).
- ``loader``: the Grain input of training: global shuffle, worker processes,
  batches per process, checkpointable iterator state.
Submodules are imported on demand (tensorflow_datasets costs ~1 s to import).
"""
