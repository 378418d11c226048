import numpy as np
import pytest

from selfimprove_jax import filtering
from selfimprove_jax.filtering import Example, Source


def test_threshold_keeps_every_passing_completion_but_never_a_zero():
  scores = np.array([[0.5, 0.25, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0]])
  np.testing.assert_array_equal(filtering.select(scores, 0.5, "threshold"),
                                [[1, 0, 1, 0], [0, 0, 0, 0]])
  np.testing.assert_array_equal(filtering.select(scores, 0.0, "threshold"),
                                [[1, 1, 1, 0], [0, 0, 0, 0]])


def test_best_keeps_one_per_prompt_and_breaks_ties_to_the_first():
  scores = np.array([[0.25, 0.5, 0.5], [0.75, 0.1, 0.1], [0.2, 0.2, 0.2]])
  np.testing.assert_array_equal(filtering.select(scores, 0.5, "best"),
                                [[0, 1, 0], [1, 0, 0], [0, 0, 0]])


def test_dedupe_keeps_the_first_copy_of_each_pair():
  prompts = ["1+1=", "1+1=", "2+2="]
  completions = [["2", "2", "3"], ["2", "3", "4"], ["4", "4", "4"]]
  kept = np.array([[1, 1, 1], [1, 1, 0], [0, 1, 1]], bool)
  np.testing.assert_array_equal(filtering.dedupe(prompts, completions, kept),
                                [[1, 0, 1], [0, 0, 0], [0, 1, 0]])


def ex(name, n, generation):
  return [Example(f"{name}{i}=", str(i), 1, generation) for i in range(n)]


def draw_counts(mixture, n=4000):
  rows = mixture.draw(np.random.default_rng(0), n)
  return {g: sum(r.generation == g for r in rows) / n for g in (0, 1, 2)}


def test_accumulate_draws_uniformly_from_truth_and_every_generation():
  truth = Source.from_list("truth", ex("t", 600, 0))
  kept = [Source.from_list("g1", ex("a", 300, 1)), Source.from_list("g2", ex("b", 100, 2))]
  mixture = filtering.training_mixture("accumulate", truth, kept, mix_fraction=0.5)
  assert mixture.size == 1000
  shares = draw_counts(mixture)
  assert shares[0] == pytest.approx(0.6, abs=0.03)
  assert shares[1] == pytest.approx(0.3, abs=0.03)
  assert shares[2] == pytest.approx(0.1, abs=0.02)


def test_replace_trains_on_the_newest_labels_only():
  truth = Source.from_list("truth", ex("t", 600, 0))
  kept = [Source.from_list("g1", ex("a", 300, 1)), Source.from_list("g2", ex("b", 100, 2))]
  mixture = filtering.training_mixture("replace", truth, kept, mix_fraction=0.5)
  assert draw_counts(mixture) == {0: 0, 1: 0, 2: 1.0}
  empty = [Source.from_list("g1", [])]
  assert filtering.training_mixture("replace", truth, empty, 0.5) is None


def test_mix_holds_the_ground_truth_share_fixed():
  truth = Source.from_list("truth", ex("t", 600, 0))
  kept = [Source.from_list("g1", ex("a", 300, 1)), Source.from_list("g2", ex("b", 10, 2))]
  shares = draw_counts(filtering.training_mixture("mix", truth, kept, mix_fraction=0.25))
  assert shares[0] == pytest.approx(0.25, abs=0.03) and shares[1] == 0
  assert shares[2] == pytest.approx(0.75, abs=0.03)


def test_draws_are_reproducible_and_span_each_source():
  truth = Source.from_list("truth", ex("t", 50, 0))
  mixture = filtering.training_mixture("accumulate", truth, [], 0.5)
  a = mixture.draw(np.random.default_rng(3), 500)
  assert a == mixture.draw(np.random.default_rng(3), 500)
  assert len({r.prompt for r in a}) == 50
  assert truth.longest == len("t49=") + 2


def test_unknown_policy_and_keep_name_the_field():
  truth = Source.from_list("truth", ex("t", 5, 0))
  with pytest.raises(ValueError, match="^data_policy must be one of"):
    filtering.training_mixture("forget", truth, [], 0.5)
  with pytest.raises(ValueError, match="^filter.keep must be one of"):
    filtering.select(np.ones((1, 1)), 0.5, "all")
