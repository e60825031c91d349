"""The demo behind ``scorehoi demo``: image → human + object on the shipped examples, no downloads.

It runs ``scorehoi reconstruct`` (reconstruct_io.reconstruct_frames) on the
frames in ``scorehoi_jax/assets/examples`` (made by our synthetic generator,
data_prep/make_examples.py) with the shipped model (model_store.load_model())
and the embedded open body model, all frames in one compiled batch. Each
example names the exact object instance it shows (library name + instance
seed, examples.json), so the object template is the one in the picture.
"""

from __future__ import annotations

import json
import os

from scorehoi_jax.errors import ScoreHOIError


def examples_dir() -> str:
  return os.path.join(os.path.dirname(__file__), "assets", "examples")


def example_frames(folder: str | None = None) -> list:
  """The examples as reconstruct_io.Frame objects (object instance and camera from examples.json)."""
  from scorehoi_jax.reconstruct_io import Frame
  folder = folder or examples_dir()
  path = os.path.join(folder, "examples.json")
  try:
    with open(path) as f:
      info = json.load(f)
    return [Frame(e["name"], os.path.join(folder, e["image"]), os.path.join(folder, e["human_mask"]),
                  os.path.join(folder, e["object_mask"]), e["object"], int(e["object_seed"]),
                  focal=tuple(e["focal"]), princpt=tuple(e["princpt"])) for e in info["examples"]]
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ScoreHOIError(f"{path}: cannot read the demo examples ({type(e).__name__}: {e}); "
                        "rebuild them with data_prep/make_examples.py.") from None


def is_demo_output(folder: str, names) -> bool:
  """Whether ``folder`` holds nothing but per-example result folders (a demo's own output)."""
  folder = os.path.expanduser(folder)
  if not os.path.isdir(folder) or os.path.islink(folder):
    return False
  entries = os.listdir(folder)
  return all(e in set(names) and os.path.isdir(os.path.join(folder, e)) for e in entries)


def run_demo(out: str = "demo_out", overwrite: bool = False, checkpoint: str | None = None,
             refine_config: str | None = None, progress: bool = True) -> list[str]:
  """Reconstruct every example into ``out/<name>/``; returns those folders.

  A previous demo result in ``out`` is replaced (so the README's install-and-demo
  line can run twice); any other existing ``out`` is refused unless ``overwrite``.
  checkpoint: a model folder (default: the shipped model); refine_config: a
  refine config spec (default refine_reconstruct: the paper's settings plus the mask evidence).
  """
  from scorehoi_jax.reconstruct_io import reconstruct_frames
  frames = example_frames()
  overwrite = overwrite or is_demo_output(out, [f.name for f in frames])
  return reconstruct_frames(frames, out, checkpoint=checkpoint, refine_config=refine_config,
                            batch_size=len(frames), overwrite=overwrite, progress=progress, per_frame_dirs=True)
