"""Python config files (``get_config()`` -> ml_collections.ConfigDict) and overrides.

``load_config("configs/refine_paper.py", ["--config.guidance.rho=2"])``
imports the file, calls ``get_config(arg)`` (or ``get_config()``), and applies
overrides in the ``--config.a.b=value`` form of ml_collections' config flags,
without needing absl. Values are parsed as Python literals and checked
against the existing field's type, so a typo in a name or a wrong type is a
clear error rather than a silently ignored setting.
"""

from __future__ import annotations

import ast
import importlib.util
import os

import ml_collections

from scorehoi_jax.errors import ScoreHOIError

_REPO_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


class ConfigError(ScoreHOIError):
  """A config file is missing or broken, or an override names no field."""


def resolve_config_path(path: str) -> str:
  """A path, or a bare name looked up in the repository's configs/ folder."""
  if os.path.exists(path):
    return path
  for cand in (os.path.join(_REPO_CONFIGS, path), os.path.join(_REPO_CONFIGS, path + ".py")):
    if os.path.exists(cand):
      return cand
  known = sorted(f[:-3] for f in os.listdir(_REPO_CONFIGS) if f.endswith(".py")) if os.path.isdir(_REPO_CONFIGS) else []
  raise ConfigError(f"{path}: config file not found" + (f" (known: {', '.join(known)})" if known else "") + ".")


def load_config(spec: str, overrides: list[str] | tuple[str, ...] = ()) -> ml_collections.ConfigDict:
  path, _, arg = spec.partition(":")
  path = resolve_config_path(path)
  name = "scorehoi_config_" + os.path.splitext(os.path.basename(path))[0]
  try:
    mod_spec = importlib.util.spec_from_file_location(name, path)
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
