"""The procedural language: exact probabilities that sum to 1, samples that match them."""

import collections
import itertools
import math

import numpy as np
import pytest

from selfimprove_jax.text.language import Language


def test_probabilities_of_all_sentences_sum_to_one():
  # 4 words and at most 3 of them: all 4 + 16 + 64 sentences can be enumerated.
  lang = Language.make(1, vocab_size=4, num_classes=2, mean_words=2.0, max_words=3)
  total = sum(math.exp(lang.logprob(" ".join(ws)))
              for n in range(1, 4) for ws in itertools.product(lang.words, repeat=n))
  assert total == pytest.approx(1.0, abs=1e-12)


def test_strings_that_are_not_sentences_have_probability_zero():
  lang = Language.make(0)
  w = lang.words[0]
  for text in ("", f"{w}  {w}", f" {w}", f"{w} qqqqqqqqq", " ".join([w] * (lang.max_words + 1))):
    assert lang.logprob(text) == -math.inf, text
  assert math.isfinite(lang.logprob(w))


def test_samples_follow_the_true_word_frequencies():
  lang = Language.make(0)
  texts = lang.sample(np.random.default_rng(0), 20_000)
  counts = collections.Counter(w for t in texts for w in t.split(" "))
  total = sum(counts.values())
  for word, f in sorted(lang.word_frequencies().items(), key=lambda kv: -kv[1])[:20]:
    assert counts[word] / total == pytest.approx(f, abs=0.003)
  assert total / len(texts) == pytest.approx(lang.mean_words(), rel=0.02)
  assert all(math.isfinite(lang.logprob(t)) for t in texts[:1000])


def test_zipfian_with_a_long_tail_and_fixed_by_the_seed():
  lang = Language.make(0)
  f = np.sort(list(lang.word_frequencies().values()))[::-1]
  assert f[0] > 100 * f[-1]  # a few words are everywhere, many are rare
  assert Language.make(0).words == lang.words and Language.make(1).words != lang.words
  assert len(set(lang.words)) == len(lang.words)
