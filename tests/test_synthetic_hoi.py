"""The synthetic_hoi TFDS dataset: generate -> ArrayRecord -> data_source -> pipeline; show."""

import os

import numpy as np
import pytest

from scorehoi_jax.data import pipeline
from scorehoi_jax.data.synthetic import iter_frames
from scorehoi_jax.data.synthetic_hoi import prepare_synthetic, raw_dir
from scorehoi_jax.data.tfds_common import data_source, decode_record
from scorehoi_jax.errors import ScoreHOIError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("syn"))
  counts = prepare_synthetic(out, num=4, seed=3, resolution=64, workers=1, test_fraction=0.25, progress=False)
  return out, counts


def test_round_trip_through_tfds_data_source(dataset):
  out, counts = dataset
  assert counts["written"] == {"train": 3, "test": 1}
  raw = {int(f["seed"]): f for f in iter_frames(raw_dir(out), "train")}
  src = data_source(out, "synthetic_hoi", "train")
  assert len(src) == 3
  for i in range(3):
    rec = decode_record(src[i])
    ref = raw[int(rec["seed"])]
    for key in ("pose", "betas", "cam_trans", "obj_rot", "obj_trans", "human_contact", "object_floor_contact",
                "ground_plane"):
      np.testing.assert_array_equal(rec[key], ref[key], err_msg=key)
    np.testing.assert_array_equal(rec["human_mask"], ref["human_mask"])  # PNG masks are lossless.
    # Images are JPEG (q92, 4:2:0): lossy, most on the 64-px noise backgrounds here.
    mse = np.mean((rec["image"].astype(float) - ref["image"].astype(float)) ** 2)
    assert 10 * np.log10(255.0 ** 2 / mse) > 22.0
    assert rec["interaction"] == ref["interaction"] and rec["pose_class"] == ref["pose_class"]


def test_records_feed_the_pipeline(dataset):
  out, _ = dataset
  rec = decode_record(data_source(out, "synthetic_hoi", "test")[0])
  ex, _ = pipeline.make_example(rec, pipeline.PipelineConfig(size=64))
  assert ex["image"].shape == (64, 64, 5) and ex["pose"].shape == (52, 3, 3)
  assert ex["human_contact"].shape == (431,) and ex["object_template"].shape == (64, 3)


def test_second_prepare_reuses_shards(dataset):
  out, counts = dataset
  shards = sorted(os.listdir(raw_dir(out)))
  mtimes = [os.path.getmtime(os.path.join(raw_dir(out), s)) for s in shards]
  again = prepare_synthetic(out, num=4, seed=3, resolution=64, workers=1, test_fraction=0.25, progress=False)
  assert again["written"] == counts["written"]
  assert [os.path.getmtime(os.path.join(raw_dir(out), s)) for s in shards] == mtimes


def test_conflicting_settings_are_refused(dataset):
  out, _ = dataset
  with pytest.raises(ScoreHOIError, match="different dataset"):
    prepare_synthetic(out, num=4, seed=4, resolution=64, workers=1, test_fraction=0.25, progress=False)


def test_show_renders_a_panel(dataset, tmp_path):
  from PIL import Image

  from scorehoi_jax.data.show import show
  out, _ = dataset
  png = show(out, 0, str(tmp_path / "f.png"), split="train")
  im = np.asarray(Image.open(png))
  assert im.shape[0] == 48 and im.shape[1] > 4 * 64  # Image, overlay, side view, masks (capture: 64 x 48).
  with pytest.raises(ScoreHOIError, match="out of range"):
    show(out, 99, str(tmp_path / "g.png"))
