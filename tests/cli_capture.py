"""Running ``scorehoi`` in-process for tests: (return code, stdout, stderr) of ``scorehoi_jax.cli.main``."""

import contextlib
import io

from scorehoi_jax import cli


def run_cli(argv):
  """(return code, stdout, stderr) of scorehoi_jax.cli.main(argv); argparse's SystemExit becomes the code."""
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
      code = cli.main(argv)
    except SystemExit as e:
      code = e.code
  return code, out.getvalue(), err.getvalue()
