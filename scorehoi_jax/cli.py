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

from scorehoi_jax.errors import ScoreHOIError

_NOT_YET = {
    "reconstruct": "image -> regressor -> ScoreHOI refinement -> mesh refiner",
    "evaluate": "batched evaluation with the field's metrics",
}

_REAL_DATASETS = ("behave", "intercap", "imhd")


def _cmd_demo(args) -> int:
  from scorehoi_jax import demo
  out = demo.run_body_demo(args.out, overwrite=args.overwrite, body_model=args.body_model, seed=args.seed)
  print(f"demo outputs written to {out}/")
  for name in sorted(demo.list_outputs(out)):
    print(f"  {name}")
  return 0


def _cmd_prepare_synthetic(args) -> int:
  from scorehoi_jax.data.synthetic_hoi import prepare_synthetic
  counts = prepare_synthetic(args.out, args.num, seed=args.seed, resolution=args.resolution,
                             workers=args.workers, test_fraction=args.test_fraction)
  print(f"synthetic_hoi written to {args.out}: {counts}")
  return 0


def _cmd_train(args) -> int:
  from scorehoi_jax.config import load_config
  from scorehoi_jax.train.run import train_and_evaluate
  config = load_config(args.config, args.overrides)
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
  demo = sub.add_parser("demo", help="run the demo on the embedded defaults (no downloads)")
  demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
  demo.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
  demo.add_argument("--body-model", default=None,
                    help="an SMPL-H .npz/.pkl file or folder (default: the embedded open model)")
  demo.add_argument("--seed", type=int, default=0, help="seed of the demo body shape")
  demo.set_defaults(func=_cmd_demo)
  prep = sub.add_parser("prepare", help="convert a dataset into our TFDS format")
  prep_sub = prep.add_subparsers(dest="dataset", metavar="DATASET", required=True)
  p = prep_sub.add_parser("synthetic", help="generate our synthetic benchmark (resumable)")
  p.add_argument("--out", required=True, help="output data dir (raw shards in OUT/raw, TFDS in OUT/synthetic_hoi)")
  p.add_argument("--num", type=int, required=True, help="number of frames (train + test)")
  p.add_argument("--seed", type=int, default=0, help="dataset seed (frame i has its own seed derived from it)")
  p.add_argument("--resolution", type=int, default=256, help="image size in pixels (square)")
  p.add_argument("--workers", type=int, default=2, help="generator processes")
  p.add_argument("--test-fraction", type=float, default=0.1, help="share of frames in the test split")
  p.set_defaults(func=_cmd_prepare_synthetic)
  for name in _REAL_DATASETS:
    p = prep_sub.add_parser(name, help=f"{name} from your copy of the official release (CONTHO-style annotations)")
    p.add_argument("--root", required=True, help="the dataset's root folder")
    p.add_argument("--smplh", required=True, help="your SMPL-H model file or folder (.npz/.pkl)")
    p.add_argument("--out", required=True, help="output data dir (TFDS layout)")
    p.add_argument("--limit", type=int, default=None, help="at most this many frames per split")
    p.set_defaults(func=_cmd_prepare)
  train = sub.add_parser("train", help="train stage 1 or 2 from a config (resumes from --workdir)")
  train.add_argument("--config", required=True, help="configs/<name>.py[:arg], or a bare name in configs/")
  train.add_argument("--workdir", required=True, help="checkpoints, metrics.jsonl and curves.png go here")
  train.set_defaults(func=_cmd_train)
  show = sub.add_parser("show", help="render a prepared dataset frame: image, masks, ground-truth meshes")
  show.add_argument("data_dir", help="the data dir given to `scorehoi prepare --out`")
  show.add_argument("--index", type=int, default=0)
  show.add_argument("--split", default="train")
  show.add_argument("--dataset", default="synthetic_hoi", help="synthetic_hoi | behave | intercap | imhd")
  show.add_argument("--body-model", default=None, help="SMPL-H file the dataset was made with (real datasets)")
  show.add_argument("--out", default="frame.png")
  show.add_argument("--overwrite", action="store_true")
  show.set_defaults(func=_cmd_show)
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
  if unknown or (args.overrides and getattr(args, "command", None) != "train"):
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
