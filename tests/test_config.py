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
