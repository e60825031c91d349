"""Tiny networks for tests and smoke runs (CPU, seconds per step); all three stages.

  scorehoi train --config tiny:stage0 --workdir /tmp/t0 --config.data.dir=DATA
  scorehoi train --config tiny --workdir /tmp/t1 --config.data.dir=DATA
  scorehoi train --config tiny:stage2 --workdir /tmp/t2 --config.data.dir=DATA \
      --config.stage1_workdir=/tmp/t1

Not a useful model: it checks that the whole training path runs end to end.
"""

from scorehoi_jax.train.defaults import get_default_config


def get_config(arg=None):
  c = get_default_config()
  c.stage = {"stage0": 0, "stage2": 2}.get(arg, 1)
  c.steps = 3
  c.batch_size = 2
  c.log_every = 1
  c.checkpoint_every = 2
  c.progress = False
  c.data.image_size = 32
  c.data.augment = False
  c.data.workers = 0  # Tiny runs: worker start-up (2–4 s each) would dominate; test_loader covers workers.
  c.eval.every = 0
  c.eval.num_examples = 2
  c.optim.learning_rate = 1e-3
  c.optim.eps = 1e-4
  c.optim.ema_decay = 0.9
  m = c.model
  m.resnet.update(dict(depth=18, width=8, stages=(1, 1)))
  m.regressor.update(dict(reduce_dim=4, hidden_dim=32))
  m.contact_former.update(dict(dim=16, num_layers=1, num_heads=2))
  m.mesh_refiner.update(dict(dim=16, num_layers=1, num_heads=2))
  m.point_encoder.update(dict(num_centers=(16, 4), num_neighbors=(8, 4), sa_widths=((16,), (32,)),
                              fp_widths=((32,), (16,)), global_widths=(32,), token_dim=16, num_categories=20))
  m.denoiser.update(dict(model_dim=32, hidden_dim=64, num_blocks=1, time_dim=16, betas_model_dim=8,
                         betas_hidden_dim=16, num_betas_blocks=1, betas_time_dim=8, token_dim=16, attn_dim=16,
                         num_heads=2))
  return c
