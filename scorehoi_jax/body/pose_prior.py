"""A Gaussian-mixture prior over body poses (joints 1–21, 6D): one Gaussian per pose class.

SMPLify keeps its silhouette and keypoint fits plausible with a GMM fitted to motion capture. We have
no mocap we may ship, but the training data's pose classes (stand, sit, bend, squat, ...) are labelled,
so each class's poses give one component directly: its mean, and its covariance shrunk toward a
multiple of the identity (a class has a few hundred poses for 126 dimensions, and orthonormal 6D lies on
a 63-dimensional manifold, so the sample covariance alone is singular). The weights are the classes'
shares of the data. experiments/pose_prior.py fits it on the training split and writes
scorehoi_jax/assets/pose_prior.npz; the silhouette fit reads it (refine.pose_fit_gmm,
reconstruct.fit_to_masks), so a weaker pull toward the regressor's pose does not buy silhouette with
limbs bent where no training pose bends them.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

POSE_PRIOR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "assets", "pose_prior.npz")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class PosePrior:
  """K Gaussians over D = 126 (21 joints × 6D): precision Λ_k = L_k L_kᵀ."""
  means: Any  # [K, D]
  precision_chol: Any  # [K, D, D] L_k
  log_weights: Any  # [K] log π_k + log det L_k − D/2 log 2π (the component's log-density offset)


def fit_class_gaussians(poses: np.ndarray, classes, shrink: float = 0.1) -> tuple[PosePrior, list[str]]:
  """(prior, class names): one component per class of ``poses`` [N, D] (labels ``classes`` [N]).

  Covariance Σ_k = (1 − shrink)·S_k + shrink·(tr S_k / D)·I with S_k the class's sample covariance
  (maximum likelihood, 1/n) — a fixed shrinkage toward the identity's scale, which keeps every Σ_k
  invertible whatever the class's size.
  """
  poses = np.asarray(poses, np.float64)
  classes = np.asarray(classes)
  names = sorted(set(classes.tolist()))
  d = poses.shape[1]
  means, chols, logw = [], [], []
  for name in names:
    p = poses[classes == name]
    mu = p.mean(0)
    s = (p - mu).T @ (p - mu) / len(p)
    cov = (1.0 - shrink) * s + shrink * np.trace(s) / d * np.eye(d)
    chol = np.linalg.cholesky(np.linalg.inv(cov))
    means.append(mu)
    chols.append(chol)
    logw.append(np.log(len(p) / len(poses)) + np.sum(np.log(np.diag(chol))) - 0.5 * d * np.log(2.0 * np.pi))
  prior = PosePrior(np.stack(means).astype(np.float32), np.stack(chols).astype(np.float32),
                    np.asarray(logw, np.float32))
  return prior, names


def save_pose_prior(path: str, prior: PosePrior, names, source: str) -> None:
  np.savez(path, means=prior.means, precision_chol=prior.precision_chol, log_weights=prior.log_weights,
           names=np.asarray(names), source=np.asarray(source))


def load_pose_prior(path: str = POSE_PRIOR) -> PosePrior:
  with np.load(path) as z:
    return PosePrior(*(np.asarray(z[k], np.float32) for k in ("means", "precision_chol", "log_weights")))


def pose_nll(prior: PosePrior, body6d) -> jnp.ndarray:
  """−log p(pose) [B] for body6d [B, D]: −logsumexp_k(log π_k + log N(pose; μ_k, Σ_k))."""
  diff = body6d[:, None, :] - prior.means[None]  # [B, K, D]
  z = jnp.einsum("bkd,kde->bke", diff, prior.precision_chol)  # ‖z‖² = Mahalanobis² under Λ_k = L Lᵀ.
  return -jax.nn.logsumexp(prior.log_weights[None] - 0.5 * jnp.sum(z * z, -1), axis=1)
