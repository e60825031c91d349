"""Config files and command-line overrides."""

import textwrap

import pytest

from scorehoi_jax import config as config_lib


@pytest.fixture()
def cfg_file(tmp_path):
  path = tmp_path / "exp.py"
  path.write_text(textwrap.dedent("""
      import ml_collections

      def get_config(arg=None):
        c = ml_collections.ConfigDict()
        c.diffusion = ml_collections.ConfigDict(dict(rho=1.0, steps=10, cdir=True, name="paper"))
        c.size = "small" if arg is None else arg
        return c
  """))
  return str(path)


def test_overrides_are_typed(cfg_file):
  c = config_lib.load_config(cfg_file + ":big", ["--config.diffusion.rho=2", "--config.diffusion.cdir=false",
                                                  "--config.diffusion.name=compat", "--config.diffusion.steps=3"])
  assert c.size == "big"
  assert c.diffusion.rho == 2.0 and isinstance(c.diffusion.rho, float)
  assert c.diffusion.cdir is False and c.diffusion.steps == 3 and c.diffusion.name == "compat"


@pytest.mark.parametrize("item, match", [
    ("--config.diffusion.rhoo=2", "no config field 'diffusion.rhoo'"),
    ("--config.diff.rho=2", "no config section 'diff'"),
    ("--config.diffusion.steps=abc", "is int"),
    ("diffusion.rho=2", "overrides look like"),
])
def test_bad_overrides_are_clear_errors(cfg_file, item, match):
  with pytest.raises(config_lib.ConfigError, match=match):
    config_lib.load_config(cfg_file, [item])


def test_missing_and_broken_files(tmp_path):
  with pytest.raises(config_lib.ConfigError, match="not found"):
    config_lib.load_config(str(tmp_path / "nope.py"))
  bad = tmp_path / "bad.py"
  bad.write_text("def get_config(:\n")
  with pytest.raises(config_lib.ConfigError, match="cannot import"):
    config_lib.load_config(str(bad))


def test_shipped_configs_by_name_and_user_files_by_path(tmp_path, monkeypatch):
  import os
  import ml_collections
  names = config_lib.config_names()
  assert {"refine_paper", "tiny", "behave_stage2", "intercap_stage1"} <= set(names)
  monkeypatch.chdir(tmp_path)  # Names do not depend on the working directory.
  assert isinstance(config_lib.load_config("refine_paper"), ml_collections.ConfigDict)
  assert config_lib.load_config("tiny.py:stage0").stage == 0
  own = tmp_path / "tiny"  # A user's file of the same name (as a path) wins over the shipped one.
  own.write_text("import ml_collections\ndef get_config():\n  return ml_collections.ConfigDict(dict(stage=7))\n")
  assert config_lib.load_config(str(own)).stage == 7 and config_lib.load_config("./tiny").stage == 7
  os.remove(own)
  assert config_lib.load_config("tiny").stage == 1
  with pytest.raises(config_lib.ConfigError, match="shipped configs: .*refine_paper"):
    config_lib.load_config("refine_papr")
  with pytest.raises(config_lib.ConfigError, match="not found"):
    config_lib.load_config("configs/__init__")
