import numpy as np
import pytest

from selfimprove_jax.grading import scoring
from selfimprove_jax.grading.tasks import Problem, get_task

TASK = get_task("reverse_addition")


def cands(prompts, completions, finished=None, logprob=None):
  n, k = len(completions), len(completions[0])
  finished = np.ones((n, k), bool) if finished is None else np.array(finished)
  logprob = np.zeros((n, k)) if logprob is None else np.array(logprob, float)
  return scoring.Candidates(prompts=prompts, completions=completions, finished=finished,
                            mean_logprob=logprob)


def test_majority_vote_is_the_share_of_all_samples_agreeing():
  c = cands(["1+1=", "5+5="], [["2", "2", "3", "2"], ["01", "01", "1", "0"]])
  np.testing.assert_allclose(scoring.make_scorer("majority_vote", TASK)(c),
                             [[0.75, 0.75, 0.25, 0.75], [0.5, 0.5, 0.25, 0.25]])


def test_ties_score_equal_and_cut_off_or_empty_answers_get_no_vote():
  # Two answers with two votes each tie; the empty answer and the unfinished one
  # (no EOS) are not answers and count as disagreement, not as votes.
  c = cands(["3+4="], [["7", "7", "8", "8", "", "7"]],
            finished=[[True, True, True, True, True, False]])
  np.testing.assert_allclose(scoring.make_scorer("majority_vote", TASK)(c),
                             [[2 / 6, 2 / 6, 2 / 6, 2 / 6, 0, 0]])
  assert scoring.self_consistency(c) == pytest.approx(2 / 6)


def test_confidence_is_mean_token_probability():
  c = cands(["1+1="], [["2", "3", ""]], logprob=[[np.log(0.9), np.log(0.2), 0.0]])
  np.testing.assert_allclose(scoring.make_scorer("confidence", TASK)(c), [[0.9, 0.2, 0.0]])


def test_length_accepts_the_plausible_digit_counts_only():
  # 3-digit operands: the sum has 3 or 4 digits.
  c = cands(["123+456="], [["579", "5791", "57", "57911"]])
  np.testing.assert_allclose(scoring.make_scorer("length", TASK)(c), [[1, 1, 0, 0]])


def test_length_then_majority_vote_removes_implausible_voters():
  c = cands(["123+456="], [["57", "57", "57", "579", "579"]])
  np.testing.assert_allclose(scoring.make_scorer("majority_vote", TASK)(c),
                             [[0.6, 0.6, 0.6, 0.4, 0.4]])
  np.testing.assert_allclose(scoring.make_scorer("length,majority_vote", TASK)(c),
                             [[0, 0, 0, 0.4, 0.4]])


def test_verifier_is_the_only_scorer_that_sees_the_answers():
  problems = [Problem("1+2=", "3", 1)]
  c = cands(["1+2="], [["3", "4", "3"]])
  np.testing.assert_allclose(scoring.make_scorer("verifier", TASK, problems)(c), [[1, 0, 1]])
  # The self-scorers give the same scores with or without ground truth at hand.
  graded = np.array([[0.9, 0.2, 0.9]])  # the judge's and the round trip's, made beforehand
  for spec in ("majority_vote", "confidence", "length", "length,majority_vote",
               "self_judge", "round_trip", "length,majority_vote,round_trip"):
    np.testing.assert_array_equal(
        scoring.make_scorer(spec, TASK, problems, p_yes=graded, p_back=graded)(c),
        scoring.make_scorer(spec, TASK, p_yes=graded, p_back=graded)(c))
  with pytest.raises(ValueError, match="needs the problems' ground truth"):
    scoring.make_scorer("verifier", TASK)


@pytest.mark.parametrize("spec", ["", "vote", "length,,majority_vote", "length;verifier"])
def test_bad_scorer_names_the_field_and_the_choices(spec):
  with pytest.raises(ValueError, match=r"^scorer must be one or more of \['none', 'majority_vote'"):
    scoring.parse(spec)


def test_candidates_shape_mismatch_is_refused():
  with pytest.raises(ValueError, match="2 prompts with 2 completions"):
    cands(["a=", "b="], [["a", "a"], ["b"]], finished=np.ones((2, 2), bool))


def test_none_keeps_every_finished_nonempty_answer():
  c = cands(["12+34="], [["46", "", "47", "4"]], finished=[[1, 1, 1, 0]])
  np.testing.assert_array_equal(scoring.make_scorer("none", TASK)(c), [[1, 0, 1, 0]])


def test_self_judge_scores_by_the_verdicts_after_earlier_stages():
  c = cands(["12+34="], [["46", "4", "47"]])
  p_yes = np.array([[0.9, 0.8, 0.3]])
  np.testing.assert_allclose(scoring.make_scorer("self_judge", TASK, p_yes=p_yes)(c),
                             [[0.9, 0.8, 0.3]])
  # "4" is too short for a sum of two 2-digit numbers: length rules it out first.
  np.testing.assert_allclose(scoring.make_scorer("length,self_judge", TASK, p_yes=p_yes)(c),
                             [[0.9, 0.0, 0.3]])
  with pytest.raises(ValueError, match="needs the judge's verdicts"):
    scoring.make_scorer("self_judge", TASK)


def test_feedback_is_not_a_stage_and_alone_scores_nothing_yet():
  c = cands(["12+34="], [["46", "47"]], logprob=[[np.log(0.5), np.log(0.25)]])
  np.testing.assert_allclose(scoring.make_scorer("confidence,feedback", TASK)(c), [[0.5, 0.25]])
  np.testing.assert_array_equal(scoring.make_scorer("feedback", TASK)(c), [[0, 0]])


@pytest.mark.parametrize("scores, labels, expected", [
    ([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0], 1.0),
    ([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0], 0.0),
    ([0.5, 0.5, 0.5], [1, 0, 0], 0.5),  # all tied: chance
    # pairs (right, wrong): (.9,.7) (.9,.3) (.4,.7) (.4,.3) (.3 tie .3 counts half) (.3,.7)
    ([0.9, 0.4, 0.3, 0.7, 0.3], [1, 1, 1, 0, 0], (1 + 1 + 0 + 1 + 0.5 + 0) / 6),
])
def test_auc_is_the_chance_a_right_answer_outscores_a_wrong_one(scores, labels, expected):
  assert scoring.auc(np.array(scores), np.array(labels)) == pytest.approx(expected)


def test_auc_needs_both_kinds():
  assert scoring.auc(np.array([0.3, 0.4]), np.array([1, 1])) is None


def test_combine_measures_each_grader_against_its_own_bar():
  others = np.array([[0.75, 0.25, 0.0, 0.5]])  # the vote's shares; the third was vetoed
  p_yes = np.array([[0.2, 0.9, 0.99, 0.45]])
  gate = scoring.combine("gate", others, 0.5, p_yes, 0.9)
  either = scoring.combine("either", others, 0.5, p_yes, 0.9)
  np.testing.assert_allclose(gate, [[0.2 / 0.9, 0.5, 0.0, 0.5]])
  np.testing.assert_allclose(either, [[1.5, 1.0, 0.0, 1.0]])
  assert (gate >= 1).sum() == 0 and (either >= 1).tolist() == [[True, True, False, True]]
  # No calibrated bar: the judge passes nothing, so `either` is the vote alone.
  np.testing.assert_allclose(scoring.combine("either", others, 0.5, p_yes, None),
                             [[1.5, 0.5, 0.0, 1.0]])
  with pytest.raises(ValueError, match="combine must be one of"):
    scoring.combine("product", others, 0.5, p_yes, 0.9)


def test_weighted_evidence_lets_a_sure_judge_make_up_for_a_vote_a_little_short():
  others = np.array([[0.4, 0.4, 0.1, 0.0, 0.75]])  # vote shares against a bar of 0.5
  p_yes = np.array([[0.9, 0.5, 0.99, 0.99, 0.4]])  # against a bar of 0.6
  got = scoring.combine("weighted", others, 0.5, p_yes, 0.6)
  # sqrt(0.8 * 1.5), sqrt(0.8 * 0.833), sqrt(0.2 * 1.65), vetoed, sqrt(1.5 * 0.667)
  np.testing.assert_allclose(got, [[1.2 ** 0.5, (0.8 * 0.5 / 0.6) ** 0.5, 0.33 ** 0.5, 0.0, 1.0]])
  assert (got >= 1 - 1e-12).tolist() == [[True, False, False, False, True]]
  # The judge's share decides how far it can carry the vote: none, or all of it.
  np.testing.assert_allclose(scoring.combine("weighted", others, 0.5, p_yes, 0.6, weight=0.0),
                             others / 0.5)
  np.testing.assert_allclose(scoring.combine("weighted", others, 0.5, p_yes, 0.6, weight=1.0),
                             np.where(others > 0, p_yes / 0.6, 0.0))
  # No calibrated bar: the judge's evidence is nothing, and nothing passes.
  assert not scoring.combine("weighted", others, 0.5, p_yes, None).any()
