"""Imports run one way (design.md "Layout"): geometry/render at the bottom, cli on top, no cycles.

Every ``import`` in the package is read with ``ast`` (also those inside
functions: a lazy import is still an arrow), so the test needs no imports of
the package itself and sees the whole graph in well under a second.
"""

import ast
import os
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = "scorehoi_jax"

# Layer of each top-level part of the package; a part may import parts of its own or lower layers.
LAYERS = {
    "errors": 0, "config": 0, "outputs": 0, "locks": 0, "jax_cache": 0,  # Messages, configs, outputs, locks,
    "export_cache": 0, "__init__": 0,  # the compile and traced-program caches.
    "geometry": 1, "render": 1,
    "body": 2, "objects": 2, "models": 2,
    "diffusion": 3, "data": 3,
    "model_store": 4,  # Loads and writes model folders: below everything that runs a model.
    "reconstruct": 5,
    "train": 6, "evaluation": 6, "reconstruct_io": 6, "demo": 6, "sweep": 6,
    "cli": 7, "configs": 7,  # Config files build on train/defaults.py and are loaded by path, never imported.
}
# Known arrows against the layering (none left: exporting a training run lives in train/export.py).
ALLOWED = set()


def _modules(root: str = ROOT) -> dict[str, str]:
  """Dotted module name -> file, for every .py file of the package under ``root``."""
  out = {}
  for folder, _, files in os.walk(os.path.join(root, PKG)):
    for f in files:
      if f.endswith(".py"):
        path = os.path.join(folder, f)
        name = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
        out[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
  return out


def import_graph(modules: dict[str, str]) -> dict[str, set[str]]:
  """module -> the package modules it imports (``from pkg import sub`` counts as pkg.sub)."""
  graph = defaultdict(set)
  for mod, path in modules.items():
    package = mod if path.endswith("__init__.py") else mod.rpartition(".")[0]
    with open(path) as f:
      tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):
        if node.level:
          base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
          base = f"{base}.{node.module}" if node.module else base
        else:
          base = node.module or ""
        targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
      else:
        continue
      for t in targets:
        while t not in modules and "." in t:
          t = t.rpartition(".")[0]
        if t in modules and t != mod:
          graph[mod].add(t)
  return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components with more than one module (Tarjan, iterative)."""
  index, low, stack, on_stack, out = {}, {}, [], set(), []
  for start in sorted(graph):
    if start in index:
      continue
    work = [(start, iter(sorted(graph[start])))]
    index[start] = low[start] = len(index)
    stack.append(start)
    on_stack.add(start)
    while work:
      v, it = work[-1]
      w = next(it, None)
      if w is not None:
        if w not in index:
          index[w] = low[w] = len(index)
          stack.append(w)
          on_stack.add(w)
          work.append((w, iter(sorted(graph.get(w, ())))))
        elif w in on_stack:
          low[v] = min(low[v], index[w])
        continue
      work.pop()
      if work:
        low[work[-1][0]] = min(low[work[-1][0]], low[v])
      if low[v] == index[v]:
        comp = []
        while True:
          w = stack.pop()
          on_stack.discard(w)
          comp.append(w)
          if w == v:
            break
        if len(comp) > 1:
          out.append(sorted(comp))
  return out


def _part(module: str) -> str:
  parts = module.split(".")
  return parts[1] if len(parts) > 1 else "__init__"


def test_every_part_has_a_layer():
  parts = {_part(m) for m in _modules()}
  assert not parts - set(LAYERS), f"give these parts a layer in tests/test_layering.py: {sorted(parts - set(LAYERS))}"


def test_imports_never_point_up():
  graph = import_graph(_modules())
  up = sorted(f"{m} -> {t}" for m, ts in graph.items() for t in ts
              if LAYERS.get(_part(t), -1) > LAYERS.get(_part(m), 99) and (_part(m), _part(t)) not in ALLOWED)
  assert not up, "imports against the layering:\n" + "\n".join(up)


def test_no_import_cycles():
  found = cycles(import_graph(_modules()))
  assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_checks_see_cycles_and_upward_arrows(tmp_path):
  """The graph reader on a hand-made package: relative, lazy and ``from pkg import module`` imports."""
  pkg = tmp_path / PKG
  (pkg / "data").mkdir(parents=True)
  (pkg / "__init__.py").write_text("")
  (pkg / "data" / "__init__.py").write_text("")
  (pkg / "data" / "a.py").write_text("def f():\n  from scorehoi_jax.data import b\n")
  (pkg / "data" / "b.py").write_text("from .a import f\nfrom scorehoi_jax import cli\n")
  (pkg / "cli.py").write_text("import scorehoi_jax.data.a\n")
  graph = import_graph(_modules(str(tmp_path)))
  assert graph["scorehoi_jax.data.a"] == {"scorehoi_jax.data.b"}
  assert graph["scorehoi_jax.data.b"] == {"scorehoi_jax.data.a", "scorehoi_jax.cli"}
  assert graph["scorehoi_jax.cli"] == {"scorehoi_jax.data.a"}
  assert cycles(graph) == [["scorehoi_jax.cli", "scorehoi_jax.data.a", "scorehoi_jax.data.b"]]
  assert LAYERS[_part("scorehoi_jax.cli")] > LAYERS[_part("scorehoi_jax.data.b")]  # b -> cli points up.
