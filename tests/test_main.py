"""The command line: errors a user can make come back as one line, before any compute."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from selfimprove_jax import config_files

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "selfimprove_jax.main", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("override, message", [
    ("--config.train.batch_size=12",
     "error: train.batch_size=12 must be a positive multiple of the device count (8)"),
    ("--config.task=sum", "error: task must be one of"),
    ("--config.generation_optimizer.b2=1.0", "error: generation_optimizer.b2 must be in [0, 1)"),
])
def test_cli_bad_config_is_one_line_before_compute(tmp_path, override, message):
  result = run_cli("--config=configs/tiny.py", f"--workdir={tmp_path}", override)
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1].startswith(message)
  assert "Traceback" not in result.stderr
  assert not list(tmp_path.iterdir())


def test_cli_misspelled_field_fails_loudly(tmp_path):
  result = run_cli("--config=configs/tiny.py", f"--workdir={tmp_path}", "--config.train.stpes=5")
  assert result.returncode != 0 and "stpes" in result.stderr


def test_cli_refuses_a_workdir_of_another_experiment_and_changes_nothing(tmp_path):
  saved = json.loads(config_files.load("tiny").to_json_best_effort())
  saved["model"]["num_layers"] = 3
  (tmp_path / "config.json").write_text(json.dumps(saved))
  (tmp_path / "metrics.jsonl").write_text('{"generation": 0}\n')
  before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
  result = run_cli("--config=configs/tiny.py", f"--workdir={tmp_path}")
  assert result.returncode != 0 and "Traceback" not in result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith(
      f"error: workdir {tmp_path} holds a run with model.num_layers=3, not 2; use a new --workdir")
  assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
