"""synthetic_hoi in Apache Beam mode: DirectRunner -> ArrayRecord -> data_source, against the pool path.

The Beam tests need the optional extra (``pip install 'scorehoi_jax[beam]'``)
and are skipped without it; the missing-extra error is tested either way.
"""

import builtins
import importlib.util

import numpy as np
import pytest

from scorehoi_jax.cli import main
from scorehoi_jax.data.synthetic_hoi import prepare_synthetic
from scorehoi_jax.data.tfds_common import data_source, decode_record
from scorehoi_jax.errors import ScoreHOIError

needs_beam = pytest.mark.skipif(importlib.util.find_spec("apache_beam") is None,
                                reason="apache-beam not installed (pip install 'scorehoi_jax[beam]')")
SETTINGS = dict(num=4, seed=3, resolution=64, test_fraction=0.25, progress=False)


def _records(out: str, split: str) -> dict:
  src = data_source(out, "synthetic_hoi", split)
  recs = [src[i] for i in range(len(src))]
  return {r["frame_id"]: r for r in recs}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
  """The same 4 frames made by the Beam path (DirectRunner) and by the process-pool path."""
  beam_out = str(tmp_path_factory.mktemp("beam"))
  pool_out = str(tmp_path_factory.mktemp("pool"))
  beam_counts = prepare_synthetic(beam_out, **SETTINGS, beam=True, beam_runner="DirectRunner")
  pool_counts = prepare_synthetic(pool_out, **SETTINGS, workers=1)
  return beam_out, beam_counts, pool_out, pool_counts


@needs_beam
def test_split_sizes_and_round_trip(datasets):
  beam_out, counts, _, _ = datasets
  assert counts == {"written": {"train": 3, "test": 1}, "skipped": {}}
  for split, n in (("train", 3), ("test", 1)):
    recs = _records(beam_out, split)
    assert len(recs) == n
    for rec in map(decode_record, recs.values()):  # Decodes like any prepared dataset.
      assert rec["frame_id"].startswith(f"{split}-")
      assert rec["image"].shape == (48, 64, 3) and rec["human_mask"].shape == (48, 64)  # Capture: 4:3.
      assert rec["pose"].shape == (52, 3, 3) and rec["human_contact"].shape == (431,)


@needs_beam
def test_records_equal_the_process_pool_paths(datasets):
  """Each frame is a pure function of its seed: same keys, and every stored field equal, bytes
  included (both paths encode the same arrays with the same encoder in this process)."""
  beam_out, _, pool_out, pool_counts = datasets
  assert pool_counts["written"] == {"train": 3, "test": 1}
  for split in ("train", "test"):
    beam_recs, pool_recs = _records(beam_out, split), _records(pool_out, split)
    assert sorted(beam_recs) == sorted(pool_recs)
    for key, ref in pool_recs.items():
      got = beam_recs[key]
      assert sorted(got) == sorted(ref)
      for field, value in ref.items():
        if isinstance(value, bytes):
          assert got[field] == value, f"{key}/{field}"
        else:
          np.testing.assert_array_equal(got[field], value, err_msg=f"{key}/{field}")
      # And the decoded pixels, should the encoders ever differ.
      a, b = decode_record(got), decode_record(ref)
      np.testing.assert_array_equal(a["object_mask"], b["object_mask"])
      np.testing.assert_array_equal(a["image"], b["image"])


@needs_beam
def test_rerun_reuses_and_other_settings_are_refused(datasets):
  beam_out, counts, pool_out, _ = datasets
  assert prepare_synthetic(beam_out, **SETTINGS, beam=True) == counts  # Prepared: nothing regenerated.
  with pytest.raises(ScoreHOIError, match="other settings"):
    prepare_synthetic(beam_out, **{**SETTINGS, "seed": 4}, beam=True)
  with pytest.raises(ScoreHOIError, match="process-pool path"):
    prepare_synthetic(pool_out, **SETTINGS, beam=True)


@needs_beam
def test_cli_reports_bad_runner_and_options(tmp_path, capsys):
  out = str(tmp_path / "d")
  assert main(["prepare", "synthetic", "--out", out, "--num", "1", "--beam", "--beam-runner", "NoSuchRunner"]) == 2
  assert "NoSuchRunner" in capsys.readouterr().err
  assert main(["prepare", "synthetic", "--out", out, "--num", "1", "--beam", "--beam-options=--a='b"]) == 2
  assert "--beam-options" in capsys.readouterr().err


def test_missing_beam_names_the_extra(tmp_path, monkeypatch, capsys):
  real_import = builtins.__import__

  def no_beam(name, *args, **kwargs):
    if name == "apache_beam" or name.startswith("apache_beam."):
      raise ImportError(f"No module named {name!r}")
    return real_import(name, *args, **kwargs)

  monkeypatch.setattr(builtins, "__import__", no_beam)
  assert main(["prepare", "synthetic", "--out", str(tmp_path / "d"), "--num", "1", "--beam"]) == 2
  assert "pip install 'scorehoi_jax[beam]'" in capsys.readouterr().err
