"""Configs shipped with the package: ``load_config("NAME")`` / ``--config NAME`` finds ``NAME.py`` here.

Each file defines ``get_config([arg])`` returning an ml_collections.ConfigDict;
its docstring gives the commands that use it. ``scorehoi_jax.config.config_names()``
lists them. Your own config file works the same way: pass its path.
"""
