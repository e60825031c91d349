"""What `scorehoi reconstruct` and `scorehoi demo` run: the paper's refinement plus the image evidence.

The refine_paper config (N = 10, τ = 50, Δt = 2, CDIR, SDF penetration, the floor
from the body) with the user's masks used twice (diffusion/image_evidence.py;
beyond the paper, design.md §11): first the pelvis and the object are placed on
their masks (refine.fit_steps Adam steps on L_mask, pose fixed), then the whole
of x is fitted to the silhouettes with a weak pull toward the network's estimate
and a pose prior learned from the training poses (refine.pose_fit_steps,
refine.pose_fit_prior, refine.pose_fit_gmm; image_evidence.fit_pose, body/pose_prior.py;
from 52 starts, the best judged by its silhouette plus a tenth of the floor and penetration terms,
refine.start_physical, the 4 best fitted on before one is kept, refine.fit_finalists; refine.object_turns
also turns the object of the best one), then
L_mask joins L_P with weight guidance.lambda_mask during the guided sampling; after
it all of x is polished on L_mask + L_P (refine.final_pose_fit_steps), and finally the pelvis position alone
is re-fitted to the masks (refine.final_fit_steps).
Measured effect: experiments/results/alignment.md.

  scorehoi reconstruct --image photo.jpg --human-mask h.png --object-mask o.png --object chairwood --out res
"""

from scorehoi_jax.configs import refine_paper as _paper


def get_config(arg=None):
  cfg = _paper.get_config(arg)
  cfg.refine.use_mask = True
  cfg.refine.fit_steps = 60
  # 60 capture test frames (human / object IoU, pelvis offset px): no pose fit 0.524 / 0.532; pose fit
  # 150 steps, prior 0.01: 0.575 / 0.552 / 6.5; + pose hypotheses: 0.601 / 0.556 / 7.6; 300 steps, prior
  # 0.003: 0.630 / 0.572 / 7.2; 600 steps, prior 0.001: 0.657 / 0.590 / 6.0 (lr 0.01 throughout). With
  # the hypotheses judged after 100 steps and only the best fitted on (reconstruct.fit_to_masks): 0.673 /
  # 0.600 / 5.5 at 600 steps, the same at 1200.
  # A weak pull to the start (1e-4, here and in the polish) lets the fit follow the silhouette; the pose classes'
  # Gaussian mixture (pose_fit_gmm; body/pose_prior.py, assets/pose_prior.npz from experiments/pose_prior.py on
  # the training split) keeps the limbs where people bend them. Without the mixture a weak pull buys silhouette
  # with bent limbs: 0.0003 (with object_turns = 4) reached human IoU 0.747 on 200 capture test frames but CD
  # human 11.04 against 10.53 cm, and contorted the demo; 0.0001 cost CD human +0.86 cm on 40 frames. With the
  # mixture at 1e-5, first 40 capture test frames, paired against the previous default (0.001, no mixture):
  # human IoU +0.013 [−0.012, +0.037], object +0.025 [−0.003, +0.053]; CD human −1.69 [−3.08, −0.32] cm, CD
  # object −3.13 [−6.78, −0.57] cm, contact F1 0.622 → 0.683, penetration −0.32 mm. At 1e-4 the mixture holds
  # poses near its class means: human IoU −0.037 [−0.070, −0.009]. 200 frames: alignment.md,
  # ablation_reconstruct_200.md.
  cfg.refine.pose_fit_steps = 600
  cfg.refine.pose_fit_prior = 0.0001
  cfg.refine.pose_fit_gmm = 1e-5
  # Starts from each pose class's typical pose as well (the seated person the regressor sees standing).
  cfg.refine.pose_hypotheses = True
  # ... each also turned about the body's vertical axis, by 180° (a person the regressor faces the wrong
  # way; 200 capture test frames, human / object IoU, pelvis px: 0.663 / 0.608 / 6.6 → 0.684 / 0.612 / 5.5)
  # and by ±90° (seen from the side; first 40 capture test frames, paired against 2 turns: human IoU +0.014
  # [−0.000, +0.030], CD human −1.20 [−2.34, −0.05] cm, F1 +0.041 [−0.025, +0.114]).
  cfg.refine.root_turns = 4
  # Object turns (the chosen start's object also tried turned by 90°, 180°, 270° about its vertical, 100 steps
  # each, the best silhouette kept): first 40 capture test frames, paired, object IoU +0.014 [−0.003, +0.036],
  # human +0.002. Off by default: with the previous prior 3D got worse on 200 frames (alignment.md); with the
  # mixture, first 40 capture test frames paired against 1: object IoU +0.020 [+0.005, +0.037], human +0.001,
  # but CD human +0.30 [−0.19, +0.83] cm, CD object +0.22 [−0.45, +0.93] cm, F1 0.683 → 0.677.
  cfg.refine.object_turns = 1
  # The starts judged by L_mask plus a tenth of the guidance's floor and penetration terms (L_of with the floor
  # masks predicted on the regressor's estimate, L_pt; reconstruct.start_physics): silhouettes that fit alike,
  # a person seated on a chair or standing with the chair floating at the hip, are told apart by the chair's
  # legs on the floor (the sit_chair demo sits again). First 40 capture test frames, paired against 0: 8 frames
  # change start; human IoU +0.004 [−0.009, +0.019], pelvis −1.3 [−3.0, −0.1] px, CD human −0.04 [−1.19, +1.37]
  # cm, CD object +0.92 [−0.62, +3.39] cm, F1 −0.003. At 1 the physics outvotes the silhouette: human IoU −0.010,
  # CD object +3.94 [+0.18, +9.39] cm; with L_ho too (its masks belong to the regressor's pose), human IoU
  # −0.043 [−0.074, −0.014] and CD human +1.96 [+0.30, +3.70] cm. 200 frames: alignment.md.
  cfg.refine.start_physical = 0.1
  # The 4 best starts after the short fits each take 100 more steps on the long fit's dense points and all 512
  # mask samples, and the best of those goes on (the short fits rank on 128 samples and the sparse body, and
  # near-ties flip on them: the same frame came out at human IoU 0.50 or 0.80 in batches of 40 or 8). 200
  # capture test frames, paired against 1: human IoU 0.741 → 0.751 (+0.010 [+0.002, +0.017]), object +0.002
  # [−0.008, +0.012], pelvis −0.4 [−0.9, +0.1] px; 3D: ablation_reconstruct_200.md. First 40 frames: 4 finalists
  # +0.012 [+0.001, +0.025], 8 finalists +0.004 [−0.009, +0.018] (more finalists, more silhouette overfits).
  cfg.refine.fit_finalists = 4
  # After the guided sampling, all of x polished on L_mask + L_P / λ_mask with the last round's contact masks
  # (reconstruct.polish). First 40 capture test frames, paired against no polish (both with 4 turns): human IoU
  # +0.009 [−0.004, +0.021], CD human −0.23 [−0.54, +0.11] cm, CD object −0.73 [−1.68, +0.21] cm, contact F1
  # 0.491 → 0.592 (+0.102 [+0.048, +0.169]), penetration +0.34 [−0.04, +0.71] mm; 100 steps at prior 0.01
  # (2 turns) kept the IoU (−0.003) and gained F1 +0.078. Cost: 1.5 s per frame at batch 40.
  cfg.refine.final_pose_fit_steps = 200
  cfg.refine.final_pose_fit_prior = 0.0001  # As the fit's prior, with its mixture (above); 400 steps: IoU −0.001.
  # Then the pelvis alone back onto the masks (the refined pair moves as one, so no 3D
  # metric changes). 40 capture test frames, paired: object IoU +0.036 [+0.023, +0.050], human −0.006
  # [−0.013, +0.000], pelvis +0.5 px; fitting to the human mask alone: human +0.007, object −0.016.
  cfg.refine.final_fit_steps = 60
  # Heavier keeps a little more silhouette but costs contact F1: 120 capture test frames, paired against 500,
  # 2000: F1 −0.027 [−0.041, −0.015]; 8000: F1 −0.051, CD human +0.12 cm (experiments/results/alignment.md).
  cfg.guidance.lambda_mask = 500.0
  return cfg
