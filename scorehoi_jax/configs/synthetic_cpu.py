"""A CPU-sized run of all three stages on a small synthetic set (the curves in experiments/results/).

  scorehoi prepare synthetic --out /tmp/syn1k --num 1200 --resolution 128
  scorehoi train --config synthetic_cpu:stage0 --workdir runs/cpu0 --config.data.dir=/tmp/syn1k
  scorehoi train --config synthetic_cpu:stage1 --workdir runs/cpu1 --config.data.dir=/tmp/syn1k \
      --config.point_encoder_checkpoint=runs/cpu0
  scorehoi train --config synthetic_cpu:stage2 --workdir runs/cpu2 --config.data.dir=/tmp/syn1k \
      --config.point_encoder_checkpoint=runs/cpu0 --config.stage1_workdir=runs/cpu1

ResNet-18 at 128 px, batch 8: minutes per stage on 2 CPU cores. It shows the
training path working and validation losses falling; it is far too small to be
a useful model (that needs a GPU run of scorehoi_jax/configs/synthetic_stage{1,2}.py).
"""

from scorehoi_jax.train.defaults import get_default_config


def get_config(arg="stage1"):
  c = get_default_config()
  c.stage = {"stage0": 0, "stage1": 1, "stage2": 2}[arg]
  c.batch_size = 8
  c.log_every = 10
  c.data.image_size = 128
  c.eval.num_examples = 64
  c.model.resnet.depth = 18
  c.model.regressor.update(dict(hidden_dim=256))
  c.model.contact_former.update(dict(dim=128, num_layers=2))
  c.model.mesh_refiner.update(dict(dim=128, num_layers=2))
  if c.stage == 0:
    c.steps, c.batch_size, c.eval.every, c.checkpoint_every = 1000, 32, 250, 250
    c.optim.update(dict(learning_rate=1e-3, b1=0.9))
    c.eval.best_metric = "val/ce"
  elif c.stage == 1:
    c.steps, c.eval.every, c.checkpoint_every = 400, 100, 100
    c.optim.learning_rate = 3e-4
    c.eval.best_metric = "val/loss"
  else:
    c.steps, c.eval.every, c.checkpoint_every = 300, 300, 100
    c.optim.update(dict(learning_rate=3e-4, b1=0.9, ema_decay=0.99))
    c.stage1_best_metric = "val/loss"
  return c
