"""Refinement traces (issue 13 item 1): every traced value against an independent recomputation."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import small_refine as S
from scorehoi_jax.diffusion import GuidanceWeights, RefineSettings, decode_x, make_refine_fn
from scorehoi_jax.diffusion.losses import contact_loss, floor_loss, penetration_loss
from scorehoi_jax.diffusion.schedule import cosine_schedule
from test_schedules import CONTACT, GUIDED, REFERENCE, SMALL, SeparableDenoiser, W

pytestmark = pytest.mark.usefixtures("fast_compile")

# Independent part slices of x (xpack layout: 22 body joints × 6D, 30 hand joints × 6D, 6, 3, 10).
PART_SLICES = {"body": (0, 132), "hands": (132, 312), "obj_rot": (312, 318), "obj_trans": (318, 321),
               "betas": (321, 331)}


def _terms(x, template, sdf, m_h, m_o, m_of, margin):
  """(ho, of, pt) of one sample at x [331], straight from the loss functions (floor 'lowest')."""
  dec = decode_x(x[None], S.guidance_body(), template[None], S.STATS)
  h, o = dec.human_points[0], dec.object_points[0]
  return (contact_loss(h, o, m_h, m_o, margin), floor_loss(h, o, m_of, margin),
          penetration_loss(h, dec.obj_rotmat[0], dec.obj_trans[0], sdf))


_TERMS = jax.jit(_terms)
_GRADS = jax.jit(jax.jacrev(_terms))  # One gradient [331] per term.


def test_trace_matches_independent_terms_gradients_steps_and_masks():
  settings = RefineSettings(**SMALL, trace=True, trace_x0=True)
  w = GuidanceWeights(lambda_pt=5.0)  # The recorded 'default' case, traced.
  out = make_refine_fn(S.denoiser(), CONTACT, settings)(S.denoiser_params(), S.inputs(), S.guidance_body(), S.STATS, w)
  tr = out.trace
  # Tracing changes nothing: x is the one recorded before traces existed.
  np.testing.assert_allclose(out.x0, np.load(REFERENCE)["default_x0"], rtol=0, atol=1e-6)
  r_n, s_n, b_n = tr.terms.total.shape
  assert (r_n, s_n, b_n) == (2, 2, S.B) and tr.x0_hat.shape == (2, 2, S.B, 331)
  np.testing.assert_array_equal(tr.timesteps, [10, 5])
  np.testing.assert_allclose(tr.terms.total, out.step_losses, rtol=1e-6)  # The loss the guidance saw.
  inp = S.inputs()
  a = np.asarray(cosine_schedule(), np.float64)
  for r in range(r_n):
    masks = tuple((np.asarray(p[r]) > 0.5).astype(np.float32) for p in out.contacts)
    for s in range(s_n):
      for b in range(b_n):
        x = jnp.asarray(tr.x0_hat[r, s, b])
        args = (x, inp.objects.template[b], jax.tree_util.tree_map(lambda v: v[b], inp.objects.sdf),
                *(m[b] for m in masks), w.margin)
        ho, of, pt = (float(v) for v in _TERMS(*args))
        grads = _GRADS(*args)
        np.testing.assert_allclose([tr.terms.ho[r, s, b], tr.terms.of[r, s, b], tr.terms.pt[r, s, b]], [ho, of, pt],
                                   rtol=2e-5, atol=1e-7)
        np.testing.assert_allclose(tr.terms.total[r, s, b], 0.5 * ho + 0.5 * of + 5.0 * pt, rtol=2e-5, atol=1e-7)
        total_grad = 0.0
        for i, (name, lam) in enumerate((("ho", 0.5), ("of", 0.5), ("pt", 5.0))):
          g = np.asarray(grads[i], np.float64)
          want = [np.linalg.norm(g[lo:hi]) for lo, hi in PART_SLICES.values()]
          np.testing.assert_allclose(getattr(tr.grad_norm, name)[r, s, b], want, rtol=1e-4, atol=1e-6)
          total_grad = total_grad + lam * g
        np.testing.assert_allclose(tr.grad_norm.total[r, s, b],
                                   [np.linalg.norm(total_grad[lo:hi]) for lo, hi in PART_SLICES.values()],
                                   rtol=1e-4, atol=1e-6)
        # Guidance step in x_t' space: (ε̃ − ε̂)(√(1−ᾱ') − √ᾱ' √(1−ᾱ)/√ᾱ), ε̃ − ε̂ = ρ √(1−ᾱ) ∇_{x̂0}L / √ᾱ.
        t, tn = int(tr.timesteps[s]), int(tr.timesteps[s]) - 5
        coef = abs(np.sqrt(1 - a[tn]) - np.sqrt(a[tn]) * np.sqrt(1 - a[t]) / np.sqrt(a[t]))
        np.testing.assert_allclose(tr.guidance_step[r, s, b],
                                   coef * np.sqrt(1 - a[t]) / np.sqrt(a[t]) * np.linalg.norm(total_grad), rtol=1e-4)
  assert np.all(np.asarray(tr.prior_step) > 0)
  # Mask statistics from the per-round probabilities.
  for p, on, flipped in zip(out.contacts, tr.mask_on, tr.mask_flipped):
    m = np.asarray(p) > 0.5
    np.testing.assert_array_equal(on, m.sum(-1))
    np.testing.assert_array_equal(flipped[0], 0)
    np.testing.assert_array_equal(flipped[1:], (m[1:] != m[:-1]).sum(-1))


def test_trace_total_follows_the_per_term_schedule():
  settings = dataclasses.replace(GUIDED, term_schedules=(("ho", "linear"),), trace=True)
  w = dataclasses.replace(W, lambda_end={"ho": 0.1})
  out = make_refine_fn(SeparableDenoiser(), CONTACT, settings)({}, S.inputs(), S.guidance_body(), S.STATS, w)
  tr = out.trace
  lam_ho = 0.1 + 0.4 * np.asarray(tr.timesteps, np.float64) / 10.0  # Linear: λ at t = 10, λ_end at t = 0.
  want = lam_ho[None, :, None] * tr.terms.ho + 0.5 * tr.terms.of + 5.0 * tr.terms.pt
  np.testing.assert_allclose(tr.terms.total, want, rtol=1e-5, atol=1e-7)
  assert tr.x0_hat is None
  with pytest.raises(ValueError, match="lambda_end"):
    make_refine_fn(SeparableDenoiser(), CONTACT, GUIDED)({}, S.inputs(), S.guidance_body(), S.STATS, w)
