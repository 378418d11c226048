"""The errors a run reports as one line, without a traceback.

`python -m selfimprove_jax.main` prints any `UserError` as `error: <message>`
and exits with status 1. Each message names the config field or the file (and
line) at fault and what would be accepted. Everything else is a bug and keeps
its traceback.
"""


class UserError(ValueError):
  """A mistake in the config, the workdir or a file in it, or a run that cannot go on."""
