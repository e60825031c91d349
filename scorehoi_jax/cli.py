"""The ``scorehoi`` command: parses arguments, calls the library, reports.

Every subcommand is a thin wrapper; the work lives in importable modules so a
notebook can do the same. User mistakes (``ScoreHOIError``) print one line and
exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import textwrap

from scorehoi_jax.errors import ScoreHOIError

_NOT_YET: dict = {}  # Subcommands announced but not yet available (none at the moment).

_REAL_DATASETS = ("behave", "intercap", "imhd")

_REFINE_CONFIG_HELP = ("refine config: a shipped name (refine_paper, the paper's settings and the default; "
                       "refine_compat, the released code's) or the path of your own config file")
# reconstruct and demo default to the paper's settings plus the user's masks.
_RECONSTRUCT_CONFIG_HELP = ("refine config: a shipped name (refine_reconstruct, the default: the paper's settings "
                            "plus the masks; refine_paper, the paper's alone; refine_compat, the released code's) "
                            "or the path of your own config file")


def _cmd_demo(args) -> int:
  from scorehoi_jax import jax_cache
  jax_cache.enable()
  from scorehoi_jax import demo
  from scorehoi_jax.reconstruct_io import output_files
  folders = demo.run_demo(args.out, overwrite=args.overwrite, checkpoint=args.checkpoint, refine_config=args.config)
  _print_outputs("demo", folders, output_files)
  return 0


def _print_outputs(what: str, folders, output_files) -> None:
  print(f"{what}: {len(folders)} result folder{'s' if len(folders) != 1 else ''}")
  for folder in folders[:4]:
    print(f"  {folder}/")
    for path in output_files(folder):
      print(f"    {os.path.basename(path)}")
  if len(folders) > 4:
    print(f"  ... and {len(folders) - 4} more folders like these")


def _cmd_reconstruct(args) -> int:
  from scorehoi_jax import jax_cache
  jax_cache.enable()
  from scorehoi_jax.reconstruct_io import output_files, reconstruct
  folders = reconstruct(args.image, args.human_mask, args.object_mask, args.object, args.out,
                        object_seed=args.object_seed, object_scale=args.object_scale, focal=args.focal,
                        princpt=args.princpt, manifest=args.manifest,
                        checkpoint=args.checkpoint, refine_config=args.config, body_model=args.body_model,
                        batch_size=args.batch, overwrite=args.overwrite, progress=not args.quiet,
                        crformer=args.crformer)
  _print_outputs("reconstruct", folders, output_files)
  return 0


def _focal_arg(text: str):
  try:
    values = [float(v) for v in text.split(",")]
  except ValueError:
    raise argparse.ArgumentTypeError(f"{text!r}: expected F or FX,FY in pixels") from None
  if len(values) not in (1, 2):
    raise argparse.ArgumentTypeError(f"{text!r}: expected F or FX,FY in pixels")
  return values


def _scale_arg(text: str):
  return text if text in ("m", "cm", "mm") else float(text)


def _add_demo_and_reconstruct(sub) -> None:
  from scorehoi_jax.jax_cache import HELP as cache_help
  demo = sub.add_parser("demo", help="reconstruct the shipped example images with the shipped model (no downloads)",
                        epilog=f"Cache: {cache_help}.")
  demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
  demo.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
  demo.add_argument("--checkpoint", default=None, help="model folder (default: the shipped model)")
  demo.add_argument("--config", default=None, help=_RECONSTRUCT_CONFIG_HELP)
  demo.set_defaults(func=_cmd_demo)
  rec = sub.add_parser("reconstruct", help="image + masks + object -> human and object meshes (ScoreHOI)",
                       description="One image (three files), three folders matched by file stem, or a manifest. "
                                   "Writes human.ply, object.ply, scene.glb, params.npz, contacts.npz, overlay.png "
                                   "(and the regressor's *_initial.ply) per image; see scorehoi_jax/reconstruct_io.py.",
                       epilog=f"Cache: {cache_help}.")
  rec.add_argument("--image", default=None, help="RGB image, or a folder of images")
  rec.add_argument("--human-mask", default=None, help="human mask (> 127 = inside), or a folder (same stems)")
  rec.add_argument("--object-mask", default=None, help="object mask, or a folder (same stems)")
  rec.add_argument("--object", default=None,
                   help="a library object name (list them with `scorehoi objects`; `--sheet objects.png` draws them) or a "
                        "mesh file (.obj/.ply/.glb, metres); in folder mode, if left "
                        'out, each frame\'s from obj_name/<stem>.json next to the image folder ({"obj_name": ["NAME"]}, '
                        "CONTHO's layout)")
  rec.add_argument("--manifest", default=None,
                   help="CSV (header row) or JSON list of frames with image, human_mask, object_mask, object and "
                        "optionally object_seed, focal, princpt (paths relative to the manifest)")
  rec.add_argument("--object-seed", type=int, default=None, help="library objects: the size-jittered instance")
  rec.add_argument("--object-scale", type=_scale_arg, default=None,
                   help="mesh files: a factor, or the file's unit (m, cm, mm)")
  rec.add_argument("--checkpoint", default=None, help="model folder (default: the shipped model)")
  rec.add_argument("--config", default=None, help=_RECONSTRUCT_CONFIG_HELP)
  rec.add_argument("--body-model", default=None, help="SMPL-H-layout body model (default: the model's own)")
  rec.add_argument("--focal", type=_focal_arg, default=None,
                   help="focal length in pixels, F or FX,FY (default: max(width, height))")
  rec.add_argument("--princpt", type=float, nargs=2, metavar=("CX", "CY"), default=None,
                   help="principal point in pixels (default: the image centre)")
  rec.add_argument("--batch", type=int, default=4,
                   help="images per compiled call (folder mode; the last batch is padded, so every folder "
                        "reuses one compiled program)")
  rec.add_argument("--out", default="reconstruction", help="output folder (default: reconstruction)")
  rec.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
  rec.add_argument("--quiet", action="store_true", help="no progress bar")
  rec.add_argument("--crformer", action="store_true",
                   help="apply the CRFormer's mesh correction after ScoreHOI (off by default: it lowers contact F1 "
                        "on our synthetic test split, experiments/results/ablation_synthetic.md)")
  rec.set_defaults(func=_cmd_reconstruct)


def _cmd_prepare_synthetic(args) -> int:
  from scorehoi_jax.data.synthetic_hoi import prepare_synthetic
  counts = prepare_synthetic(args.out, args.num, seed=args.seed, resolution=args.resolution, layout=args.layout,
                             workers=args.workers, test_fraction=args.test_fraction, beam=args.beam,
                             beam_runner=args.beam_runner, beam_options=args.beam_options)
  print(f"synthetic_hoi written to {args.out}: {counts}")
  return 0


def _cmd_train(args) -> int:
  from scorehoi_jax.config import load_config
  from scorehoi_jax.train.run import resolve_epochs, train_and_evaluate
  config = resolve_epochs(load_config(args.config, args.overrides))  # Epoch-based configs: steps from the data.
  _, records = train_and_evaluate(config, args.workdir)
  last = [r for r in records if "loss" in r]
  print(f"trained to step {config.steps} in {args.workdir}" +
        (f" (last logged loss {last[-1]['loss']:.4g})" if last else ""))
  return 0


def _cmd_show(args) -> int:
  from scorehoi_jax.data.show import show
  if os.path.exists(args.out) and not args.overwrite:
    raise ScoreHOIError(f"{args.out}: exists (pass --overwrite to replace it).")
  print(show(args.data_dir, args.index, args.out, split=args.split, dataset=args.dataset,
             body_model=args.body_model))
  return 0


def _cmd_prepare(args) -> int:
  import importlib
  module = importlib.import_module(f"scorehoi_jax.data.{args.dataset}")
  prepare = getattr(module, f"prepare_{args.dataset}")
  kwargs = {}
  if args.limit is not None:
    kwargs["limit"] = args.limit
  existed = os.path.exists(args.out)
  try:
    counts = prepare(args.root, args.smplh, args.out, **kwargs)
  except BaseException:
    if not existed:  # TFDS creates its folders before reading anything: leave no debris.
      shutil.rmtree(args.out, ignore_errors=True)
    raise
  print(f"{args.dataset} written to {args.out}: {counts}")
  return 0


def _cmd_export(args) -> int:
  from scorehoi_jax.train.export import export_model
  if os.path.exists(args.out) and not args.overwrite:
    raise ScoreHOIError(f"{args.out}: exists (pass --overwrite to replace it).")
  export_model(args.run, args.out, step=args.step, dtype=args.dtype)
  size = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
  print(f"model exported to {args.out} ({size / 2**20:.1f} MiB)")
  return 0


def _cmd_evaluate(args) -> int:
  from scorehoi_jax import jax_cache
  jax_cache.enable()
  from scorehoi_jax.config import load_config
  from scorehoi_jax.evaluation import evaluator, report
  from scorehoi_jax.evaluation.metrics import NUM_CHAMFER_SAMPLES
  from scorehoi_jax.model_store import load_model
  from scorehoi_jax.outputs import check_output
  check_output(args.out, args.overwrite)  # Exists or unwritable: refuse before the (long) evaluation, not after.
  if not os.path.isdir(args.data):
    raise ScoreHOIError(f"{args.data}: data folder not found (make one with `scorehoi prepare`).")
  dataset = _EVAL_DATASETS.get(args.dataset, args.dataset)
  if dataset != "synthetic_hoi" and args.objects is None:
    raise ScoreHOIError(f"--dataset {args.dataset} needs --objects DIR: your copy of its object meshes "
                        "(e.g. object_models/behave with _info.json, or a folder of <name>.obj).")
  objects = evaluator.objects_from_dir(args.objects) if args.objects is not None else None
  if args.limit is not None:
    from scorehoi_jax.data.tfds_common import data_source
    size = len(data_source(args.data, dataset, args.split))
    if args.limit > size:
      print(f"scorehoi evaluate: warning: --limit {args.limit} exceeds the {size} frame{'s' * (size != 1)} of split "
            f"'{args.split}'; evaluating all {size}.", file=sys.stderr)
  model = load_model(args.checkpoint)
  result = evaluator.evaluate(model, args.data, args.split, args.methods, limit=args.limit, batch_size=args.batch,
                              refine_config=load_config(args.config, args.overrides),
                              num_samples=args.samples or NUM_CHAMFER_SAMPLES,
                              dataset=dataset, objects=objects, contact=args.contact)
  report.write_results(result, args.out, overwrite=args.overwrite)
  for name, m in result["methods"].items():
    if m.get("non_finite_frames"):
      idx = m["non_finite_frames"]
      print(f"scorehoi evaluate: warning: {name}: the reconstruction of frame{'s' * (len(idx) > 1)} "
            f"{', '.join(map(str, idx[:10]))}{' ...' if len(idx) > 10 else ''} (index in split "
            f"'{args.split}') is not finite; left out of the means.", file=sys.stderr)
  print("\n".join(report.table_lines(result, stages="final")))
  print(f"metrics written to {args.out}/metrics.json and metrics.md")
  return 0


_EVAL_DATASETS = {"synthetic": "synthetic_hoi", "behave": "behave", "intercap": "intercap"}


def _add_evaluate(sub) -> None:
  from scorehoi_jax.jax_cache import HELP as cache_help
  ev = sub.add_parser("evaluate", help="batched evaluation with the field's metrics (every method, every stage)",
                      epilog=f"Cache: {cache_help}.")
  ev.add_argument("--config", default="refine_paper", help=_REFINE_CONFIG_HELP)
  ev.add_argument("--checkpoint", default=None, help="model folder (default: the shipped model)")
  ev.add_argument("--data", required=True, help="the data dir given to `scorehoi prepare --out`")
  ev.add_argument("--dataset", default="synthetic", choices=sorted(set(_EVAL_DATASETS) | {"synthetic_hoi"}),
                  help="synthetic (our benchmark), behave or intercap (prepared with `scorehoi prepare`; need --objects)")
  ev.add_argument("--objects", default=None,
                  help="your copy of the dataset's object meshes: object_models/<dataset> (with _info.json) or a "
                       "folder of <name>.obj/.ply; the ground truth and contacts are measured on them")
  ev.add_argument("--contact", default="full", choices=("full", "guidance"),
                  help="contact protocol: full (the field's: every body vertex within 5 cm of the nearest object "
                       "vertex, GT from the GT meshes) or guidance (431 guidance vertices vs the dataset's labels)")
  ev.add_argument("--split", default="test", help="dataset split to evaluate (default: test)")
  ev.add_argument("--limit", type=int, default=None, help="only the first N frames")
  ev.add_argument("--methods", default="regressor,optimisation,no_guidance,no_cdir,full",
                  help="comma-separated: regressor, optimisation, no_guidance, no_cdir, full")
  ev.add_argument("--batch", type=int, default=16, help="batch size (fixed shape; the last batch is padded)")
  ev.add_argument("--samples", type=int, default=None,
                  help="Chamfer surface samples per mesh (default: the field's 6000)")
  ev.add_argument("--out", required=True, help="folder for metrics.json and metrics.md")
  ev.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
  ev.set_defaults(func=_cmd_evaluate)


def _train_epilog() -> str:
  from scorehoi_jax.config import config_names
  return ("overrides: any config field can be set after the options as --config.FIELD=VALUE, e.g.\n"
          "  scorehoi train --config synthetic_stage1 --workdir runs/s1 --config.data.dir=data \\\n"
          "      --config.batch_size=64 --config.optim.learning_rate=3e-4 --config.model.resnet.depth=18\n"
          "VALUE is a Python literal (numbers, True/False, tuples such as '(1, 1)') or a bare word for a\n"
          "string; a field that does not exist, or a value of the wrong type, is an error.\n\n"
          "shipped configs (scorehoi_jax/configs/; each docstring gives its commands):\n" +
          textwrap.fill(", ".join(config_names()), 96, initial_indent="  ", subsequent_indent="  "))


def _cmd_objects(args) -> int:
  from scorehoi_jax.objects import CATEGORIES, build_procedural, list_objects
  if args.sheet and os.path.exists(args.sheet) and not args.overwrite:  # Refuse before drawing, not after.
    raise ScoreHOIError(f"{args.sheet}: exists (pass --overwrite to replace it).")
  for name in list_objects():
    size = ""
    if name in CATEGORIES:  # Nominal size; --object-seed gives size-jittered instances.
      ext = build_procedural(name, None)[0].extents
      size = f"{ext[0]:.2f} x {ext[1]:.2f} x {ext[2]:.2f} m"
    print(f"{name:<18}{size}")
  if args.sheet:
    from scorehoi_jax.objects.contact_sheet import contact_sheet
    print(f"contact sheet written to {contact_sheet(args.sheet)}")
  return 0


def _cmd_sweep(args) -> int:
  from scorehoi_jax.config import load_config
  from scorehoi_jax.model_store import load_model
  from scorehoi_jax.sweep import run_sweep
  if not os.path.isdir(args.data):
    raise ScoreHOIError(f"{args.data}: data folder not found (make one with `scorehoi prepare`).")
  cfg = load_config(args.config, args.overrides)
  model = load_model(args.checkpoint)
  curves = [c for c in args.curves.split(",") if c] if args.curves else None
  summary = run_sweep(model, args.data, args.grid, args.out, refine_config=cfg, split=args.split,
                      dataset=args.dataset, limit=args.limit, batch_size=args.batch, num_samples=args.samples,
                      stage=args.stage, trace=not args.no_trace, curves=curves, resamples=args.resamples,
                      progress=not args.quiet, checkpoint_name=args.checkpoint or "shipped")
  print("\n".join(summary["table"]))
  print(f"sweep: {len(summary['ran'])} points run, {len(summary['skipped'])} already done; "
        f"{summary['compiles']} compile(s) for {summary['static_structures']} static structure(s)")
  files = [f for f in ("sweep.md", "sweep.json", "pareto.png", "curves.png") if os.path.exists(os.path.join(args.out, f))]
  print(f"results in {args.out}/ ({', '.join(files)}, points/)")
  return 0


def _add_sweep(sub) -> None:
  sw = sub.add_parser("sweep", help="evaluate a grid of guidance settings (one compile per static structure)",
                      description="Scores every point of a grid of refine-config fields on a prepared split; "
                                  "weights are traced, so a grid over guidance.* compiles once. Resumable. "
                                  "See scorehoi_jax/sweep.py.")
  sw.add_argument("--config", default="refine_paper", help=_REFINE_CONFIG_HELP)
  sw.add_argument("--checkpoint", default=None, help="model folder (default: the shipped model)")
  sw.add_argument("--data", required=True, help="the data dir given to `scorehoi prepare --out`")
  sw.add_argument("--dataset", default="synthetic_hoi", help="TFDS dataset name (synthetic_hoi)")
  sw.add_argument("--split", default="test", help="dataset split to score (default: test)")
  sw.add_argument("--grid", action="append", required=True, metavar="FIELD=V1,V2,...",
                  help="a config field and its values, e.g. guidance.rho=0.5,1,2 (repeat: Cartesian product)")
  sw.add_argument("--limit", type=int, default=None, help="only the first N frames")
  sw.add_argument("--batch", type=int, default=16, help="batch size (fixed shape; the last batch is padded)")
  sw.add_argument("--samples", type=int, default=None, help="Chamfer surface samples per mesh (default 6000)")
  sw.add_argument("--stage", default="refined", choices=("refined", "final"),
                  help="score the refinement's output (default) or the CRFormer's")
  sw.add_argument("--curves", default=None, help="comma-separated point names for curves.png (default: all, ≤ 9)")
  sw.add_argument("--no-trace", action="store_true", help="no refine traces (no loss curves; a lighter program)")
  sw.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
  sw.add_argument("--out", required=True, help="results folder (a rerun resumes)")
  sw.add_argument("--quiet", action="store_true", help="no progress bars")
  sw.set_defaults(func=_cmd_sweep)


def _not_yet(name):
  def run(args) -> int:
    print(f"scorehoi {name}: not yet available in this version ({_NOT_YET[name]}).", file=sys.stderr)
    return 2
  return run


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="scorehoi",
      description="ScoreHOI in JAX: human-object interaction reconstruction with score-guided diffusion.")
  sub = parser.add_subparsers(dest="command", metavar="COMMAND")
  _add_demo_and_reconstruct(sub)
  _add_evaluate(sub)
  _add_sweep(sub)
  prep = sub.add_parser("prepare", help="convert a dataset into our TFDS format")
  prep_sub = prep.add_subparsers(dest="dataset", metavar="DATASET", required=True)
  p = prep_sub.add_parser("synthetic", help="generate our synthetic benchmark (resumable)")
  p.add_argument("--out", required=True,
                 help="output data dir (raw shards in OUT/raw, none with --beam; TFDS in OUT/synthetic_hoi)")
  p.add_argument("--num", type=int, required=True, help="number of frames (train + test)")
  p.add_argument("--seed", type=int, default=0, help="dataset seed (frame i has its own seed derived from it)")
  p.add_argument("--layout", choices=("capture", "centred"), default="capture",
                 help="capture: 4:3 full frames like real capture, subject small and anywhere (default); "
                      "centred: the original square frames with the subject filling them")
  p.add_argument("--resolution", type=int, default=None,
                 help="image width in pixels (capture: 4:3, default 512; centred: square, default 256)")
  p.add_argument("--workers", type=int, default=2, help="generator processes")
  p.add_argument("--test-fraction", type=float, default=0.1, help="share of frames in the test split")
  p.add_argument("--beam", action="store_true",
                 help="generate inside an Apache Beam pipeline (no raw shards; needs scorehoi_jax[beam]; "
                      "see scorehoi_jax/data/synthetic_beam.py for cluster runners)")
  p.add_argument("--beam-runner", default="DirectRunner",
                 help="with --beam: the Beam runner (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner, ...)")
  p.add_argument("--beam-options", default=None,
                 help='with --beam: Beam pipeline options as one string, written with "=", e.g. '
                      '--beam-options="--direct_num_workers=2 --direct_running_mode=multi_processing"')
  p.set_defaults(func=_cmd_prepare_synthetic)
  for name in _REAL_DATASETS:
    p = prep_sub.add_parser(name, help=f"{name} from your copy of the official release (CONTHO-style annotations)")
    p.add_argument("--root", required=True, help="the dataset's root folder")
    p.add_argument("--smplh", required=True, help="your SMPL-H model file or folder (.npz/.pkl)")
    p.add_argument("--out", required=True, help="output data dir (TFDS layout)")
    p.add_argument("--limit", type=int, default=None, help="at most this many frames per split")
    p.set_defaults(func=_cmd_prepare)
  train = sub.add_parser(
      "train", help="train stage 0 (point encoder), 1 or 2 from a config (resumes from --workdir)",
      formatter_class=argparse.RawDescriptionHelpFormatter,
      description="Train the stage a config names (config.stage: 0 point encoder, 1 regressor and contact "
                  "networks,\n2 denoiser). A killed run resumes from --workdir with the same command.",
      epilog=_train_epilog())
  train.add_argument("--config", required=True,
                     help="NAME[:ARG] of a shipped config (listed below) or PATH[:ARG] of your own config file; "
                          "ARG goes to its get_config(ARG)")
  train.add_argument("--workdir", required=True, help="checkpoints, metrics.jsonl and curves.png go here")
  train.set_defaults(func=_cmd_train)
  show = sub.add_parser("show", help="render a prepared dataset frame: image, masks, ground-truth meshes")
  show.add_argument("data_dir", help="the data dir given to `scorehoi prepare --out`")
  show.add_argument("--index", type=int, default=0, help="which frame of the split (default: 0, the first)")
  show.add_argument("--split", default="train", help="dataset split: train or test (default: train)")
  show.add_argument("--dataset", default="synthetic_hoi", help="synthetic_hoi | behave | intercap | imhd")
  show.add_argument("--body-model", default=None, help="SMPL-H file the dataset was made with (real datasets)")
  show.add_argument("--out", default="frame.png", help="PNG to write (default: frame.png)")
  show.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
  show.set_defaults(func=_cmd_show)
  exp = sub.add_parser("export", help="write a stage-2 run as a model folder for reconstruct/evaluate")
  exp.add_argument("--run", required=True, help="the stage-2 training work dir (holds stages 0-1 frozen)")
  exp.add_argument("--out", required=True, help="model folder to write")
  exp.add_argument("--step", type=int, default=None, help="checkpoint step (default: newest)")
  exp.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"), help="weight storage")
  exp.add_argument("--overwrite", action="store_true", help="replace an existing model folder")
  exp.set_defaults(func=_cmd_export)
  objs = sub.add_parser("objects", help="list the object library's names (for reconstruct --object)")
  objs.add_argument("--sheet", default=None, help="also draw every object with its 64 template points into this PNG")
  objs.add_argument("--overwrite", action="store_true", help="replace an existing --sheet file")
  objs.set_defaults(func=_cmd_objects)
  for name, what in _NOT_YET.items():
    p = sub.add_parser(name, help=f"{what} (not yet available)")
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(func=_not_yet(name))
  return parser


def main(argv=None) -> int:
  parser = build_parser()
  args, extra = parser.parse_known_args(argv)
  from scorehoi_jax.config import split_overrides
  args.overrides, unknown = split_overrides(extra)
  if unknown or (args.overrides and getattr(args, "command", None) not in ("train", "evaluate", "sweep")):
    parser.error(f"unrecognized arguments: {' '.join(unknown or args.overrides)}")
  if not getattr(args, "func", None):
    parser.print_help()
    return 2
  try:
    return args.func(args)
  except ScoreHOIError as e:
    print(f"scorehoi {args.command}: error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    return 130


if __name__ == "__main__":
  sys.exit(main())
