"""Several processes, one run: two local processes of two CPU devices each, joined through a
localhost coordinator, reproduce one process with four devices."""

import json
import socket

import pytest

import crash_harness as harness


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def close(a, b, rel: float) -> bool:
  """Equal, except that floats may differ by `rel` (relative)."""
  if isinstance(a, dict) and isinstance(b, dict):
    return a.keys() == b.keys() and all(close(a[k], b[k], rel) for k in a)
  if isinstance(a, list) and isinstance(b, list):
    return len(a) == len(b) and all(close(x, y, rel) for x, y in zip(a, b))
  if isinstance(a, float) and isinstance(b, float):
    return a == pytest.approx(b, rel=rel, abs=rel)
  return a == b


def test_two_processes_of_two_devices_reproduce_one_process_of_four(crash_reference):
  workdir, expected = crash_reference
  two = workdir.parent / "two_processes"
  # Generations 0 and 1 of the reference's three: every stage runs, at less cost.
  flags = (f"--coordinator_address=localhost:{free_port()}", "--num_processes=2",
           "--config.generations=1")
  processes = [harness.launch(two, devices=2, flags=(*flags, f"--process_id={i}")) for i in (0, 1)]
  for p in processes:
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
  got = harness.outputs(two)
  # Another layout computes floats in another order: Gloo sums gradients across
  # processes differently (weights differed by 5e-7), and XLA's CPU threads split
  # reductions differently (token entropy differed by 8e-8). So everything discrete
  # (sampled answers, votes, kept flags, counts) must match exactly, and every float
  # to a relative 1e-5.
  rows = lambda text: [json.loads(line) for line in text.splitlines()]
  name = "generations/001/examples.jsonl"
  assert close(rows(got[name]), rows(expected[name]), rel=1e-5), name
  name = "generations/001/labelling.json"
  assert close(got[name], expected[name], rel=1e-5), name
  assert close(got["metrics.jsonl"], expected["metrics.jsonl"][:2], rel=1e-5)
  # One writer: process 0 alone appended the log, so no line is doubled.
  log = [r for r in expected["train_log.jsonl"] if r["generation"] <= 1]
  assert close(got["train_log.jsonl"], log, rel=1e-5)
  assert harness.leftovers(two) == []
  assert json.loads((two / "config.json").read_text())["seed"] == 0


def test_close_compares_floats_loosely_and_everything_else_exactly():
  assert close({"a": [1.0, "x"]}, {"a": [1.0 + 1e-7, "x"]}, rel=1e-5)
  assert not close({"a": [1.0, "x"]}, {"a": [1.0, "y"]}, rel=1e-5)
  assert not close({"a": 1.0}, {"a": 1.1}, rel=1e-5)


def test_processes_that_do_not_share_the_workdir_stop_with_one_line(tmp_path):
  flags = (f"--coordinator_address=localhost:{free_port()}", "--num_processes=2")
  processes = [harness.launch(tmp_path / f"host{i}", devices=2, flags=(*flags, f"--process_id={i}"))
               for i in (0, 1)]
  for p in processes:
    _, err = p.communicate(timeout=300)
    assert p.returncode == 1, err[-3000:]
    assert "is not shared: process 0 wrote config.json there" in err.splitlines()[-1]
  # Process 0's directory keeps its config; the other process wrote nothing.
  assert (tmp_path / "host0" / "config.json").exists()
  assert not (tmp_path / "host1" / "config.json").exists()
