"""`scorehoi` help texts and `scorehoi objects` (names, contact sheet)."""

import argparse

import numpy as np
import pytest
from PIL import Image

from scorehoi_jax import cli
from scorehoi_jax.config import config_names
from scorehoi_jax.objects import list_objects


def _help(capsys, argv):
  with pytest.raises(SystemExit):
    cli.main(argv + ["--help"])
  return " ".join(capsys.readouterr().out.split())  # Whitespace-insensitive (argparse wraps lines).


def test_top_level_names_stage_0(capsys):
  assert "train stage 0 (point encoder), 1 or 2" in _help(capsys, [])


def test_train_help_explains_overrides_and_lists_configs(capsys):
  text = _help(capsys, ["train"])
  assert "--config.FIELD=VALUE" in text and "--config.data.dir=data" in text
  for name in config_names():
    assert name in text


def test_reconstruct_help_says_how_to_list_objects(capsys):
  assert "scorehoi objects" in _help(capsys, ["reconstruct"])


def test_every_option_has_help():
  missing = []

  def walk(parser, path):
    for action in parser._actions:  # pylint: disable=protected-access
      if isinstance(action, argparse._SubParsersAction):  # pylint: disable=protected-access
        for name, sub in action.choices.items():
          walk(sub, path + [name])
      elif action.dest != "help" and not action.help:
        missing.append(f"scorehoi {' '.join(path)} {'/'.join(action.option_strings) or action.dest}")

  walk(cli.build_parser(), [])
  assert not missing, missing


def test_objects_lists_the_library(capsys):
  assert cli.main(["objects"]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert [line.split()[0] for line in lines] == list_objects()
  box = next(line for line in lines if line.startswith("boxmedium"))
  assert box.endswith(" m") and " x " in box


def test_objects_contact_sheet(tmp_path, capsys, monkeypatch):
  from scorehoi_jax.objects import contact_sheet
  monkeypatch.setattr(contact_sheet, "list_objects", lambda: ["boxsmall", "yogaball"])  # Two panels: fast.
  out = tmp_path / "sheet.png"
  assert cli.main(["objects", "--sheet", str(out)]) == 0
  image = np.asarray(Image.open(out).convert("L"))
  assert image.shape[0] > 100 and image.std() > 5  # Something was drawn.
  assert cli.main(["objects", "--sheet", str(out)]) == 2  # Refused without --overwrite ...
  assert "exists" in capsys.readouterr().err
  assert cli.main(["objects", "--sheet", str(out), "--overwrite"]) == 0  # ... replaced with it.
  assert sorted(p.name for p in tmp_path.iterdir()) == ["sheet.png"]  # No temporary files left.
