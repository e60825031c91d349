"""Python config files (``get_config()`` -> ml_collections.ConfigDict) and overrides.

``load_config("refine_paper", ["--config.guidance.rho=2"])`` finds a config
shipped in the package (scorehoi_jax/configs/, through importlib.resources, so
it works from an installed wheel as from the repository); a spec that is an
existing path is the user's own file instead. It imports the file, calls
``get_config(arg)`` (or ``get_config()``), and applies overrides in the ``--config.a.b=value`` form of ml_collections' config flags,
without needing absl. Values are parsed as Python literals and checked
against the existing field's type, so a typo in a name or a wrong type is a
clear error rather than a silently ignored setting.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.resources
import importlib.util
import os
from importlib.machinery import SourceFileLoader

import ml_collections

from scorehoi_jax.errors import ScoreHOIError

_PACKAGE = "scorehoi_jax.configs"


class ConfigError(ScoreHOIError):
  """A config file is missing or broken, or an override names no field."""


def config_names() -> list[str]:
  """Names of the configs shipped in the package (``load_config(name)`` finds them)."""
  return sorted(f.name[:-3] for f in importlib.resources.files(_PACKAGE).iterdir()
                if f.name.endswith(".py") and not f.name.startswith("_"))


def _packaged(name: str):
  """The shipped config called ``name`` (or ``name.py``) as a resource, or None."""
  stem = name[:-3] if name.endswith(".py") else name
  if not stem or os.sep in stem or "/" in stem or stem.startswith("_"):
    return None
  res = importlib.resources.files(_PACKAGE) / f"{stem}.py"
  return res if res.is_file() else None


@contextlib.contextmanager
def config_file(spec_path: str):
  """Yield a file-system path for a config: the user's file, else a shipped config by name."""
  if os.path.exists(spec_path):
    yield spec_path
    return
  res = _packaged(spec_path)
  if res is None:
    raise ConfigError(f"{spec_path}: config file not found (shipped configs: {', '.join(config_names())}).")
  with importlib.resources.as_file(res) as path:  # A real path even if the package is zipped.
    yield str(path)


def load_config(spec: str, overrides: list[str] | tuple[str, ...] = ()) -> ml_collections.ConfigDict:
  """``NAME[:arg]`` (a shipped config) or ``PATH[:arg]`` (your own file) + ``--config.a.b=value`` overrides."""
  path_spec, _, arg = spec.partition(":")
  with config_file(path_spec) as path:
    name = "scorehoi_config_" + os.path.splitext(os.path.basename(path))[0]
    try:
      # An explicit source loader: a config file need not end in .py.
      mod_spec = importlib.util.spec_from_file_location(name, path, loader=SourceFileLoader(name, path))
      module = importlib.util.module_from_spec(mod_spec)
      mod_spec.loader.exec_module(module)
    except Exception as e:
      raise ConfigError(f"{path}: cannot import config ({type(e).__name__}: {e}).") from None
  if not hasattr(module, "get_config"):
    raise ConfigError(f"{path}: defines no get_config().")
  cfg = module.get_config(arg) if arg else module.get_config()
  for item in overrides:
    apply_override(cfg, item, source=path)
  return cfg


def _parse_value(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text  # Bare words are strings: --config.data.name=synthetic.


def apply_override(cfg: ml_collections.ConfigDict, item: str, source: str = "config"):
  """Apply one ``[--]config.a.b=value`` override in place."""
  key, sep, raw = item.lstrip("-").partition("=")
  if not sep or not key.startswith("config."):
    raise ConfigError(f"{item!r}: overrides look like --config.field.subfield=value.")
  path = key[len("config."):].split(".")
  node = cfg
  for i, part in enumerate(path[:-1]):
    if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
      raise ConfigError(f"{source}: no config section '{'.'.join(path[:i + 1])}' (from {item!r}).")
    node = node[part]
  leaf = path[-1]
  if leaf not in node:
    raise ConfigError(f"{source}: no config field '{'.'.join(path)}'; fields here: {', '.join(sorted(node.keys()))}.")
  old = node[leaf]
  value = _parse_value(raw)
  if isinstance(old, bool):
    if str(value).lower() in ("true", "1", "yes"):
      value = True
    elif str(value).lower() in ("false", "0", "no"):
      value = False
  elif isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  elif isinstance(old, tuple) and isinstance(value, list):
    value = tuple(value)
  if old is not None and not isinstance(value, type(old)) and not (isinstance(old, str) and value is None):
    raise ConfigError(f"{source}: config field '{'.'.join(path)}' is {type(old).__name__} "
                      f"({old!r}); cannot set it to {raw!r}.")
  try:
    node[leaf] = value
  except (TypeError, ValueError) as e:
    raise ConfigError(f"{source}: cannot set '{'.'.join(path)}' to {raw!r} ({e}).") from None


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
  """Separate ``--config.x=y`` items from other command-line arguments."""
  over = [a for a in argv if a.startswith("--config.")]
  return over, [a for a in argv if not a.startswith("--config.")]
