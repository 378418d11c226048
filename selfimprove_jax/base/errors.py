"""The errors a run reports as one line, without a traceback.

`python -m selfimprove_jax.main` prints any `UserError` as `error: <message>`
and exits with status 1. Each message names the config field or the file (and
line) at fault and what would be accepted. Everything else is a bug and keeps
its traceback.
"""


class UserError(ValueError):
  """A mistake in the config, the workdir or a file in it, or a run that cannot go on."""


def first_line(e: Exception) -> str:
  """A library error's first line (Orbax's and TensorStore's run to pages), cut in the
  middle when long: the head names the operation, the tail the OS reason."""
  line = (str(e).strip().splitlines() or [type(e).__name__])[0]
  return line if len(line) <= 200 else f"{line[:60]} ... {line[-135:]}"
