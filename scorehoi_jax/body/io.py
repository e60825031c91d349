"""Loading body models: official SMPL-H files (.npz/.pkl) and the embedded default.

Official files are what users with an MPI licence have; they are never shipped.
The default (``path=None``) is the open SMPL-H-layout export of the Anny body
model that ships inside the package (see assets/body/NOTICE).
"""

from __future__ import annotations

import json
import os
import pickle
from importlib import resources

import jax
import jax.numpy as jnp
import numpy as np

from scorehoi_jax.body.model import NUM_JOINTS, BodyModel
from scorehoi_jax.errors import ScoreHOIError

DEFAULT_MODEL = "anny_smplh_neutral.npz"

REQUIRED_KEYS = ("v_template", "shapedirs", "weights", "kintree_table", "f")


class BodyModelError(ScoreHOIError):
  """A body model file is missing, unreadable or lacks a key; the message names it."""


def default_model_path() -> str:
  return str(resources.files("scorehoi_jax") / "assets" / "body" / DEFAULT_MODEL)


class _Anything:
  """Stand-in for any class found in a pickle (chumpy arrays, scipy sparse, ...).

  SMPL-H .pkl files of the MANO family pickle chumpy objects whose state holds
  the plain numpy array under 'x'; scipy sparse matrices keep data/indices/
  indptr. We reconstruct arrays from that state so chumpy is never required.
  """

  def __init__(self, *args, **kwargs):
    self._args = args
    self._state = None

  def __setstate__(self, state):
    self._state = state

  def __call__(self, *args, **kwargs):  # Some pickles call reconstructors.
    return _Anything(*args)

  def to_array(self):
    st = self._state
    if isinstance(st, dict):
      if "x" in st:  # chumpy.Ch
        return np.asarray(st["x"])
      if {"data", "indices", "indptr", "_shape"} <= set(st):  # scipy CSR/CSC
        return _sparse_to_dense(st)
    if isinstance(st, tuple) and st and isinstance(st[-1], dict):
      inner = st[-1]
      if "x" in inner:
        return np.asarray(inner["x"])
    raise TypeError("unsupported pickled object")


def _sparse_to_dense(st: dict) -> np.ndarray:
  shape = st["_shape"]
  out = np.zeros(shape, dtype=np.float64)
  data, indices, indptr = np.asarray(st["data"]), np.asarray(st["indices"]), np.asarray(st["indptr"])
  major = len(indptr) - 1
  csc = major == shape[1] and major != shape[0]
  for m in range(major):
    sl = slice(indptr[m], indptr[m + 1])
    if csc:
      out[indices[sl], m] = data[sl]
    else:
      out[m, indices[sl]] = data[sl]
  return out


class _Unpickler(pickle.Unpickler):

  def find_class(self, module, name):
    if module.startswith(("numpy", "builtins", "collections", "copyreg", "_codecs")):
      return super().find_class(module, name)
    if module.startswith("scipy.sparse"):
      return _Anything
    return _Anything


def _load_pickle(path: str) -> dict:
  with open(path, "rb") as f:
    data = _Unpickler(f, encoding="latin1").load()
  if not isinstance(data, dict):
    raise BodyModelError(f"{path}: expected a pickled dict of SMPL-H arrays, found {type(data).__name__}.")
  out = {}
  for k, v in data.items():
    if isinstance(v, _Anything):
      try:
        v = v.to_array()
      except TypeError:
        continue
    out[k] = v
  return out


def _read_file(path: str) -> dict:
  if not os.path.exists(path):
    raise BodyModelError(f"{path}: body model file not found.")
  try:
    if path.endswith(".pkl"):
      return _load_pickle(path)
    with np.load(path, allow_pickle=True) as z:
      return {k: z[k] for k in z.files}
  except BodyModelError:
    raise
  except Exception as e:  # Truncated zip, bad pickle, ...: name the file, not the stack.
    raise BodyModelError(f"{path}: cannot read body model ({type(e).__name__}: {e}).") from None


def _dense(x) -> np.ndarray:
  if hasattr(x, "toarray"):
    x = x.toarray()
  elif hasattr(x, "todense"):
    x = x.todense()
  return np.asarray(x)


def _to_device(x, dtype):
  """x cast on the host, then transferred: jnp.asarray(x, dtype) would compile a cast (and a copy) per shape."""
  return jax.device_put(np.asarray(x, dtype))


def from_arrays(data: dict, *, source: str = "<arrays>", gender: str = "neutral",
                dtype=jnp.float32) -> BodyModel:
  """Build a BodyModel from arrays named as in official SMPL-H files."""
  missing = [k for k in REQUIRED_KEYS if k not in data]
  if "J_regressor" not in data and "J_template" not in data:
    missing.append("J_regressor")
  if missing:
    raise BodyModelError(f"{source}: missing key(s) {', '.join(missing)} (is this an SMPL-H model file?).")
  try:
    v_template = _dense(data["v_template"]).astype(np.float64)
    shapedirs = _dense(data["shapedirs"]).astype(np.float64)
    weights = _dense(data["weights"]).astype(np.float64)
    faces = _dense(data["f"]).astype(np.int32)
    parents = _dense(data["kintree_table"])[0].astype(np.int64)
  except Exception as e:
    raise BodyModelError(f"{source}: malformed arrays ({e}).") from None
  v = v_template.shape[0]
  if v_template.ndim != 2 or v_template.shape[1] != 3:
    raise BodyModelError(f"{source}: v_template has shape {v_template.shape}, expected (V, 3).")
  if shapedirs.ndim != 3 or shapedirs.shape[:2] != (v, 3):
    raise BodyModelError(f"{source}: shapedirs has shape {shapedirs.shape}, expected ({v}, 3, B).")
  j = weights.shape[1]
  if weights.shape[0] != v or j != NUM_JOINTS or len(parents) != NUM_JOINTS:
    raise BodyModelError(f"{source}: weights {weights.shape} / kintree {len(parents)} joints; "
                         f"expected ({v}, {NUM_JOINTS}) for the SMPL-H layout.")
  parents = np.where((parents < 0) | (parents >= NUM_JOINTS), -1, parents).astype(np.int64)

  posedirs = None
  if "posedirs" in data and data["posedirs"] is not None:
    pd = _dense(data["posedirs"]).astype(np.float64)
    if pd.shape[:2] != (v, 3):
      raise BodyModelError(f"{source}: posedirs has shape {pd.shape}, expected ({v}, 3, P).")
    if np.any(pd):  # An all-zero corrective is dead weight; drop it.
      posedirs = _to_device(pd.reshape(-1, pd.shape[-1]).T, dtype)

  j_regressor = j_template = j_shapedirs = None
  if "J_template" in data and "J_shapedirs" in data:
    j_template = _to_device(_dense(data["J_template"]), dtype)
    j_shapedirs = _to_device(_dense(data["J_shapedirs"]), dtype)
  else:
    jr = _dense(data["J_regressor"]).astype(np.float64)
    if jr.shape != (NUM_JOINTS, v):
      raise BodyModelError(f"{source}: J_regressor has shape {jr.shape}, expected ({NUM_JOINTS}, {v}).")
    j_regressor = _to_device(jr, dtype)

  hands_mean = None
  if "hands_meanl" in data and "hands_meanr" in data:
    hm = np.concatenate([_dense(data["hands_meanl"]).reshape(15, 3), _dense(data["hands_meanr"]).reshape(15, 3)])
    hands_mean = _to_device(hm, dtype)

  meta = {}
  if "meta" in data:
    try:
      meta = json.loads(str(data["meta"]))
    except (ValueError, TypeError):
      meta = {}
  return BodyModel(
      v_template=_to_device(v_template, dtype),
      shapedirs=_to_device(shapedirs, dtype),
      weights=_to_device(weights, dtype),
      faces=_to_device(faces, np.int32),
      posedirs=posedirs,
      j_regressor=j_regressor,
      j_template=j_template,
      j_shapedirs=j_shapedirs,
      hands_mean=hands_mean,
      parents=tuple(int(p) for p in parents),
      name=meta.get("name", os.path.basename(source)),
      gender=gender,
      licence=meta.get("licence", ""),
  )


def load_body_model(path: str | None = None, gender: str = "neutral", dtype=jnp.float32) -> BodyModel:
  """The embedded open default (path=None) or an official SMPL-H .npz/.pkl file.

  A directory is accepted too, resolved smplx-style to SMPLH_<GENDER>.{npz,pkl}.
  """
  if path is None:
    path = default_model_path()
  path = os.path.expanduser(str(path))
  if os.path.isdir(path):
    g = gender.upper()
    for cand in (f"SMPLH_{g}.npz", f"SMPLH_{g}.pkl", f"smplh/SMPLH_{g}.npz", f"smplh/SMPLH_{g}.pkl",
                 f"{gender.lower()}/model.npz"):
      if os.path.exists(os.path.join(path, cand)):
        path = os.path.join(path, cand)
        break
    else:
      raise BodyModelError(f"{path}: no SMPLH_{g}.npz or SMPLH_{g}.pkl in this folder.")
  if not path.endswith((".npz", ".pkl")):
    raise BodyModelError(f"{path}: unsupported body model format (expected .npz or .pkl).")
  return from_arrays(_read_file(path), source=path, gender=gender, dtype=dtype)


def random_smplh_arrays(seed: int = 0, num_vertices: int = 6890, num_betas: int = 16,
                        num_faces: int = 13776, with_posedirs: bool = True) -> dict:
  """Random arrays in the official SMPL-H key layout (tests and benchmarks).

  Vertices lie around a unit-ish blob, weights are sparse-ish and sum to one,
  the regressor rows are convex combinations: enough structure for LBS parity
  and timing, no licensed data involved.
  """
  rng = np.random.default_rng(seed)
  from scorehoi_jax.body.model import SMPLH_PARENTS
  v = rng.normal(size=(num_vertices, 3)) * 0.3
  w = rng.random((num_vertices, NUM_JOINTS)) ** 8
  w /= w.sum(1, keepdims=True)
  jr = rng.random((NUM_JOINTS, num_vertices)) ** 16
  jr /= jr.sum(1, keepdims=True)
  kin = np.stack([SMPLH_PARENTS.astype(np.int64), np.arange(NUM_JOINTS)])
  kin[0, 0] = 4294967295  # How official files store the root's parent.
  out = {
      "v_template": v,
      "shapedirs": rng.normal(size=(num_vertices, 3, num_betas)) * 0.01,
      "weights": w,
      "J_regressor": jr,
      "kintree_table": kin,
      "f": rng.integers(0, num_vertices, size=(num_faces, 3)).astype(np.int64),
      "hands_meanl": rng.normal(size=45) * 0.2,
      "hands_meanr": rng.normal(size=45) * 0.2,
      "hands_componentsl": np.eye(45),
      "hands_componentsr": np.eye(45),
  }
  if with_posedirs:
    out["posedirs"] = rng.normal(size=(num_vertices, 3, 9 * (NUM_JOINTS - 1))) * 0.005
  return out

