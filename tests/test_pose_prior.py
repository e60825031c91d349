"""The pose classes' Gaussian mixture (body/pose_prior.py) and its term in the silhouette fit."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from scorehoi_jax.body.pose_prior import fit_class_gaussians, load_pose_prior, pose_nll, save_pose_prior

pytestmark = pytest.mark.usefixtures("fast_compile")


def _classes(d=6, seed=0):
  """Poses of three classes of different sizes, means and spreads, and their labels."""
  rng = np.random.default_rng(seed)
  parts = [(rng.normal(m, s, size=(n, d)), [c] * n)
           for m, s, n, c in ((0.0, 0.3, 40, "stand"), (1.0, 0.1, 25, "sit"), (-0.5, 0.5, 60, "bend"))]
  return np.concatenate([p for p, _ in parts]), np.concatenate([c for _, c in parts])


def test_negative_log_density_matches_scipy(tmp_path):
  poses, classes = _classes()
  shrink = 0.2
  prior, names = fit_class_gaussians(poses, classes, shrink)
  path = str(tmp_path / "prior.npz")
  save_pose_prior(path, prior, names, "test")
  prior = load_pose_prior(path)
  query = np.random.default_rng(1).normal(0.2, 0.6, size=(7, poses.shape[1]))
  terms = []
  for n in names:  # Independent reference: NumPy's covariance, the shrinkage written out, SciPy's density.
    p = poses[classes == n]
    s = np.cov(p.T, bias=True)
    cov = (1 - shrink) * s + shrink * np.trace(s) / p.shape[1] * np.eye(p.shape[1])
    terms.append(np.log(len(p) / len(poses)) + stats.multivariate_normal(p.mean(0), cov).logpdf(query))
  want = -special.logsumexp(np.stack(terms), axis=0)
  got = np.asarray(pose_nll(prior, jnp.asarray(query, jnp.float32)))
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_a_pose_off_its_class_is_less_likely():
  poses, classes = _classes()
  prior, _ = fit_class_gaussians(poses, classes)
  nll = lambda p: float(pose_nll(prior, jnp.asarray(p[None], jnp.float32))[0])
  sit = poses[classes == "sit"].mean(0)
  assert nll(sit) < nll(sit + 0.5) < nll(sit + 1.5)


def test_the_silhouette_fit_moves_the_pose_toward_the_prior_only_when_it_is_on():
  """Masks drawn from the start (so L_mask is already ~0): with pose_fit_gmm > 0 and a weak pull to the start, the
  fit walks the body pose toward the prior's single class; with pose_fit_gmm = 0 it stays."""
  from scipy.spatial.transform import Rotation

  from scorehoi_jax.diffusion.image_evidence import POSE_HYPOTHESES
  from scorehoi_jax.diffusion.refine import RefineSettings
  from scorehoi_jax.diffusion.xpack import decode_x, default_betas_stats
  from scorehoi_jax.geometry.rotations import matrix_to_rot6d, rot6d_to_matrix
  from scorehoi_jax.reconstruct import BODY_POSE, fit_to_masks, make_bodies
  from tests.test_image_evidence import _evidence_of, _x_with

  with np.load(POSE_HYPOTHESES) as z:
    stand = z["body6d"][list(z["names"]).index("stand")].reshape(-1)
  rng = np.random.default_rng(0)
  # A nearby pose the masks cannot tell apart, orthonormal 6D (the fit's output is).
  centre = np.asarray(matrix_to_rot6d(rot6d_to_matrix(jnp.asarray(
      stand + rng.normal(0.0, 0.08, stand.shape), jnp.float32).reshape(21, 6)))).reshape(-1)
  prior, _ = fit_class_gaussians(centre + rng.normal(0.0, 0.01, (400, stand.size)), ["a"] * 400, shrink=0.1)
  prior = dataclasses.replace(prior, **{f.name: jnp.asarray(getattr(prior, f.name))
                                        for f in dataclasses.fields(prior)})
  stats_, body = default_betas_stats(), make_bodies().guidance
  size, focal, pp, cam = 64, np.array([90.0, 90.0], np.float32), np.array([31.5, 31.5], np.float32), [0.0, 0.0, 3.0]
  start = _x_with(Rotation.from_euler("x", 180, degrees=True).as_matrix(), stand.reshape(21, 6))
  template = jnp.zeros((1, 64, 3))
  ev = _evidence_of(decode_x(start, body, template, stats_), size, focal, pp, cam)
  s = RefineSettings(use_mask=True, pose_fit_steps=100, pose_fit_prior=1e-3, pose_fit_gmm=1e-3)
  gap = lambda x: float(np.linalg.norm(np.asarray(x)[0, BODY_POSE] - centre))
  on, _ = fit_to_masks(start, ev, template, body, stats_, s, pose_prior=prior)
  off, _ = fit_to_masks(start, ev, template, body, stats_, dataclasses.replace(s, pose_fit_gmm=0.0), pose_prior=prior)
  before = gap(start)
  assert gap(on) < 0.2 * before
  assert gap(off) > 0.9 * before


def test_a_changed_pose_prior_changes_the_cached_programs_key(monkeypatch, tmp_path):
  """The compiled reconstruct program closes over the prior's arrays: a stored program traced with another
  prior (an updated asset, same source) must not be reused."""
  from scorehoi_jax import reconstruct
  from scorehoi_jax.config import load_config
  from scorehoi_jax.model_store import load_model

  model, cfg = load_model(), load_config("refine_reconstruct")
  with cfg.unlocked():
    cfg.refine.pose_fit_gmm = 1e-5
  key = lambda: reconstruct.Reconstructor(model, cfg, program_cache=str(tmp_path)).program.key
  before = key()
  shipped = reconstruct.load_pose_prior()
  monkeypatch.setattr(reconstruct, "load_pose_prior", lambda: dataclasses.replace(shipped, means=shipped.means + 0.01))
  assert key() != before
