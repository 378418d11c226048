import numpy as np
import pytest

from selfimprove_jax.core import mixture as mixture_lib
from selfimprove_jax.core.mixture import Example, Source
from selfimprove_jax.grading import filtering


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


def weights(mixture) -> dict[str, float]:
  return {s.name: w for s, w in zip(mixture.sources, mixture.weights)}


def drawn_generations(mixture, n=2000) -> set[int]:
  return {r.generation for r in mixture.draw(np.random.default_rng(0), n)}


TRUTH = Source.from_list("truth", ex("t", 600, 0))
KEPT = [Source.from_list("g1", ex("a", 300, 1)), Source.from_list("g2", ex("b", 100, 2))]


def test_accumulate_draws_uniformly_from_truth_and_every_generation():
  mixture = mixture_lib.training_mixture("accumulate", TRUTH, KEPT, mix_fraction=0.5)
  assert mixture.size == 1000
  assert weights(mixture) == {"truth": 0.6, "g1": 0.3, "g2": 0.1}
  assert drawn_generations(mixture) == {0, 1, 2}
  # A generation that kept nothing is no source at all.
  empty = KEPT + [Source.from_list("g3", [])]
  assert weights(mixture_lib.training_mixture("accumulate", TRUTH, empty, 0.5)) == weights(mixture)


def test_replace_trains_on_the_newest_labels_only():
  mixture = mixture_lib.training_mixture("replace", TRUTH, KEPT, mix_fraction=0.5)
  assert weights(mixture) == {"g2": 1.0} and drawn_generations(mixture) == {2}
  empty = [Source.from_list("g1", [])]
  assert mixture_lib.training_mixture("replace", TRUTH, empty, 0.5) is None


def test_mix_holds_the_ground_truth_share_fixed():
  mixture = mixture_lib.training_mixture("mix", TRUTH, KEPT, mix_fraction=0.25)
  assert weights(mixture) == {"truth": 0.25, "g2": 0.75}
  assert drawn_generations(mixture) == {0, 2}
  # Before any label is kept, ground truth alone.
  assert weights(mixture_lib.training_mixture("mix", TRUTH, [], 0.25)) == {"truth": 1.0}


def test_newest_gives_the_newest_labels_their_share_and_the_rest_by_difficulty():
  truth = mixture_lib.Source("truth", 600, TRUTH.get, TRUTH.longest, difficulties=6)
  older = [Source.from_list(f"g{g}", ex(f"x{g}", 10, g)) for g in (1, 2)]
  newest = Source.from_list("g3", ex("n", 50, 3))
  mixture = mixture_lib.training_mixture("newest", truth, [*older, newest], mix_fraction=0.5)
  # Half the newest; the other half over 6 + 1 + 1 difficulties, whatever the sizes.
  assert weights(mixture) == pytest.approx({"truth": 0.375, "g1": 0.0625, "g2": 0.0625,
                                            "g3": 0.5})
  assert drawn_generations(mixture) == {0, 1, 2, 3}
  assert weights(mixture_lib.training_mixture("newest", truth, [], 0.5)) == {"truth": 1.0}
  assert weights(mixture_lib.training_mixture("newest", truth, [newest], 0.5)) == {
      "truth": 0.5, "g3": 0.5}
  # A generation that kept nothing: the older labels stay, by difficulty, beside the truth.
  none_kept = [*older, Source.from_list("g3", [])]
  assert weights(mixture_lib.training_mixture("newest", truth, none_kept, 0.5)) == pytest.approx(
      {"truth": 0.75, "g1": 0.125, "g2": 0.125})


def test_a_share_added_scales_the_others_down():
  mixture = mixture_lib.with_share(mixture_lib.training_mixture("mix", TRUTH, KEPT, 0.25),
                                   Source.from_list("lessons", ex("j", 10, 2)), 0.2)
  assert weights(mixture) == pytest.approx({"truth": 0.2, "g2": 0.6, "lessons": 0.2})
  assert mixture_lib.with_share(mixture, Source.from_list("none", []), 0.5) is mixture


def test_draws_are_reproducible_and_span_each_source():
  truth = Source.from_list("truth", ex("t", 50, 0))
  mixture = mixture_lib.training_mixture("accumulate", truth, [], 0.5)
  a = mixture.draw(np.random.default_rng(3), 500)
  assert a == mixture.draw(np.random.default_rng(3), 500)
  assert len({r.prompt for r in a}) == 50
  assert truth.longest == len("t49=") + 2


def test_unknown_policy_and_keep_name_the_field():
  truth = Source.from_list("truth", ex("t", 5, 0))
  with pytest.raises(ValueError, match="^data_policy must be one of"):
    mixture_lib.training_mixture("forget", truth, [], 0.5)
  with pytest.raises(ValueError, match="^filter.keep must be one of"):
    filtering.select(np.ones((1, 1)), 0.5, "all")
