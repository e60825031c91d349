"""x packing/decoding and the compiled contact-driven refinement (Algorithm 1)."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import small_refine

from scorehoi_jax.body import body_forward
from scorehoi_jax.diffusion import (
    GuidanceWeights,
    RefineSettings,
    decode_x,
    default_betas_stats,
    make_proximity_contact_fn,
    make_refine_fn,
    pack_x,
    unpack_x,
)
from scorehoi_jax.diffusion.schedule import cosine_schedule
from scorehoi_jax.geometry import rot6d_to_matrix
from scorehoi_jax.models.denoiser import init_params_numpy

B = 4
STATS = default_betas_stats()


pytestmark = pytest.mark.usefixtures("fast_compile")


# The shared small problem (tests/small_refine.py), at batch 4 with translations twice as spread.
_bodies = small_refine.bodies
_small_denoiser = small_refine.denoiser


def _inputs(seed=0):
  return small_refine.inputs(seed, b=B, trans_scale=0.2)


# ------------------------------------------------------------------------------------------------
# x packing.
# ------------------------------------------------------------------------------------------------


def test_pack_unpack_decode_against_numpy():
  full, sub, idx = _bodies()
  inp = _inputs()
  x = inp.x_init
  parts = unpack_x(x, STATS)
  np.testing.assert_allclose(pack_x(parts.pose6d, parts.obj_rot6d, parts.obj_trans, parts.betas, STATS), x,
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(x[:, 321:], (np.asarray(parts.betas) + 3.0) / 3.0 - 1.0, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="331"):
    unpack_x(x[:, :330], STATS)


  @jax.jit
  def both(x, k):
    p = unpack_x(x, STATS)
    ref = body_forward(full, rot6d_to_matrix(p.pose6d), p.betas)
    return decode_x(x, sub, k, STATS), decode_x(x, full, k, STATS), ref

  dec_sub, dec_full, ref_full = both(x, inp.objects.template)
  # The subset model gives exactly the full model's vertices at the chosen indices.
  np.testing.assert_allclose(dec_sub.human_points, np.asarray(dec_full.human_points)[:, idx], atol=1e-5)
  np.testing.assert_allclose(dec_full.joints[:, 0], 0.0, atol=1e-6)  # Pelvis-centred.
  np.testing.assert_allclose(dec_full.human_points, ref_full.vertices - ref_full.joints[:, :1], atol=1e-5)
  r = np.asarray(rot6d_to_matrix(x[:, 312:318]), np.float64)
  k = np.asarray(inp.objects.template, np.float64)
  ref_obj = np.einsum("bij,bkj->bki", r, k) + np.asarray(x[:, 318:321])[:, None]  # P_o = K R_oᵀ + t_o.
  np.testing.assert_allclose(dec_sub.object_points, ref_obj, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# Refinement.
# ------------------------------------------------------------------------------------------------


class ZeroDenoiser(nn.Module):
  """ε ≡ 0: DDIM then only rescales x by √(ᾱ_t'/ᾱ_t), so rounds compose in closed form."""

  def encode(self, c_img, c_geo):
    return None

  def denoise(self, x, t, cond):
    return jnp.zeros_like(x)


def test_refine_jitted_batch4_finite_and_compiles_once():
  _, sub, _ = _bodies()
  den = _small_denoiser()
  inp = _inputs()
  params = init_params_numpy(den, 0, inp.x_init, jnp.zeros((B,), jnp.int32), inp.c_img, inp.c_geo)
  traces = []
  proximity = make_proximity_contact_fn()

  def contact_fn(h, o, aux):
    traces.append(1)  # Runs at trace time only.
    return proximity(h, o, aux)

  settings = RefineSettings(num_rounds=2, tau=10, dt=5)
  fn = make_refine_fn(den, contact_fn, settings)
  out = fn(params, inp, sub, STATS, GuidanceWeights())
  assert out.x0.shape == (B, 331) and bool(jnp.all(jnp.isfinite(out.x0)))
  assert out.decoded.human_points.shape == (B, 48, 3) and out.decoded.object_points.shape == (B, 64, 3)
  assert [p.shape for p in out.contacts] == [(2, B, 48), (2, B, 64), (2, B, 64)]
  assert out.losses.total.shape == (3, B) and out.step_losses.shape == (2, 2, B)
  assert all(bool(jnp.all(jnp.isfinite(v))) for v in out.losses)
  n_traces = len(traces)
  # New values everywhere (inputs, parameters, weights): same program.
  params2 = jax.tree_util.tree_map(lambda p: p * 1.1, params)
  inp2 = dataclasses.replace(_inputs(seed=1))
  out2 = fn(params2, inp2, sub, STATS, GuidanceWeights(rho=2.0, lambda_pt=1.0))
  assert len(traces) == n_traces and fn._cache_size() == 1
  assert bool(jnp.all(jnp.isfinite(out2.x0))) and not np.allclose(out2.x0, out.x0)
  # Decoded outputs are those of x0.
  dec = jax.jit(lambda x, k: decode_x(x, sub, k, STATS))(out.x0, inp.objects.template)
  np.testing.assert_allclose(out.decoded.human_points, dec.human_points, atol=1e-5)


def test_rounds_compose_and_masks_freeze():
  _, sub, _ = _bodies()
  inp = _inputs()
  a = cosine_schedule()
  contact = make_proximity_contact_fn(margin=0.3)
  w = GuidanceWeights()

  @jax.jit
  def initial_contacts(x, k):
    dec0 = decode_x(x, sub, k, STATS)
    return contact(dec0.human_points, dec0.object_points, None)

  # Without guidance and with ε ≡ 0, each round maps x0 ↦ x0/√ᾱ_0 (x0 is the t = 0 latent and the
  # last step returns x̂0 = x/√ᾱ_0); carrying the latent instead, the latent stays x and only the
  # returned x̃0 of the last round carries the factor.
  for carry, factor in (("x0", a[0] ** (-1.5)), ("latent", a[0] ** (-0.5))):
    s = RefineSettings(num_rounds=3, tau=10, dt=5, use_guidance=False, cdir=False, carry=carry)
    out = make_refine_fn(ZeroDenoiser(), contact, s)({}, inp, sub, STATS, w)
    np.testing.assert_allclose(out.x0, np.asarray(inp.x_init) * factor, rtol=2e-6, atol=1e-7)
    # Frozen (released): every round uses the contacts of the initial estimate.
    ref = initial_contacts(inp.x_init, inp.objects.template)
    for got, want in zip(out.contacts, ref):
      np.testing.assert_allclose(got, np.broadcast_to(want, got.shape), rtol=1e-4, atol=1e-5)
  # "w/o diffusion": the initial estimate comes back untouched.
  out = make_refine_fn(ZeroDenoiser(), contact, RefineSettings(use_diffusion=False))({}, inp, sub, STATS, w)
  np.testing.assert_array_equal(out.x0, inp.x_init)


def test_settings_and_input_errors():
  with pytest.raises(ValueError, match="pt_mode"):
    RefineSettings(pt_mode="count")
  with pytest.raises(ValueError, match="tau"):
    RefineSettings(tau=1, dt=2)
  _, sub, _ = _bodies()
  inp = _inputs()
  fn = make_refine_fn(ZeroDenoiser(), make_proximity_contact_fn(), RefineSettings(num_rounds=1, tau=5, dt=5))
  with pytest.raises(ValueError, match="x_init"):
    fn({}, dataclasses.replace(inp, x_init=inp.x_init[:, :300]), sub, STATS, GuidanceWeights())
  fn_plane = make_refine_fn(ZeroDenoiser(), make_proximity_contact_fn(),
                            RefineSettings(num_rounds=1, tau=5, dt=5, floor="plane", use_diffusion=False))
  with pytest.raises(ValueError, match="ground_plane"):
    fn_plane({}, inp, sub, STATS, GuidanceWeights())


def test_proximity_stand_in():
  h = jnp.asarray([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.1]]])  # One point at the object, one 10 cm away.
  o = jnp.asarray([[[0.03, 0.0, 0.0], [0.0, 0.5, 0.0]]])  # y down: the second object point is lowest.
  p_h, p_o, p_of = jax.jit(make_proximity_contact_fn(margin=0.05, scale=0.01))(h, o, None)
  sig = lambda v: 1 / (1 + np.exp(-v))
  np.testing.assert_allclose(p_h[0], [sig((0.05 - 0.03) / 0.01), sig((0.05 - np.sqrt(0.01 + 0.03**2)) / 0.01)], rtol=1e-4)
  np.testing.assert_allclose(p_o[0], [sig(2.0), sig((0.05 - 0.5) / 0.01)], rtol=1e-4, atol=1e-12)
  np.testing.assert_allclose(p_of[0], [sig((0.05 - 0.5) / 0.01), sig(5.0)], rtol=1e-4, atol=1e-12)


def test_learned_contact_former_drives_refine_each_round():
  """The ContactFormer (models) plugs into refine's contact_fn slot and is re-run every round."""
  from scorehoi_jax.models.contact_former import ContactFormer, make_contact_fn

  _, sub, _ = _bodies()
  inp = _inputs(3)
  rng = np.random.default_rng(4)
  aux = {"feature_map": jnp.asarray(rng.normal(size=(B, 4, 4, 8)), jnp.float32),
         "cam_trans": jnp.asarray([[0.0, 0.0, 3.0]] * B, jnp.float32),
         "focal": jnp.full((B, 2), 500.0, jnp.float32), "princpt": jnp.full((B, 2), 64.0, jnp.float32),
         "image_size": 128}
  cf = ContactFormer(dim=16, num_layers=1, num_heads=2)
  dec = decode_x(inp.x_init, sub, inp.objects.template, STATS)
  params = cf.init(jax.random.key(0), aux["feature_map"], dec.human_points, dec.object_points, aux["cam_trans"],
                   aux["focal"], aux["princpt"], aux["image_size"])
  contact_fn = make_contact_fn(cf, params)
  den = _small_denoiser()
  fn = make_refine_fn(den, contact_fn, RefineSettings(num_rounds=2, tau=4, dt=2, cdir=True))
  params = init_params_numpy(den, 0, inp.x_init, jnp.zeros((B,), jnp.int32), inp.c_img, inp.c_geo)
  out = fn(params, dataclasses.replace(inp, aux=aux), sub, STATS, GuidanceWeights())
  p_h, p_o, p_of = out.contacts
  assert p_h.shape == (2, B, sub.num_vertices) and p_o.shape == (2, B, 64) and p_of.shape == (2, B, 64)
  assert np.all(np.isfinite(np.asarray(out.x0)))
  # Round 0 sees the initial estimate; round 1 re-predicts from the refined one (CDIR).
  ref0 = contact_fn(dec.human_points, dec.object_points, aux)[0]
  np.testing.assert_allclose(p_h[0], ref0, rtol=1e-4, atol=1e-5)
  assert not np.allclose(p_h[0], p_h[1])
