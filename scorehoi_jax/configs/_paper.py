"""The paper's training recipe (§4.1 "Training Details"), shared by {behave,intercap}_stage{1,2}.py.

Stage 1 (backbone, regressor, ContactFormer, CRFormer): Adam, batch 32, 50
epochs, learning rate 1e-4 divided by 10 after 30 epochs; Adam β1 = 0.5 as in
CONTHO, whose losses stage 1 follows (notes/contho-notes.md §3.9). Stage 2 (the
denoiser on the frozen stage-1 network): batch 256, 30 epochs at 1e-4, with
IMHD's training set added to the training data. Both: scale, rotation and
colour augmentation (data/pipeline.py, CONTHO's values). Epochs become steps
from the prepared training set's size (train/run.py resolve_epochs).
"""

from scorehoi_jax.train.defaults import get_default_config


def stage1(dataset: str):
  c = get_default_config()
  c.stage = 1
  c.data.name = dataset
  c.batch_size = 32
  c.epochs = 50
  c.optim.update(dict(learning_rate=1e-4, b1=0.5, decay_epochs=(30,)))
  c.eval.best_metric = "val/cd_human_cm"
  c.eval.every = 5000
  c.checkpoint_every = 5000
  return c


def stage2(dataset: str):
  c = get_default_config()
  c.stage = 2
  c.data.name = dataset
  c.data.mix = ("imhd",)
  c.batch_size = 256
  c.epochs = 30
  # Adam β1 0.9 and an EMA of the weights for sampling, as ScoreHMR's trainer, which the
  # released diffusion code follows (0.995 every 10 steps there ≈ 0.9995 every step here).
  c.optim.update(dict(learning_rate=1e-4, b1=0.9, ema_decay=0.9995))
  c.stage1_best_metric = "val/cd_human_cm"
  c.eval.every = 0
  c.checkpoint_every = 1000
  return c
