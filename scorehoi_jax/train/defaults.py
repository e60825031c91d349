"""Default training config (both stages); scorehoi_jax/configs/*.py start from it and override."""

from __future__ import annotations

import ml_collections


def get_default_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.stage = 1  # 0: point-encoder pre-training; 1: backbone, regressor, ContactFormer, CRFormer; 2: denoiser.
  c.seed = 0
  c.steps = 20_000
  c.epochs = 0  # > 0: train this many epochs of the training set instead (steps derived from its size).
  c.batch_size = 32
  c.log_every = 50
  c.checkpoint_every = 1000
  c.progress = True
  c.body_model = ""  # "" = the embedded open model; or your SMPL-H file.
  c.point_encoder_checkpoint = ""  # A stage-0 work dir; "" = random frozen encoder (smoke runs only).
  c.stage1_workdir = ""  # Stage 2: the stage-1 run to take the frozen network from.
  c.stage1_best_metric = ""  # Stage 2: restore stage 1's best checkpoint by this metric.

  # data.mix: more prepared datasets (same data dir) whose train splits are added to the training set.
  # workers: input worker processes per host (0: a read-ahead thread in the training process).
  c.data = ml_collections.ConfigDict(dict(dir="", name="synthetic_hoi", image_size=256, augment=True, mix=(),
                                          workers=2))
  c.eval = ml_collections.ConfigDict(dict(split="test", every=1000, num_examples=256, best_metric=""))
  # Learning rate ×0.1 at each of decay_steps (or, with epochs, at each of decay_epochs).
  c.optim = ml_collections.ConfigDict(dict(learning_rate=1e-4, b1=0.5, eps=1e-8, ema_decay=0.999, decay_steps=(),
                                           decay_epochs=()))
  # Stage-1 loss (train/losses.Stage1Weights): class-balanced contact BCE, so the contact masks that
  # CDIR re-predicts are informative (the released plain BCE: contact_balance="none").
  c.loss = ml_collections.ConfigDict(dict(contact_balance="batch"))

  m = c.model = ml_collections.ConfigDict()
  m.resnet = ml_collections.ConfigDict(dict(depth=50))
  m.regressor = ml_collections.ConfigDict(dict())
  m.contact_former = ml_collections.ConfigDict(dict())
  m.mesh_refiner = ml_collections.ConfigDict(dict())
  m.point_encoder = ml_collections.ConfigDict(dict())
  # Paper Table 3's "w/o c_I" / "w/o c_G" are denoisers trained without that condition (stage 2 with
  # --config.model.denoiser.use_image_cond=False; stage1_workdir may be a shipped model folder).
  m.denoiser = ml_collections.ConfigDict(dict(use_image_cond=True, use_geo_cond=True))
  m.image_cond = "pooled"
  # Bounds that map betas to [−1, 1] in the diffusion vector x (stage 2); exported with the model, so
  # inference normalises exactly as the denoiser was trained.
  c.betas_stats = ml_collections.ConfigDict(dict(num=10, min=-3.0, max=3.0))
  return c
