"""Export the Anny body model (rig "mixamo", topology "anny") to our SMPL-H layout.

One-off asset builder; its output ships inside the package, so neither anny nor
torch is ever needed at run time. See ../shared/notes/open-body-model.md.

  python -m venv /tmp/exportenv && /tmp/exportenv/bin/pip install torch==2.13.0 anny==0.6.2 scipy
  ANNY_CACHE_DIR=/tmp/anny_cache /tmp/exportenv/bin/python data_prep/export_anny.py \
      --out scorehoi_jax/assets/body/anny_smplh_neutral.npz

What it does:
  1. Builds Anny(rig="mixamo", topology="anny", local-ref, LBS) in float64: this
     configuration is exactly SMPL-form LBS without pose correctives.
  2. Reorders the 52 bones to the SMPL-H kintree (asserted equal) and rotates
     Anny's Z-up/-Y-forward frame to SMPL's Y-up/+Z-forward frame.
  3. Samples adult phenotypes with anny's WHO-calibrated sampler, and runs a
     PCA of the rest vertices; because vertices are linear in Anny's blendshape
     coefficients, each principal direction has an exact coefficient-space
     pre-image, which we store for parity checks. Bone heads (our joints) are
     linear in the same coefficients, so exact J_template/J_shapedirs follow.
  4. Cleans the skinning weights: removes anny's skinning islands, then copies
     the (clean) right side onto the left with a vertex mirror map and averages
     the mid-plane, since MakeHuman's legacy mixamo weights are asymmetric at
     the left toes.
  5. Checks our NumPy LBS of the saved float32 arrays against Anny's own torch
     forward for random shapes and poses, and prints the maximum error.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch

# SMPL-H joint i <- Anny mixamo bone (notes/open-body-model.md §1).
_SMPLH_FROM_MIXAMO = [
    "Hips", "LeftUpLeg", "RightUpLeg", "Spine", "LeftLeg", "RightLeg", "Spine1", "LeftFoot",
    "RightFoot", "Spine2", "LeftToeBase", "RightToeBase", "Neck", "LeftShoulder", "RightShoulder",
    "Head", "LeftArm", "RightArm", "LeftForeArm", "RightForeArm", "LeftHand", "RightHand",
] + [f"{side}Hand{finger}{i}" for side in ("Left", "Right")
     for finger in ("Index", "Middle", "Pinky", "Ring", "Thumb") for i in (1, 2, 3)]

SMPLH_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19] + [
    20, 22, 23, 20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35,
    21, 37, 38, 21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50]

# x_smpl = R x_anny: Anny/Blender is Z-up facing -Y; SMPL is Y-up facing +Z.
R_AXES = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])


def build_anny():
  import anny
  model = anny.Anny(rig="mixamo", topology="anny", pose_parameterization="local-ref", skinning_method="lbs")
  return model.to(torch.float64)


def sample_coefficients(model, num: int, seed: int, age_range=(18.0, 80.0)):
  from anny.shape_distribution import SimpleShapeDistribution
  torch.manual_seed(seed)
  age = torch.distributions.Uniform(torch.tensor(age_range[0], dtype=torch.float64),
                                    torch.tensor(age_range[1], dtype=torch.float64))
  dist = SimpleShapeDistribution(model, morphological_age_distribution=age)
  _, pheno = dist.sample(num)
  pheno = {k: v for k, v in pheno.items() if k in ("gender", "age", "muscle", "weight", "height", "proportions")}
  with torch.no_grad():
    return model.get_phenotype_blendshape_coefficients(**pheno).numpy()


def dense_weights(model, data=None) -> np.ndarray:
  src = data if data is not None else model
  idx = np.asarray(src.vertex_bone_indices)
  w = np.asarray(src.vertex_bone_weights, np.float64)
  nv = idx.shape[0]
  out = np.zeros((nv, len(model.bone_labels)))
  np.add.at(out, (np.repeat(np.arange(nv), idx.shape[1]), idx.reshape(-1)), w.reshape(-1))
  return out / out.sum(1, keepdims=True)


def symmetric_weights(weights: np.ndarray, verts: np.ndarray, names: list[str]) -> np.ndarray:
  """Copy right-side weights to the mirrored left vertices; average the mid-plane."""
  from scipy.spatial import cKDTree
  mirror_v = cKDTree(verts).query(verts * np.array([-1.0, 1.0, 1.0]))[1]
  swap = {n: n.replace("Left", "\0").replace("Right", "Left").replace("\0", "Right") for n in names}
  perm = np.array([names.index(swap[n]) for n in names])
  mirrored = weights[mirror_v][:, perm]  # Weights of the mirror vertex, bones swapped.
  x = verts[:, 0]
  out = weights.copy()
  left = x > 1e-4  # Anny's +X is the character's left.
  mid = np.abs(x) <= 1e-4
  out[left] = mirrored[left]
  out[mid] = 0.5 * (weights[mid] + mirrored[mid])
  return out / out.sum(1, keepdims=True)


def numpy_lbs(v_template, shapedirs, j_template, j_shapedirs, weights, parents, rotmats, betas):
  """Independent float64 LBS (no correctives), used for the parity check."""
  v = v_template + np.einsum("vcb,nb->nvc", shapedirs, betas)
  j = j_template + np.einsum("jcb,nb->njc", j_shapedirs, betas)
  n, nj = rotmats.shape[:2]
  g = np.zeros((n, nj, 4, 4))
  for i in range(nj):
    local = np.zeros((n, 4, 4))
    local[:, :3, :3] = rotmats[:, i]
    local[:, :3, 3] = j[:, i] - (j[:, parents[i]] if parents[i] >= 0 else 0)
    local[:, 3, 3] = 1
    g[:, i] = local if parents[i] < 0 else g[:, parents[i]] @ local
  rest = np.zeros_like(g)
  rest[:, :, :3, 3] = np.einsum("nkij,nkj->nki", g[:, :, :3, :3], j)
  a = g.copy()
  a[:, :, :3, 3] -= rest[:, :, :3, 3]
  t = np.einsum("vk,nkij->nvij", weights, a)
  vh = np.concatenate([v, np.ones(v.shape[:2] + (1,))], -1)
  return np.einsum("nvij,nvj->nvi", t, vh)[..., :3], g[:, :, :3, 3]


def main():
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--out", default="scorehoi_jax/assets/body/anny_smplh_neutral.npz")
  ap.add_argument("--num-betas", type=int, default=10)
  ap.add_argument("--num-samples", type=int, default=3000)
  ap.add_argument("--seed", type=int, default=0)
  args = ap.parse_args()

  model = build_anny()
  labels = list(model.bone_labels)
  order = [labels.index(f"mixamorig:{b}") for b in _SMPLH_FROM_MIXAMO]
  anny_parents = list(model.bone_parents)
  parents = [-1 if anny_parents[order[i]] < 0 else order.index(anny_parents[order[i]]) for i in range(52)]
  assert parents == SMPLH_PARENTS, "reordered Anny mixamo tree differs from the SMPL-H kintree"

  # Shape space: PCA of rest vertices over sampled adults (exact coefficient pre-images).
  coeffs = sample_coefficients(model, args.num_samples, args.seed)
  blend = np.asarray(model.blendshapes, np.float64)  # (K, V, 3)
  tmpl = np.asarray(model.template_vertices, np.float64)
  heads_t = np.asarray(model.template_bone_heads, np.float64)
  heads_b = np.asarray(model.bone_heads_blendshapes, np.float64)
  k_count, nv = blend.shape[0], blend.shape[1]
  c_mean = coeffs.mean(0)
  cc = coeffs - c_mean
  xc = cc @ blend.reshape(k_count, -1)  # Centred rest vertices, flattened (N, 3V).
  u, s, vt = np.linalg.svd(xc, full_matrices=False)
  nb = args.num_betas
  std = s[:nb] / np.sqrt(len(coeffs) - 1)
  coeff_dirs = (cc.T @ u[:, :nb] / s[:nb]).T * std[:, None]  # (B, K): betas -> coefficients.
  explained = (s[:nb] ** 2) / np.sum(s ** 2)

  def to_smpl(x):
    return x @ R_AXES.T

  mean_verts = tmpl + np.einsum("k,kvc->vc", c_mean, blend)
  v_template = to_smpl(mean_verts)
  shapedirs = to_smpl(np.einsum("bk,kvc->vcb", coeff_dirs, blend).transpose(0, 2, 1)).transpose(0, 2, 1)
  heads_mean = heads_t + np.einsum("k,kjc->jc", c_mean, heads_b)
  j_template = to_smpl(heads_mean[order])
  j_shapedirs = to_smpl(np.einsum("bk,kjc->jcb", coeff_dirs, heads_b)[order].transpose(0, 2, 1)).transpose(0, 2, 1)

  # Skinning weights: anny's island removal, then the right->left copy.
  from anny.models.model_transforms import remove_skinning_islands
  cleaned = remove_skinning_islands(model.to_model_data())
  w_anny = dense_weights(model, cleaned)
  w_anny = symmetric_weights(w_anny, tmpl, [l.split(":")[-1] for l in labels])
  weights = w_anny[:, order]

  faces = np.asarray(model.get_triangular_faces(), np.int64)

  # A regressor for SMPL-H-file compatibility: per joint, the 512 nearest rest
  # vertices with weights fitted to reproduce the exact joints on the shape span.
  j_regressor = np.zeros((52, nv))
  basis = np.concatenate([v_template[None], np.moveaxis(shapedirs, -1, 0)], 0)  # (1+B, V, 3)
  jbasis = np.concatenate([j_template[None], np.moveaxis(j_shapedirs, -1, 0)], 0)
  for j in range(52):
    near = np.argsort(np.sum((v_template - j_template[j]) ** 2, 1))[:512]
    a = basis[:, near, :].transpose(0, 2, 1).reshape(-1, 512)  # (3(1+B), 512)
    a = np.concatenate([a, np.ones((1, 512))], 0)  # Rows sum to one.
    b = np.concatenate([jbasis[:, j, :].reshape(-1), [1.0]])
    j_regressor[j, near] = np.linalg.lstsq(a, b, rcond=None)[0]

  meta = dict(
      name="anny-smplh-neutral",
      source="Anny 0.6.2 (NAVER LABS), rig 'mixamo', topology 'anny', exported by data_prep/export_anny.py",
      licence="MakeHuman/MPFB2 assets CC0 1.0; Anny code Apache-2.0 (see assets/body/NOTICE)",
      axes="metres, +Y up, +Z forward (SMPL)", pose_correctives=False, rest_pose="A-pose",
      pca=dict(samples=args.num_samples, age_range=[18, 80], seed=args.seed,
               sampler="anny.shape_distribution.SimpleShapeDistribution", space="rest vertices"),
      weights_cleanup="remove_skinning_islands, then right->left mirror copy, mid-plane averaged",
  )
  f32 = lambda x: np.asarray(x, np.float32)
  kintree = np.stack([np.array(SMPLH_PARENTS), np.arange(52)]).astype(np.int64)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  np.savez_compressed(
      args.out, v_template=f32(v_template), shapedirs=f32(shapedirs), weights=f32(weights),
      f=faces.astype(np.int32), kintree_table=kintree, J_template=f32(j_template),
      J_shapedirs=f32(j_shapedirs), J_regressor=f32(j_regressor),
      hands_meanl=np.zeros(45, np.float32), hands_meanr=np.zeros(45, np.float32),
      shape_std=f32(std), pca_explained_variance_ratio=f32(explained),
      anny_coeff_mean=f32(c_mean), anny_coeff_dirs=f32(coeff_dirs),
      joint_names=np.array(_SMPLH_FROM_MIXAMO), meta=json.dumps(meta))
  print(f"wrote {args.out}: V={nv} F={len(faces)} betas={nb} "
        f"explained={explained.sum():.5f} size={os.path.getsize(args.out) / 2**20:.2f} MiB")

  # Parity: our NumPy LBS on the saved float32 arrays vs Anny's torch forward.
  z = np.load(args.out)
  rng = np.random.default_rng(1)
  nt = 8
  betas = rng.normal(size=(nt, nb))
  from scipy.spatial.transform import Rotation
  rot = Rotation.from_rotvec(rng.normal(size=(nt * 52, 3)) * 0.4).as_matrix().reshape(nt, 52, 3, 3)
  ours, _ = numpy_lbs(z["v_template"].astype(np.float64), z["shapedirs"].astype(np.float64),
                      z["J_template"].astype(np.float64), z["J_shapedirs"].astype(np.float64),
                      z["weights"].astype(np.float64), SMPLH_PARENTS, rot, betas)
  # Anny's own LBS forward, with exactly our cleaned weights: this checks the
  # shape space, the bone reorder, the axes and the skinning, not the clean-up.
  from anny.models.rigged_model import RiggedModelWithLinearBlendShapes
  model_ref = model
  model_ref.dense_vertex_bone_weights = torch.as_tensor(w_anny)
  c = torch.as_tensor(z["anny_coeff_mean"].astype(np.float64)[None] + betas @ z["anny_coeff_dirs"].astype(np.float64))
  deltas = torch.eye(4, dtype=torch.float64).repeat(nt, 52, 1, 1)
  rest = model_ref.get_rest_model(c)
  for i, a_idx in enumerate(order):
    deltas[:, a_idx, :3, :3] = torch.as_tensor(R_AXES.T @ rot[:, i] @ R_AXES)
  deltas[:, order[0], :3, 3] = rest["rest_bone_heads"][:, order[0]]
  with torch.no_grad():
    out = RiggedModelWithLinearBlendShapes.forward(model_ref, deltas, c)
  ref = to_smpl(out["vertices"].numpy())
  err = np.abs(ref - ours).max()
  print(f"parity vs Anny forward ({nt} random shapes/poses): max |dv| = {err * 1000:.4f} mm")


if __name__ == "__main__":
  main()
