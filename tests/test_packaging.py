"""The built wheel: configs and assets inside, no packaging deprecations, configs found from an installed copy.

Builds from a copy of the source (so the repository gets no build/ folder), with
the venv's own setuptools (--no-build-isolation: no network), installs the wheel
into a plain folder (--target, --no-deps: the venv already has the dependencies)
and imports it from a working directory outside the repository, where only
that folder can provide ``scorehoi_jax``.
"""

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _setuptools_ok() -> bool:
  try:
    import setuptools
  except ImportError:
    return False
  return int(setuptools.__version__.split(".")[0]) >= 77  # pyproject's build requirement.


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
  if not _setuptools_ok():
    pytest.skip("needs setuptools>=77 in this environment to build without network")
  tmp = tmp_path_factory.mktemp("wheel")
  src = tmp / "src"
  src.mkdir()
  for name in ("pyproject.toml", "README.md", "LICENSE"):
    shutil.copy(os.path.join(ROOT, name), src / name)
  shutil.copytree(os.path.join(ROOT, "scorehoi_jax"), src / "scorehoi_jax",
                  ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
  proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                         "--no-index", "-w", str(tmp / "dist"), str(src)],
                        capture_output=True, text=True, cwd=tmp, check=False)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  wheels = os.listdir(tmp / "dist")
  assert len(wheels) == 1 and wheels[0].endswith(".whl"), wheels
  return str(tmp / "dist" / wheels[0]), proc.stdout + proc.stderr


def test_wheel_holds_configs_and_assets(wheel):
  path, log = wheel
  names = set(zipfile.ZipFile(path).namelist())
  shipped = sorted(f for f in os.listdir(os.path.join(ROOT, "scorehoi_jax", "configs")) if f.endswith(".py"))
  assert "refine_paper.py" in shipped and len(shipped) >= 10
  for f in shipped:
    assert f"scorehoi_jax/configs/{f}" in names, f
  for asset in ("assets/model/model.json", "assets/model/variables.npz", "assets/examples/examples.json",
                "assets/examples/lift_box.jpg", "assets/body/anny_smplh_neutral.npz", "assets/body/NOTICE"):
    assert f"scorehoi_jax/{asset}" in names, asset
  assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
  assert "`project.license` as a TOML table is deprecated" not in log
  assert "License classifiers are deprecated" not in log


def test_installed_wheel_finds_configs_outside_the_repository(wheel, tmp_path):
  path, _ = wheel
  site = tmp_path / "site"
  proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(site),
                         path], capture_output=True, text=True, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  script = textwrap.dedent(f"""
      import os, scorehoi_jax
      from scorehoi_jax import config, demo
      assert scorehoi_jax.__file__.startswith({str(site)!r}), scorehoi_jax.__file__
      c = config.load_config("refine_paper", ["--config.guidance.rho=2"])
      assert c.guidance.rho == 2.0
      assert config.load_config("tiny:stage2").stage == 2
      assert "imhd" in config.load_config("intercap_stage2").data.mix
      assert os.path.exists(os.path.join(demo.examples_dir(), "examples.json"))
      print("ok", sorted(config.config_names()))
  """)
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
  env["PYTHONPATH"] = str(site)
  proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=elsewhere, env=env,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.startswith("ok")
