"""Stage 2 on the synthetic benchmark: the denoiser on frozen stage-1 features.

  scorehoi train --config synthetic_stage2 --workdir runs/s2 \
      --config.data.dir=data --config.stage1_workdir=runs/s1

Trains ε_φ with L_DM (paper Eq. 3) and keeps an EMA of its weights for sampling.
"""

from scorehoi_jax.train.defaults import get_default_config


def get_config():
  c = get_default_config()
  c.stage = 2
  c.stage1_best_metric = "val/loss"
  c.optim.b1 = 0.9
  c.optim.learning_rate = 1e-4
  return c
