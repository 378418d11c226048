"""judge_rules: a finished run's answers combined again offline, the vote against the vote
with the judge's help, and generation 0's judge judging them again."""

import json
from pathlib import Path

import numpy as np
import pytest

from selfimprove_jax import judge_rules
from selfimprove_jax.base.errors import UserError


def row(prompt, completion, votes, judge, correct):
  return dict(generation=1, difficulty=3, prompt=prompt, completion=completion, finished=True,
              votes=votes, judge=judge, correct=correct)


def hand_made_run(path, rows, scorer="length,majority_vote,self_judge"):
  config = dict(scorer=scorer, ensemble_size=2, sample=dict(samples_per_prompt=2),
                filter=dict(threshold=0.5))
  (path / "config.json").write_text(json.dumps(config))
  (path / "metrics.jsonl").write_text(
      json.dumps(dict(generation=0, judge_threshold=0.6)) + "\n"
      + json.dumps(dict(generation=1)) + "\n")
  (path / "generations/001").mkdir(parents=True)
  (path / "generations/001/examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


ROWS = [  # K = 4 samples a prompt
    row("a>", "x", 3, 0.9, True), row("a>", "y", 1, 0.2, False),  # the vote passes
    row("b>", "x", 2, 0.7, False), row("b>", "y", 2, 0.3, True),  # 2/4 passes too: the most
    # voted, ties to the judge's favourite, which is wrong here
    row("c>", "x", 1, 0.8, True), row("c>", "y", 1, 0.1, False),  # the judge may add "x"
    row("d>", "x", 1, 0.95, False), row("d>", "zz", 0, 0.99, True),  # "zz": refused by length
    row("e>", "x", 1, 0.5, True)]  # under the bar


def test_the_vote_and_the_judges_additions_counted_per_prompt(tmp_path):
  hand_made_run(tmp_path, ROWS)
  config, metrics, answers = judge_rules.read_run(tmp_path)
  assert sorted(answers) == [1] and len(answers[1]) == 8  # the refused answer left out
  vote = judge_rules.keep(answers[1], judge_rules.vote(config))
  assert vote == (2, 0.5)  # a> right, b> wrong
  added = judge_rules.keep(answers[1], judge_rules.vote_or_judge(config, 0.25, 0.6))
  assert added == (4, 0.5)  # and c> right, d> wrong; e> under the bar
  assert judge_rules.keep(answers[1], judge_rules.vote_or_judge(config, 0.5, 0.6)) == vote
  table = judge_rules.rules_table(config, 0.6, answers, [1, 2])
  assert table.splitlines()[2] == "| 1 | 2, 0.500 | 2.00x, +0.000 | 1.00x, +0.000 |"


def test_a_run_without_a_judge_or_a_run_at_all_is_refused_in_one_line(tmp_path):
  with pytest.raises(UserError, match="no config.json"):
    judge_rules.read_run(tmp_path)
  hand_made_run(tmp_path, ROWS, scorer="length,majority_vote")
  with pytest.raises(UserError, match="no self_judge stage"):
    judge_rules.read_run(tmp_path)


def test_generation_0s_judge_judges_a_frozen_runs_answers_as_the_run_did(tmp_path):
  from selfimprove_jax.run import loop
  from test_loop import tiny
  config = tiny(scorer="length,majority_vote,self_judge", generations=1,
                **{"judge.lessons": "own_answers", "judge.problems": 64, "judge.samples": 2,
                   "judge.steps": 10, "judge.combine": "gate", "judge.precision": 0.5,
                   "judge.later": "frozen", "judge.weights": "separate"})
  loop.run(config, str(tmp_path))
  saved, _, answers = judge_rules.read_run(tmp_path)
  frozen = judge_rules.frozen_verdicts(tmp_path, saved, answers)
  # The same judge (nothing taught it after generation 0), rebuilt from config.json alone.
  np.testing.assert_allclose(frozen[1], [a.judge for a in answers[1]], atol=2e-6)
  table = judge_rules.frozen_table(saved, 0.5, answers, frozen, veto_scale=0.5)
  assert table.splitlines()[2].startswith("| 1 | ")


def test_the_command_prints_the_table_and_refuses_bad_vote_counts(tmp_path):
  import subprocess
  import sys
  hand_made_run(tmp_path, ROWS)
  command = [sys.executable, "-m", "selfimprove_jax.judge_rules", f"--workdir={tmp_path}"]
  run = lambda *args: subprocess.run(command + list(args), cwd=Path(__file__).parents[1],
                                     capture_output=True, text=True, timeout=300)
  done = run("--at_least=1,2")
  assert done.returncode == 0, done.stderr
  assert "| 1 | 2, 0.500 | 2.00x, +0.000 | 1.00x, +0.000 |" in done.stdout
  refused = run("--at_least=0")
  assert refused.returncode != 0
  assert refused.stderr.strip().splitlines()[-1] == (
      "error: --at_least takes vote counts >= 1, e.g. 3,4,5, got 0")
