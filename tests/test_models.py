"""Stage-1 networks at tiny sizes: shapes, finiteness, and the properties each one promises."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.ndimage import map_coordinates
from scipy.spatial.transform import Rotation

from scorehoi_jax.geometry.sampling import farthest_point_sampling
from scorehoi_jax.models.contact_former import ContactFormer, bilinear_sample, make_contact_fn, sample_at_points
from scorehoi_jax.models.mesh_refiner import MeshRefiner, object_pose_from_points
from scorehoi_jax.models.point_encoder import PointEncoder, farthest_point_indices, pretrain_loss
from scorehoi_jax.models.regressor import IDENTITY_6D, Regressor
from scorehoi_jax.models.resnet import ResNet

_TINY_PE = dict(num_centers=(16, 4), num_neighbors=(8, 4), sa_widths=((16,), (32,)), fp_widths=((32,), (16,)),
                global_widths=(32,), token_dim=16, num_categories=5)


pytestmark = pytest.mark.usefixtures("fast_compile")


def _finite(tree):
  return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree))


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


# --- ResNet -----------------------------------------------------------------------------------


@pytest.mark.parametrize("depth,expected", [
    # torchvision's counts minus the 1000-way fc, plus 2 extra stem input channels (64·7·7·2).
    (18, 11_689_512 - 513_000 + 6272),
    (34, 21_797_672 - 513_000 + 6272),
    (50, 25_557_032 - 2_049_000 + 6272),
])
def test_resnet_standard_sizes_match_torchvision(depth, expected):
  net = ResNet(depth)
  x = jax.ShapeDtypeStruct((1, 256, 256, 5), jnp.float32)
  variables = jax.eval_shape(net.init, jax.random.key(0), x)
  assert _count(variables["params"]) == expected
  out = jax.eval_shape(lambda v, x: net.apply(v, x), variables, x)
  assert out.shape == (1, 8, 8, net.out_channels)  # 8×8 at input 256.
  assert net.out_channels == (2048 if depth == 50 else 512)


@pytest.mark.parametrize("depth", [18, 50])
def test_resnet_tiny_forward_geo_bias_and_batchnorm(depth):
  net = ResNet(depth, width=4, stages=(1, 1))
  x = jax.random.uniform(jax.random.key(0), (2, 32, 32, 5))
  g = jax.random.normal(jax.random.key(1), (2, 7))
  v = jax.jit(net.init)(jax.random.key(2), x, g)
  apply = jax.jit(net.apply, static_argnames=("train", "mutable"))
  y = apply(v, x, g)
  assert y.shape == (2, 32 // net.stride, 32 // net.stride, net.out_channels)
  assert _finite(y)
  # The geometry feature enters (per-channel stem bias): a different object changes F.
  assert not np.allclose(apply(v, x, g + 1.0), y)
  # Training mode updates the running statistics; eval mode uses them.
  y_train, upd = apply(v, x, g, train=True, mutable=("batch_stats",))
  assert _finite(y_train)
  moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), upd["batch_stats"], v["batch_stats"])
  assert max(jax.tree.leaves(moved)) > 0


# --- Point encoder ----------------------------------------------------------------------------


def test_fps_matches_numpy_reference():
  pts = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
  ours = np.asarray(farthest_point_indices(jnp.asarray(pts), 12))
  np.testing.assert_array_equal(ours, farthest_point_sampling(pts, 12))


def test_point_encoder_shapes_and_permutation_invariance():
  enc = PointEncoder(**_TINY_PE)
  pts = jax.random.normal(jax.random.key(0), (2, 64, 3)) * 0.3
  v = jax.jit(enc.init)(jax.random.key(1), pts)
  apply = jax.jit(enc.apply)
  out = apply(v, pts)
  assert out["tokens"].shape == (2, 64, 16) and out["global"].shape == (2, 32)
  assert out["category_logits"].shape == (2, 5) and out["affordance_logits"].shape == (2, 64)
  assert _finite(out)
  perm = np.random.default_rng(0).permutation(64)
  out_p = apply(v, pts[:, perm])
  np.testing.assert_allclose(out_p["global"], out["global"], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(out_p["tokens"], out["tokens"][:, perm], rtol=1e-4, atol=1e-4)
  # Translation invariance (centred input), and any point count works (user meshes).
  np.testing.assert_allclose(apply(v, pts + 5.0)["global"], out["global"], rtol=1e-4, atol=1e-4)
  assert apply(v, pts[:, :40])["tokens"].shape == (2, 40, 16)


def test_pretrain_loss_finite_with_gradients():
  enc = PointEncoder(**_TINY_PE)
  pts = jax.random.normal(jax.random.key(0), (3, 64, 3)) * 0.3
  params = jax.jit(enc.init)(jax.random.key(1), pts)["params"]
  cat = jnp.array([0, 3, 4])
  aff = (pts[..., 1] > 0).astype(jnp.float32)
  loss_and_grad = jax.jit(jax.value_and_grad(lambda p: pretrain_loss(p, pts, cat, aff, encoder=enc), has_aux=True))
  (loss, m), g = loss_and_grad(params)
  # At init the classifier is near uniform: CE ≈ log(5); BCE ≈ log 2.
  assert abs(float(m["ce"]) - np.log(5)) < 0.5 and abs(float(m["bce"]) - np.log(2)) < 0.3
  assert _finite(g) and float(loss) == pytest.approx(float(m["ce"] + m["bce"]), rel=1e-6)


# --- Regressor --------------------------------------------------------------------------------


def test_regressor_shapes_and_rest_pose_at_init():
  reg = Regressor(reduce_dim=4, hidden_dim=32, depth_scale=2.0)
  fmap = jax.random.normal(jax.random.key(0), (2, 4, 4, 16))
  geo = jax.random.normal(jax.random.key(1), (2, 8))
  focal = jnp.array([[300.0, 300.0], [500.0, 400.0]])
  v = jax.jit(reg.init, static_argnums=4)(jax.random.key(2), fmap, geo, focal, 256)
  out = jax.jit(reg.apply, static_argnums=4)(v, fmap, geo, focal, 256)
  assert out["pose6d"].shape == (2, 52, 6) and out["betas"].shape == (2, 10)
  assert out["cam_trans"].shape == (2, 3) and out["obj_rot6d"].shape == (2, 6) and out["obj_trans"].shape == (2, 3)
  # Zero-initialised outputs: rest pose, identity object rotation, depth = scale·2√(fx fy)/S·sigmoid(0).
  np.testing.assert_allclose(out["pose6d"], np.broadcast_to(IDENTITY_6D, (2, 52, 6)), atol=1e-6)
  np.testing.assert_allclose(out["obj_rot6d"], np.broadcast_to(IDENTITY_6D, (2, 6)), atol=1e-6)
  z = 2.0 * 2.0 * np.sqrt(np.prod(np.asarray(focal), -1)) / 256 * 0.5
  np.testing.assert_allclose(out["cam_trans"][:, 2], z, rtol=1e-5)


# --- ContactFormer ----------------------------------------------------------------------------


def test_projection_samples_the_right_feature_cell():
  """A map whose channels are its own (column, row) index returns the cell coordinate."""
  s, h, w = 64, 8, 8
  ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  fmap = jnp.asarray(np.stack([xs, ys, np.ones_like(xs)], -1)[None].astype(np.float32))
  focal, princpt = jnp.array([[120.0, 100.0]]), jnp.array([[31.5, 31.5]])
  cam = jnp.array([[0.1, -0.05, 3.0]])
  pts = jnp.array([[[0.0, 0.0, 0.0], [0.2, 0.3, 0.1], [-0.4, 0.25, -0.2], [5.0, 0.0, 0.0]]])
  got = np.asarray(sample_at_points(fmap, pts, cam, focal, princpt, s))[0]
  # Independent: pinhole in NumPy, then pixel → cell centre mapping (u + ½)·w/S − ½.
  p = np.asarray(pts[0] + cam[0], np.float64)
  uv = p[:, :2] / p[:, 2:] * np.asarray(focal[0]) + np.asarray(princpt[0])
  cell = (uv + 0.5) * w / s - 0.5
  np.testing.assert_allclose(got[:3, :2], cell[:3], atol=1e-4)
  np.testing.assert_allclose(got[:3, 2], 1.0, atol=1e-5)
  assert np.all(got[3] == 0.0)  # Projects far outside the crop: zeros padding.


def test_bilinear_sample_matches_scipy_and_has_feature_gradient():
  rng = np.random.default_rng(0)
  fmap = rng.normal(size=(1, 6, 7, 3)).astype(np.float32)
  xy = rng.uniform([0, 0], [6, 5], size=(1, 20, 2)).astype(np.float32)  # Inside the map.
  got = np.asarray(bilinear_sample(jnp.asarray(fmap), jnp.asarray(xy)))[0]
  ref = np.stack([map_coordinates(fmap[0, :, :, c], [xy[0, :, 1], xy[0, :, 0]], order=1) for c in range(3)], -1)
  np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
  g = jax.grad(lambda f: jnp.sum(bilinear_sample(f, jnp.asarray(xy))))(jnp.asarray(fmap))
  # Each sample spreads weight 1 over its corners: the gradient sums to the number of samples.
  assert float(jnp.sum(g)) == pytest.approx(20.0 * 3, rel=1e-5)


def test_contact_former_shapes_and_contact_fn_adapter():
  cf = ContactFormer(dim=32, num_layers=2, num_heads=2)
  b, nh, k = 2, 431, 64
  fmap = jax.random.normal(jax.random.key(0), (b, 4, 4, 24))
  human = jax.random.normal(jax.random.key(1), (b, nh, 3)) * 0.4
  obj = jax.random.normal(jax.random.key(2), (b, k, 3)) * 0.2
  cam = jnp.array([[0.0, 0.1, 3.0], [0.1, 0.0, 4.0]])
  focal, princpt = jnp.full((b, 2), 200.0), jnp.full((b, 2), 63.5)
  v = jax.jit(cf.init, static_argnums=7)(jax.random.key(3), fmap, human, obj, cam, focal, princpt, 128)
  out = jax.jit(cf.apply, static_argnums=7)(v, fmap, human, obj, cam, focal, princpt, 128)
  assert out["p_h"].shape == (b, nh) and out["p_o"].shape == (b, k) and out["p_of"].shape == (b, k)
  assert out["human_tokens"].shape == (b, nh, 32) and out["object_tokens"].shape == (b, k, 32)
  assert _finite(out) and float(jnp.min(out["p_h"])) >= 0 and float(jnp.max(out["p_o"])) <= 1
  np.testing.assert_allclose(out["p_of"], jax.nn.sigmoid(out["logit_of"]), rtol=1e-6)
  aux = {"feature_map": fmap, "cam_trans": cam, "focal": focal, "princpt": princpt, "image_size": 128}
  contact_fn = jax.jit(make_contact_fn(cf, v["params"]))
  p_h, p_o, p_of = contact_fn(human, obj, aux)
  np.testing.assert_allclose(p_h, out["p_h"], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(p_of, out["p_of"], rtol=1e-5, atol=1e-6)
  # The image matters: a different feature map changes the prediction.
  assert not np.allclose(contact_fn(human, obj, dict(aux, feature_map=fmap + 1.0))[0], p_h)


# --- Mesh refiner -----------------------------------------------------------------------------


def test_procrustes_recovers_a_known_object_pose_with_finite_gradient():
  rng = np.random.default_rng(0)
  template = jnp.asarray(rng.normal(size=(2, 64, 3)).astype(np.float32) * [0.3, 0.2, 0.1])
  rot = jnp.asarray(Rotation.random(2, random_state=1).as_matrix().astype(np.float32))
  t = jnp.array([[0.1, -0.2, 0.3], [0.0, 0.5, -0.1]])
  pts = jnp.einsum("bkj,bij->bki", template, rot) + t[:, None]
  r_hat, t_hat, posed = object_pose_from_points(template, pts)
  np.testing.assert_allclose(r_hat, rot, atol=1e-4)
  np.testing.assert_allclose(t_hat, t, atol=1e-4)
  np.testing.assert_allclose(posed, pts, atol=1e-4)
  noisy = pts + 0.01 * jax.random.normal(jax.random.key(0), pts.shape)
  g = jax.grad(lambda p: jnp.sum(object_pose_from_points(template, p)[0] ** 3))(noisy)
  assert _finite(g) and float(jnp.max(jnp.abs(g))) > 0


def test_mesh_refiner_shapes_identity_at_init_and_contact_masking():
  mr = MeshRefiner(dim=16, num_layers=1, num_heads=2)
  b, nh, k = 2, 40, 64
  ht = jax.random.normal(jax.random.key(0), (b, nh, 24))
  ot = jax.random.normal(jax.random.key(1), (b, k, 24))
  p_h = jax.random.uniform(jax.random.key(2), (b, nh))
  p_o = jax.random.uniform(jax.random.key(3), (b, k))
  human = jax.random.normal(jax.random.key(4), (b, nh, 3))
  template = jax.random.normal(jax.random.key(5), (b, k, 3)) * 0.2
  v = jax.jit(mr.init)(jax.random.key(6), ht, ot, p_h, p_o, human, template, template)
  apply = jax.jit(mr.apply)
  out = apply(v, ht, ot, p_h, p_o, human, template, template)
  assert out["human_points"].shape == (b, nh, 3) and out["object_points"].shape == (b, k, 3)
  assert out["obj_rotmat"].shape == (b, 3, 3) and out["object_points_rigid"].shape == (b, k, 3)
  # Zero-initialised offset heads: the untrained refiner returns its input, and the pose is identity.
  np.testing.assert_allclose(out["human_points"], human, atol=1e-6)
  np.testing.assert_allclose(out["obj_rotmat"], np.broadcast_to(np.eye(3), (b, 3, 3)), atol=1e-4)
  # Non-contact tokens do not enter the cross stage: with no object contact at all, the
  # human output cannot depend on the object tokens (checked with perturbed, "trained" weights).
  v2 = jax.tree.map(lambda x: x + 0.05 * jax.random.normal(jax.random.key(7), x.shape), v)
  none = jnp.zeros_like(p_o)
  a = apply(v2, ht, ot, p_h, none, human, template, template)["human_points"]
  c = apply(v2, ht, ot + 1.0, p_h, none, human, template, template)["human_points"]
  np.testing.assert_allclose(a, c, atol=1e-5)
  # ... while with object contacts it does.
  some = jnp.ones_like(p_o)
  a = apply(v2, ht, ot, p_h, some, human, template, template)["human_points"]
  c = apply(v2, ht, ot + 1.0, p_h, some, human, template, template)["human_points"]
  assert not np.allclose(a, c, atol=1e-5) and _finite(a)
