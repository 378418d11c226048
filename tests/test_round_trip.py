"""The round trip: each answer's inverse question, the model's probability of getting the
prompt back, the scorer that uses it, and a short run graded by it."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selfimprove_jax.core import model as model_lib
from selfimprove_jax.grading import round_trip, scoring
from selfimprove_jax.grading.tasks import get_task

REVERSAL = get_task("reversal")


def test_the_inverse_question_asks_the_answer_back_from_prompt_and_answer_alone():
  assert REVERSAL.inverse("abc>", "cba") == ("cba>", "abc")
  assert REVERSAL.inverse("abc>", "cbx") == ("cbx>", "abc")  # a wrong answer asks otherwise
  assert get_task("copy").inverse("abc=", "abd") == ("abd=", "abc")
  assert REVERSAL.has_inverse and not get_task("reverse_addition").has_inverse
  with pytest.raises(ValueError, match="'addition' has no inverse question"):
    get_task("addition").inverse("12+3=", "15")


def candidates(prompts, completions, finished=None):
  finished = np.ones((len(prompts), len(completions[0])), bool) if finished is None else finished
  return scoring.Candidates(prompts=prompts, completions=completions, finished=finished,
                            mean_logprob=np.zeros(finished.shape))


def test_probabilities_are_each_members_chance_of_the_prompt_back_averaged(two_members):
  tok, graphdef, members = two_members.tok, two_members.graphdef, two_members.members
  params, devices = two_members.params, two_members.devices
  cands = candidates(["abc>", "hello>"], [["cba", "cbx", "cba"], ["olleh", "", "ollehh"]],
                     finished=np.array([[1, 1, 0], [1, 1, 1]], bool))
  got = round_trip.probabilities(devices, REVERSAL, params, cands)
  assert got[0, 2] == 0.0 and got[1, 1] == 0.0  # cut off, empty: not asked
  for i, j in [(0, 0), (0, 1), (1, 0), (1, 2)]:
    question, expected = REVERSAL.inverse(cands.prompts[i], cands.completions[i][j])
    ids = tok.encode(question, bos=True) + tok.encode(expected, eos=True)
    want = []
    for _, member in members:  # each question alone, unpadded
      logits, _ = model_lib.apply(graphdef, member, jnp.array([ids[:-1]]))
      log_p = jax.nn.log_softmax(logits[0])
      start = len(tok.encode(question, bos=True)) - 1
      want.append(np.exp(sum(float(log_p[t, ids[t + 1]]) for t in range(start, len(ids) - 1))))
    assert got[i, j] == pytest.approx(np.mean(want), rel=1e-4)
  assert 0 < got[0, 0] < 1 and got[0, 0] != got[0, 1]


def test_the_round_trip_stage_scores_what_earlier_stages_left_in_play():
  cands = candidates(["abc>"] * 2, [["cba", "cb", "abc"], ["cba", "xyz", "cb"]])
  p_back = np.array([[0.9, 0.8, 0.1], [0.7, 0.2, 0.6]])
  got = scoring.make_scorer("length,round_trip", REVERSAL, p_back=p_back)(cands)
  np.testing.assert_allclose(got, [[0.9, 0.0, 0.1], [0.7, 0.2, 0.0]])  # "cb": too short
  with pytest.raises(ValueError, match="round trip's probabilities"):
    scoring.make_scorer("round_trip", REVERSAL)(cands)


def test_round_trip_refuses_a_task_without_an_inverse():
  from selfimprove_jax.run import config_check
  from test_loop import tiny
  with pytest.raises(ValueError, match="scorer 'round_trip' .* task 'reverse_addition' has none"):
    config_check._check_task(tiny(scorer="length,round_trip"))


def test_a_short_run_of_one_model_grades_by_its_round_trip(tmp_path):
  from selfimprove_jax.run import loop
  from test_loop import tiny
  config = tiny(**{"scorer": "length,round_trip", "task": "reversal", "ensemble_size": 1,
                   "generations": 1, "data.max_difficulty": 1, "eval.max_difficulty": 2,
                   "filter.threshold": 1e-6})
  history = loop.run(config, str(tmp_path))
  gen1 = history[1]
  assert gen1["round_trip_auc"] is None or 0 <= gen1["round_trip_auc"] <= 1
  examples = [json.loads(x) for x in (tmp_path / "generations/001/examples.jsonl").open()]
  # Each distinct finished answer asked once (two problems may share a prompt).
  assert gen1["round_trip_questions"] == len({(r["prompt"], r["completion"]) for r in examples
                                              if r["finished"] and r["completion"]})
  assert examples and all("round_trip" in r for r in examples)
  for r in examples:  # every score is the round trip's, or 0 from the length filter
    if r["finished"] and r["completion"]:
      assert r["score"] == (r["round_trip"] if len(r["completion"]) == r["difficulty"] else 0.0)
    else:
      assert r["round_trip"] == 0.0
  # Kept: each problem's best answer, when it reached the (here tiny) threshold. Two
  # problems can share a prompt at 2 letters: only prompts of one kept label are checked.
  by_prompt = {}
  for r in examples:
    by_prompt.setdefault(r["prompt"], []).append(r)
  for group in by_prompt.values():
    kept = [r for r in group if r["kept"]]
    if len(kept) == 1:
      assert kept[0]["score"] == max(r["score"] for r in group) > 0
  assert gen1["kept"] == sum(r["kept"] for r in examples) > 0


def test_either_keeps_what_the_vote_or_the_round_trip_passes_each_at_its_own_bar(tmp_path):
  from selfimprove_jax.run import loop
  from test_loop import tiny
  config = tiny(**{"scorer": "length,majority_vote,round_trip", "task": "reversal",
                   "generations": 1, "data.max_difficulty": 1, "eval.max_difficulty": 2,
                   "filter.threshold": 0.5, "round_trip.combine": "either",
                   "round_trip.threshold": 1e-4})
  history = loop.run(config, str(tmp_path))
  examples = [json.loads(x) for x in (tmp_path / "generations/001/examples.jsonl").open()]
  k = config.ensemble_size * config.sample.samples_per_prompt
  for r in examples:
    if r["votes"] == 0 or len(r["completion"]) != r["difficulty"]:  # cut off, empty, or
      # refused by the length filter: a veto
      assert r["score"] == 0.0 and not r["kept"]
    else:  # each grader in units of its own bar, the stronger counting
      assert r["score"] == pytest.approx(max(r["votes"] / k / 0.5, r["round_trip"] / 1e-4),
                                         abs=0.011)  # rows round to 6 decimals
  kept = [r for r in examples if r["kept"]]
  assert kept and all(r["votes"] / k >= 0.5 or r["round_trip"] >= 1e-4 - 1e-6
                      for r in kept)
  assert any(r["votes"] / k < 0.5 for r in kept)  # the round trip let in what the vote did not
  assert history[1]["kept"] == len(kept)


@pytest.mark.parametrize("overrides, message", [
    ({"round_trip.combine": "both"}, "round_trip.combine must be one of"),
    ({"round_trip.threshold": 0.0}, "round_trip.threshold"),
    ({"scorer": "length,self_judge,round_trip", "judge.combine": "either",
      "round_trip.combine": "either"}, "set one of them to 'product'"),
])
def test_bad_round_trip_settings_are_refused_naming_the_field(overrides, message):
  from selfimprove_jax.run import config_check
  from test_loop import tiny
  config = tiny(**{"scorer": "length,round_trip", "task": "reversal"} | overrides)
  with pytest.raises(ValueError, match=message):
    config_check.check(config, mesh=None)


def test_the_judge_weighed_against_stages_that_include_the_round_trip(tmp_path):
  from selfimprove_jax.run import loop
  from test_loop import tiny
  config = tiny(**{"scorer": "length,round_trip,self_judge", "task": "reversal",
                   "generations": 1, "data.max_difficulty": 1, "eval.max_difficulty": 2,
                   "filter.threshold": 1e-4, "judge.combine": "either"})
  loop.run(config, str(tmp_path))
  examples = [json.loads(x) for x in (tmp_path / "generations/001/examples.jsonl").open()]
  for r in examples:  # the length filter and the round trip at filter.threshold, or the judge
    if len(r["completion"]) == r["difficulty"] and r["finished"]:  # at its bar (0.5 here)
      assert r["score"] == pytest.approx(max(r["round_trip"] / 1e-4, r["judge"] / 0.5),
                                         abs=0.011)
    else:
      assert r["score"] == 0.0


def test_the_round_trip_never_reads_the_truth(tmp_path):
  """With every problem's answer corrupted, and the checker and the prompt parser raising
  outside measurement, a generation graded by the round trip asks the same questions,
  keeps the same labels, gates and trains exactly as before."""
  from test_loop import tiny
  import crash_harness
  from test_self_labelling import MEASUREMENT, honest_and_corrupted, read, without

  def config(generations):
    return tiny(**{"scorer": "length,round_trip", "task": "reversal", "ensemble_size": 1,
                   "generations": generations, "data.max_difficulty": 1,
                   "eval.max_difficulty": 2, "filter.threshold": 1e-6,
                   "curriculum.gate": "kept_fraction", "curriculum.gate_threshold": 0.3})

  no_judge = {m for m in MEASUREMENT if m[1] != "TaskMode._lesson_truth"}
  honest, corrupted, digest = honest_and_corrupted(tmp_path, config, no_judge)
  name = "generations/001/examples.jsonl"
  rows, rows_corrupted = read(honest, name), read(corrupted, name)
  assert sum(r["kept"] for r in rows) > 0 and any(r["round_trip"] > 0 for r in rows)
  assert without(rows_corrupted, "correct") == without(rows, "correct")
  assert not any(r["correct"] for r in rows_corrupted)
  gen1, gen1_corrupted = read(honest, "metrics.jsonl")[1], read(corrupted, "metrics.jsonl")[1]
  for field in ("kept", "kept_fraction", "gate_passed", "frontier", "round_trip_questions",
                "tokens_trained", "accuracy"):
    assert gen1_corrupted[field] == gen1[field], field
  assert gen1_corrupted["kept_precision"] == 0
  assert crash_harness.params_digest(corrupted) == digest  # the same weights, bit for bit
