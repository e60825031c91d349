"""Nothing lost, nothing silent: bad or corrupted inputs, unwritable outputs and killed runs (issue 15).

Every case goes through the command line (``cli.main``, or a real ``scorehoi``
subprocess where a kill is involved) and must end in one clear line with exit
status 2, or be handled correctly. Inputs are checked before the model is
built, so most cases cost no compile; they pass ``--checkpoint`` a folder that
is never reached.
"""

import json
import os
import shutil
import sys

import numpy as np
import pytest
import trimesh
from PIL import Image

from scorehoi_jax import demo
from cli_capture import run_cli as _cli  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = demo.examples_dir()
STEM = "hold_ball"




def _one_error_line(code, stderr, command="reconstruct"):
  lines = stderr.strip().splitlines()
  assert code == 2 and len(lines) == 1 and lines[0].startswith(f"scorehoi {command}: error:"), (code, stderr)
  return lines[0]


def _rec_args(out, *extra, image=None, hm=None, om=None, obj="basketball", checkpoint=None):
  return ["reconstruct", "--image", str(image or os.path.join(EXAMPLES, f"{STEM}.jpg")),
          "--human-mask", str(hm or os.path.join(EXAMPLES, f"{STEM}_human.png")),
          "--object-mask", str(om or os.path.join(EXAMPLES, f"{STEM}_object.png")),
          "--object", str(obj), "--out", str(out), "--quiet", *extra,
          "--checkpoint", str(checkpoint or os.path.join(os.path.dirname(out), "never_loaded"))]


def _env():
  return dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), JAX_PLATFORMS="cpu")


# ------------------------------------------------------------------------------------------------
# 2. Implausible object sizes.
# ------------------------------------------------------------------------------------------------

def test_mesh_in_centimetres_is_refused_naming_object_scale(tmp_path):
  trimesh.creation.box((40.0, 30.0, 30.0)).export(tmp_path / "box_cm.obj")  # A 40 cm box saved in cm.
  line = _one_error_line(*_cli(_rec_args(tmp_path / "out", obj=tmp_path / "box_cm.obj"))[::2])
  assert "box_cm.obj" in line and "--object-scale cm" in line and "40 m" in line
  trimesh.creation.box((0.004, 0.003, 0.003)).export(tmp_path / "speck.obj")  # 4 mm: no unit fits.
  line = _one_error_line(*_cli(_rec_args(tmp_path / "out", obj=tmp_path / "speck.obj"))[::2])
  assert "speck.obj" in line and "--object-scale" in line
  # With the unit given, the object is accepted: the run gets as far as the (missing) model.
  line = _one_error_line(*_cli(_rec_args(tmp_path / "out", "--object-scale", "cm", obj=tmp_path / "box_cm.obj"))[::2])
  assert "model folder not found" in line
  assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------
# 3. EXIF orientation.
# ------------------------------------------------------------------------------------------------

def test_exif_orientation_is_applied_to_image_and_masks(tmp_path):
  """A phone photo stored sideways with orientation 6 ("rotate 90° clockwise to display")."""
  from scorehoi_jax.data.pipeline import load_user_record
  full_mask = np.asarray(Image.open(os.path.join(EXAMPLES, f"{STEM}_human.png")).convert("L"))
  x0 = int(np.clip(np.nonzero(full_mask > 127)[1].mean() - 100, 0, full_mask.shape[1] - 200))  # 200 wide, on the person.
  cols = slice(x0, x0 + 200)  # Not square, so a missed rotation shows as a size mismatch.
  shown = np.asarray(Image.open(os.path.join(EXAMPLES, f"{STEM}.jpg")).convert("RGB"))[:, cols]
  shown_mask = full_mask[:, cols]
  obj_mask = np.asarray(Image.open(os.path.join(EXAMPLES, f"{STEM}_object.png")).convert("L"))[:, cols]
  exif = Image.Exif()
  exif[0x0112] = 6
  # Stored = displayed rotated 90° counter-clockwise (np.rot90 k=1), as a camera lying on its side writes it.
  Image.fromarray(np.ascontiguousarray(np.rot90(shown, 1))).save(tmp_path / "photo.png", exif=exif)
  Image.fromarray(shown_mask).save(tmp_path / "human.png")  # Masks drawn on the displayed photo.
  Image.fromarray(np.ascontiguousarray(np.rot90(obj_mask, 1))).save(tmp_path / "object.png", exif=exif)
  rec = load_user_record(str(tmp_path / "photo.png"), str(tmp_path / "human.png"), str(tmp_path / "object.png"))
  np.testing.assert_array_equal(rec["image"], shown)
  np.testing.assert_array_equal(rec["human_mask"], (shown_mask > 127).astype(np.uint8))
  np.testing.assert_array_equal(rec["object_mask"], (obj_mask > 127).astype(np.uint8))
  # Through the command line: the inputs are accepted (the run reaches the missing model),
  # where the unrotated photo gave a mask size error.
  line = _one_error_line(*_cli(_rec_args(tmp_path / "out", image=tmp_path / "photo.png", hm=tmp_path / "human.png",
                                         om=tmp_path / "object.png"))[::2])
  assert "model folder not found" in line, line


# ------------------------------------------------------------------------------------------------
# 5. Unwritable output, corrupted model.
# ------------------------------------------------------------------------------------------------

def test_unwritable_output_is_one_message(tmp_path):
  (tmp_path / "a_file").write_text("not a folder")
  line = _one_error_line(*_cli(_rec_args(tmp_path / "a_file" / "out"))[::2])  # Fails as root too.
  assert "a_file" in line and "not a folder" in line
  from scorehoi_jax.outputs import OutputError, atomic_output_dir
  # Failing inside the folder (here: a file where the writer wants a folder) is named too, and nothing stays.
  with pytest.raises(OutputError, match="cannot write the output"):
    with atomic_output_dir(str(tmp_path / "o")) as tmp:
      open(os.path.join(tmp, "x"), "w").close()
      os.makedirs(os.path.join(tmp, "x", "y"))
  assert sorted(os.listdir(tmp_path)) == ["a_file"]
  if os.geteuid() != 0:  # Permission bits do not bind root.
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    line = _one_error_line(*_cli(_rec_args(locked / "out"))[::2])
    assert "not writable" in line


def test_corrupted_model_is_named_by_its_checksum(tmp_path):
  from scorehoi_jax.model_store import ModelError, default_model_path, load_model
  model = tmp_path / "model"
  shutil.copytree(default_model_path(), model)
  assert "variables.npz" in json.loads((model / "model.json").read_text())["sha256"]
  with open(model / "variables.npz", "r+b") as f:  # Flip one byte in the middle of the weights.
    f.seek(os.path.getsize(model / "variables.npz") // 2)
    b = f.read(1)
    f.seek(-1, os.SEEK_CUR)
    f.write(bytes([b[0] ^ 0xFF]))
  line = _one_error_line(*_cli(_rec_args(tmp_path / "out", checkpoint=model))[::2])
  assert "variables.npz" in line and "corrupted" in line and "sha256" in line
  # A model folder without checksums (older exports) still loads, and the same flipped byte is an
  # error of the zip archive's own CRC, not a traceback.
  info = json.loads((model / "model.json").read_text())
  del info["sha256"]
  (model / "model.json").write_text(json.dumps(info))
  with pytest.raises(ModelError, match="cannot read the weights"):
    load_model(str(model))
  shutil.copy(os.path.join(default_model_path(), "variables.npz"), model / "variables.npz")
  assert load_model(str(model)).variables["denoiser"]["params"]


def test_shipped_model_checksum_and_layering():
  from scorehoi_jax.model_store import default_model_path, file_sha256
  info = json.load(open(os.path.join(default_model_path(), "model.json")))
  assert info["sha256"]["variables.npz"] == file_sha256(os.path.join(default_model_path(), "variables.npz"))
  # Inference never imports the training code, not even inside a function: model_store sits below train/.
  import ast
  from scorehoi_jax import model_store
  tree = ast.parse(open(model_store.__file__).read())
  imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
  imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
  assert not [m for m in imported if m and m.startswith("scorehoi_jax.train")], imported


# ------------------------------------------------------------------------------------------------
# 7. Implausible masks.
# ------------------------------------------------------------------------------------------------

def test_tiny_mask_is_refused_with_its_size(tmp_path):
  w, h = Image.open(os.path.join(EXAMPLES, f"{STEM}.jpg")).size
  m = np.zeros((h, w), np.uint8)
  m[100, 120] = 255
  Image.fromarray(m).save(tmp_path / "dot.png")
  line = _one_error_line(*_cli(_rec_args(tmp_path / "out", hm=tmp_path / "dot.png"))[::2])
  assert "dot.png" in line and f"only 1 pixel of {w}x{h}" in line
  m[100:108, 120:128] = 255  # 64 pixels: accepted (reaches the missing model).
  Image.fromarray(m).save(tmp_path / "patch.png")
  line = _one_error_line(*_cli(_rec_args(tmp_path / "out", hm=tmp_path / "patch.png"))[::2])
  assert "model folder not found" in line


# ------------------------------------------------------------------------------------------------
# 1, 8. evaluate from any folder; --limit beyond the split.
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def one_frame_data(tmp_path_factory):
  from scorehoi_jax.data.synthetic_hoi import prepare_synthetic
  out = str(tmp_path_factory.mktemp("data1"))
  prepare_synthetic(out, num=1, seed=3, resolution=32, workers=1, progress=False)  # train: 1 frame.
  return out


def _evaluate_until_the_model_runs(monkeypatch, argv):
  """Run `scorehoi evaluate` up to the evaluation itself; returns (code, stderr, evaluate's kwargs)."""
  from scorehoi_jax.errors import ScoreHOIError
  from scorehoi_jax.evaluation import evaluator
  seen = {}

  def stub(model, data_dir, split, methods, **kwargs):
    seen.update(kwargs, split=split)
    raise ScoreHOIError("stopped before evaluating")

  monkeypatch.setattr(evaluator, "evaluate", stub)
  code, _, stderr = _cli(argv)
  return code, stderr, seen


def test_evaluate_without_config_works_from_any_folder(one_frame_data, tmp_path, monkeypatch):
  from scorehoi_jax.config import load_config
  monkeypatch.chdir(tmp_path)  # Not the repository.
  code, stderr, seen = _evaluate_until_the_model_runs(
      monkeypatch, ["evaluate", "--data", one_frame_data, "--split", "train", "--out", str(tmp_path / "m")])
  assert code == 2 and "stopped before evaluating" in stderr, stderr
  want = load_config(os.path.join(ROOT, "scorehoi_jax", "configs", "refine_paper.py")).to_dict()
  assert seen["refine_config"].to_dict() == want


def test_evaluate_warns_when_limit_exceeds_the_split(one_frame_data, tmp_path, monkeypatch):
  code, stderr, seen = _evaluate_until_the_model_runs(
      monkeypatch, ["evaluate", "--data", one_frame_data, "--split", "train", "--limit", "50",
                    "--out", str(tmp_path / "m")])
  assert "warning: --limit 50 exceeds the 1 frame of split 'train'; evaluating all 1." in stderr, stderr
  assert seen["limit"] == 50
  _, stderr, _ = _evaluate_until_the_model_runs(
      monkeypatch, ["evaluate", "--data", one_frame_data, "--split", "train", "--limit", "1",
                    "--out", str(tmp_path / "m")])
  assert "warning" not in stderr, stderr


# ------------------------------------------------------------------------------------------------
# 9. A diverging frame inside a batch.
# ------------------------------------------------------------------------------------------------

def _folder_inputs(root, far_lift_box=False):
  """hold_ball and lift_box; with far_lift_box, lift_box sits in the corner of a 4x larger frame."""
  for sub in ("img", "hm", "om"):
    os.makedirs(root / sub)
  for s in ("hold_ball", "lift_box"):
    for sub, src in (("img", f"{s}.jpg"), ("hm", f"{s}_human.png"), ("om", f"{s}_object.png")):
      im = Image.open(os.path.join(EXAMPLES, src))
      if far_lift_box and s == "lift_box":
        canvas = Image.new(im.mode, (4 * im.width, 4 * im.height))
        canvas.paste(im, (0, 0))
        im = canvas
      im.save(root / sub / f"{s}.png")  # PNG: lossless, so both runs see the same hold_ball pixels.
  return ["--image", str(root / "img"), "--human-mask", str(root / "hm"), "--object-mask", str(root / "om")]


def test_a_diverging_frame_is_named_and_its_batch_mates_are_unaffected(tmp_path, monkeypatch, fast_compile):
  """The refinement is wrapped so that a frame whose crop focal length is 4x the others' (lift_box pasted
  into a 4x larger frame: default focal max(H, W)) diverges: its x_init becomes inf inside the compiled
  batch. One compile serves the clean and the diverging run (same shapes, the wrapper in both), so
  hold_ball, batched with lift_box each time, must come out the same whether lift_box diverges or not."""
  import dataclasses

  import jax.numpy as jnp

  from scorehoi_jax import reconstruct
  from scorehoi_jax import reconstruct_io as rio
  from scorehoi_jax.objects import get_object
  sys.path.insert(0, os.path.dirname(__file__))
  from tiny_model import write_tiny_model
  model = write_tiny_model(str(tmp_path / "tiny"))
  clean_args = _folder_inputs(tmp_path / "in")
  bad_args = _folder_inputs(tmp_path / "in2", far_lift_box=True)
  # The focal lengths the network sees (crop coordinates), to set the trigger between them.
  size = int(json.load(open(os.path.join(model, "model.json")))["config"]["data"]["image_size"])
  tmpl = get_object("basketball").template
  focal = {(run, f.name): float(rio.load_frame(f, size, tmpl)[0]["focal"][0])
           for run, a in (("clean", clean_args), ("bad", bad_args))
           for f in rio.find_frames(a[1], a[3], a[5], "basketball")}
  normal = max(v for k, v in focal.items() if k != ("bad", "lift_box"))
  assert focal["bad", "lift_box"] > 2 * normal, focal
  trigger = float(np.sqrt(normal * focal["bad", "lift_box"]))
  real_refine = reconstruct.refine

  def diverging(den, inputs, *args, **kwargs):
    blow_up = (inputs.aux["focal"][:, 0] > trigger)[:, None]
    x = jnp.where(blow_up, inputs.x_init * jnp.inf, inputs.x_init)
    return real_refine(den, dataclasses.replace(inputs, x_init=x), *args, **kwargs)

  monkeypatch.setattr(reconstruct, "refine", diverging)
  rio._cached_reconstructor.cache_clear()  # Built (and compiled) afresh, with the wrapper.
  common = ["reconstruct", "--object", "basketball", "--batch", "2", "--quiet", "--checkpoint", model,
            "--config", os.path.join(ROOT, "scorehoi_jax", "configs", "refine_paper.py") + ":runlocal"]
  try:
    code, _, stderr = _cli(common + clean_args + ["--out", str(tmp_path / "clean")])
    assert code == 0, stderr
    code, _, stderr = _cli(common + bad_args + ["--out", str(tmp_path / "bad")])
  finally:
    rio._cached_reconstructor.cache_clear()
  line = _one_error_line(code, stderr)
  assert "frame 'lift_box'" in line and "not finite" in line and "hold_ball" not in line
  assert sorted(os.listdir(tmp_path / "bad")) == ["hold_ball"]
  clean, bad = (np.load(tmp_path / d / "hold_ball" / "params.npz") for d in ("clean", "bad"))
  for k in clean.files:
    if clean[k].dtype.kind == "f":
      np.testing.assert_allclose(bad[k], clean[k], rtol=1e-6, atol=1e-7, err_msg=k)
  for f in ("human.ply", "object.ply"):
    np.testing.assert_allclose(trimesh.load(tmp_path / "bad" / "hold_ball" / f, process=False).vertices,
                               trimesh.load(tmp_path / "clean" / "hold_ball" / f, process=False).vertices,
                               rtol=1e-6, atol=1e-7)
