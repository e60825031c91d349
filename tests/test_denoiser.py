"""Denoiser: shapes, size, and — unlike the released code — conditions that matter."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scorehoi_jax.models.denoiser import (
    Denoiser,
    compat_denoiser,
    count_params,
    init_params_numpy,
    timestep_embedding,
)

B = 3


pytestmark = pytest.mark.usefixtures("fast_compile")


def _inputs(seed=0, t_img=16, c_img=32, c_geo=24):
  rng = np.random.default_rng(seed)
  f = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)
  return f(B, 331), jnp.asarray([0, 17, 50], jnp.int32), f(B, t_img, c_img), f(B, 64, c_geo)


def _small(**kw):
  return Denoiser(model_dim=48, hidden_dim=64, time_dim=32, betas_model_dim=16, betas_hidden_dim=32,
                  betas_time_dim=16, token_dim=32, attn_dim=32, num_heads=2, **kw)


def _jitted(m):
  """(init, apply): NumPy-drawn variables (Flax's init compiles slowly on CPU), jitted apply."""
  return (lambda key, *a: init_params_numpy(m, 0, *a)), jax.jit(m.apply)


def test_shapes_and_encode_denoise_split():
  m = _small()
  x, t, ci, cg = _inputs()
  init, apply = _jitted(m)
  params = init(jax.random.PRNGKey(0), x, t, ci, cg)
  eps = apply(params, x, t, ci, cg)
  assert eps.shape == (B, 331) and bool(jnp.all(jnp.isfinite(eps)))
  split = jax.jit(lambda p, x, t, a, b: m.apply(p, x, t, m.apply(p, a, b, method=Denoiser.encode),
                                                method=Denoiser.denoise))
  np.testing.assert_allclose(split(params, x, t, ci, cg), eps, rtol=1e-5, atol=1e-6)
  # The pooled image vector (one token) is accepted too.
  p1 = init(jax.random.PRNGKey(0), x, t, ci.mean(1), cg)
  assert apply(p1, x, t, ci.mean(1), cg).shape == (B, 331)
  with pytest.raises(ValueError, match="last dimension"):
    m.apply(params, x[:, :300], t, ci, cg)


def test_conditions_change_the_output_and_receive_gradient():
  # The released IPFC_Obj gives exactly 0 difference here (notes §0.1).
  # Also checks that the test's NumPy initialiser matches Flax's parameter tree.
  m0 = _small()
  x0, t0, ci0, cg0 = _inputs()
  ref_tree = jax.eval_shape(lambda: m0.init(jax.random.PRNGKey(0), x0, t0, ci0, cg0))
  got_tree = init_params_numpy(m0, 0, x0, t0, ci0, cg0)
  assert jax.tree_util.tree_structure(ref_tree) == jax.tree_util.tree_structure(got_tree)
  m = _small()
  x, t, ci, cg = _inputs()
  init, apply = _jitted(m)
  params = init(jax.random.PRNGKey(1), x, t, ci, cg)
  base = apply(params, x, t, ci, cg)
  _, _, ci2, cg2 = _inputs(seed=7)
  d_img = float(jnp.abs(apply(params, x, t, ci2, cg) - base).max())
  d_geo = float(jnp.abs(apply(params, x, t, ci, cg2) - base).max())
  scale = float(jnp.abs(base).mean())
  assert d_img > 1e-2 * scale and d_geo > 1e-2 * scale
  # Each sample's output depends on its own conditions only.
  out_swap = apply(params, x, t, ci.at[0].set(ci2[0]), cg)
  np.testing.assert_allclose(out_swap[1:], base[1:], rtol=1e-5, atol=1e-6)
  assert float(jnp.abs(out_swap[0] - base[0]).max()) > 0
  g_img, g_geo = jax.jit(jax.grad(lambda a, b: jnp.sum(m.apply(params, x, t, a, b) ** 2), argnums=(0, 1)))(ci, cg)
  assert float(jnp.abs(g_img).max()) > 0 and float(jnp.abs(g_geo).max()) > 0
  # The timestep matters as well (FiLM).
  assert float(jnp.abs(apply(params, x, t + 5, ci, cg) - base).max()) > 1e-3 * scale


def test_condition_ablations():
  x, t, ci, cg = _inputs()
  no_img = _small(use_image_cond=False)
  p = init_params_numpy(no_img, 0, x, t, None, cg)
  apply = jax.jit(no_img.apply)
  a = apply(p, x, t, None, cg)
  np.testing.assert_array_equal(a, apply(p, x, t, ci * 100.0, cg))  # c_I is not read.
  none = _small(use_image_cond=False, use_geo_cond=False)
  p0 = init_params_numpy(none, 0, x, t)
  assert jax.jit(none.apply)(p0, x, t).shape == (B, 331)
  assert count_params(p0) < count_params(p)
  with pytest.raises(ValueError, match="c_geo is None"):
    jax.eval_shape(lambda: _small().init(jax.random.PRNGKey(0), x, t, ci, None))


def test_default_and_compat_sizes():
  x, t, _, _ = _inputs()
  ci, cg = jnp.zeros((B, 64, 2048)), jnp.zeros((B, 64, 256))
  n_default = count_params(jax.eval_shape(lambda: Denoiser().init(jax.random.PRNGKey(0), x, t, ci, cg)))
  assert 2e6 < n_default < 30e6
  n_compat = count_params(jax.eval_shape(lambda: compat_denoiser().init(jax.random.PRNGKey(0), x, t, ci, cg)))
  assert n_compat > 100e6  # Released widths (the released model has 362M incl. unused query/key paths).


def test_timestep_embedding_matches_formula():
  t = jnp.asarray([0, 3, 999])
  emb = timestep_embedding(t, 11)
  half = 5
  freqs = np.exp(-np.log(10000.0) * np.arange(half) / (half - 1))
  ref = np.concatenate([np.sin(np.outer(t, freqs)), np.cos(np.outer(t, freqs)), np.zeros((3, 1))], 1)
  np.testing.assert_allclose(emb, ref, rtol=1e-5, atol=1e-5)
