"""The one exception family for user mistakes (bad files, names, shapes).

The CLI prints these as one line and exits non-zero without a traceback;
anything else is a bug and keeps its traceback.
"""


class ScoreHOIError(ValueError):
  """A user-facing error whose message names the file or object and the problem."""
