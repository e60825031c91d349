"""Stage 0: pre-train the affordance-aware point encoder on the synthetic benchmark.

  scorehoi train --config point_encoder --workdir runs/s0 --config.data.dir=data

Inputs are the 64 template points of each frame's object (random yaw, scale and
jitter); targets are the object's category and which template points the
person touches in that frame. About a minute per 1,000 steps on 2 CPU cores.
Then pass --config.point_encoder_checkpoint=runs/s0 to stages 1 and 2.
"""

from scorehoi_jax.train.defaults import get_default_config


def get_config():
  c = get_default_config()
  c.stage = 0
  c.steps = 5000
  c.batch_size = 64
  c.optim.learning_rate = 1e-3
  c.optim.b1 = 0.9
  c.checkpoint_every = 1000
  c.eval.every = 1000
  c.eval.num_examples = 512
  c.eval.best_metric = "val/ce"
  return c
