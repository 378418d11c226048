"""The scorer comparison's table, figure and baseline loading (the runs are loop.run's)."""

import json

import pytest

from selfimprove_jax import compare_scorers
from selfimprove_jax.base.errors import UserError


def history(precisions, final_accuracy, seconds=30.0):
  out = [dict(generation=0, kept_precision=None, accuracy={"1": 1.0, "2": 0.5, "3": 0.0},
              seconds={"train": seconds})]
  for g, p in enumerate(precisions, 1):
    out.append(dict(generation=g, kept_precision=p, accuracy={"1": 1.0, "2": 0.5, "3": 0.1 * g},
                    seconds={"sample": seconds, "train": seconds}))
  out[-1]["accuracy"] = final_accuracy
  return out


RUNS = {"none": history([0.5, None], {"1": 0.9, "2": 0.7, "3": 0.25}),
        "verifier": history([1.0, 1.0], {"1": 1.0, "2": 1.0, "3": 0.75}, seconds=60.0)}


def test_table_has_precision_per_generation_and_final_accuracy_beyond_the_truth():
  table = compare_scorers.markdown_table(RUNS, trained_max=1).splitlines()
  assert table[0] == "| scorer | prec g1 | prec g2 | acc d1-1 | acc d2 | acc d3 | minutes |"
  assert table[2] == "| none | 0.50 | - | 0.90 | 0.70 | 0.25 | 2.5 |"  # 30 s + 2 x 60 s
  assert table[3] == "| verifier | 1.00 | 1.00 | 1.00 | 1.00 | 0.75 | 5.0 |"


def test_figure_is_written(tmp_path):
  compare_scorers.plot(RUNS, tmp_path / "c.png")
  assert (tmp_path / "c.png").stat().st_size > 10_000


def test_baseline_arms_are_read_back_and_an_empty_baseline_is_refused(tmp_path):
  for arm, h in RUNS.items():
    (tmp_path / arm).mkdir()
    (tmp_path / arm / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in h))
  assert compare_scorers.load_arms(tmp_path) == RUNS
  assert list(compare_scorers.load_arms(tmp_path, only=["verifier"])) == ["verifier"]
  with pytest.raises(UserError, match=r"holds no finished run of the arms \[.verifier.\]"):
    compare_scorers.load_arms(tmp_path / "none", only=["verifier"])


def test_the_default_arms_add_the_round_trip_only_where_the_task_has_an_inverse():
  from test_loop import tiny
  assert compare_scorers.default_arms(tiny(task="reversal")) == [*compare_scorers.ARMS,
                                                                 "round_trip"]
  assert compare_scorers.default_arms(tiny()) == list(compare_scorers.ARMS)  # reverse addition
