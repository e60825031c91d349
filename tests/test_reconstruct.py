"""`scorehoi reconstruct` / `scorehoi demo`: files written, their consistency, bad inputs, atomicity.

One CLI run in folder mode (3 frames, batch 2: the last batch is padded) with
a tiny random model and the runlocal refine config is shared by the output
tests; later runs with the same model, config and batch shape reuse its
compiled function (reconstruct_io caches the Reconstructor). Bad inputs fail
before the model is built, so they cost no compile.
"""

import json
import os
import shutil
import sys

import jax.numpy as jnp
import numpy as np
import pytest
import trimesh
from PIL import Image

from scorehoi_jax import body as body_lib
from scorehoi_jax import demo
from scorehoi_jax import reconstruct_io as rio
from scorehoi_jax.geometry import axis_angle_to_matrix

sys.path.insert(0, os.path.dirname(__file__))
from cli_capture import run_cli as _cli  # noqa: E402

pytestmark = pytest.mark.usefixtures("fast_compile")

CONFIG = "refine_paper:runlocal"
EXAMPLES = demo.examples_dir()
STEMS = ("lift_box", "hold_ball", "sit_chair")
FILES = {"human.ply", "object.ply", "human_initial.ply", "object_initial.ply", "scene.glb", "params.npz",
         "contacts.npz", "overlay.png"}




@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
  """Three folders (images, human masks, object masks) matched by stem, and a user mesh (a box, metres)."""
  root = tmp_path_factory.mktemp("inputs")
  for sub in ("img", "hm", "om"):
    os.makedirs(root / sub)
  for s in STEMS:
    shutil.copy(os.path.join(EXAMPLES, f"{s}.jpg"), root / "img" / f"{s}.jpg")
    shutil.copy(os.path.join(EXAMPLES, f"{s}_human.png"), root / "hm" / f"{s}.png")
    shutil.copy(os.path.join(EXAMPLES, f"{s}_object.png"), root / "om" / f"{s}.png")
  trimesh.creation.box((0.4, 0.3, 0.3)).export(root / "box.obj")
  return root


def _args(inputs, out, *extra, image=None, hm=None, om=None, obj=None, checkpoint=None):
  return ["reconstruct", "--image", str(image or inputs / "img"), "--human-mask", str(hm or inputs / "hm"),
          "--object-mask", str(om or inputs / "om"), "--object", str(obj or inputs / "box.obj"),
          "--config", CONFIG, "--out", str(out), "--quiet", *extra,
          *(["--checkpoint", checkpoint] if checkpoint else [])]


@pytest.fixture(scope="module")
def run(fast_compile, tiny, inputs, tmp_path_factory):
  out = tmp_path_factory.mktemp("runs") / "rec"
  code, stdout, stderr = _cli(_args(inputs, out, "--batch", "2", "--crformer", checkpoint=tiny))
  assert code == 0, stderr
  return out, stdout


def test_without_crformer_the_result_is_the_refined_parameters_exactly(run, tiny, inputs, tmp_path):
  """Default output = x^N itself: no vertex offsets, the same pelvis placement, and the CRFormer run differs."""
  out = tmp_path / "plain"
  code, _, stderr = _cli(_args(inputs, out, "--batch", "2", checkpoint=tiny))  # Same shapes: no new compile.
  assert code == 0, stderr
  for s in STEMS:
    p, _, m = _load(out / s)
    q, _, mc = _load(run[0] / s)
    assert not np.any(p["vertex_offsets"])
    for k in ("global_orient", "body_pose", "betas", "transl", "cam_trans"):  # Same x^N either way.
      np.testing.assert_allclose(p[k], q[k], atol=1e-6)
    np.testing.assert_allclose(m["human"].vertices, mc["human"].vertices - q["vertex_offsets"], atol=1e-5)


def _load(folder):
  params = dict(np.load(os.path.join(folder, "params.npz")))
  contacts = dict(np.load(os.path.join(folder, "contacts.npz")))
  meshes = {n: trimesh.load(os.path.join(folder, f"{n}.ply"), process=False)
            for n in ("human", "object", "human_initial", "object_initial")}
  return params, contacts, meshes


def test_folder_mode_writes_every_file_per_image(run):
  out, stdout = run
  assert sorted(os.listdir(out)) == sorted(STEMS)
  for s in STEMS:
    assert set(os.listdir(out / s)) == FILES
    assert str(out / s) in stdout
  assert not [f for f in os.listdir(out.parent) if f.startswith(".scorehoi-")]


def test_human_mesh_is_params_through_the_body_model(run):
  """human.ply = LBS(params) + transl + vertex_offsets; LBS(params) + transl puts the pelvis at cam_trans."""
  model = body_lib.load_body_model()
  loaded = [_load(run[0] / s) for s in STEMS]
  aa = np.stack([np.concatenate([p["global_orient"][None], p["body_pose"].reshape(21, 3),
                                 p["left_hand_pose"].reshape(15, 3), p["right_hand_pose"].reshape(15, 3)])
                 for p, _, _ in loaded])
  betas = np.stack([p["betas"] for p, _, _ in loaded])
  out = body_lib.body_forward(model, axis_angle_to_matrix(jnp.asarray(aa)), jnp.asarray(betas))
  for k, (p, _, m) in enumerate(loaded):
    assert len(m["human"].vertices) == model.num_vertices == len(m["human_initial"].vertices)
    np.testing.assert_array_equal(m["human"].faces, np.asarray(model.faces))
    verts = np.asarray(out.vertices[k]) + p["transl"]
    np.testing.assert_allclose(verts + p["vertex_offsets"], m["human"].vertices, atol=1e-4)
    np.testing.assert_allclose(np.asarray(out.joints[k, 0]) + p["transl"], p["cam_trans"], atol=1e-5)
    assert bool(p["flat_hand_mean"]) and p["image_size"].tolist() == [512, 384]  # The example frames: W, H.
    # The CRFormer moves points by centimetres, not metres (offsets are a correction).
    assert np.abs(p["vertex_offsets"]).max() < 1.0


def test_smplx_forward_with_transl_gives_the_camera_frame_mesh():
  """The transl convention against smplx itself (an SMPL-H-layout random model with pose correctives)."""
  torch = pytest.importorskip("torch")
  smplx = pytest.importorskip("smplx")
  import types
  arrays = body_lib.random_smplh_arrays(seed=3)
  model = body_lib.from_arrays(arrays)
  rng = np.random.default_rng(0)
  aa, betas, cam = rng.normal(size=(52, 3)) * 0.3, rng.normal(size=10), np.array([0.2, -0.1, 3.0])
  ours = body_lib.body_forward(model, axis_angle_to_matrix(jnp.asarray(aa, jnp.float32)),
                               jnp.asarray(betas, jnp.float32))
  expected = np.asarray(ours.vertices) - np.asarray(ours.joints)[0] + cam  # reconstruct's camera-frame mesh.
  params = rio.smplx_params(axis_angle_to_matrix(jnp.asarray(aa, jnp.float32)), betas)
  transl = np.asarray(rio.smplx_transl(model, jnp.asarray(betas, jnp.float32), jnp.asarray(cam, jnp.float32)))
  layer = smplx.SMPLH(model_path=None, data_struct=types.SimpleNamespace(**arrays), use_pca=False,
                      flat_hand_mean=True, num_betas=10, dtype=torch.float64)
  t = lambda x: torch.tensor(np.asarray(x, np.float64)[None])
  ref = layer(**{k: t(v) for k, v in params.items()}, transl=t(transl))
  np.testing.assert_allclose(ref.vertices[0].numpy(), expected, atol=1e-4)


def test_object_mesh_is_the_template_posed_by_object_R_t(run, inputs):
  box = trimesh.load(inputs / "box.obj", process=False)
  for s in STEMS:
    p, c, m = _load(run[0] / s)
    r, t = p["object_R"].astype(np.float64), p["object_t"].astype(np.float64)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-5)
    assert np.linalg.det(r) > 0.99
    np.testing.assert_allclose(m["object"].vertices, box.vertices @ r.T + t, atol=1e-5)
    np.testing.assert_allclose(c["object_template_camera"], c["object_template"] @ r.T + t, atol=1e-5)
    assert len(m["object_initial"].vertices) == len(box.vertices)
    assert str(p["object_name"]) == str(inputs / "box.obj") and int(p["object_seed"]) == -1


def test_contacts_are_probabilities_upsampled_to_every_vertex(run):
  model = body_lib.load_body_model()
  for s in STEMS:
    _, c, _ = _load(run[0] / s)
    assert c["human_contact"].shape == (model.num_vertices,)
    assert c["human_contact_guidance"].shape == (431,) and c["object_contact"].shape == (64,)
    for k in ("human_contact", "human_contact_guidance", "object_contact", "object_floor_contact"):
      assert np.all((c[k] >= 0) & (c[k] <= 1)), k
    ids = c["guidance_vertex_ids"]
    np.testing.assert_array_equal(ids, body_lib.guidance_vertex_indices(model))
    # The upsampling is an interpolation: exact at the guidance vertices, within their range elsewhere.
    np.testing.assert_allclose(c["human_contact"][ids], c["human_contact_guidance"], atol=1e-6)
    g = c["human_contact_guidance"]
    assert g.min() - 1e-6 <= c["human_contact"].min() and c["human_contact"].max() <= g.max() + 1e-6


def test_glb_holds_both_meshes_in_gltf_axes(run):
  folder = run[0] / STEMS[0]
  scene = trimesh.load(folder / "scene.glb")
  _, _, m = _load(folder)
  got = {len(g.vertices): np.asarray(g.vertices) for g in scene.geometry.values()}
  for name in ("human", "object"):
    np.testing.assert_allclose(got[len(m[name].vertices)], m[name].vertices * [1, -1, -1], atol=1e-5)


def test_overlay_panel_shows_input_and_drawn_meshes(run):
  img = np.asarray(Image.open(run[0] / STEMS[1] / "overlay.png"))
  src = np.asarray(Image.open(os.path.join(EXAMPLES, f"{STEMS[1]}.jpg")))
  h, w = src.shape[:2]  # 512 x 384: no downscaling; side view and contact map are h x h.
  assert img.shape == (h + 16, 2 * w + 2 * h + 3 * 4, 3)
  np.testing.assert_array_equal(img[16:, :w], src)  # Panel 1: the input itself.
  assert np.abs(img[16:, w + 4:2 * w + 4].astype(int) - src).max() > 50  # Panel 2: meshes drawn over it.
  for x0 in (2 * w + 8, 2 * w + h + 12):  # Side view and contact map: something drawn on white.
    panel = img[16:, x0:x0 + h]
    assert 0.01 < np.mean(panel.min(-1) < 200) < 0.9


def test_result_of_a_frame_does_not_depend_on_its_batch(run, tiny, inputs, tmp_path):
  """Same frame batched with another frame vs. alone in a padded batch: same result."""
  frames = rio.find_frames(str(inputs / "img"), str(inputs / "hm"), str(inputs / "om"), str(inputs / "box.obj"))
  order = [f for f in frames if f.name == STEMS[2]] + [f for f in frames if f.name == STEMS[0]]
  rio.reconstruct_frames(order, str(tmp_path / "o"), checkpoint=tiny, refine_config=CONFIG, batch_size=2,
                         progress=False, crformer=True)
  for s in (STEMS[0], STEMS[2]):
    a, b = _load(run[0] / s)[0], _load(tmp_path / "o" / s)[0]
    for k in ("body_pose", "transl", "object_t", "betas"):
      np.testing.assert_allclose(a[k], b[k], atol=2e-4, err_msg=f"{s}/{k}")


def test_a_failure_midway_leaves_no_output(run, tiny, inputs, tmp_path, monkeypatch):
  calls = []

  def failing(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
      raise RuntimeError("disk full")
    return np.zeros((8, 8, 3), np.uint8)

  monkeypatch.setattr(rio, "overlay_panel", failing)
  with pytest.raises(RuntimeError, match="disk full"):
    rio.reconstruct(str(inputs / "img"), str(inputs / "hm"), str(inputs / "om"), str(inputs / "box.obj"),
                    str(tmp_path / "o"), checkpoint=tiny, refine_config=CONFIG, batch_size=2, progress=False)
  assert os.listdir(tmp_path) == []  # Neither the result nor the temporary folder.


def test_demo_uses_the_example_object_instances(run, tiny, tmp_path, monkeypatch):
  examples = demo.example_frames()
  monkeypatch.setattr(demo, "example_frames", lambda: examples[:2])  # Batch 2: reuses the compiled function.
  code, stdout, stderr = _cli(["demo", "--out", str(tmp_path / "demo"), "--checkpoint", tiny, "--config", CONFIG])
  assert code == 0, stderr
  for f in examples[:2]:
    p = np.load(tmp_path / "demo" / f.name / "params.npz")
    assert (str(p["object_name"]), int(p["object_seed"])) == (f.object, f.object_seed)
    assert str(tmp_path / "demo" / f.name) in stdout
    from scorehoi_jax.objects import get_object
    obj = trimesh.load(tmp_path / "demo" / f.name / "object.ply", process=False)
    r, t = p["object_R"].astype(np.float64), p["object_t"].astype(np.float64)
    np.testing.assert_allclose(obj.vertices, get_object(f.object, seed=f.object_seed).vertices @ r.T + t, atol=1e-5)


def test_demo_replaces_its_own_output_and_nothing_else(run, tiny, tmp_path, monkeypatch):
  examples = demo.example_frames()
  monkeypatch.setattr(demo, "example_frames", lambda: examples[:2])
  out = tmp_path / "demo_out"
  (out / examples[0].name).mkdir(parents=True)
  (out / examples[0].name / "stale.txt").write_text("from an earlier run")  # A previous demo result.
  code, _, stderr = _cli(["demo", "--out", str(out), "--checkpoint", tiny, "--config", CONFIG])
  assert code == 0, stderr
  assert sorted(os.listdir(out)) == sorted(f.name for f in examples[:2])
  assert not (out / examples[0].name / "stale.txt").exists() and (out / examples[0].name / "params.npz").exists()
  mine = tmp_path / "mine"
  mine.mkdir()
  (mine / "thesis.tex").write_text("not a demo result")
  code, _, stderr = _cli(["demo", "--out", str(mine), "--checkpoint", tiny, "--config", CONFIG])
  assert code == 2 and "exists" in stderr and "Traceback" not in stderr
  assert os.listdir(mine) == ["thesis.tex"]


def test_shipped_examples_are_small_and_consistent():
  with open(os.path.join(EXAMPLES, "examples.json")) as f:
    info = json.load(f)
  assert 3 <= len(info["examples"]) <= 4 and "make_examples.py" in info["made_by"]
  assert sum(os.path.getsize(os.path.join(EXAMPLES, n)) for n in os.listdir(EXAMPLES)) < 1_000_000
  from scorehoi_jax.objects import list_objects
  for e in info["examples"]:
    sizes = {Image.open(os.path.join(EXAMPLES, e[k])).size for k in ("image", "human_mask", "object_mask")}
    assert sizes == {(512, 384)}  # Full 4:3 capture frames (data_prep/make_examples.py).
    assert all(os.path.getsize(os.path.join(EXAMPLES, e[k])) < 60_000 for k in ("image", "human_mask", "object_mask"))
    for k in ("human_mask", "object_mask"):
      assert (np.asarray(Image.open(os.path.join(EXAMPLES, e[k]))) > 127).sum() > 100
    assert e["object"] in list_objects() and isinstance(e["object_seed"], int)
    assert len(e["focal"]) == 2 and len(e["princpt"]) == 2


# ------------------------------------------------------------------------------------------------
# Bad inputs: one line on stderr naming the problem, exit status 2, no output folder.
# ------------------------------------------------------------------------------------------------

def _bad_inputs(inputs, tmp):
  img, hm, om = inputs / "img" / "hold_ball.jpg", inputs / "hm" / "hold_ball.png", inputs / "om" / "hold_ball.png"
  (tmp / "notimage.png").write_text("not an image")
  Image.new("L", (100, 80), 255).save(tmp / "small.png")
  Image.new("L", Image.open(img).size, 0).save(tmp / "empty.png")
  (tmp / "garbage.obj").write_text("v 0 0 0\nf 1 2 3 4 5\nthis is not a mesh\n")
  with open(tmp / "flat.obj", "w") as f:  # Every face has zero area.
    f.write("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
  os.makedirs(tmp / "hm_part")
  shutil.copy(inputs / "hm" / "lift_box.png", tmp / "hm_part" / "lift_box.png")
  return {
      "missing image": (dict(image=tmp / "nope.jpg", hm=hm, om=om), "nope.jpg"),
      "unreadable image": (dict(image=tmp / "notimage.png", hm=hm, om=om), "notimage.png"),
      "mask size": (dict(image=img, hm=tmp / "small.png", om=om), "100x80"),
      "empty mask": (dict(image=img, hm=hm, om=tmp / "empty.png"), "empty"),
      "unknown object": (dict(image=img, hm=hm, om=om, obj="spaceship"), "boxmedium"),
      "unreadable mesh": (dict(image=img, hm=hm, om=om, obj=tmp / "garbage.obj"), "garbage.obj"),
      "degenerate mesh": (dict(image=img, hm=hm, om=om, obj=tmp / "flat.obj"), "degenerate"),
      "stem without mask": (dict(hm=tmp / "hm_part"), "hold_ball"),
  }


@pytest.mark.parametrize("case", ["missing image", "unreadable image", "mask size", "empty mask", "unknown object",
                                  "unreadable mesh", "degenerate mesh", "stem without mask"])
def test_bad_input_is_one_clear_line(case, inputs, tmp_path):
  kwargs, needle = _bad_inputs(inputs, tmp_path)[case]
  out = tmp_path / "out"
  code, _, stderr = _cli(_args(inputs, out, **kwargs, checkpoint=str(tmp_path / "never_loaded")))
  assert code == 2
  lines = stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("scorehoi reconstruct: error:") and needle in lines[0], stderr
  assert not out.exists() and not [f for f in os.listdir(tmp_path) if f.startswith(".scorehoi-")]


def test_checkpoint_not_matching_its_config_is_a_clear_error(tiny, inputs, tmp_path):
  bad = tmp_path / "bad_model"
  shutil.copytree(tiny, bad)
  with open(bad / "model.json") as f:
    info = json.load(f)
  info["config"]["model"]["regressor"]["hidden_dim"] *= 2
  with open(bad / "model.json", "w") as f:
    json.dump(info, f)
  code, _, stderr = _cli(_args(inputs, tmp_path / "out", checkpoint=str(bad)))
  assert code == 2 and "does not match" in stderr and len(stderr.strip().splitlines()) == 1, stderr
  assert not (tmp_path / "out").exists()
  code, _, stderr = _cli(_args(inputs, tmp_path / "out", checkpoint=str(tmp_path / "missing")))
  assert code == 2 and "model folder not found" in stderr


def test_existing_output_is_refused_unless_overwrite(inputs, tmp_path):
  out = tmp_path / "out"
  os.makedirs(out)
  (out / "keep.txt").write_text("mine")
  code, _, stderr = _cli(_args(inputs, out, checkpoint=str(tmp_path / "never_loaded")))
  assert code == 2 and "--overwrite" in stderr and (out / "keep.txt").read_text() == "mine"
