"""Stage 1 on InterCap as in the paper: ResNet-50 backbone, regressor, ContactFormer, CRFormer.

Recipe (scorehoi_jax/configs/_paper.py): Adam (β1 0.5), batch 32, 50 epochs,
learning rate 1e-4 ÷ 10 after epoch 30, augmentation on; 256-px crops. Needs
your copy of InterCap with CONTHO's annotations and your SMPL-H model
(contact labels come from geometry on our guidance vertices, data/ground_truth.py).

Commands (bash):

  scorehoi prepare intercap --root ~/InterCap --smplh ~/models/smplh --out data
  # Stage 0, the point encoder (the paper uses PointNeXt pre-trained on ModelNet40, not shipped):
  scorehoi prepare synthetic --out syn --num 20000
  scorehoi train --config point_encoder --workdir runs/s0 --config.data.dir=syn
  # 1 GPU:
  CUDA_VISIBLE_DEVICES=0 scorehoi train --config intercap_stage1 --workdir runs/intercap_s1 \
      --config.data.dir=data --config.body_model=~/models/smplh/SMPLH_NEUTRAL.npz \
      --config.point_encoder_checkpoint=runs/s0
  # N GPUs in one machine: the same command without CUDA_VISIBLE_DEVICES (every visible GPU
  # joins the data axis; N must divide the batch of 32). M machines under SLURM: prefix
  # `srun --nodes=M --ntasks-per-node=1` (jax.distributed starts by itself, train/sharding.py).

Then stage 2: scorehoi_jax/configs/intercap_stage2.py. A killed run resumes with the same command.

Expected numbers (paper Table 1, InterCap, after stage 2 and ScoreHOI refinement): CD human
5.56 cm, CD object 8.75 cm, contact precision 0.627, recall 0.590, F-score 0.578. The paper has
no stage-1-only row for InterCap; its regressor follows CONTHO, whose InterCap row in Table 1 is
5.96 cm, 9.50 cm, 0.661, 0.432, 0.522.

Expected time on 4 GPUs: ≈ 32 h (RTX 4090 class) at BEHAVE's size, in proportion to your
InterCap training frames. Estimated, not measured: the paper reports ≈ 1.5 days on 4 × RTX 4090
for both stages; we split it by each stage's work (epochs × training frames × cost per example,
a stage-1 example costing ≈ 10 × a stage-2 one: 0.5 against 4.4 examples/s at these model sizes
in experiments/results/training.md), which gives stage 1 ≈ 90 %.
"""

from scorehoi_jax.configs._paper import stage1


def get_config():
  return stage1("intercap")
