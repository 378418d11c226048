"""A run killed anywhere loses nothing, and one seed gives one result.

The long version (50 kills, some at random times) is a separate command:
`python tests/crash_harness.py --kills=50`; see docs/reliability.md.
"""

import signal

import pytest

import crash_harness as harness

# One kill of every kind, in the order a run meets them.
CI_POINTS = ["train:0:5", "progress:0", "checkpoint:0", "sample:1", "score:1", "labels:1",
             "metrics:1"]


@pytest.fixture(scope="module")
def reference(crash_reference):
  return crash_reference


def test_same_config_and_seed_give_identical_runs(reference):
  workdir, expected = reference
  again = workdir.parent / "again"
  assert harness.attempt(again) == 0
  assert harness.outputs(again) == expected
  assert expected["params"] and len(expected["metrics.jsonl"]) == 3


def test_killed_at_every_stage_the_run_ends_as_if_never_killed(reference):
  workdir, expected = reference
  crashed = workdir.parent / "crashed"
  history = harness.crash_run(crashed, CI_POINTS, kills=len(CI_POINTS), log=lambda _: None)
  # Every attempt died where it was aimed; none slipped past its point.
  assert history == [(p, -signal.SIGKILL) for p in CI_POINTS]
  got = harness.outputs(crashed)
  assert sorted(got) == sorted(expected)
  for name in expected:  # compared one by one, for a readable failure
    assert got[name] == expected[name], name
  assert harness.leftovers(crashed) == []


def test_reachable_skips_points_the_run_has_passed(tmp_path):
  progress = tmp_path / "checkpoints" / "progress_1" / "10"
  progress.mkdir(parents=True)
  (tmp_path / "checkpoints" / "generations" / "0").mkdir(parents=True)
  assert harness.position(tmp_path) == (0, 10)
  assert not harness.reachable(tmp_path, "checkpoint:0")
  assert not harness.reachable(tmp_path, "sample:1")  # labelled before the progress was saved
  assert harness.reachable(tmp_path, "train:1:5") and not harness.reachable(tmp_path, "train:1:15")
  assert not harness.reachable(tmp_path, "progress:1")  # 10 + 10 is the end of 20 steps
  assert harness.reachable(tmp_path, "sample:2")


def test_sigterm_saves_the_finished_step_exits_0_and_the_rerun_resumes(reference):
  workdir, expected = reference
  preempted = workdir.parent / "preempted"
  # Inside training: the step in flight finishes and is saved, though 15 is no save point.
  assert harness.attempt(preempted, "term-train:0:15") == 0
  assert harness.position(preempted) == (-1, 15)
  # While sampling: stops there; generation 1 is redone from its start.
  assert harness.attempt(preempted, "term-sample:1") == 0
  assert harness.position(preempted)[0] == 0
  assert harness.attempt(preempted) == 0
  assert harness.outputs(preempted) == expected
  assert harness.leftovers(preempted) == []


# The judge's lessons from the models' own answers join generation 0 after its 30 steps,
# with their answers after step 20 as well.
JUDGE = ("--config.scorer=length,majority_vote,self_judge", "--config.judge.lessons=own_answers",
         "--config.judge.problems=32", "--config.judge.samples=2", "--config.judge.steps=10",
         "--config.judge.early_steps=20", "--config.generations=1")


def test_killed_while_the_judge_learns_its_own_answers_the_run_ends_as_if_never_killed(
    tmp_path):
  whole, killed = tmp_path / "whole", tmp_path / "killed"
  assert harness.attempt(whole, flags=JUDGE) == 0
  # Step 25: the answers after step 20 were written, and the progress saved there.
  assert harness.attempt(killed, "train:0:25", flags=JUDGE) == -signal.SIGKILL
  assert (killed / "generations/000/judge_answers_step20.jsonl").exists()
  assert harness.position(killed) == (-1, 20)
  # Resumed there, its 15th step is step 35 of 40: the lessons were written at step 30,
  # and the progress saved there.
  assert harness.attempt(killed, "train:0:15", flags=JUDGE) == -signal.SIGKILL
  assert (killed / "generations/000/judge.jsonl").exists()
  assert harness.position(killed) == (-1, 30)
  assert harness.attempt(killed, flags=JUDGE) == 0
  expected, got = harness.outputs(whole), harness.outputs(killed)
  assert sorted(got) == sorted(expected) and "generations/000/judge.jsonl" in got
  assert "generations/000/judge_answers_step20.jsonl" in got
  for name in expected:
    assert got[name] == expected[name], name
