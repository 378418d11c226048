"""End to end: the tiny config through the library and through the command line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from selfimprove_jax import config_files, supervised

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_run_learns_and_writes_its_outputs(tmp_path, capsys):
  accuracy = supervised.train_and_evaluate(config_files.load("tiny"), str(tmp_path))
  log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
  assert [r["step"] for r in log] == [25, 50, 75, 100, 125, 150]
  assert log[-1]["loss"] < 0.6 * log[0]["loss"]
  assert json.loads((tmp_path / "eval.json").read_text()) == {str(d): a for d, a in accuracy.items()}
  assert set(accuracy) == {1, 2, 3, 4}
  assert accuracy[1] > 0.2  # 1-digit sums are learnable in 150 steps; chance is ~0
  assert "(trained)" in capsys.readouterr().out


def run_cli(*args):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "selfimprove_jax.main", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("override, message", [
    ("--config.train.batch_size=12",
     "error: train.batch_size=12 must be a positive multiple of the device count (8)"),
    ("--config.task=sum", "error: task must be one of"),
])
def test_cli_bad_config_is_one_line_before_compute(tmp_path, override, message):
  result = run_cli("--config=configs/tiny.py", f"--workdir={tmp_path}", override)
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1].startswith(message)
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "train_log.jsonl").exists()


def test_cli_misspelled_field_fails_loudly(tmp_path):
  result = run_cli("--config=configs/tiny.py", f"--workdir={tmp_path}", "--config.train.stpes=5")
  assert result.returncode != 0 and "stpes" in result.stderr
