"""What `scorehoi reconstruct` and `scorehoi demo` run: the paper's refinement plus the image evidence.

The refine_paper config (N = 10, τ = 50, Δt = 2, CDIR, SDF penetration, the floor
from the body) with the user's masks used twice (diffusion/image_evidence.py;
beyond the paper, design.md §11): first the pelvis and the object are placed on
their masks (refine.fit_steps Adam steps on L_mask, pose fixed), then L_mask
joins L_P with weight guidance.lambda_mask during the guided sampling. Measured
effect: experiments/results/alignment.md.

  scorehoi reconstruct --image photo.jpg --human-mask h.png --object-mask o.png --object chairwood --out res
"""

from scorehoi_jax.configs import refine_paper as _paper


def get_config(arg=None):
  cfg = _paper.get_config(arg)
  cfg.refine.use_mask = True
  cfg.refine.fit_steps = 60
  cfg.guidance.lambda_mask = 500.0
  return cfg
