"""Collapse metrics: is the model's text losing diversity and its rare tails?

Plain functions over lists of texts and arrays of log-probabilities, so each
one can be checked on hand-made cases. Words are whitespace-separated.

  kl_estimate     KL(truth || model) per token, from texts drawn from the truth:
                  the mean of log p_true(x) - log p_model(x) (exact in expectation)
  tail_words      the rarest words that together hold `mass` of the true word tokens
  tail_mass       the share of word tokens in some texts that fall in that tail;
                  divided by the truth's share it is 1 without collapse, 0 when
                  the tail is gone (Shumailov et al. 2024's "tails disappear")
  vocab_coverage  the share of a vocabulary that appears at least once
  distinct_n      distinct word n-grams / all word n-grams (Li et al. 2016)
  perplexity_histogram  counts of per-text perplexities over fixed log-spaced bins
"""

import collections
import math
from collections.abc import Iterable, Sequence

import numpy as np


def kl(p: Sequence[float], q: Sequence[float]) -> float:
  """Exact KL(p || q) in nats between two discrete distributions on the same support."""
  p, q = np.asarray(p, float), np.asarray(q, float)
  on = p > 0
  if np.any(q[on] == 0):
    return math.inf
  return float(np.sum(p[on] * (np.log(p[on]) - np.log(q[on]))))


def kl_estimate(true_logprobs: np.ndarray, model_logprobs: np.ndarray, tokens: int) -> float:
  """KL(truth || model) per token from texts drawn from the truth.

  `*_logprobs` [N] are each text's total log-probability under the truth and
  under the model (over the same tokens, EOS included); `tokens` is their
  total token count. Unbiased for the per-text KL, divided by tokens per text.
  """
  return float(np.sum(np.asarray(true_logprobs) - np.asarray(model_logprobs)) / tokens)


def words(texts: Iterable[str]) -> list[str]:
  return [w for t in texts for w in t.split()]


def tail_words(frequencies: dict[str, float], mass: float = 0.1) -> frozenset[str]:
  """The rarest words whose frequencies add up to at most `mass` (ties by word, for determinism)."""
  total = sum(frequencies.values())
  tail, cumulative = [], 0.0
  for word, f in sorted(frequencies.items(), key=lambda kv: (kv[1], kv[0])):
    cumulative += f / total
    if cumulative > mass + 1e-12:  # not undone by rounding in the sum
      break
    tail.append(word)
  return frozenset(tail)


def tail_mass(texts: Iterable[str], tail: frozenset[str]) -> float:
  """The share of word tokens in `texts` that are tail words (0 for no words)."""
  tokens = words(texts)
  return sum(w in tail for w in tokens) / len(tokens) if tokens else 0.0


def vocab_coverage(texts: Iterable[str], vocabulary: frozenset[str]) -> float:
  return len(set(words(texts)) & vocabulary) / len(vocabulary)


def distinct_n(texts: Iterable[str], n: int) -> float:
  """Distinct word n-grams over all word n-grams, n-grams taken inside each text."""
  grams = collections.Counter()
  for t in texts:
    w = t.split()
    grams.update(tuple(w[i:i + n]) for i in range(len(w) - n + 1))
  total = sum(grams.values())
  return len(grams) / total if total else 0.0


def word_frequencies(texts: Iterable[str]) -> dict[str, float]:
  """Empirical word shares: the stand-in for the truth when the truth is real text."""
  counts = collections.Counter(words(texts))
  total = sum(counts.values())
  return {w: c / total for w, c in counts.items()}


# Per-text perplexity (per character token), log-spaced from 1 to 1000: the
# truth's own texts sit near exp(entropy rate), garbage far to the right.
PERPLEXITY_BINS = np.geomspace(1.0, 1000.0, 41)


def perplexity_histogram(logprobs: np.ndarray, tokens: np.ndarray) -> list[int]:
  """Counts over PERPLEXITY_BINS of exp(-logprob / tokens), one value per text.

  Impossible texts (log-probability -inf) and anything past the last edge go
  in the last bin, so the counts always add up to the number of texts.
  """
  with np.errstate(over="ignore"):
    ppl = np.exp(-np.asarray(logprobs, float) / np.maximum(np.asarray(tokens), 1))
  ppl = np.clip(np.nan_to_num(ppl, nan=np.inf, posinf=np.inf), PERPLEXITY_BINS[0],
                PERPLEXITY_BINS[-1])
  return np.histogram(ppl, PERPLEXITY_BINS)[0].tolist()
