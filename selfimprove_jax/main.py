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

from selfimprove_jax.base import preemption
from selfimprove_jax.base.errors import UserError
from selfimprove_jax.core import sharding
from selfimprove_jax.run import experiment, loop

_DEFAULT_CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "default.py")

_CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT_CONFIG, "Python config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for logs and results.", required=True)
_START_OVER = flags.DEFINE_bool(
    "start_over", False, "Start a new run even if --workdir holds one; the old one is kept, "
    "renamed to <workdir>.replaced-<time>.")
# Several processes (hosts) in one run. On a Cloud TPU VM slice, --distributed
# finds the others by itself; elsewhere name the coordinator and the processes.
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Join the run's processes with jax.distributed.initialize(), "
    "detecting the cluster (Cloud TPU VM slices, SLURM, ...).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, for clusters JAX cannot detect.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0..num_processes-1.")


def _join_processes() -> None:
  """jax.distributed.initialize, before anything touches a JAX backend."""
  explicit = (_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  if any(v is not None for v in explicit):
    if any(v is None for v in explicit):
      raise app.UsageError("--coordinator_address, --num_processes and --process_id go together")
    # CPU devices of different processes talk through Gloo (tests, CPU clusters).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(*explicit)
  elif _DISTRIBUTED.value:
    jax.distributed.initialize()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  loop.quiet_library_logs()
  if not (_DISTRIBUTED.value or _NUM_PROCESSES.value):  # processes of a cluster share no cores
    sharding.one_cpu_device_per_core()
  _join_processes()
  logging.info("JAX %s: process %d of %d, %d devices (%s)", jax.__version__, jax.process_index(),
               jax.process_count(), jax.device_count(), jax.devices()[0].platform)
  try:
    if _START_OVER.value and sharding.is_writer():
      moved = experiment.set_aside_workdir(_WORKDIR.value)
      if moved:
        logging.warning("--start_over: the previous run in %s is now %s", _WORKDIR.value, moved)
    sharding.sync("start_over")
    loop.run(_CONFIG.value, _WORKDIR.value)
  except preemption.Preempted as e:  # saved; the scheduler may restart the same command
    logging.warning("%s", e)
  except UserError as e:  # config, workdir or file mistakes: one line
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  app.run(main)
