"""Stage 2 on InterCap + IMHD as in the paper: the denoiser on the frozen stage-1 network.

Recipe (scorehoi_jax/configs/_paper.py): batch 256, 30 epochs at learning rate
1e-4 (Adam β1 0.9, EMA of the weights for sampling), augmentation on; the
training set is InterCap's train split followed by IMHD's (data.mix = ("imhd",),
data/mixing.py), as the paper adds IMHD to the diffusion training only. IMHD
has no official split: ours puts a sequence in test when crc32 of its path
is divisible by 5 (data/imhd.py).

Commands (bash), after scorehoi_jax/configs/intercap_stage1.py:

  scorehoi prepare imhd --root ~/IMHD --smplh ~/models/smplh --out data    # the same data dir
  # 1 GPU:
  CUDA_VISIBLE_DEVICES=0 scorehoi train --config intercap_stage2 --workdir runs/intercap_s2 \
      --config.data.dir=data --config.body_model=~/models/smplh/SMPLH_NEUTRAL.npz \
      --config.point_encoder_checkpoint=runs/s0 --config.stage1_workdir=runs/intercap_s1
  # N GPUs in one machine: the same command without CUDA_VISIBLE_DEVICES (N must divide 256);
  # M machines under SLURM: prefix `srun --nodes=M --ntasks-per-node=1`.
  scorehoi export --run runs/intercap_s2 --out intercap_model      # a model for reconstruct / evaluate

Without IMHD: --config.data.mix='()'.

Expected numbers (paper Table 1, InterCap, ScoreHOI at paper settings, refine_paper): CD human
5.56 cm, CD object 8.75 cm, contact precision 0.627, recall 0.590, F-score 0.578.

Expected time on 4 GPUs: ≈ 4–6 h (RTX 4090 class). Estimated, not measured: the paper's ≈ 1.5
days on 4 × RTX 4090 for both stages, split by each stage's work (epochs × frames × cost per
example; a stage-2 example costs ≈ 1/10 of a stage-1 one, experiments/results/training.md):
≈ 10–15 % of it, depending on how many IMHD frames you decode (as many as InterCap's: ≈ 4 h).
"""

from scorehoi_jax.configs._paper import stage2


def get_config():
  return stage2("intercap")
