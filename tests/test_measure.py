"""`python -m selfimprove_jax.measure`: a finished run's generations on more problems. The
command runs in a process of its own: its flags would clash with other commands' here."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from selfimprove_jax.grading import evaluate
from selfimprove_jax.run import loop
from test_loop import tiny

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("measured") / "run"
  return workdir, loop.run(tiny(generations=1), str(workdir))


def cli(*args):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "selfimprove_jax.measure",
                         "--config=configs/tiny.py", "--config.generations=1", *args],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_on_the_runs_own_evaluation_problems_it_is_the_runs_accuracy(run):
  workdir, history = run
  setup = loop.build(tiny(generations=1), str(workdir))
  try:
    train, _ = setup.workdir.restore_generation(1)
    problems = setup.mode.eval_problems
    members = setup.mode.accuracy_of_members(setup, train.params, problems)
    chunked = setup.mode.accuracy_of_members(setup, train.params, problems, rows_per_call=7)
  finally:
    setup.close()
  assert len(members) == 2
  assert {str(d): a for d, a in members[0].items()} == history[-1]["accuracy"]
  # In calls of 7 rows the batches have another shape: a near tie may break the other
  # way, so each difficulty's 16 problems may differ by one answer.
  for whole, parts in zip(members, chunked):
    assert whole.keys() == parts.keys()
    assert all(abs(whole[d] - parts[d]) <= 1 / 16 for d in whole)


def test_standard_error_is_the_binomial_one():
  assert evaluate.standard_error(0.94, 128) == pytest.approx(0.0210, abs=1e-4)
  assert evaluate.standard_error(1.0, 10) == 0.0


def files_of(workdir):
  """Every file of the run with its bytes, but the lock's (it names its last holder)."""
  return {p: p.read_bytes() for p in sorted(workdir.rglob("*")) if p.is_file()
          and p.name != "run.lock"}


def test_the_command_prints_each_member_writes_json_and_changes_no_file_of_the_run(run, tmp_path):
  workdir, _ = run
  before = files_of(workdir)
  out = tmp_path / "measured.json"
  result = cli(f"--workdir={workdir}", "--per_difficulty=16", "--difficulties=2,3", f"--out={out}")
  assert result.returncode == 0, result.stderr[-3000:]
  numbers = json.loads(out.read_text())
  assert numbers["per_difficulty"] == 16 and sorted(numbers["accuracy"]) == ["0", "1"]
  for members in numbers["accuracy"].values():  # generations 0 and 1, two members each
    assert [sorted(m) for m in members] == [["2", "3"], ["2", "3"]]
    assert all(0 <= a <= 1 for m in members for a in m.values())
  rows = [line for line in result.stdout.splitlines()
          if line.startswith("| ") and "---" not in line]
  assert rows[0] == "| generation | member | 2 | 3 |" and len(rows) == 5
  assert files_of(workdir) == before


@pytest.mark.parametrize("flag, message", [
    ("", "holds no run (no config.json)"),
    ("--difficulties=5,2", "--difficulties takes low,high with 1 <= low <= high, got 5,2"),
    ("--generations=last", "--generations takes generation numbers, e.g. 0,12, got last"),
])
def test_bad_input_is_one_line_and_makes_no_directory(tmp_path, flag, message):
  result = cli(f"--workdir={tmp_path / 'none'}", *([flag] if flag else []))
  assert result.returncode == 1
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and last.endswith(message), last
  assert not (tmp_path / "none").exists()
