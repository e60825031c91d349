"""Model folders: bfloat16 storage, round trip, and clear errors for wrong or broken folders."""

import json
import os

import numpy as np
import pytest

from scorehoi_jax.model_store import ModelError, check_variables, load_model, save_model


def _variables(seed=0):
  rng = np.random.default_rng(seed)
  return {"net": {"params": {"backbone": {"kernel": rng.normal(size=(3, 3, 5, 8)).astype(np.float32)}},
                  "batch_stats": {"bn": {"mean": rng.normal(size=(8,)).astype(np.float32) * 1e-3}}},
          "point_encoder": {"params": {"mlp": {"bias": rng.normal(size=(16,)).astype(np.float32)}}},
          "denoiser": {"params": {"pos": rng.normal(size=(4, 2)).astype(np.float32)}}}


def test_bfloat16_round_trip_keeps_statistics_exact_and_weights_within_half_an_ulp(tmp_path):
  v = _variables()
  save_model(v, {"data": {"image_size": 32}}, str(tmp_path / "m"))
  m = load_model(str(tmp_path / "m"))
  assert m.config.data.image_size == 32
  # BatchNorm statistics are kept in float32.
  np.testing.assert_array_equal(m.variables["net"]["batch_stats"]["bn"]["mean"], v["net"]["batch_stats"]["bn"]["mean"])
  # Weights: round-to-nearest bfloat16 (8 significant bits, 7 stored) → relative error ≤ 2^-8.
  for got, want in ((m.variables["net"]["params"]["backbone"]["kernel"], v["net"]["params"]["backbone"]["kernel"]),
                    (m.variables["denoiser"]["params"]["pos"], v["denoiser"]["params"]["pos"])):
    assert got.dtype == np.float32
    assert np.all(np.abs(got - want) <= 2.0**-8 * np.abs(want) + 1e-30)
    assert not np.array_equal(got, want)  # It really was rounded.


def test_float32_round_trip_is_exact(tmp_path):
  v = _variables(1)
  save_model(v, {}, str(tmp_path / "m"), dtype="float32")
  got = load_model(str(tmp_path / "m")).variables
  np.testing.assert_array_equal(got["net"]["params"]["backbone"]["kernel"], v["net"]["params"]["backbone"]["kernel"])


def test_check_variables_names_the_mismatching_weight(tmp_path):
  v = _variables()
  shapes = {"net": {"params": {"backbone": {"kernel": np.zeros((3, 3, 5, 16))}},
                    "batch_stats": {"bn": {"mean": np.zeros(8)}}}}
  with pytest.raises(ModelError, match=r"net/params/backbone/kernel has shape \(3, 3, 5, 8\).*\(3, 3, 5, 16\)"):
    check_variables(shapes, {"net": v["net"]}, "m")
  shapes["net"]["params"]["backbone"]["kernel"] = np.zeros((3, 3, 5, 8))
  check_variables(shapes, {"net": v["net"]}, "m")  # Matching: no error.
  with pytest.raises(ModelError, match="lack net/batch_stats/bn/mean"):
    check_variables(shapes, {"net": {"params": v["net"]["params"]}}, "m")
  with pytest.raises(ModelError, match="unexpected weights"):
    check_variables({"net": {"params": {"backbone": {"kernel": np.zeros((3, 3, 5, 8))}}}}, {"net": v["net"]}, "m")


def test_broken_model_folders_are_clear_errors(tmp_path):
  with pytest.raises(ModelError, match="model folder not found"):
    load_model(str(tmp_path / "nope"))
  d = tmp_path / "m"
  save_model(_variables(), {}, str(d))
  os.remove(d / "variables.npz")
  with pytest.raises(ModelError, match="variables.npz: missing"):
    load_model(str(d))
  save_model(_variables(), {}, str(d))
  (d / "model.json").write_text("{not json")
  with pytest.raises(ModelError, match="malformed JSON"):
    load_model(str(d))
  (d / "model.json").write_text(json.dumps({"format": 99}))
  with pytest.raises(ModelError, match="not a scorehoi_jax model"):
    load_model(str(d))
  save_model(_variables(), {}, str(d))
  (d / "variables.npz").write_bytes(b"truncated")
  with pytest.raises(ModelError, match="variables.npz: corrupted"):  # Its sha256 no longer matches.
    load_model(str(d))
  info = json.loads((d / "model.json").read_text())
  del info["sha256"]  # A folder without checksums: the archive itself is unreadable.
  (d / "model.json").write_text(json.dumps(info))
  with pytest.raises(ModelError, match="cannot read the weights"):
    load_model(str(d))
