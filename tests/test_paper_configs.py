"""The paper-reproduction configs: their recipe, and 2 training steps each on real-format fixtures.

BEHAVE, InterCap and IMHD fixtures are written in the official on-disk layouts
by tests/test_builders.py's writers and prepared with `scorehoi prepare`'s
builders into one data dir; each config then trains 2 steps at tiny model
sizes (tiny.py's networks, 32-px crops, batch 2) with its own schedule logic
(epochs -> steps, the learning-rate decay epoch, IMHD mixed into stage 2).
"""

import json
import os
import sys

import numpy as np
import pytest

from scorehoi_jax.config import load_config
from scorehoi_jax.data.tfds_common import decode_record
from scorehoi_jax.train import loop, run

sys.path.insert(0, os.path.dirname(__file__))
from test_builders import _behave_fixture, _intercap_fixture, _write_imhd  # noqa: E402

pytestmark = pytest.mark.usefixtures("fast_compile")

PAPER = ("behave_stage1", "behave_stage2", "intercap_stage1", "intercap_stage2")


@pytest.mark.parametrize("name", PAPER)
def test_configs_follow_the_paper(name):
  """§4.1: batch 32 / 50 epochs / 1e-4 ÷10 after 30 (stage 1); batch 256 / 30 epochs / 1e-4 + IMHD (stage 2)."""
  c = load_config(name)
  dataset, stage = name.split("_stage")
  assert (c.data.name, c.stage, c.data.augment, c.data.image_size) == (dataset, int(stage), True, 256)
  assert c.model.resnet.depth == 50 and c.optim.learning_rate == 1e-4
  if c.stage == 1:
    assert (c.batch_size, c.epochs, tuple(c.optim.decay_epochs), c.data.mix) == (32, 50, (30,), ())
    assert c.eval.best_metric == "val/cd_human_cm"
  else:
    assert (c.batch_size, c.epochs, tuple(c.optim.decay_epochs), c.data.mix) == (256, 30, (), ("imhd",))
    assert c.stage1_best_metric == "val/cd_human_cm"
  doc = open(os.path.join(os.path.dirname(run.__file__), "..", "configs", f"{name}.py")).read()
  for needle in (f"--config {name} ", "CUDA_VISIBLE_DEVICES=0", "srun --nodes=M", "Expected time on 4 GPUs",
                 "Table 1"):
    assert needle in doc, (name, needle)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  from scorehoi_jax.data import behave, imhd, intercap
  root = tmp_path_factory.mktemp("paper")
  out = str(root / "data")
  _behave_fixture(str(root / "behave"))
  assert behave.prepare_behave(str(root / "behave"), str(root / "behave" / "smplh"), out)["written"] == \
      {"train": 1, "test": 1}
  _intercap_fixture(root / "intercap")
  intercap.prepare_intercap(str(root / "intercap"), str(root / "intercap" / "smplh"), out,
                            default_intrinsics=(55.0, 55.0, 32.0, 24.0))
  _write_imhd(root / "imhd")
  imhd.prepare_imhd(str(root / "imhd"), str(root / "imhd" / "smplh"), out, split_fn=lambda rel: "train")
  return out, str(root / "behave" / "smplh" / "SMPLH_NEUTRAL.npz")


def _tiny(name, data, body_model, **over):
  """The paper config at tiny sizes: tiny.py's networks, 32-px crops, batch 2, fast Adam ε."""
  c = load_config(name, [f"--config.data.dir={data}", f"--config.body_model={body_model}",
                         "--config.batch_size=2", "--config.data.image_size=32", "--config.log_every=1",
                         "--config.progress=False", "--config.eval.num_examples=2", "--config.optim.eps=1e-4"])
  c.model = load_config("tiny").model
  for k, v in over.items():
    node, _, leaf = k.rpartition(".")
    (c if not node else c[node])[leaf] = v
  return c


def _train_records(workdir):
  return [r for r in loop.read_metrics(workdir) if "loss" in r]


@pytest.mark.parametrize("dataset", ["behave", "intercap"])
def test_two_steps_of_each_stage_on_fixtures(data_dir, dataset, tmp_path):
  data, body_model = data_dir
  eval_split = "test" if dataset == "behave" else "train"  # The InterCap fixture has a train split only.
  # Stage 1: 2 epochs of 1-2 frames at batch 2 = 2 steps, the learning rate decayed after epoch 1.
  c1 = _tiny(f"{dataset}_stage1", data, body_model, epochs=2, **{"optim.decay_epochs": (1,),
                                                                "eval.split": eval_split, "eval.every": 0})
  s1 = str(tmp_path / "s1")
  run.train_and_evaluate(c1, s1)
  saved = json.load(open(os.path.join(s1, "config.json")))
  assert saved["steps"] == 2 and list(saved["optim"]["decay_steps"]) == [1]
  recs = _train_records(s1)
  assert [r["step"] for r in recs] == [0, 1] and all(np.isfinite(r["loss"]) for r in recs)
  assert any("val/cd_human_cm" in r for r in loop.read_metrics(s1))  # Stage 2 restores the best by it.
  # Stage 2: the training set is the dataset's train split followed by IMHD's.
  c2 = _tiny(f"{dataset}_stage2", data, body_model, epochs=1, stage1_workdir=s1)
  src = run._source(c2, "train")
  own = len(run._source(_tiny(f"{dataset}_stage2", data, body_model, **{"data.mix": ()}), "train"))
  assert len(src) == own + 2
  ids = [str(decode_record(src[i])["frame_id"]) for i in range(len(src))]
  assert sum(i.startswith("20230825/") for i in ids) == 2  # IMHD's frame ids.
  s2 = str(tmp_path / "s2")
  run.train_and_evaluate(c2, s2)
  assert json.load(open(os.path.join(s2, "config.json")))["steps"] == -(-(own + 2) // 2)
  recs = _train_records(s2)
  assert len(recs) == -(-(own + 2) // 2) and all(np.isfinite(r["loss"]) for r in recs)
