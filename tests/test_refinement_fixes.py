"""The refinement fixes of the expert review: each test fails on the code before its fix.

* the denoiser's start is orthonormal 6D; the MANO mean is never added twice; betas bounds and the
  condition switches come from where they belong;
* the floor: estimated from the body where no plane is known, not from the camera's −y;
* DDIM: the forward process and x̂0 invert each other; multi-step guided sampling equals a plain
  NumPy loop (ε̃, not ε̂, in the direction term); an unguided round returns its input;
* CDIR: every round's guidance uses the masks predicted on that round's input.
"""

import dataclasses
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from scorehoi_jax.body import body_forward, load_body_model
from scorehoi_jax.config import load_config
from scorehoi_jax.diffusion import ddim
from scorehoi_jax.diffusion.losses import GuidanceWeights, estimate_ground_plane, floor_loss
from scorehoi_jax.diffusion.refine import RefineSettings, loss_terms, masks_from_probs, predict_contacts, refine
from scorehoi_jax.diffusion.sampler import settings_from_config
from scorehoi_jax.diffusion.schedule import cosine_schedule
from scorehoi_jax.diffusion.xpack import decode_params, orthonormalize_x
from scorehoi_jax.geometry import rot6d_to_matrix
from scorehoi_jax.model_store import load_model
from scorehoi_jax.reconstruct import Reconstructor
from scorehoi_jax.train.losses import diffuse

sys.path.insert(0, os.path.dirname(__file__))
from test_refine import STATS, _bodies, _inputs, _small_denoiser  # noqa: E402
from tiny_model import write_tiny_model  # noqa: E402

from scorehoi_jax.diffusion.contact import make_proximity_contact_fn  # noqa: E402
from scorehoi_jax.models.denoiser import init_params_numpy  # noqa: E402

pytestmark = pytest.mark.usefixtures("fast_compile")
A = np.asarray(cosine_schedule(), np.float64)


# ------------------------------------------------------------------------------------------------
# The start, the hands, the betas bounds, the condition switches.
# ------------------------------------------------------------------------------------------------

def _no_diffusion(name="refine_paper"):
  cfg = load_config(name)
  cfg.refine.use_diffusion = False
  return cfg


def test_x_init_is_orthonormal_for_any_regressor_output():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(3, 331)), jnp.float32)  # Columns of any length and angle.
  y = np.asarray(orthonormalize_x(x))
  cols = np.concatenate([y[:, :312].reshape(3, 52, 6), y[:, None, 312:318]], 1).reshape(3, 53, 3, 2)
  np.testing.assert_allclose(np.linalg.norm(cols, axis=2), 1.0, atol=1e-5)
  np.testing.assert_allclose(np.sum(cols[..., 0] * cols[..., 1], -1), 0.0, atol=1e-5)
  np.testing.assert_allclose(y[:, 318:], np.asarray(x)[:, 318:])  # Translation and betas untouched.
  # The rotations they decode to are those Gram–Schmidt gives the raw output (the regressor's meaning).
  np.testing.assert_allclose(rot6d_to_matrix(y[:, :312].reshape(3, 52, 6)),
                             rot6d_to_matrix(np.asarray(x)[:, :312].reshape(3, 52, 6)), atol=1e-5)


def test_reconstructor_starts_from_orthonormal_x(tiny):
  from scorehoi_jax import demo
  from scorehoi_jax import reconstruct_io as rio
  from scorehoi_jax.data import pipeline
  from scorehoi_jax.objects.geometry import stack_geometries
  rec = Reconstructor(load_model(tiny), _no_diffusion())
  f = demo.example_frames()[0]
  obj = rio.resolve_object(f.object, f.object_seed)
  batch = pipeline.stack([rio.load_frame(f, rec.image_size, obj.template)[0]])
  x = np.asarray(rec(batch, stack_geometries([obj.geometry()])).x_regressor)
  assert np.abs(x - np.asarray(orthonormalize_x(jnp.asarray(x)))).max() < 1e-5


def test_the_mano_mean_is_not_added_twice():
  # A real SMPL-H model has a non-zero mean hand; the embedded one has zeros, so give it one.
  body = dataclasses.replace(load_body_model(), hands_mean=jnp.full((30, 3), 0.3, jnp.float32))
  rng = np.random.default_rng(1)
  x = orthonormalize_x(jnp.asarray(rng.normal(size=(2, 331)), jnp.float32))
  for name in ("refine_paper", "refine_compat"):
    settings = settings_from_config(load_config(name))
    got = decode_params(x, STATS, body, settings.hand_mean).rotmats[:, 22:]
    want = rot6d_to_matrix(np.asarray(x)[:, 132:312].reshape(2, 30, 6))  # x's hand rotations, absolute.
    np.testing.assert_allclose(got, want, atol=1e-5, err_msg=name)


def test_reconstructor_refuses_hand_mean(tiny):
  cfg = _no_diffusion()
  cfg.refine.hand_mean = True
  with pytest.raises(ValueError, match="added twice"):
    Reconstructor(load_model(tiny), cfg)


def test_betas_bounds_come_from_the_model(tmp_path):
  path = write_tiny_model(str(tmp_path / "m"))
  import json
  meta = json.load(open(os.path.join(path, "model.json")))
  meta["config"]["betas_stats"] = {"num": 10, "min": -2.0, "max": 2.5}
  json.dump(meta, open(os.path.join(path, "model.json"), "w"))
  cfg = _no_diffusion()
  cfg.betas_stats.min, cfg.betas_stats.max = -7.0, 7.0  # What inference used to read: ignored now.
  rec = Reconstructor(load_model(path), cfg)
  np.testing.assert_allclose(rec.stats.betas_min, -2.0)
  np.testing.assert_allclose(rec.stats.betas_max, 2.5)


def test_condition_switches_remove_that_condition(tiny):
  model = load_model(tiny)
  cfg = _no_diffusion()
  cfg.denoiser.use_image_cond = False
  rec = Reconstructor(model, cfg)
  assert rec.nets.denoiser.drop_streams == ("image",)
  full = Reconstructor(model, _no_diffusion()).nets.denoiser
  rng = np.random.default_rng(2)
  x, t = jnp.asarray(rng.normal(size=(2, 331)), jnp.float32), jnp.array([10, 40])
  v = model.variables["denoiser"]
  c_geo = jnp.asarray(rng.normal(size=(2, 64, model.config.model.point_encoder.get("token_dim", 64))), jnp.float32)
  c_img = lambda s: jnp.asarray(np.random.default_rng(s).normal(size=(2, _image_dim(v))), jnp.float32)

  def eps(den, ci):
    cond = den.apply(v, ci, c_geo, method="encode")
    return np.asarray(den.apply(v, x, t, cond, method="denoise"))

  np.testing.assert_allclose(eps(rec.nets.denoiser, c_img(0)), eps(rec.nets.denoiser, c_img(1)), atol=1e-6)
  assert np.abs(eps(full, c_img(0)) - eps(full, c_img(1))).max() > 1e-4
  cfg.denoiser.use_image_cond, cfg.denoiser.use_geo_cond = True, True
  no_geo = dataclasses.replace(full, use_geo_cond=False)  # A model trained without c_G ...
  from scorehoi_jax.reconstruct import with_condition_switches
  with pytest.raises(ValueError, match="trained without the geometry"):
    with_condition_switches(rec.nets._replace(denoiser=no_geo), cfg)  # ... cannot be asked for it.


def _image_dim(variables):
  """Channels of c_I the denoiser's image token encoder takes (its first Dense kernel's fan-in)."""
  enc = variables["params"]["image_tokens"]
  kernels = [v["kernel"] for v in jax.tree_util.tree_leaves(enc, is_leaf=lambda n: isinstance(n, dict) and
                                                             "kernel" in n) if isinstance(v, dict)]
  return int(kernels[0].shape[0])


# ------------------------------------------------------------------------------------------------
# The floor.
# ------------------------------------------------------------------------------------------------

def test_floor_estimated_from_the_body_not_the_camera():
  """A person standing on the floor, seen by a camera pitched 20° down; a box resting on the same floor."""
  body = load_body_model()
  out = body_forward(body, jnp.broadcast_to(jnp.eye(3), (52, 3, 3)), jnp.zeros(10))
  v = np.asarray(out.vertices - out.joints[0])  # Pelvis-centred, body axes (+y up).
  floor_y = v[:, 1].min()
  pitch = Rotation.from_euler("x", -160.0, degrees=True).as_matrix()  # Body +y → camera up (−y), tilted 20°.
  cam = lambda p: p @ pitch.T
  box = np.array([[x, floor_y, z] for x in (0.4, 0.9) for z in (-0.2, 0.3)] + [[0.65, floor_y + 0.4, 0.05]])
  up_true = pitch @ np.array([0.0, 1.0, 0.0])
  rotmats = np.tile(np.eye(3), (52, 1, 1))
  rotmats[0] = pitch
  plane = np.asarray(estimate_ground_plane(jnp.asarray(cam(v)), jnp.asarray(rotmats, jnp.float32)))
  assert np.degrees(np.arccos(np.clip(plane[:3] @ up_true, -1, 1))) < 0.01
  heights = cam(box) @ plane[:3] + plane[3]
  np.testing.assert_allclose(heights[:4], 0.0, atol=1e-5)  # The box's feet are on the estimated floor...
  m_of = jnp.array([1.0, 1.0, 1.0, 1.0, 0.0])
  est = floor_loss(jnp.asarray(cam(v)), jnp.asarray(cam(box)), m_of, 0.02, plane=jnp.asarray(plane))
  old = floor_loss(jnp.asarray(cam(v)), jnp.asarray(cam(box)), m_of, 0.02)  # Camera −y through the lowest point.
  assert float(est) == 0.0 and float(old) > 1e-3  # ... and the released floor would tilt it.


def test_known_floor_keeps_the_datas_normal_and_passes_under_the_feet():
  """A calibrated floor in camera coordinates, 2.5 m away: the plane L_of uses (pelvis-centred) must keep the
  data's normal and pass under the body's feet. Its offset comes from the body: moving the data's offset to the
  pelvis would need the pelvis's true position, and the regressor's is off by decimetres."""
  from scorehoi_jax.diffusion.xpack import decode_x, pack_x_from_matrices
  from scorehoi_jax.reconstruct import floor_plane, make_bodies
  guidance = make_bodies().guidance
  pitch = Rotation.from_euler("x", -160.0, degrees=True).as_matrix()  # Body +y → camera up, pitched 20°.
  rotmats = np.tile(np.eye(3, dtype=np.float32), (1, 52, 1, 1))
  rotmats[0, 0] = pitch
  x = pack_x_from_matrices(jnp.asarray(rotmats), jnp.eye(3)[None], jnp.zeros((1, 3)), jnp.zeros((1, 10)), STATS)
  template = jnp.zeros((1, 64, 3))
  human = np.asarray(decode_x(x, guidance, template, STATS).human_points[0], np.float64)
  n = pitch @ np.array([0.0, 1.0, 0.0])
  pelvis = np.array([0.1, 0.3, 2.5])  # True pelvis in the camera.
  c = -np.min((human + pelvis) @ n)  # The floor under the feet, in camera coordinates: n·q + c = 0.
  batch = {"object_template": template, "ground_plane": jnp.asarray([[*n, c]], jnp.float32)}
  plane = np.asarray(floor_plane(x, batch, guidance, STATS, RefineSettings(floor="body")))[0]
  np.testing.assert_allclose(plane[:3], n, atol=1e-6)
  assert abs(np.min(human @ plane[:3] + plane[3])) < 1e-5  # The lowest body point is on the floor.
  unknown = dict(batch, ground_plane=jnp.zeros((1, 4)))  # No calibration: the feet's plane.
  est = np.asarray(floor_plane(x, unknown, guidance, STATS, RefineSettings(floor="body")))[0]
  np.testing.assert_allclose(est[:3], n, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# DDIM.
# ------------------------------------------------------------------------------------------------

def test_forward_process_and_x0_prediction_invert_each_other():
  rng = np.random.default_rng(3)
  x0 = rng.normal(size=(5, 331)).astype(np.float32)
  eps = rng.normal(size=(5, 331)).astype(np.float32)
  t = jnp.array([0, 1, 50, 500, 999])
  a = jnp.asarray(A, jnp.float32)
  xt = diffuse(jnp.asarray(x0), t, jnp.asarray(eps), a)
  at = A[np.asarray(t)][:, None]
  x0_hat = (np.asarray(xt, np.float64) - np.sqrt(1 - at) * eps) / np.sqrt(at)  # The sampler's x̂0 formula.
  np.testing.assert_allclose(x0_hat[:4], x0[:4], atol=2e-6)
  np.testing.assert_allclose(x0_hat[4], x0[4], atol=2e-3)  # ᾱ_999 ≈ 0: ill-conditioned by nature.


def _eps_fn_np(x, t):
  """A smooth ε function with a closed form (so NumPy and JAX compute the same thing)."""
  return np.tanh(0.3 * x + 0.01 * t[:, None]) * 0.5


def _loss_np(x):
  return np.sum((x - 0.2) ** 2, -1) + 0.1 * np.sum(x[:, :3] ** 4, -1)


def _grad_np(x):
  g = 2 * (x - 0.2)
  g[:, :3] += 0.4 * x[:, :3] ** 3
  return g


def test_multi_step_guided_sampling_matches_a_numpy_loop():
  rng = np.random.default_rng(4)
  x_tau = rng.normal(size=(3, 7))
  tau, dt, rho = 50, 5, 0.7
  eps_fn = lambda x, t: jnp.tanh(0.3 * x + 0.01 * t[:, None].astype(jnp.float32)) * 0.5
  loss_fn = lambda x: jnp.sum((x - 0.2) ** 2, -1) + 0.1 * jnp.sum(x[:, :3] ** 4, -1)
  a = jnp.asarray(A, jnp.float32)
  grad_fn = ddim.make_guidance_grad_fn(loss_fn, a)
  got = ddim.ddim_sample(eps_fn, jnp.asarray(x_tau, jnp.float32), a, tau, dt, grad_fn, rho=rho)
  # Reference (Algorithm A): ε̃ = ε̂ + ρ√(1−ᾱ_t)∇_{x_t}L(x̂0); x̃0 from ε̃; x_{t'} = √ᾱ_{t'} x̃0 + √(1−ᾱ_{t'}) ε̃.
  x = x_tau.copy()
  times = list(range(0, tau + 1, dt))
  for t, tn in zip(times[:0:-1], times[-2::-1]):
    at, an = A[t], A[tn]
    e = _eps_fn_np(x, np.full(3, t))
    x0_hat = (x - np.sqrt(1 - at) * e) / np.sqrt(at)
    e_tilde = e + rho * np.sqrt(1 - at) * _grad_np(x0_hat) / np.sqrt(at)
    x0_tilde = (x - np.sqrt(1 - at) * e_tilde) / np.sqrt(at)
    x = np.sqrt(an) * x0_tilde + np.sqrt(1 - an) * e_tilde
  np.testing.assert_allclose(np.asarray(got), x0_tilde, rtol=2e-4, atol=2e-5)


def test_an_unguided_round_returns_its_input():
  """With the clean endpoint and fixed-point inversion, invert → sample is the identity for a smooth ε."""
  rng = np.random.default_rng(5)
  x = jnp.asarray(rng.normal(size=(4, 9)), jnp.float32)
  eps_fn = lambda x, t: jnp.tanh(0.3 * x + 0.01 * t[:, None].astype(jnp.float32)) * 0.5
  err = {}
  for clean, iters in ((False, 0), (True, 3)):
    a = ddim.clean_endpoint(A, clean)
    back = ddim.ddim_sample(eps_fn, ddim.ddim_invert(eps_fn, x, a, 50, 2, iters), a, 50, 2)
    err[clean] = float(jnp.abs(back - x).max())
  assert err[True] < 1e-5 and err[False] > 1e-3, err


# ------------------------------------------------------------------------------------------------
# CDIR: masks re-predicted on each round's input are what that round's guidance uses.
# ------------------------------------------------------------------------------------------------

def test_each_round_guides_with_the_masks_predicted_on_its_input():
  full, sub, _ = _bodies()
  inputs = _inputs(7)
  den = _small_denoiser()
  params = init_params_numpy(den, 0, inputs.x_init, jnp.zeros((4,), jnp.int32), inputs.c_img, inputs.c_geo)
  contact_fn = make_proximity_contact_fn(margin=0.25, scale=0.02, floor_margin=0.1)
  settings = RefineSettings(num_rounds=3, tau=20, dt=10, clean_endpoint=True, invert_iters=1)
  weights = GuidanceWeights(rho=30.0, lambda_ho=1.0, lambda_of=1.0, lambda_pt=1.0)
  a = ddim.clean_endpoint(A, True)
  out = jax.jit(lambda p, i: refine(p, i, sub, STATS, weights, denoiser=den, contact_fn=contact_fn,
                                     settings=settings, alphas_cumprod=jnp.asarray(A, jnp.float32)))(params, inputs)
  cond = den.apply(params, inputs.c_img, inputs.c_geo, method="encode")
  eps_fn = lambda x, t: den.apply(params, x, t, cond, method="denoise")
  starts = [inputs.x_init] + [out.x_rounds[n] for n in range(settings.num_rounds - 1)]
  changed = 0
  for n, x_n in enumerate(starts):
    probs = predict_contacts(x_n, inputs, sub, STATS, contact_fn, settings)  # Predicted here, independently.
    for p_ref, p_used in zip(probs, out.contacts):
      np.testing.assert_allclose(p_used[n], p_ref, atol=1e-5)
    # The first sampling step's guidance loss is L_P at its x̂0 with exactly these masks.
    x_tau = ddim.ddim_invert(eps_fn, x_n, a, settings.tau, settings.dt, settings.invert_iters)
    tb = jnp.full((4,), settings.tau, jnp.int32)
    x0_hat = (x_tau - jnp.sqrt(1 - a[settings.tau]) * eps_fn(x_tau, tb)) / jnp.sqrt(a[settings.tau])
    mine = loss_terms(x0_hat, masks_from_probs(probs, settings), inputs, sub, STATS, weights.as_arrays(),
                      settings)[0].total
    np.testing.assert_allclose(out.step_losses[n, 0], mine, rtol=1e-4, atol=1e-6)
    if n:
      first = masks_from_probs(tuple(p[0] for p in out.contacts), settings)
      stale = loss_terms(x0_hat, first, inputs, sub, STATS, weights.as_arrays(), settings)[0].total
      changed += int(np.abs(np.asarray(stale) - np.asarray(mine)).max() > 1e-4)
  assert changed >= 1  # The masks did change between rounds, so feeding back stale ones would be caught.


def test_floor_estimate_follows_the_feet_when_the_person_bends():
  """Trunk bent 50° forward over straight legs (lifting a box): the feet still give the floor."""
  bend = Rotation.from_euler("x", 50.0, degrees=True).as_matrix()
  camera = Rotation.from_euler("x", -160.0, degrees=True).as_matrix()
  rotmats = np.tile(np.eye(3), (52, 1, 1))
  rotmats[0] = camera @ bend  # The pelvis tilts with the trunk ...
  rotmats[1] = rotmats[2] = bend.T  # ... and the hips undo it, so the legs stay vertical.
  body = load_body_model()
  out = body_forward(body, jnp.asarray(rotmats, jnp.float32), jnp.zeros(10))
  v = np.asarray(out.vertices - out.joints[0])
  plane = np.asarray(estimate_ground_plane(jnp.asarray(v), jnp.asarray(rotmats, jnp.float32)))
  up_true = camera @ np.array([0.0, 1.0, 0.0])
  assert np.degrees(np.arccos(np.clip(plane[:3] @ up_true, -1, 1))) < 0.01
  pelvis_up = rotmats[0] @ np.array([0.0, 1.0, 0.0])  # What the pelvis alone would say: 50° off.
  assert np.degrees(np.arccos(np.clip(pelvis_up @ up_true, -1, 1))) > 45


def test_map_image_condition_model_shapes_match_training_init():
  """#11.8: a model trained with image_cond='map' (the h·w feature-map tokens as c_I) must load for
  inference. The checkpoint check's expected shapes are compared with the *training* code's init
  (train/steps.Stage2Setup.conditions → Denoiser.init), an independent path; the shipped model failed
  with "image_tokens/pos has shape (16, 128) but the config's network expects (1, 128)" before the fix."""
  from scorehoi_jax.config import load_config
  from scorehoi_jax.models.build import build_networks
  from scorehoi_jax.reconstruct import abstract_variables, make_bodies
  from scorehoi_jax.train.steps import Stage2Setup
  cfg = load_config("tiny")
  nets = build_networks(cfg.model)
  size, guidance = int(cfg.data.image_size), make_bodies().guidance
  pooled = abstract_variables(nets, size, guidance)
  mapped = abstract_variables(nets, size, guidance, "map")
  setup = Stage2Setup(denoiser=nets.denoiser, net=nets.net, point_encoder=nets.point_encoder, tx=None,
                      alphas_cumprod=None, image_cond="map")
  batch = {"image": jax.ShapeDtypeStruct((2, size, size, 5), jnp.float32),
           "object_template": jax.ShapeDtypeStruct((2, 64, 3), jnp.float32)}
  frozen = {"net": mapped["net"], "point_encoder": mapped["point_encoder"]}
  cond = jax.eval_shape(setup.conditions, frozen, batch)
  train_den = jax.eval_shape(nets.denoiser.init, jax.random.key(0), jax.ShapeDtypeStruct((2, 331), jnp.float32),
                             jax.ShapeDtypeStruct((2,), jnp.int32), cond["image"], cond["geometry"])
  flat = lambda tree: {jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(tree)}
  assert flat(train_den) == flat(mapped["denoiser"])
  assert flat(train_den) != flat(pooled["denoiser"])  # The map's positional tokens: h·w rows, not 1.
