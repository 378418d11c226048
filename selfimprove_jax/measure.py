"""A finished task run's generations measured again, on more problems than its evaluation set:
greedy accuracy by difficulty for every ensemble member, with its standard error.

  python -m selfimprove_jax.measure --config=configs/addition_cpu.py --workdir=/tmp/addition \
      --per_difficulty=1000

The loop evaluates every generation on eval.per_difficulty problems a length (128 in
configs/addition_cpu.py), which a generation can afford; at 128 problems an accuracy of
0.94 has a standard error of 0.02. A headline is measured again here, on fresh problems
drawn from --seed (ground truth, measurement only). --config and its overrides are the
run's own, as for resuming it; the run's results are read, not changed. Prints a markdown
table, and with --out writes the numbers as JSON.
"""

import json
import sys
from pathlib import Path

import numpy as np
from absl import app, flags
from ml_collections import config_flags

from selfimprove_jax.base import display, files
from selfimprove_jax.base.errors import UserError
from selfimprove_jax.core import sharding
from selfimprove_jax.grading import evaluate
from selfimprove_jax.run import loop
from selfimprove_jax.run.config_check import mode
from selfimprove_jax.run.experiment import build

_CONFIG = config_flags.DEFINE_config_file("config", None, "The run's config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "The run's directory.", required=True)
_GENERATIONS = flags.DEFINE_list("generations", None,
                                 "Generations to measure (default: the run's first and last).")
_PER_DIFFICULTY = flags.DEFINE_integer("per_difficulty", 1000, "Fresh problems a difficulty.")
_DIFFICULTIES = flags.DEFINE_list("difficulties", None,
                                  "low,high (default: 1 and the run's eval.max_difficulty).")
_SEED = flags.DEFINE_integer("seed", 1, "Draws the fresh problems.")
_OUT = flags.DEFINE_string("out", None, "Also write the numbers here (JSON).")


def table(results: dict[int, list[dict[int, float]]], n: int) -> str:
  """Markdown: a row per generation and member, a column per difficulty."""
  difficulties = sorted(next(iter(results.values()))[0])
  rows = [[str(g), str(e)] + [f"{accuracy[d]:.3f}" for d in difficulties]
          for g, members in results.items() for e, accuracy in enumerate(members)]
  worst = max(evaluate.standard_error(a, n)
              for members in results.values() for m in members for a in m.values())
  return (display.markdown(["generation", "member"] + list(map(str, difficulties)), rows, labels=2)
          + f"\n\n{n} problems a difficulty: standard error at most {worst:.3f}.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  config = _CONFIG.value
  if config is None:
    sys.exit("error: --config is required: the run's config file, with its overrides")
  loop.quiet_library_logs()
  sharding.one_cpu_device_per_core()  # as the loop ran (main.py)
  try:
    if _PER_DIFFICULTY.value < 1:
      raise UserError(f"--per_difficulty must be >= 1, got {_PER_DIFFICULTY.value}")
    low, high = 1, config.eval.max_difficulty
    if _DIFFICULTIES.value:
      given = ",".join(_DIFFICULTIES.value)
      if len(_DIFFICULTIES.value) != 2 or not all(x.isdigit() for x in _DIFFICULTIES.value):
        raise UserError(f"--difficulties takes low,high (two whole numbers), got {given}")
      low, high = map(int, _DIFFICULTIES.value)
      if not 1 <= low <= high:
        raise UserError(f"--difficulties takes low,high with 1 <= low <= high, got {given}")
    if _GENERATIONS.value and not all(g.isdigit() for g in _GENERATIONS.value):
      raise UserError("--generations takes generation numbers, e.g. 0,12, got "
                      + ",".join(_GENERATIONS.value))
    if mode(config) != "task":
      raise UserError("measure takes a task run; this config is a language-model run")
    if not (Path(_WORKDIR.value) / "config.json").exists():
      raise UserError(f"--workdir {_WORKDIR.value} holds no run (no config.json)")
    setup = build(config, _WORKDIR.value)
  except UserError as e:
    sys.exit(f"error: {e}")
  try:
    saved = setup.workdir.checkpoints.generations()
    wanted = ([int(g) for g in _GENERATIONS.value] if _GENERATIONS.value
              else sorted({saved[0], saved[-1]}) if saved else [])
    if not wanted or not set(wanted) <= set(saved):
      sys.exit(f"error: --generations {wanted} are not all saved in {_WORKDIR.value} "
               f"(saved: {saved})")
    difficulties = np.repeat(np.arange(low, high + 1), _PER_DIFFICULTY.value)
    problems = setup.mode.task.batch(np.random.default_rng(_SEED.value), difficulties)
    results = {}
    for g in wanted:
      train, _ = setup.workdir.restore_generation(g)
      results[g] = setup.mode.accuracy_of_members(setup, train.params, problems,
                                                  rows_per_call=config.sample.rows_per_call)
  finally:
    setup.close()
  print(table(results, _PER_DIFFICULTY.value), flush=True)
  if _OUT.value:
    files.atomic_write(Path(_OUT.value), json.dumps(
        dict(per_difficulty=_PER_DIFFICULTY.value, seed=_SEED.value,
             accuracy={str(g): [{str(d): a for d, a in m.items()} for m in ms]
                       for g, ms in results.items()}), indent=1))


if __name__ == "__main__":
  app.run(main)
