"""What a run's judge could add to its vote: a finished run's answers combined again,
offline, under other rules than the one it ran with.

  python -m selfimprove_jax.judge_rules --workdir=/tmp/w0 --frozen

reads the run's examples files (every answer with its votes, its judge's P("y") and, for
measurement only, whether it is right) and prints, per generation, the labels the vote
alone keeps and their precision, then for each rule "the vote passes, or at least L of the
K samples gave the answer and the judge's P("y") reaches its bar" the labels it keeps as a
multiple of the vote's, and the change in precision. The bar is generation 0's, set on its
held-out answers (`judge.precision`), times --bar_scale. With --frozen the answers are
judged again by generation 0's judge, which never saw a later lesson: its AUC beside the
run's judge's, on all answers and on the ones the vote keeps, and the vote with that judge
as a veto (an answer the vote keeps is dropped below --veto_scale times the bar).

Issue 18's target for the ensemble is 1.3x the vote's labels at no lower precision;
docs/grading.md reports this tool's tables for the settled judge's runs.
"""

import dataclasses
import json
import sys
from collections import defaultdict
from pathlib import Path

import ml_collections
import numpy as np
from absl import app, flags

from selfimprove_jax.base import display
from selfimprove_jax.base.errors import UserError
from selfimprove_jax.grading import scoring
from selfimprove_jax.run import experiment
from selfimprove_jax.run import workdir as workdir_lib

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command line's flags, defined only when run as a program (--workdir would clash
  with the other commands' in a process that imports them all, as the tests do)."""
  flags.DEFINE_string("workdir", None, "A finished run of a self_judge scorer.", required=True)
  flags.DEFINE_list("at_least", ["3", "4", "5"],
                    "Votes (of the K samples) an answer needs for the judge to add it.")
  flags.DEFINE_float("bar_scale", 1.0, "The judge's bar: generation 0's times this.")
  flags.DEFINE_bool("frozen", False, "Also judge the answers with generation 0's judge.")
  flags.DEFINE_float("veto_scale", 0.5, "--frozen: the veto's bar, as a share of the bar.")


@dataclasses.dataclass(frozen=True)
class Answer:
  prompt: str
  completion: str
  share: float  # of the K samples that gave it (0: the length filter refused it)
  judge: float  # the run's judge's P("y")
  correct: bool  # measurement only


def samples(config: dict) -> int:
  """K: the samples a prompt gets, from every member."""
  return config["ensemble_size"] * config["sample"]["samples_per_prompt"]


def vote(config: dict):
  """The vote alone: an answer passes with at least filter.threshold of the K samples."""
  threshold = config["filter"]["threshold"]
  return lambda a: a.share >= threshold


def read_run(path: Path) -> tuple[dict, list[dict], dict[int, list[Answer]]]:
  """The run's config, its metrics rows, and every later generation's answers that passed
  the length filter."""
  if not (path / "config.json").exists():
    raise UserError(f"--workdir {path} holds no run (no config.json)")
  config = experiment.saved_config(path).to_dict()
  if "self_judge" not in config["scorer"].split(","):
    raise UserError(f"--workdir {path}: its scorer {config['scorer']!r} has no self_judge stage")
  metrics = [json.loads(line) for line in (path / "metrics.jsonl").open()]
  k = samples(config)
  answers = {}
  for g in range(1, len(metrics)):
    examples = path / workdir_lib.examples_file(g)
    if not examples.exists():
      break
    rows = [json.loads(line) for line in examples.open()]
    # Votes are counted among the answers the length filter let through: 0 for the rest.
    answers[g] = [Answer(r["prompt"], r["completion"], r["votes"] / k, r["judge"],
                         r["correct"]) for r in rows if r["votes"] > 0]
  if not answers:
    raise UserError(f"--workdir {path} has no generation after 0 with its examples file")
  return config, metrics, answers


def keep(answers: list[Answer], admit) -> tuple[int, float | None]:
  """Labels kept, one a prompt, and their precision: of each prompt's admitted answers,
  the most voted (the vote's own pick when it passes), ties to the judge's favourite."""
  by_prompt = defaultdict(list)
  for a in answers:
    if admit(a):
      by_prompt[a.prompt].append(a)
  kept = [max(group, key=lambda a: (a.share, a.judge)).correct for group in by_prompt.values()]
  return len(kept), (float(np.mean(kept)) if kept else None)


def vote_or_judge(config: dict, at_least: float, bar: float):
  """The vote, or at least `at_least` of the samples and the judge over `bar`."""
  passes = vote(config)
  return lambda a: passes(a) or (a.share >= at_least and a.judge >= bar)


def compared(base: tuple[int, float | None], other: tuple[int, float | None]) -> str:
  (n0, p0), (n, p) = base, other
  if not n0 or p is None:
    return f"{n} kept"
  return f"{n / n0:.2f}x, {p - p0:+.3f}"


def rules_table(config: dict, bar: float, answers: dict[int, list[Answer]],
                at_least: list[int]) -> str:
  k = samples(config)
  head = ["generation", "vote alone: kept, right"] + [
      f"vote or (>= {n}/{k} and judge >= {bar:.3f})" for n in at_least]
  rows = []
  for g, ans in answers.items():
    base = keep(ans, vote(config))
    rows.append([str(g), f"{base[0]}, {base[1]:.3f}" if base[0] else "0"] + [
        compared(base, keep(ans, vote_or_judge(config, n / k, bar))) for n in at_least])
  return display.markdown(head, rows)


def frozen_verdicts(path: Path, config: dict, answers: dict[int, list[Answer]]) -> dict:
  """Generation 0's judge's P("y") for every answer, by generation."""
  from selfimprove_jax.core import sharding
  from selfimprove_jax.grading import judge
  from selfimprove_jax.run import loop
  sharding.one_cpu_device_per_core()  # as the loop ran (main.py)
  loop.quiet_library_logs()
  setup = loop.build(ml_collections.ConfigDict(config), str(path))
  try:
    zero = loop.restore(setup, 0)
    if zero.judge is None:
      raise UserError(f"--workdir {path}: generation 0 saved no judge of its own "
                      "(--frozen needs judge.weights=separate)")
    return {g: judge.p_yes(setup.devices, zero.judge.params, [a.prompt for a in ans],
                           [a.completion for a in ans]) for g, ans in answers.items()}
  finally:
    setup.close()


def frozen_table(config: dict, bar: float, answers: dict[int, list[Answer]], frozen: dict,
                 veto_scale: float) -> str:
  passes = vote(config)
  head = ["generation", "AUC: run's judge, generation 0's", "among the vote's labels",
          f"vote, vetoed below {veto_scale * bar:.3f}"]
  rows = []
  for g, ans in answers.items():
    right = np.array([a.correct for a in ans])
    run, zero = np.array([a.judge for a in ans]), np.asarray(frozen[g])
    voted = np.array([passes(a) for a in ans])
    aucs = lambda which: ", ".join(display.fmt(scoring.auc(s[which], right[which]))
                                   for s in (run, zero))
    unvetoed = [a for a, z in zip(ans, zero) if z >= veto_scale * bar]
    rows.append([str(g), aucs(slice(None)), aucs(voted),
                 compared(keep(ans, passes), keep(unvetoed, passes))])
  return display.markdown(head, rows)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  path = Path(FLAGS.workdir)
  try:
    if not all(k.isdigit() and int(k) >= 1 for k in FLAGS.at_least):
      raise UserError("--at_least takes vote counts >= 1, e.g. 3,4,5, got "
                      + ",".join(FLAGS.at_least))
    config, metrics, answers = read_run(path)
    bar = metrics[0].get("judge_threshold")
    if bar is None:
      raise UserError(f"--workdir {path}: generation 0 set no judge bar "
                      "(judge.lessons=own_answers with judge.precision > 0 sets one)")
    bar *= FLAGS.bar_scale
    print(rules_table(config, bar, answers, [int(k) for k in FLAGS.at_least]), flush=True)
    if FLAGS.frozen:
      print()
      print(frozen_table(config, bar, answers, frozen_verdicts(path, config, answers),
                         FLAGS.veto_scale), flush=True)
  except UserError as e:
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  define_flags()
  app.run(main)
