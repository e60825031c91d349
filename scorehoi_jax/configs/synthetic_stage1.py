"""Stage 1 on the synthetic benchmark: ResNet-50 backbone, regressor, ContactFormer, CRFormer.

  scorehoi prepare synthetic --out data --num 20000
  scorehoi train --config synthetic_stage1 --workdir runs/s1 --config.data.dir=data

Expect about 0.5 examples/s per CPU core pair at batch 2 (use a GPU; see
experiments/results/training.md). The validation metrics (val/*) in
runs/s1/metrics.jsonl should fall over training; curves in runs/s1/curves.png.
"""

from scorehoi_jax.train.defaults import get_default_config


def get_config():
  c = get_default_config()
  c.stage = 1
  c.eval.best_metric = "val/loss"
  return c
