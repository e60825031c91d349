"""Writing benchmark tables to experiments/results/ (shared by the bench_* scripts)."""

import os


def write_markdown(path: str, lines: list[str]) -> str:
  """Write ``lines`` as a Markdown file (folders created); returns the path."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return path
