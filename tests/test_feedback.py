"""Users' ratings: reading and checking the file, and blending them into self-scores."""

import json

import numpy as np
import pytest

from selfimprove_jax import feedback
from selfimprove_jax.base.errors import UserError
from selfimprove_jax.base.files import FileError
from selfimprove_jax.core.tokenizer import CharTokenizer
from selfimprove_jax.grading import ratings as ratings_lib
from selfimprove_jax.grading.tasks import Problem, get_task

TASK, TOK = get_task("reverse_addition"), CharTokenizer()


def write(tmp_path, lines):
  path = tmp_path / "ratings.jsonl"
  path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
  return path


def test_ratings_are_averaged_per_answer_and_prompts_kept_in_file_order(tmp_path):
  path = write(tmp_path, [
      {"prompt": "12+34=", "completion": "46", "rating": 1},
      "",  # blank lines are allowed
      {"prompt": "999+1=", "completion": "0001", "rating": 0.25},
      {"prompt": "12+34=", "completion": "46", "rating": 0.5},
      {"prompt": "12+34=", "completion": "47", "rating": False}])
  ratings = ratings_lib.load(path, TASK, TOK)
  assert ratings.mean == {("12+34=", "46"): 0.75, ("999+1=", "0001"): 0.25, ("12+34=", "47"): 0.0}
  assert ratings.count[("12+34=", "46")] == 2
  # The problems behind the prompts, with ground truth for measurement: 21 + 43 = 64.
  assert ratings.problems == (Problem("12+34=", "46", 2), Problem("999+1=", "0001", 3))
  assert ratings.at([3]) == [Problem("999+1=", "0001", 3)]
  rating, rated = ratings.lookup(["12+34=", "5+5="], [["47", "46", "46"], ["01", "46", "1"]])
  np.testing.assert_allclose(rating, [[0, 0.75, 0.75], [0, 0, 0]])
  np.testing.assert_array_equal(rated, [[1, 1, 1], [0, 0, 0]])


GOOD = {"prompt": "12+34=", "completion": "46", "rating": 1}


@pytest.mark.parametrize("bad, message", [
    ("{not json", r"ratings.jsonl:3 is not valid JSON"),
    ({"prompt": "12+34=", "rating": 1}, r"ratings.jsonl:3 lacks the field 'completion'"),
    ({"prompt": "12+34=", "completion": "46", "rating": "good"},
     r"ratings.jsonl:3 field 'rating' must be"),
    ({"prompt": "12+34=", "completion": "46", "rating": 5},
     r"ratings.jsonl:3 field 'rating' must be in \[0, 1\] or true/false, got 5"),
    ({"prompt": "12+34=", "completion": 46, "rating": 1}, r"ratings.jsonl:3 field 'completion'"),
    ({"prompt": "what is 12+34?", "completion": "46", "rating": 1},
     r"ratings.jsonl:3: 'what is 12\+34\?' is not a prompt of this task"),
    ({"prompt": "12+34=", "completion": "4 six!", "rating": 1},
     r"ratings.jsonl:3: character '!' .* is not in the tokenizer alphabet"),
])
def test_a_bad_line_is_refused_naming_file_line_and_field(tmp_path, bad, message):
  path = write(tmp_path, [GOOD, "", bad, GOOD])
  with pytest.raises(FileError, match=message):
    ratings_lib.load(path, TASK, TOK)
  assert path.read_text().count("\n") == 4  # the file is left as it was


def test_a_missing_or_empty_file_is_refused(tmp_path):
  with pytest.raises(UserError, match="feedback.file .*nowhere.jsonl does not exist"):
    ratings_lib.load(tmp_path / "nowhere.jsonl", TASK, TOK)
  with pytest.raises(UserError, match="holds no ratings"):
    ratings_lib.load(write(tmp_path, [""]), TASK, TOK)


def test_blend_weighs_rating_against_self_score_and_says_where_each_came_from():
  self_score = np.array([[0.5, 0.8, 0.0, 0.4]])
  valid = np.array([[1, 1, 0, 1]], bool)
  rating = np.array([[1.0, 0.0, 1.0, 0.0]])
  rated = np.array([[1, 1, 1, 0]], bool)
  score, source = ratings_lib.blend(self_score, valid, rating, rated, weight=0.25, has_self=True)
  # 0.25 * 1 + 0.75 * 0.5; 0.25 * 0 + 0.75 * 0.8; ruled out stays 0; unrated keeps its own.
  np.testing.assert_allclose(score, [[0.625, 0.6, 0.0, 0.4]])
  assert source.tolist() == [["blend", "blend", "self", "self"]]
  score, source = ratings_lib.blend(self_score, valid, rating, rated, weight=1.0, has_self=True)
  np.testing.assert_allclose(score, [[1.0, 0.0, 0.0, 0.4]])
  # With no self-scorer the rating is the score, and unrated answers are not kept.
  score, source = ratings_lib.blend(np.zeros((1, 4)), valid, rating, rated, weight=0.25,
                                     has_self=False)
  np.testing.assert_allclose(score, [[1.0, 0.0, 0.0, 0.0]])
  assert source.tolist() == [["feedback", "feedback", "self", "self"]]


def test_rated_prompts_join_the_generation_and_their_answers_are_blended(tmp_path):
  from selfimprove_jax.run import loop
  from test_loop import tiny
  rng = np.random.default_rng(5)
  prompts = [TASK.generate(rng, 3).prompt for _ in range(32)]  # tiny labels 3 digits first

  def run(name, ratings):
    path = write(tmp_path, [dict(prompt=p, completion=c, rating=r) for p, c, r in ratings])
    workdir = tmp_path / name
    config = tiny(scorer="length,majority_vote,feedback", generations=1)
    config.feedback.file = str(path)
    history = loop.run(config, str(workdir))
    rows = [json.loads(x) for x in (workdir / "generations/001/examples.jsonl").open()]
    return history[1], rows

  # First, ratings of answers no model gives: the rated prompts are what gets labelled.
  _, plain = run("unmatched", [(p, "9" * 9, 1.0) for p in prompts])
  assert [r["prompt"] for r in plain if r["prompt"] not in prompts] == []
  assert {r["score_source"] for r in plain} == {"self"}
  # Then ratings of the answers it gave (same problems, so the same samples): 1 for
  # the first answer to each prompt, 0 for the others.
  firsts = {}
  for r in plain:
    firsts.setdefault(r["prompt"], r["completion"])
  ratings = [(r["prompt"], r["completion"], float(firsts[r["prompt"]] == r["completion"]))
             for r in plain]
  metrics, rated = run("matched", ratings)
  assert [(r["prompt"], r["completion"]) for r in rated] == [(r["prompt"], r["completion"])
                                                              for r in plain]
  for before, after in zip(plain, rated):
    if before["score"] > 0:  # a valid answer: half its rating, half its vote share
      rating = float(firsts[before["prompt"]] == before["completion"])
      assert after["score"] == pytest.approx(0.5 * rating + 0.5 * before["score"], abs=2e-6)
      assert after["score_source"] == "blend"
    else:
      assert after["score"] == 0 and after["score_source"] == "self"
  assert metrics["feedback_rated"] > 0
  assert sum(metrics["kept_by_source"].values()) == metrics["kept"]
  assert metrics["kept_by_source"]["blend"] == sum(r["kept"] for r in rated)


def test_a_bad_feedback_file_stops_the_run_before_the_workdir_is_made(tmp_path):
  from selfimprove_jax.run import loop
  from test_loop import tiny
  config = tiny(scorer="majority_vote,feedback")
  config.feedback.file = str(write(tmp_path, [GOOD, {"prompt": "12+34=", "rating": 1}]))
  with pytest.raises(UserError, match=r"ratings.jsonl:2 lacks the field 'completion'$"):
    loop.run(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_simulated_users_rate_by_ground_truth_and_err_at_their_rate():
  rows = [dict(prompt=f"{i}+1=", completion=str(j), finished=j != 3, correct=j == 0)
          for i in range(200) for j in range(4)]
  perfect = feedback.simulate(rows, 1.0, 0.5, np.random.default_rng(0))
  assert len({r["prompt"] for r in perfect}) == 100 and len(perfect) == 300  # cut-off unrated
  assert all(r["rating"] == (r["completion"] == "0") for r in perfect)
  sloppy = feedback.simulate(rows, 0.8, 1.0, np.random.default_rng(0))
  wrong = np.mean([r["rating"] != (r["completion"] == "0") for r in sloppy])
  assert 0.16 < wrong < 0.24
