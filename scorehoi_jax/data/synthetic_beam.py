"""The ``synthetic_hoi`` dataset built as one Apache Beam pipeline (scale-out generation).

The process-pool path (synthetic_hoi.py) writes raw ``.npz`` shards on one
machine and then encodes them. Here, the builder's splits are Beam transforms
that *generate* the frames inside the pipeline::

    Create(index ranges) | FlatMap(indices) | Reshuffle | FlatMap(seed -> frame -> record)

and TFDS's Beam writer encodes, shuffles and writes them as ArrayRecord files
in the usual ``<out>/synthetic_hoi/<version>/`` layout, readable by
``tfds.data_source`` / ``tfds_common.data_source``. Each frame is a pure
function of its seed (``generate_frame(frame_seed(split_seed, i))``), so the
records are identical to the process-pool path's for the same ``--num``,
``--seed``, ``--test-fraction``, resolution and render backend. The
Reshuffle matters on distributed runners: without it the runner fuses the
tiny Create with the generation step and runs everything on one worker.

apache-beam is an optional extra (``pip install 'scorehoi_jax[beam]'``),
imported only when this mode is used.

Running it
----------
Locally (the DirectRunner; in-process by default; several local processes
with ``--direct_num_workers=N --direct_running_mode=multi_processing``)::

    scorehoi prepare synthetic --out data --num 2000 --resolution 256 --beam \\
        --beam-options="--direct_num_workers=2 --direct_running_mode=multi_processing"

(Write ``--beam-options=...`` with the equals sign: the value starts with
``--``, which argparse would otherwise take for an option of its own.)

On a cluster, pick the runner and pass its options; ``--out`` must then be
a path every worker can write (gs://, s3://, hdfs://, or a shared mount), and
the workers need scorehoi_jax installed (``--setup_file``/``--extra_package``
or a custom SDK container image with this package and its requirements):

* Google Cloud Dataflow (needs ``apache-beam[gcp]``)::

    scorehoi prepare synthetic --out gs://BUCKET/data --num 500000 --beam \\
        --beam-runner DataflowRunner --beam-options="--project=P --region=R \\
        --temp_location=gs://BUCKET/tmp --sdk_container_image=IMAGE \\
        --machine_type=n2-standard-4 --max_num_workers=200"

* Apache Flink: ``--beam-runner FlinkRunner --beam-options=
  "--flink_master=HOST:8081 --environment_type=DOCKER
  --environment_config=IMAGE --parallelism=64"``.

* Apache Spark: ``--beam-runner SparkRunner --beam-options=
  "--spark_master_url=spark://HOST:7077 --environment_type=DOCKER
  --environment_config=IMAGE"``.

The render backend is resolved once on the launching machine and sent to the
workers (the RGB differs between backends, so a dataset never mixes them):
workers without EGL need ``SCOREHOI_RENDER_BACKEND=raycast`` on the launcher.
JAX and the renderer in each worker use all the cores they see; on
multi-core workers, run one SDK process per core with single-threaded XLA
(``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"``,
``LP_NUM_THREADS=1``) for the best throughput, as the process pool does.

Both paths store the records of synthetic_records.py; synthetic_hoi.py's
builder calls the transforms here in Beam mode, and this module never imports
synthetic_hoi.py (imports run one way).

A Beam run is not resumable frame by frame: TFDS writes into a temporary
folder and renames it when every split is complete, so an interrupted run is
redone whole (the runner retries failed bundles by itself). Rerunning a
finished dataset with the same settings reuses it; other settings are refused.
"""

from __future__ import annotations

import dataclasses
import json
import shlex

from scorehoi_jax import render as render_lib
from scorehoi_jax.data.synthetic import SyntheticConfig, frame_seed, generate_frame
from scorehoi_jax.data.synthetic_records import EXTRA_FEATURES, NAME, frame_record
from scorehoi_jax.data.tfds_common import encode_record, prepare
from scorehoi_jax.errors import ScoreHOIError
from scorehoi_jax.objects import list_objects

_NAMESPACE = "scorehoi_jax.synthetic_hoi"  # Beam counters: written/<split>, skipped/<split>/<reason>.
_RANGE = 512  # Frame indices per Create element: keeps the pipeline graph small for millions of frames.
_INSTALL_HINT = "pip install 'scorehoi_jax[beam]'"


def require_beam():
  """The apache_beam module, or a ScoreHOIError saying how to install it."""
  try:
    import apache_beam
  except ImportError as e:
    raise ScoreHOIError(f"the Beam mode of synthetic_hoi needs Apache Beam, which is not importable ({e}); "
                        f"install it with: {_INSTALL_HINT}") from None
  return apache_beam


def _pipeline_options(runner: str, options: str | None):
  """Beam PipelineOptions from a command-line string; unknown runners are user mistakes."""
  beam = require_beam()
  from apache_beam.runners.runner import create_runner
  try:
    create_runner(runner)
  except (ValueError, ImportError) as e:
    raise ScoreHOIError(f"Beam runner {runner!r} is not available here ({e}); e.g. DataflowRunner needs "
                        "'apache-beam[gcp]'.") from None
  try:
    flags = shlex.split(options or "")
  except ValueError as e:
    raise ScoreHOIError(f"--beam-options {options!r}: {e}") from None
  return beam.options.pipeline_options.PipelineOptions(flags)


def _indices(bounds: tuple[int, int]):
  return range(*bounds)


def _examples(index: int, *, split: str, split_seed: int, config: SyntheticConfig, image_format: str):
  """Frame ``index`` of a split -> (key, storable record), counted in Beam counters."""
  from apache_beam.metrics import Metrics
  rec = frame_record(generate_frame(frame_seed(split_seed, index), config), split, list_objects())
  if "skip" in rec:
    Metrics.counter(_NAMESPACE, f"skipped/{split}/{rec['skip']}").inc()
    return
  Metrics.counter(_NAMESPACE, f"written/{split}").inc()
  yield rec["frame_id"], encode_record(rec, image_format, EXTRA_FEATURES)


def split_transforms(builder) -> dict:
  """The builder's splits in Beam mode: {split: PTransform yielding (key, record)}."""
  beam = require_beam()
  plan = builder.reader_kwargs["beam_plan"]
  builder.info.metadata["generator"] = plan["settings"]  # Lets a rerun detect other settings.
  out = {}
  for split, num, split_seed in plan["splits"]:
    config = dataclasses.replace(plan["config"], split=split)
    ranges = [(a, min(num, a + _RANGE)) for a in range(0, num, _RANGE)]
    out[split] = (beam.Create(ranges)
                  | "Indices" >> beam.FlatMap(_indices)
                  | "Spread" >> beam.Reshuffle()
                  | "Generate" >> beam.FlatMap(_examples, split=split, split_seed=split_seed, config=config,
                                               image_format=builder.image_format))
  return out


def record_counts(builder, result) -> None:
  """Copy the pipeline's written/skipped counters into the builder and its metadata."""
  from apache_beam.metrics.metric import MetricsFilter
  counters = result.metrics().query(MetricsFilter().with_namespace(_NAMESPACE))["counters"]
  for c in counters:
    kind, _, rest = c.key.metric.name.partition("/")
    value = c.committed if c.committed is not None else c.attempted
    (builder.written if kind == "written" else builder.skipped)[rest] += int(value)
  builder.info.metadata["written"] = dict(builder.written)
  builder.info.metadata["skipped"] = dict(builder.skipped)


def _settings(num: int, seed: int, test_fraction: float, config: SyntheticConfig) -> dict:
  """What makes a dataset what it is, as JSON (stored in its metadata)."""
  cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items() if k != "split"}
  return json.loads(json.dumps(dict(num=int(num), seed=int(seed), test_fraction=float(test_fraction), config=cfg)))


def beam_plan(plan: list[tuple[str, int, int]], config: SyntheticConfig, *, num: int, seed: int,
              test_fraction: float) -> dict:
  """The builder's ``beam_plan`` reader argument for the splits of ``plan`` (synthetic_hoi.split_plan)."""
  # Resolved here, once, on the launcher: every worker then renders with the same backend.
  config = dataclasses.replace(config, backend=render_lib.resolve_backend(config.backend))
  return dict(splits=plan, config=config, settings=_settings(num, seed, test_fraction, config))


def prepare_with_beam(builder, *, runner: str = "DirectRunner", options: str | None = None) -> dict:
  """Generate and write a ``synthetic_hoi`` builder made with a ``beam_plan`` on a Beam runner.

  Returns {'written': {...}, 'skipped': {...}} like ``tfds_common.prepare``.
  """
  import tensorflow_datasets as tfds
  pipeline_options = _pipeline_options(runner, options)
  settings = builder.reader_kwargs["beam_plan"]["settings"]
  if builder.is_prepared():
    old = (builder.info.metadata or {}).get("generator")
    if old != settings:
      raise ScoreHOIError(f"{builder.data_dir}: holds a {NAME} dataset made with other settings "
                          f"({old or 'by the process-pool path'}); use another --out or delete it.")
  download_config = tfds.download.DownloadConfig(beam_runner=runner, beam_options=pipeline_options)
  return prepare(builder, download_config=download_config)
