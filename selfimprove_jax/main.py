"""Command line: `python -m selfimprove_jax.main --config=configs/<name>.py --workdir=DIR`.

Any config field can be overridden, e.g. `--config.train.steps=500`; a
misspelled field is an error, not a silent no-op.
"""

import logging
import sys
from pathlib import Path

import jax
from absl import app, flags
from ml_collections import config_flags

from selfimprove_jax import experiment, loop, preemption
from selfimprove_jax.errors import UserError

_DEFAULT_CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "default.py")

_CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT_CONFIG, "Python config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for logs and results.", required=True)
_START_OVER = flags.DEFINE_bool(
    "start_over", False, "Start a new run even if --workdir holds one; the old one is kept, "
    "renamed to <workdir>.replaced-<time>.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  # Orbax (several lines per checkpoint) and JAX (backend probing) speak up only
  # for warnings; the loop's own messages stay.
  for name in ("absl", "jax"):
    logging.getLogger(name).setLevel(logging.WARNING)
  logging.info("JAX %s: process %d of %d, %d devices (%s)", jax.__version__, jax.process_index(),
               jax.process_count(), jax.device_count(), jax.devices()[0].platform)
  try:
    if _START_OVER.value and jax.process_index() == 0:
      moved = experiment.set_aside_workdir(_WORKDIR.value)
      if moved:
        logging.warning("--start_over: the previous run in %s is now %s", _WORKDIR.value, moved)
    loop.run(_CONFIG.value, _WORKDIR.value)
  except preemption.Preempted as e:  # saved; the scheduler may restart the same command
    logging.warning("%s", e)
  except UserError as e:  # config, workdir or file mistakes: one line
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  app.run(main)
