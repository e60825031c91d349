"""Body model: LBS parity with smplx and with an independent NumPy LBS; loaders."""

import pickle
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from scorehoi_jax import body
from scorehoi_jax.geometry import axis_angle_to_matrix


def numpy_lbs(arrays, rotmats, betas, use_posedirs=True):
  """Independent float64 SMPL-H LBS written from the SMPL paper's equations."""
  v = arrays["v_template"] + np.einsum("vcb,nb->nvc", arrays["shapedirs"][..., :betas.shape[1]], betas)
  if "J_template" in arrays:
    j = arrays["J_template"] + np.einsum("jcb,nb->njc", arrays["J_shapedirs"][..., :betas.shape[1]], betas)
  else:
    j = np.einsum("jv,nvc->njc", arrays["J_regressor"], v)
  if use_posedirs and "posedirs" in arrays:
    feat = (rotmats[:, 1:] - np.eye(3)).reshape(len(rotmats), -1)
    v = v + np.einsum("vcp,np->nvc", arrays["posedirs"], feat)
  parents = body.SMPLH_PARENTS
  n = len(rotmats)
  g = np.zeros((n, 52, 4, 4))
  for i in range(52):
    local = np.tile(np.eye(4), (n, 1, 1))
    local[:, :3, :3] = rotmats[:, i]
    local[:, :3, 3] = j[:, i] - (j[:, parents[i]] if parents[i] >= 0 else 0.0)
    g[:, i] = local if parents[i] < 0 else g[:, parents[i]] @ local
  a = g.copy()
  a[:, :, :3, 3] -= np.einsum("nkij,nkj->nki", g[:, :, :3, :3], j)
  t = np.einsum("vk,nkij->nvij", arrays["weights"], a)
  vh = np.concatenate([v, np.ones(v.shape[:2] + (1,))], -1)
  return np.einsum("nvij,nvj->nvi", t, vh)[..., :3], g[:, :, :3, 3]


def _random_pose(n, seed, scale=0.4):
  rng = np.random.default_rng(seed)
  aa = rng.normal(size=(n, 52, 3)) * scale
  return aa, Rotation.from_rotvec(aa.reshape(-1, 3)).as_matrix().reshape(n, 52, 3, 3)


def _smplx_forward(arrays, aa, betas, flat_hand_mean: bool):
  """The reference: smplx.SMPLH (float64, full hand pose) on the same arrays; skips if not installed."""
  torch = pytest.importorskip("torch")
  smplx = pytest.importorskip("smplx")
  layer = smplx.SMPLH(model_path=None, data_struct=types.SimpleNamespace(**arrays), use_pca=False,
                      flat_hand_mean=flat_hand_mean, num_betas=betas.shape[1], dtype=torch.float64,
                      create_transl=False)
  n = len(aa)
  t = lambda x: torch.tensor(x, dtype=torch.float64)
  return layer(global_orient=t(aa[:, 0]), body_pose=t(aa[:, 1:22].reshape(n, -1)),
               left_hand_pose=t(aa[:, 22:37].reshape(n, -1)), right_hand_pose=t(aa[:, 37:].reshape(n, -1)),
               betas=t(betas))


@pytest.fixture(scope="module")
def smplh_arrays():
  return body.random_smplh_arrays(seed=0)


def test_forward_matches_numpy_lbs_on_smplh_sized_model(smplh_arrays):
  model = body.from_arrays(smplh_arrays)
  _, rot = _random_pose(3, seed=1)
  betas = np.random.default_rng(2).normal(size=(3, 10))
  ref_v, ref_j = numpy_lbs(smplh_arrays, rot, betas)
  out = jax.jit(body.body_forward)(model, jnp.asarray(rot, jnp.float32), jnp.asarray(betas, jnp.float32))
  np.testing.assert_allclose(out.vertices, ref_v, atol=1e-5)
  np.testing.assert_allclose(out.joints, ref_j, atol=1e-5)


def test_forward_matches_smplx(smplh_arrays):
  aa, rot = _random_pose(4, seed=3)
  betas = np.random.default_rng(4).normal(size=(4, 10))
  ref = _smplx_forward(smplh_arrays, aa, betas, flat_hand_mean=True)
  # float32 here (the suite runs without x64); the bound is 1e-5 m.
  model = body.from_arrays(smplh_arrays)
  out = body.body_forward(model, jnp.asarray(rot, jnp.float32), jnp.asarray(betas, jnp.float32))
  np.testing.assert_allclose(np.asarray(out.vertices), ref.vertices.numpy(), atol=1e-5)
  np.testing.assert_allclose(np.asarray(out.joints), ref.joints[:, :52].numpy(), atol=1e-5)


def test_hand_mean_helper_matches_smplx_default_semantics(smplh_arrays):
  aa, _ = _random_pose(2, seed=5, scale=0.2)
  ref = _smplx_forward(smplh_arrays, aa, np.zeros((2, 10)), flat_hand_mean=False)
  model = body.from_arrays(smplh_arrays)
  r = body.add_hand_mean(model, jnp.asarray(axis_angle_to_matrix(jnp.asarray(aa, jnp.float32))))
  out = body.body_forward(model, r, jnp.zeros((2, 10)))
  np.testing.assert_allclose(out.vertices, ref.vertices.numpy(), atol=2e-5)


def test_default_model_loads_and_matches_numpy():
  model = body.load_body_model()
  assert model.num_joints == 52 and model.num_betas == 10
  assert model.posedirs is None and model.j_template is not None
  assert "CC0" in model.licence
  with np.load(body.default_model_path()) as z:
    arrays = {k: z[k].astype(np.float64) for k in ("v_template", "shapedirs", "weights", "J_template", "J_shapedirs")}
    jreg = z["J_regressor"].astype(np.float64)
  # The stored regressor reproduces the exact joints on the rest mesh.
  np.testing.assert_allclose(jreg @ arrays["v_template"], arrays["J_template"], atol=1e-5)
  # Height of an average adult, Y up.
  height = arrays["v_template"][:, 1].max() - arrays["v_template"][:, 1].min()
  assert 1.5 < height < 1.9
  _, rot = _random_pose(2, seed=6)
  betas = np.random.default_rng(7).normal(size=(2, 4))  # Fewer betas than the model has.
  ref_v, ref_j = numpy_lbs(arrays, rot, betas)
  out = body.body_forward(model, jnp.asarray(rot, jnp.float32), jnp.asarray(betas, jnp.float32))
  np.testing.assert_allclose(out.vertices, ref_v, atol=2e-5)
  np.testing.assert_allclose(out.joints, ref_j, atol=2e-5)


def test_default_model_weights_are_left_right_symmetric():
  model = body.load_body_model()
  v = np.asarray(model.v_template)
  w = np.asarray(model.weights)
  from scipy.spatial import cKDTree
  mirror = cKDTree(v).query(v * [-1, 1, 1])[1]
  names = body.SMPLH_JOINT_NAMES
  swap = [names.index(n.replace("left", "#").replace("right", "left").replace("#", "right")) for n in names]
  np.testing.assert_allclose(w[mirror][:, swap], w, atol=1e-4)
  np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-5)


def test_rest_pose_and_vmap_and_grad():
  model = body.load_body_model()
  eye = jnp.broadcast_to(jnp.eye(3), (52, 3, 3))
  out = body.body_forward(model, eye, jnp.zeros(10))
  np.testing.assert_allclose(out.vertices, model.v_template, atol=1e-6)
  rot = jnp.asarray(_random_pose(3, seed=8)[1], jnp.float32)
  vm = jax.vmap(lambda r: body.body_forward(model, r, jnp.zeros(10)).vertices)(rot)
  np.testing.assert_allclose(vm, body.body_forward(model, rot, jnp.zeros((3, 10))).vertices, atol=1e-6)
  grad = jax.grad(lambda b: body.body_forward(model, eye, b).vertices[:, 1].max())(jnp.zeros(10))
  assert np.all(np.isfinite(grad)) and np.any(grad != 0)


def test_subset_model_is_exact_and_upsampling_interpolates():
  model = body.load_body_model()
  idx = body.guidance_vertex_indices(model)
  assert len(idx) == 431 and len(set(idx.tolist())) == 431
  np.testing.assert_array_equal(idx, body.guidance_vertex_indices(model))  # Deterministic.
  sub = body.subset_body_model(model, idx)
  rot = jnp.asarray(_random_pose(2, seed=9)[1], jnp.float32)
  betas = jnp.asarray(np.random.default_rng(10).normal(size=(2, 10)), jnp.float32)
  full = body.body_forward(model, rot, betas)
  part = body.body_forward(sub, rot, betas)
  np.testing.assert_allclose(part.vertices, np.asarray(full.vertices)[:, idx], atol=1e-5)
  np.testing.assert_allclose(part.joints, full.joints, atol=1e-5)
  up = body.upsample_matrix(model, idx)
  np.testing.assert_allclose(up.sum(1), 1.0, atol=1e-5)
  np.testing.assert_allclose(up[idx], np.eye(431), atol=1e-6)
  # Upsampling the subset's rest positions approximates every vertex within a few cm.
  err = np.linalg.norm(up @ np.asarray(model.v_template)[idx] - np.asarray(model.v_template), axis=1)
  assert np.median(err) < 0.02


def test_subset_of_regressor_model_with_posedirs(smplh_arrays):
  model = body.from_arrays(smplh_arrays)
  idx = np.arange(0, 6890, 16)
  sub = body.subset_body_model(model, idx)
  rot = jnp.asarray(_random_pose(2, seed=11)[1], jnp.float32)
  full = body.body_forward(model, rot, jnp.zeros((2, 10)))
  np.testing.assert_allclose(body.body_forward(sub, rot, jnp.zeros((2, 10))).vertices,
                             np.asarray(full.vertices)[:, idx], atol=2e-5)


def test_too_many_betas_is_a_clear_error():
  model = body.load_body_model()
  with pytest.raises(ValueError, match="betas"):
    body.body_forward(model, jnp.broadcast_to(jnp.eye(3), (52, 3, 3)), jnp.zeros(11))


# ----------------------------------------------------------------- loaders


def test_npz_round_trip_and_directory_lookup(tmp_path, smplh_arrays):
  np.savez(tmp_path / "SMPLH_MALE.npz", **smplh_arrays)
  m = body.load_body_model(tmp_path, gender="male")
  assert m.num_vertices == 6890 and m.posedirs is not None and m.gender == "male"
  assert m.parents[0] == -1 and m.parents[1:4] == (0, 0, 0)


def test_missing_key_names_file_and_key(tmp_path, smplh_arrays):
  arrays = dict(smplh_arrays)
  del arrays["weights"]
  path = tmp_path / "broken.npz"
  np.savez(path, **arrays)
  with pytest.raises(body.BodyModelError, match=r"broken\.npz.*weights"):
    body.load_body_model(str(path))


def test_truncated_and_missing_files(tmp_path, smplh_arrays):
  path = tmp_path / "model.npz"
  np.savez(path, **smplh_arrays)
  data = path.read_bytes()
  path.write_bytes(data[: len(data) // 3])
  with pytest.raises(body.BodyModelError, match="model.npz"):
    body.load_body_model(str(path))
  with pytest.raises(body.BodyModelError, match="not found"):
    body.load_body_model(str(tmp_path / "nope.npz"))
  with pytest.raises(body.BodyModelError, match="unsupported"):
    body.load_body_model(str(tmp_path / "model.obj"))


def test_pkl_with_chumpy_and_sparse_objects_loads_without_chumpy(tmp_path, smplh_arrays):
  """Official .pkl files pickle chumpy arrays and scipy sparse regressors."""
  import scipy.sparse

  fake = types.ModuleType("chumpy.ch")

  class Ch:  # Mimics chumpy.Ch's pickled state: the array lives under 'x'.
    def __init__(self, x):
      self.x = x

    def __getstate__(self):
      return {"x": self.x, "_dirty_vars": set()}

  Ch.__module__ = "chumpy.ch"
  Ch.__qualname__ = "Ch"
  fake.Ch = Ch
  sys.modules["chumpy"] = types.ModuleType("chumpy")
  sys.modules["chumpy.ch"] = fake
  try:
    data = dict(smplh_arrays)
    data["shapedirs"] = Ch(data["shapedirs"])
    data["v_template"] = Ch(data["v_template"])
    data["J_regressor"] = scipy.sparse.csc_matrix(data["J_regressor"] * (data["J_regressor"] > 1e-3))
    ref_jreg = data["J_regressor"].toarray()
    with open(tmp_path / "SMPLH_NEUTRAL.pkl", "wb") as f:
      pickle.dump(data, f, protocol=2)
  finally:
    del sys.modules["chumpy"], sys.modules["chumpy.ch"]
  m = body.load_body_model(str(tmp_path / "SMPLH_NEUTRAL.pkl"))
  np.testing.assert_allclose(m.shapedirs, smplh_arrays["shapedirs"], atol=1e-7)
  np.testing.assert_allclose(m.j_regressor, ref_jreg, atol=1e-7)
