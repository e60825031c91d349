"""Stage 1 on BEHAVE (your copy; CONTHO-style annotations), with your SMPL-H model.

  scorehoi prepare behave --root ~/BEHAVE --smplh ~/models/smplh --out data
  scorehoi train --config behave_stage1 --workdir runs/behave_s1 \
      --config.data.dir=data --config.body_model=~/models/smplh/SMPLH_NEUTRAL.npz \
      --config.point_encoder_checkpoint=runs/s0

CONTHO trained for 50 epochs at batch 24 (lr 1e-4, decay at 30/40); the steps
below are that schedule at this batch size for BEHAVE's ≈ 34k training frames.
Contact labels come from geometry on our guidance vertices (see data/ground_truth.py).
"""

from scorehoi_jax.train.defaults import get_default_config


def get_config():
  c = get_default_config()
  c.stage = 1
  c.data.name = "behave"
  c.batch_size = 24
  c.steps = 70_000
  c.eval.best_metric = "val/cd_human_cm"
  c.eval.every = 5000
  return c
