"""Files in, files out: the layer of ``scorehoi reconstruct`` and ``scorehoi demo`` over reconstruct.py.

Inputs: an RGB image, a human mask and an object mask (any greyscale image,
> 127 = inside, same size as the image), the camera focal length (default
max(H, W) pixels, principal point at the centre; data.pipeline.load_user_record)
and the object: a library name (``objects.list_objects()``; an instance seed
picks a size-jittered instance) or a mesh file (.obj/.ply/.glb/…, metres, any
frame; no category id needed). Folder mode: three folders whose files match by
stem (``0001.jpg`` ↔ ``0001.png`` in each mask folder); every frame runs in
fixed-size batches through ONE compiled function (the last batch is padded).

Outputs, per frame (``OUT/`` for one image, ``OUT/<stem>/`` in folder mode),
written atomically (all frames or nothing, except that a frame whose result is
NaN/inf is left out and named in the error; an existing OUT is refused unless
``overwrite``). Main result = the ScoreHOI-refined estimate x^N; with ``crformer=True``
(``--crformer``) the CRFormer's correction on top of it (paper §3.4 end; the released code
disables it, and on our synthetic test split it lowers contact F1 from 0.52 to 0.45 and raises
CD human from 9.9 to 10.0 cm for the shipped model: experiments/results/ablation_synthetic.md,
rows "refined" and "final"):

  human.ply, object.ply            meshes in the camera frame (OpenCV axes: x right, y down, z forward), metres
  human_initial.ply, object_initial.ply   the regressor's estimate (before refinement), same frame
  scene.glb                        both final meshes, coloured, in glTF's axes (x right, y up, z backward):
                                   (x, −y, −z) of the .ply files, so viewers show the scene upright
  params.npz                       smplx-style parameters (below)
  contacts.npz                     predicted contact probabilities (below)
  overlay.png                      input | meshes over the input | side view | contact heat map

params.npz (body parameters of the refined estimate; hand rotations absolute,
i.e. smplx ``flat_hand_mean=True``; axis-angle in radians):
  global_orient [3] (camera axes), body_pose [63], left_hand_pose [45], right_hand_pose [45], betas [10],
  transl [3] = cam_trans − J_pelvis(betas): J_pelvis is the pelvis joint of the shaped REST pose (pose
    independent: the root rotates about it). An SMPL-H forward in smplx's convention,
    verts = LBS(pose, betas) + transl, then puts the pelvis at cam_trans;
  vertex_offsets [V, 3]: the CRFormer's correction (its offsets at the 431 guidance vertices spread to
    every vertex; zero without --crformer). human.ply = LBS(pose, betas) + transl + vertex_offsets exactly;
  object_R [3, 3], object_t [3]: object.ply = mesh @ object_R.T + object_t (canonical frame → camera);
  object_name, object_seed (−1: none), cam_trans [3] (pelvis in the camera frame), focal [2], princpt [2]
    (pixels of the input image), image_size [2] = (width, height), flat_hand_mean = True.

contacts.npz: human_contact [V] (per full-mesh vertex, upsampled from the 431 guidance vertices the
ContactFormer predicts), human_contact_guidance [431], guidance_vertex_ids [431], object_contact [64]
and object_floor_contact [64] on the object's template points, object_template [64, 3] (canonical
frame) and object_template_camera [64, 3] (posed like object.ply).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from scorehoi_jax.errors import ScoreHOIError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_PANEL_MAX_SIDE = 512  # Overlay panels of large photos are drawn at most this big (rendering cost).


class ReconstructError(ScoreHOIError):
  """Inputs of ``scorehoi reconstruct`` that cannot be used (the message names the file)."""


class NonFiniteResult(ReconstructError):
  """Some frames' reconstructions are NaN/inf; ``folders`` holds the frames that were written."""

  def __init__(self, message: str, folders: list[str]):
    super().__init__(message)
    self.folders = folders


@dataclasses.dataclass(frozen=True)
class Frame:
  """One input: image and mask files, the object and optional intrinsics (pixels)."""
  name: str
  image: str
  human_mask: str
  object_mask: str
  object: str  # A library name or a mesh file.
  object_seed: int | None = None
  object_scale: float | str | None = None  # Mesh files: number or unit ('m', 'cm', 'mm').
  focal: tuple | None = None
  princpt: tuple | None = None


# ------------------------------------------------------------------------------------------------
# Inputs.
# ------------------------------------------------------------------------------------------------

def _images_by_stem(folder: str, what: str) -> dict[str, str]:
  files = {}
  for f in sorted(os.listdir(folder)):
    stem, ext = os.path.splitext(f)
    if ext.lower() in IMAGE_EXTENSIONS and not f.startswith("."):
      if stem in files:
        raise ReconstructError(f"{folder}: two {what} files share the stem {stem!r} "
                               f"({os.path.basename(files[stem])}, {f}).")
      files[stem] = os.path.join(folder, f)
  return files


def _focal_pair(focal) -> tuple | None:
  if focal is None:
    return None
  f = np.atleast_1d(np.asarray(focal, np.float64)).ravel()
  if f.size == 1:
    f = np.repeat(f, 2)
  if f.size != 2 or not np.all(np.isfinite(f)) or np.any(f <= 0):
    raise ReconstructError(f"focal length {focal!r}: expected one or two positive numbers (pixels).")
  return (float(f[0]), float(f[1]))


def _princpt_pair(princpt) -> tuple | None:
  if princpt is None:
    return None
  c = np.asarray(princpt, np.float64).ravel()
  if c.size != 2 or not np.all(np.isfinite(c)):
    raise ReconstructError(f"principal point {princpt!r}: expected two numbers CX CY (pixels).")
  return (float(c[0]), float(c[1]))


def _frame_object(image_dir: str, stem: str) -> str:
  """The object name of a frame from ``obj_name/<stem>.json`` next to the image folder (CONTHO's demo layout:
  ``{"obj_name": ["chairblack"]}``; a plain string is accepted too)."""
  import json
  path = os.path.join(os.path.dirname(os.path.abspath(image_dir)), "obj_name", stem + ".json")
  if not os.path.exists(path):
    raise ReconstructError(f"{path}: no object for frame {stem!r} (pass --object, a manifest, or put "
                           '{"obj_name": ["NAME"]} in obj_name/<stem>.json next to the image folder).')
  try:
    with open(path) as f:
      value = json.load(f)
    value = value["obj_name"] if isinstance(value, dict) else value
    value = value[0] if isinstance(value, list) else value
    if not isinstance(value, str) or not value:
      raise ValueError
  except (OSError, ValueError, KeyError, IndexError, TypeError):
    raise ReconstructError(f'{path}: expected {{"obj_name": ["NAME"]}}.') from None
  return value


def find_frames(image: str, human_mask: str, object_mask: str, obj: str | None, *, object_seed: int | None = None,
                object_scale=None, focal=None, princpt=None) -> list[Frame]:
  """Frames of one image (three files) or of three folders matched by file stem.

  obj: the object of every frame; in folder mode None reads each frame's from
  ``obj_name/<stem>.json`` next to the image folder (CONTHO's layout).
  """
  kw = dict(object_seed=object_seed, object_scale=object_scale, focal=_focal_pair(focal),
            princpt=_princpt_pair(princpt))
  dirs = [os.path.isdir(p) for p in (image, human_mask, object_mask)]
  if not any(dirs):
    if obj is None:
      raise ReconstructError("one image needs --object (a library name or a mesh file).")
    stem = os.path.splitext(os.path.basename(image))[0] or "frame"
    return [Frame(stem, image, human_mask, object_mask, object=obj, **kw)]
  if not all(dirs):
    which = [n for n, d in zip(("--image", "--human-mask", "--object-mask"), dirs) if not d]
    raise ReconstructError(f"folder mode needs three folders, but {', '.join(which)} "
                           f"{'is not a folder' if len(which) == 1 else 'are not folders'}.")
  images = _images_by_stem(image, "image")
  if not images:
    raise ReconstructError(f"{image}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder.")
  masks = [_images_by_stem(human_mask, "human mask"), _images_by_stem(object_mask, "object mask")]
  for folder, found, what in zip((human_mask, object_mask), masks, ("human mask", "object mask")):
    missing = [s for s in images if s not in found]
    if missing:
      more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
      raise ReconstructError(f"{folder}: no {what} for image {images[missing[0]]} (stem {missing[0]!r}){more}.")
  return [Frame(s, images[s], masks[0][s], masks[1][s], object=obj if obj is not None else _frame_object(image, s),
                **kw) for s in images]


MANIFEST_COLUMNS = ("image", "human_mask", "object_mask", "object", "object_seed", "focal", "princpt")


def read_manifest(path: str, *, object_scale=None) -> list[Frame]:
  """Frames of a manifest: CSV (a header row) or JSON (a list of objects), one frame each.

  Fields: image, human_mask, object_mask (paths, relative to the manifest's
  folder), object (library name or mesh file), and optionally object_seed,
  focal (F, or FX,FY / [FX, FY]) and princpt (CX,CY / [CX, CY]); in CSV a
  pair is written "FX,FY" in one quoted cell or "FX FY". Frames are named by
  the image's stem.
  """
  import csv
  import json
  if not os.path.isfile(path):
    raise ReconstructError(f"{path}: manifest not found.")
  try:
    if path.lower().endswith(".json"):
      with open(path) as f:
        rows = json.load(f)
      if isinstance(rows, dict):
        rows = rows.get("frames")
      if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ReconstructError(f'{path}: expected a JSON list of frames (or {{"frames": [...]}}).')
    else:
      with open(path, newline="") as f:
        rows = [{k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in r.items() if k}
                for r in csv.DictReader(f)]
  except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as e:
    raise ReconstructError(f"{path}: cannot read the manifest ({e}).") from None
  if not rows:
    raise ReconstructError(f"{path}: the manifest lists no frames.")
  base = os.path.dirname(os.path.abspath(path))

  def numbers(v, what, line):
    if v is None or v == "":
      return None
    try:
      vals = [float(x) for x in (v.replace(",", " ").split() if isinstance(v, str) else np.ravel(v))]
    except (TypeError, ValueError):
      raise ReconstructError(f"{path}: frame {line}: {what} {v!r} is not a number or pair.") from None
    return vals

  frames = []
  for i, r in enumerate(rows, 1):
    missing = [k for k in ("image", "human_mask", "object_mask", "object") if not r.get(k)]
    if missing:
      raise ReconstructError(f"{path}: frame {i} lacks {', '.join(missing)} "
                             f"(columns: {', '.join(MANIFEST_COLUMNS)}).")
    files = [os.path.join(base, os.path.expanduser(str(r[k]))) for k in ("image", "human_mask", "object_mask")]
    seed = r.get("object_seed")
    try:
      seed = None if seed in (None, "") else int(seed)
    except (TypeError, ValueError):
      raise ReconstructError(f"{path}: frame {i}: object_seed {seed!r} is not an integer.") from None
    obj = str(r["object"])
    if os.path.splitext(obj)[1] and not os.path.isabs(obj):
      obj = os.path.join(base, obj)  # A mesh file, relative to the manifest.
    stem = os.path.splitext(os.path.basename(files[0]))[0] or f"frame{i}"
    frames.append(Frame(stem, *files, object=obj, object_seed=seed, object_scale=object_scale,
                        focal=_focal_pair(numbers(r.get("focal"), "focal", i)),
                        princpt=_princpt_pair(numbers(r.get("princpt"), "princpt", i))))
  return frames


def resolve_object(spec: str, seed: int | None = None, scale=None):
  """The ObjectTemplate of a library name or mesh file; a ReconstructError otherwise."""
  from scorehoi_jax.objects import ObjectError, list_objects, load_object
  if not os.path.splitext(spec)[1] and not os.path.exists(spec) and spec not in list_objects():
    raise ReconstructError(f"unknown object {spec!r}: neither a mesh file nor a library object; "
                           f"library objects: {', '.join(list_objects())}.")
  try:
    return load_object(spec, scale=scale, seed=seed)
  except (ObjectError, KeyError) as e:
    raise ReconstructError(str(e).strip("'\"")) from None


def load_frame(frame: Frame, image_size: int, template: np.ndarray):
  """(example, record) of one frame, cropped at the model's input size (the training code path)."""
  from scorehoi_jax.data import pipeline
  record = pipeline.load_user_record(frame.image, frame.human_mask, frame.object_mask, focal=frame.focal,
                                     princpt=frame.princpt, object_template=template)
  example, _ = pipeline.make_example(record, pipeline.PipelineConfig(size=image_size))
  return example, record


# ------------------------------------------------------------------------------------------------
# The model (compiled once per model + settings in a process).
# ------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=2)
def _cached_reconstructor(model_path: str, stamp: float, refine_config: str, body_model: str | None):
  del stamp  # Part of the key only: a re-exported model folder is reloaded.
  from scorehoi_jax.config import load_config
  from scorehoi_jax.model_store import load_model
  from scorehoi_jax.reconstruct import Reconstructor
  return Reconstructor(load_model(model_path), load_config(refine_config), body_model=body_model)


def get_reconstructor(checkpoint: str | None = None, refine_config=None, body_model: str | None = None):
  """A Reconstructor for a model folder (default: the shipped model) and a refine config.

  refine_config: a spec (``"refine_paper:runlocal"``; default refine_reconstruct,
  the paper's settings plus the mask evidence) or a ConfigDict. Memoised for specs, so repeated calls in
  one process (a notebook, the tests) reuse the compiled function.
  """
  from scorehoi_jax.model_store import ModelError, default_model_path, load_model
  if refine_config is not None and not isinstance(refine_config, str):
    from scorehoi_jax.reconstruct import Reconstructor
    return Reconstructor(load_model(checkpoint), refine_config, body_model=body_model)
  path = os.path.abspath(checkpoint or default_model_path())
  weights = os.path.join(path, "variables.npz")
  if not os.path.isdir(path):
    raise ModelError(f"{path}: model folder not found" +
                     ("" if checkpoint else " (the shipped model is missing from this installation)") + ".")
  stamp = os.path.getmtime(weights) if os.path.exists(weights) else 0.0
  return _cached_reconstructor(path, stamp, refine_config or "refine_reconstruct", body_model)


def smplx_transl(body, betas, cam_trans):
  """transl of smplx's convention (verts = LBS(pose, betas) + transl) that puts the pelvis at cam_trans.

  LBS rotates the root about the pelvis joint of the shaped rest pose, so the
  posed pelvis is J_pelvis(betas) whatever the pose: transl = cam_trans − J_pelvis(betas).
  """
  from scorehoi_jax.body import shaped_rest
  return cam_trans - shaped_rest(body, betas)[1][..., 0, :]


@functools.lru_cache(maxsize=4)
def _make_post(rec):
  """``post(x_regressor, x_refined, CRFormer points or None, cam_trans, object R, object t, camera_rot)``, one call:
  the model's results in the crop's virtual camera → full meshes and parameters in the image camera.

  Object R and t are relative to the pelvis (None: x_refined's). camera_rot [B, 3, 3] turns the virtual
  camera of each crop into the image camera (data.pipeline, "Crop-aware camera"): it rotates the global
  orientation, every pelvis-centred vector, the pelvis position and the object pose. The full body model
  and the betas bounds are arguments, not constants, so the program stored by rec.program's cache
  (export_cache.py) stays small and is keyed by their shapes; the upsampling indices and weights are in its key.
  """
  from scorehoi_jax.diffusion.xpack import decode_params
  from scorehoi_jax.reconstruct import full_vertices, move_to_guidance_points
  hand_mean = rec.settings.hand_mean

  def post(full, stats, x_reg, x_ref, final_points, cam_trans, obj_rot, obj_trans, camera_rot):
    bodies = dataclasses.replace(rec.bodies, full=full)
    turn = lambda v: jnp.einsum("bij,b...j->b...i", camera_rot, v)  # Vectors [B, ..., 3].
    turn_mat = lambda m: jnp.einsum("bij,bjk->bik", camera_rot, m)  # Rotations [B, 3, 3].
    rot0, betas0, obj_rot0, obj_trans0 = decode_params(x_reg, stats, full, hand_mean)
    rot, betas, ref_obj_rot, ref_obj_trans = decode_params(x_ref, stats, full, hand_mean)
    if obj_rot is None:  # Decoded here, in the one compiled call, rather than op by op outside it.
      obj_rot, obj_trans = ref_obj_rot, ref_obj_trans
    plain = full_vertices(bodies, rot, betas)
    final = plain if final_points is None else move_to_guidance_points(bodies, plain, final_points)
    cam = turn(cam_trans)
    return dict(initial_vertices=turn(full_vertices(bodies, rot0, betas0)), initial_obj_rot=turn_mat(obj_rot0),
                initial_obj_trans=turn(obj_trans0), rotmats=rot.at[:, 0].set(turn_mat(rot[:, 0])), betas=betas,
                vertex_offsets=turn(final - plain), transl=smplx_transl(full, betas, cam),
                vertices=turn(final), cam_trans=cam, obj_rot=turn_mat(obj_rot), obj_trans=turn(obj_trans))

  if rec.program is None:
    fn = jax.jit(post)
  else:
    from scorehoi_jax.export_cache import CachedProgram, array_digest
    key = dict(hand_mean=hand_mean, upsampling=array_digest(rec.bodies.indices, rec.bodies.up_idx, rec.bodies.up_w))
    fn = CachedProgram(post, rec.program.folder, "post", key)
  return functools.partial(fn, rec.bodies.full, rec.stats)


# ------------------------------------------------------------------------------------------------
# Running.
# ------------------------------------------------------------------------------------------------

def reconstruct_frames(frames: Sequence[Frame], out: str, *, checkpoint: str | None = None,
                       refine_config: str | None = None, body_model: str | None = None, batch_size: int = 4,
                       overwrite: bool = False, progress: bool = True, per_frame_dirs: bool | None = None,
                       reconstructor=None, crformer: bool = False) -> list[str]:
  """Reconstruct every frame and write its files; returns the per-frame output folders.

  Args:
    frames: inputs (``find_frames``, or built by hand with per-frame objects as the demo does).
    out: output folder (refused if it exists unless ``overwrite``).
    checkpoint: model folder (default: the shipped model, scorehoi_jax/assets/model).
    refine_config: refine config spec or ConfigDict (default refine_reconstruct: paper settings + mask evidence).
    body_model: SMPL-H-layout body model file (default: the one the model was trained with).
    batch_size: frames per compiled call (the last batch is padded; one image runs alone).
    per_frame_dirs: OUT/<name>/ per frame (default: when there is more than one frame).
    reconstructor: a prebuilt Reconstructor (overrides checkpoint/refine_config/body_model).
    crformer: apply the CRFormer's correction to the refined estimate (default off, see above).

  Raises:
    NonFiniteResult: a frame's reconstruction has NaN/inf: the other frames are written (unless
      none is left), the message names the frame(s) without files.
  """
  from scorehoi_jax.data import pipeline
  from scorehoi_jax.objects import stack_geometries
  from scorehoi_jax.outputs import atomic_output_dir, check_output

  frames = list(frames)
  if not frames:
    raise ReconstructError("no input frames.")
  names = [f.name for f in frames]
  if len(set(names)) != len(names):
    raise ReconstructError(f"two input frames share a name: {sorted(n for n in names if names.count(n) > 1)[0]!r}.")
  if batch_size < 1:
    raise ReconstructError(f"--batch must be at least 1, got {batch_size}.")
  out = check_output(out, overwrite)  # Exists, unwritable, stale temporaries: before the slow part.
  per_frame_dirs = len(frames) > 1 if per_frame_dirs is None else per_frame_dirs
  # Check every input before the (slow) model: a bad mask in frame 900 should not cost a run.
  objects = {}
  for f in frames:
    key = (f.object, f.object_seed, f.object_scale)
    if key not in objects:
      objects[key] = resolve_object(*key)
    pipeline.load_user_record(f.image, f.human_mask, f.object_mask, focal=f.focal, princpt=f.princpt)
  rec = reconstructor or get_reconstructor(checkpoint, refine_config, body_model)
  post = _make_post(rec)
  # Two shapes only, whatever the folder: 1 for a lone image, else the fixed batch (the last batch padded).
  # min(batch, frames) would compile a new program for every small folder.
  bsz = 1 if len(frames) == 1 else batch_size
  dirs, failed = [], {}
  with atomic_output_dir(out, overwrite=overwrite) as tmp:
    bar = _progress(len(frames), progress)
    for start in range(0, len(frames), bsz):
      chunk = frames[start:start + bsz]
      objs = [objects[(f.object, f.object_seed, f.object_scale)] for f in chunk]
      loaded = [load_frame(f, rec.image_size, o.template) for f, o in zip(chunk, objs)]
      # Pad with copies of a real frame (not zeros): every row stays a well-posed problem.
      batch = pipeline.stack([e for e, _ in loaded] + [loaded[0][0]] * (bsz - len(chunk)))
      geoms = [o.geometry(host=True) for o in objs]
      stages = rec(batch, stack_geometries(geoms + [geoms[0]] * (bsz - len(chunk))))
      if crformer:
        obj_rot, obj_trans, points = stages.final_obj_rotmat, stages.final_obj_trans, stages.final_human_points
      else:
        obj_rot = obj_trans = points = None  # x_refined's own object pose (post decodes it).
      res = jax.device_get(dict(
          p_h=stages.contacts[0], p_o=stages.contacts[1], p_of=stages.contacts[2],
          **post(stages.x_regressor, stages.x_refined, points, stages.cam_trans, obj_rot, obj_trans,
                 np.asarray(batch["camera_rot"], np.float32))))
      for i, (f, o, (_, record)) in enumerate(zip(chunk, objs, loaded)):
        frame_res = {k: np.asarray(v[i]) for k, v in res.items()}
        bad = sorted(k for k, v in frame_res.items() if not np.all(np.isfinite(v)))
        bar.update(1)
        if bad:  # Rows are independent (per-sample losses and gradients): only this frame is lost.
          failed[f.name] = bad
          continue
        folder = os.path.join(tmp, f.name) if per_frame_dirs else tmp
        os.makedirs(folder, exist_ok=True)
        write_frame(folder, frame_res, f, o, record, rec.bodies)
        dirs.append(os.path.join(out, f.name) if per_frame_dirs else out)
    bar.close()
    if len(failed) == len(frames):  # Nothing to keep: no output folder at all.
      raise NonFiniteResult(_non_finite_message(failed, ""), dirs)
  if failed:  # The other frames are complete and in place; the run still fails, naming the lost ones.
    raise NonFiniteResult(_non_finite_message(failed, f"; the other {len(dirs)} frame{'s' * (len(dirs) != 1)} "
                                                      f"are written to {out}"), dirs)
  return dirs


def _non_finite_message(failed: dict, rest: str) -> str:
  names = list(failed)
  first = f"{names[0]!r}" + (f" and {len(names) - 1} more ({', '.join(map(repr, names[1:4]))}"
                             f"{', ...' if len(names) > 4 else ''})" if len(names) > 1 else "")
  return (f"frame {first}: the reconstruction is not finite (NaN or inf in {', '.join(failed[names[0]])}); "
          f"no files were written for {'it' if len(names) == 1 else 'them'}{rest}.")


def _progress(total: int, enabled: bool):
  from tqdm.auto import tqdm
  return tqdm(total=total, desc="reconstruct", unit="frame", disable=not enabled or total < 2, dynamic_ncols=True)


def reconstruct(image: str | None, human_mask: str | None, object_mask: str | None, obj: str | None, out: str, *,
                object_seed: int | None = None, object_scale=None, focal=None, princpt=None,
                manifest: str | None = None, **kwargs) -> list[str]:
  """One image (three files), three folders, or a manifest → result folders (see the module docstring).

  obj None in folder mode: per-frame objects from ``obj_name/<stem>.json``.
  manifest: a CSV/JSON file of frames (``read_manifest``), instead of image/masks/obj.
  kwargs go to ``reconstruct_frames`` (checkpoint, refine_config, batch_size, overwrite, …).
  """
  if manifest is not None:
    if any(v is not None for v in (image, human_mask, object_mask, obj)):
      raise ReconstructError("--manifest lists the frames: leave out --image, --human-mask, --object-mask, --object.")
    frames = read_manifest(manifest, object_scale=object_scale)
    over = dict(focal=_focal_pair(focal), princpt=_princpt_pair(princpt))
    frames = [dataclasses.replace(f, **{k: v for k, v in over.items() if v is not None and getattr(f, k) is None})
              for f in frames]
    kwargs.setdefault("per_frame_dirs", True)
    return reconstruct_frames(frames, out, **kwargs)
  missing = [n for n, v in (("--image", image), ("--human-mask", human_mask), ("--object-mask", object_mask))
             if v is None]
  if missing:
    raise ReconstructError(f"{', '.join(missing)} missing (or give --manifest).")
  frames = find_frames(image, human_mask, object_mask, obj, object_seed=object_seed, object_scale=object_scale,
                       focal=focal, princpt=princpt)
  kwargs.setdefault("per_frame_dirs", os.path.isdir(image))  # Folder mode: OUT/<stem>/ even for one image.
  return reconstruct_frames(frames, out, **kwargs)


# ------------------------------------------------------------------------------------------------
# Writing one frame.
# ------------------------------------------------------------------------------------------------

def _posed(vertices, rot, trans) -> np.ndarray:
  return np.asarray(vertices, np.float64) @ np.asarray(rot, np.float64).T + np.asarray(trans, np.float64)


def _write_mesh(path: str, vertices, faces, color=None):
  import trimesh
  mesh = trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(faces), process=False)
  if color is not None:
    mesh.visual.vertex_colors = np.clip(np.rint(np.broadcast_to(color, (len(vertices), 3)) * 255), 0, 255).astype(
        np.uint8)
  mesh.export(path)
  return mesh


def smplx_params(rotmats, betas) -> dict:
  """Rotation matrices [52, 3, 3] → smplx's SMPL-H argument names (axis-angle, flat_hand_mean=True)."""
  from scipy.spatial.transform import Rotation
  aa = Rotation.from_matrix(np.asarray(rotmats, np.float64)).as_rotvec().astype(np.float32)
  return dict(global_orient=aa[0], body_pose=aa[1:22].reshape(-1), left_hand_pose=aa[22:37].reshape(-1),
              right_hand_pose=aa[37:52].reshape(-1), betas=np.asarray(betas, np.float32))


def write_frame(folder: str, res: dict, frame: Frame, obj, record: dict, bodies) -> None:
  """All files of one frame (``res``: this frame's slice of the batch results, pelvis-centred)."""
  from scorehoi_jax.render.visualize import HUMAN_COLOR, OBJECT_COLOR
  faces = np.asarray(bodies.full.faces)
  cam = np.asarray(res["cam_trans"], np.float64)
  human = np.asarray(res["vertices"], np.float64) + cam
  obj_t = cam + res["obj_trans"]
  obj_verts = _posed(obj.vertices, res["obj_rot"], obj_t)
  _write_mesh(os.path.join(folder, "human.ply"), human, faces)
  _write_mesh(os.path.join(folder, "object.ply"), obj_verts, obj.faces)
  _write_mesh(os.path.join(folder, "human_initial.ply"), np.asarray(res["initial_vertices"]) + cam, faces)
  _write_mesh(os.path.join(folder, "object_initial.ply"),
              _posed(obj.vertices, res["initial_obj_rot"], cam + res["initial_obj_trans"]), obj.faces)
  _write_glb(os.path.join(folder, "scene.glb"), [(human, faces, HUMAN_COLOR), (obj_verts, obj.faces, OBJECT_COLOR)])

  h, w = record["image"].shape[:2]
  np.savez(os.path.join(folder, "params.npz"), **smplx_params(res["rotmats"], res["betas"]),
           transl=np.asarray(res["transl"], np.float32), vertex_offsets=res["vertex_offsets"].astype(np.float32),
           object_R=np.asarray(res["obj_rot"], np.float32), object_t=obj_t.astype(np.float32),
           object_name=np.asarray(frame.object),
           object_seed=np.asarray(-1 if frame.object_seed is None else frame.object_seed, np.int64),
           cam_trans=cam.astype(np.float32), focal=np.asarray(record["focal"], np.float32),
           princpt=np.asarray(record["princpt"], np.float32), image_size=np.asarray([w, h], np.int32),
           flat_hand_mean=np.asarray(True))

  p_h = np.asarray(res["p_h"], np.float64)
  human_contact = np.einsum("vk,vk->v", p_h[bodies.up_idx], bodies.up_w)
  template_cam = _posed(obj.template, res["obj_rot"], obj_t)
  np.savez(os.path.join(folder, "contacts.npz"), human_contact=human_contact.astype(np.float32),
           human_contact_guidance=p_h.astype(np.float32), guidance_vertex_ids=np.asarray(bodies.indices, np.int32),
           object_contact=np.asarray(res["p_o"], np.float32), object_floor_contact=np.asarray(res["p_of"], np.float32),
           object_template=np.asarray(obj.template, np.float32), object_template_camera=template_cam.astype(np.float32))

  from PIL import Image
  nearest = np.argmin(np.linalg.norm(obj_verts[:, None] - template_cam[None], axis=-1), axis=1)
  panel = overlay_panel(record, (human, faces), (obj_verts, obj.faces), human_contact,
                        np.asarray(res["p_o"])[nearest], up=_floor_normal(record, res))
  Image.fromarray(panel).save(os.path.join(folder, "overlay.png"))


def _write_glb(path: str, meshes):
  import trimesh
  flip = np.array([1.0, -1.0, -1.0])  # OpenCV camera axes → glTF's (y up, z towards the viewer).
  scene = trimesh.Scene()
  for k, (v, f, color) in enumerate(meshes):
    m = trimesh.Trimesh(np.asarray(v) * flip, np.asarray(f), process=False)
    m.visual.vertex_colors = np.tile(np.rint(np.asarray(color) * 255).astype(np.uint8), (len(v), 1))
    scene.add_geometry(m, geom_name=("human", "object")[k] if k < 2 else f"mesh{k}")
  scene.export(path)


def _floor_normal(record: dict, res: dict) -> np.ndarray:
  """The floor's upward normal in camera axes: the frame's ground plane where it has one, else the one the
  feet give (losses.estimate_ground_plane, the refinement's floor 'body')."""
  n = np.asarray(record.get("ground_plane", np.zeros(4)), np.float64).reshape(-1)[:3]
  if not np.linalg.norm(n) > 0.5:
    from scorehoi_jax.diffusion.losses import estimate_ground_plane
    n = np.asarray(estimate_ground_plane(np.asarray(res["vertices"], np.float32),
                                         np.asarray(res["rotmats"], np.float32)), np.float64)[:3]
  return -n if n[1] > 0 else n  # Up is −y in camera axes for any camera that is not upside down.


def overlay_panel(record: dict, human, obj, human_contact, object_contact, up=None) -> np.ndarray:
  """input | meshes over the input | side view | contact heat map (human and object), uint8 RGB.

  up: the floor's normal in camera axes; the side view turns about it (visualize.level), not about the
  camera's y axis, which would show the camera's pitch as a lean. None: the camera's y axis.
  """
  from PIL import Image
  from scorehoi_jax.render import Camera, Mesh
  from scorehoi_jax.render.visualize import (HUMAN_COLOR, OBJECT_COLOR, contact_colors, framed_view, heat_colors,
                                             hstack, overlay)
  image = np.asarray(record["image"])[..., :3]
  h, w = image.shape[:2]
  s = min(1.0, _PANEL_MAX_SIDE / max(h, w))
  if s < 1.0:
    image = np.asarray(Image.fromarray(image).resize((round(w * s), round(h * s)), Image.BILINEAR))
  hh, ww = image.shape[:2]
  # Pixel centres at integers: scaling the image by s maps p to s (p + 0.5) − 0.5.
  pp = (np.asarray(record["princpt"], np.float64) + 0.5) * np.array([ww / w, hh / h]) - 0.5
  cam = Camera(focal=tuple(np.asarray(record["focal"], np.float64) * np.array([ww / w, hh / h])),
               princpt=tuple(pp), width=ww, height=hh, near=0.01)
  plain = [Mesh(human[0], human[1], HUMAN_COLOR), Mesh(obj[0], obj[1], OBJECT_COLOR)]
  # Contact map: the body as a heat map (blue → red); the object grey → red, so it is not
  # mistaken for a body part of "no contact" blue.
  heat = [Mesh(human[0], human[1], heat_colors(human_contact)),
          Mesh(obj[0], obj[1], contact_colors(object_contact, base=(0.8, 0.8, 0.8)))]
  size = max(hh, 128)
  views = [(image, "input"), (overlay(image, plain, cam), "result"),
           (framed_view(plain, size, angle_deg=90.0, up=up), "side view"),
           (framed_view(heat, size, angle_deg=0.0), "contact (blue 0 - red 1)")]
  return hstack([_captioned(im, text) for im, text in views])


def _captioned(image: np.ndarray, text: str) -> np.ndarray:
  """The image under a white strip with ``text`` (PIL's built-in font: no font files needed)."""
  from PIL import Image, ImageDraw
  strip = Image.new("RGB", (image.shape[1], 16), (255, 255, 255))
  ImageDraw.Draw(strip).text((4, 2), text, fill=(40, 40, 40))
  return np.concatenate([np.asarray(strip), image], 0)


def output_files(folder: str) -> list[str]:
  """Paths of the files of one result folder (for printing)."""
  return [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if not f.startswith(".")]


__all__ = ["Frame", "ReconstructError", "find_frames", "read_manifest", "get_reconstructor", "load_frame", "output_files",
           "overlay_panel", "reconstruct", "reconstruct_frames", "resolve_object", "smplx_params",
           "write_frame"]
