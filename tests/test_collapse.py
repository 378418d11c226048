"""Collapse metrics on hand-made distributions and texts with known answers."""

import math

import numpy as np
import pytest

from selfimprove_jax.text import collapse


def test_kl_of_a_distribution_with_itself_is_zero_and_known_pairs_are_exact():
  p = [0.5, 0.25, 0.25]
  assert collapse.kl(p, p) == 0.0
  assert collapse.kl([1.0, 0.0], [0.5, 0.5]) == pytest.approx(math.log(2))
  assert collapse.kl([0.5, 0.5], [1.0, 0.0]) == math.inf  # the model misses half the truth


def test_kl_estimate_converges_to_the_exact_kl():
  p, q = np.array([0.7, 0.2, 0.1]), np.array([0.4, 0.4, 0.2])
  x = np.random.default_rng(0).choice(3, 200_000, p=p)  # texts of one token each
  assert collapse.kl_estimate(np.log(p[x]), np.log(p[x]), len(x)) == 0.0
  assert collapse.kl_estimate(np.log(p[x]), np.log(q[x]), len(x)) == pytest.approx(
      collapse.kl(p, q), abs=0.005)


def test_distinct_n_of_known_strings():
  texts = ["a b a b", "a b c"]
  # unigrams: a b a b a b c -> 3 distinct of 7; bigrams: ab ba ab ab bc -> 3 of 5
  assert collapse.distinct_n(texts, 1) == pytest.approx(3 / 7)
  assert collapse.distinct_n(texts, 2) == pytest.approx(3 / 5)
  assert collapse.distinct_n(["a"], 2) == 0.0


def test_tail_words_and_tail_mass_of_a_known_sample():
  freqs = {"the": 0.6, "cat": 0.25, "sat": 0.1, "mat": 0.04, "gnu": 0.01}
  assert collapse.tail_words(freqs, 0.1) == {"gnu", "mat"}  # 0.05 <= 0.1 < 0.15
  assert collapse.tail_words(freqs, 0.15) == {"gnu", "mat", "sat"}
  tail = frozenset({"gnu", "mat"})
  assert collapse.tail_mass(["the cat", "the mat gnu", "gnu"], tail) == pytest.approx(3 / 6)
  assert collapse.tail_mass(["the the"], tail) == 0.0 and collapse.tail_mass([], tail) == 0.0
  assert collapse.vocab_coverage(["the cat", "cat"], frozenset(freqs)) == pytest.approx(2 / 5)


def test_perplexity_histogram_counts_every_text_once():
  tokens = np.array([10, 10, 10, 5])
  logprobs = np.array([-10 * math.log(2.0), -10 * math.log(50.0), -math.inf, -5 * math.log(1e6)])
  counts = collapse.perplexity_histogram(logprobs, tokens)
  assert sum(counts) == 4 and counts[-1] == 2  # impossible and off-scale texts land last
  edges = collapse.PERPLEXITY_BINS
  assert counts[np.searchsorted(edges, 2.0, side="right") - 1] == 1
  assert counts[np.searchsorted(edges, 50.0, side="right") - 1] == 1
