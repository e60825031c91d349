"""Stage 1 on BEHAVE as in the paper: ResNet-50 backbone, regressor, ContactFormer, CRFormer.

Recipe (scorehoi_jax/configs/_paper.py): Adam (β1 0.5), batch 32, 50 epochs,
learning rate 1e-4 ÷ 10 after epoch 30, augmentation on; 256-px crops. Needs
your copy of BEHAVE with CONTHO's annotations and your SMPL-H model
(contact labels come from geometry on our guidance vertices, data/ground_truth.py).

Commands (bash):

  scorehoi prepare behave --root ~/BEHAVE --smplh ~/models/smplh --out data
  # Stage 0, the point encoder (the paper uses PointNeXt pre-trained on ModelNet40, not shipped):
  scorehoi prepare synthetic --out syn --num 20000
  scorehoi train --config point_encoder --workdir runs/s0 --config.data.dir=syn
  # 1 GPU:
  CUDA_VISIBLE_DEVICES=0 scorehoi train --config behave_stage1 --workdir runs/behave_s1 \
      --config.data.dir=data --config.body_model=~/models/smplh/SMPLH_NEUTRAL.npz \
      --config.point_encoder_checkpoint=runs/s0
  # N GPUs in one machine: the same command without CUDA_VISIBLE_DEVICES (every visible GPU
  # joins the data axis; N must divide the batch of 32). M machines under SLURM: prefix
  # `srun --nodes=M --ntasks-per-node=1` (jax.distributed starts by itself, train/sharding.py).

Then stage 2: scorehoi_jax/configs/behave_stage2.py. A killed run resumes with the same command.

Expected numbers (paper Table 1, BEHAVE, after stage 2 and ScoreHOI refinement): CD human
4.85 cm, CD object 7.86 cm, contact precision 0.634, recall 0.586, F-score 0.609. Stage 1 alone
is the paper's "w/o diffusion" row (Table 3, as printed): 5.03 cm, 8.48 cm, 0.612, 0.523, 0.588.

Expected time on 4 GPUs: ≈ 32 h (RTX 4090 class). Estimated, not measured: the paper reports
≈ 1.5 days on 4 × RTX 4090 for both stages; we split it by each stage's work (epochs × training
frames × cost per example, a stage-1 example costing ≈ 10 × a stage-2 one: 0.5 against 4.4
examples/s at these model sizes in experiments/results/training.md), which gives stage 1 ≈ 90 %.
"""

from scorehoi_jax.configs._paper import stage1


def get_config():
  return stage1("behave")
