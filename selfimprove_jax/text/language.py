"""A procedural "human" language whose true distribution is known exactly.

Model-collapse experiments need to know what the model should have learned: with
real text, "the tails disappear" can only be guessed at; with this language the
probability of any string is exact, so the tail mass, the KL divergence from the
truth and the true likelihood of the model's samples are measured, not estimated
from a second model.

A sentence is 1 to `max_words` words joined by single spaces. Every word belongs
to one class (a part of speech); the classes follow a first-order Markov chain

  START -> c1 -> c2 -> ... -> cn -> END

and each class emits its own words with Zipfian probabilities, so a few words
are everywhere and a long tail is rare. Frequent words are short and rare ones
long, as in natural languages. At `max_words` the sentence ends for certain,
which makes the probabilities of all sentences sum to exactly 1 (a test checks
this by enumeration).

Because a word fixes its class, the log-probability of a sentence is a plain
sum along the chain; a string that is not a sentence (an unknown word, a double
space) has probability 0 (log-probability -inf).
"""

import dataclasses
import functools
import math

import numpy as np

_LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


@dataclasses.dataclass(frozen=True, eq=False)
class Language:
  words: tuple[str, ...]  # V distinct words of lowercase letters
  word_class: np.ndarray  # [V] int, the class of each word
  emit: np.ndarray  # [V] P(word | its class); sums to 1 within each class
  # [C + 1, C + 1]: P(next | current) over the C classes; row C is START and
  # column C is END (START never goes straight to END: no empty sentences).
  transitions: np.ndarray
  max_words: int

  @classmethod
  def make(cls, seed: int, *, vocab_size: int = 400, num_classes: int = 8, zipf: float = 1.1,
           mean_words: float = 6.0, max_words: int = 12) -> "Language":
    """A random language, fixed by `seed` and the shape arguments."""
    if not 1 <= num_classes <= vocab_size:
      raise ValueError(f"need 1 <= num_classes <= vocab_size, got {num_classes}, {vocab_size}")
    if not 1 <= mean_words <= max_words:
      raise ValueError(f"need 1 <= mean_words <= max_words, got {mean_words}, {max_words}")
    rng = np.random.default_rng([seed, 7])
    word_class = rng.permutation(np.arange(vocab_size) % num_classes)
    # A word's rank inside its class sets both its Zipfian weight and its length.
    rank = np.zeros(vocab_size, int)
    for c in range(num_classes):
      members = np.nonzero(word_class == c)[0]
      rank[members] = np.arange(len(members))
    emit = 1.0 / (rank + 1.0) ** zipf
    for c in range(num_classes):
      emit[word_class == c] /= emit[word_class == c].sum()
    words, seen = [], set()
    for r in rank:
      length = 2 + min(5, int(math.log2(1 + r))) + int(rng.integers(0, 2))
      word = "".join(rng.choice(_LETTERS, length))
      while word in seen:
        word = "".join(rng.choice(_LETTERS, length))
      seen.add(word)
      words.append(word)
    # Sparse-ish class-to-class rows (Dirichlet 0.5): each class prefers a few successors.
    transitions = np.zeros((num_classes + 1, num_classes + 1))
    transitions[:, :num_classes] = rng.dirichlet(np.full(num_classes, 0.5), num_classes + 1)
    # Ending after each word with probability p gives a mean of about 1/p words.
    p_end = 1.0 / mean_words
    transitions[:num_classes] *= 1.0 - p_end
    transitions[:num_classes, num_classes] = p_end
    return cls(tuple(words), word_class, emit, transitions, max_words)

  @property
  def num_classes(self) -> int:
    return self.transitions.shape[0] - 1

  @functools.cached_property
  def index(self) -> dict[str, int]:
    return {w: i for i, w in enumerate(self.words)}

  def sample(self, rng: np.random.Generator, n: int) -> list[str]:
    """n sentences drawn from the true distribution (all n advance one word at a time)."""
    C = self.num_classes
    next_class = np.cumsum(self.transitions, axis=1)  # [C + 1, C + 1] inverse-CDF tables
    by_class = [np.nonzero(self.word_class == c)[0] for c in range(C)]
    word_cdf = [np.cumsum(self.emit[m]) for m in by_class]
    state = np.full(n, C)  # START
    ids = np.full((n, self.max_words), -1)
    for i in range(self.max_words):
      alive = state != C if i else np.ones(n, bool)
      u = rng.random(n)
      state = np.where(alive, np.minimum((next_class[state] < u[:, None]).sum(1), C), C)
      for c in range(C):
        rows = np.nonzero(state == c)[0]
        pick = np.searchsorted(word_cdf[c], rng.random(len(rows)) * word_cdf[c][-1])
        ids[rows, i] = by_class[c][np.minimum(pick, len(by_class[c]) - 1)]
    return [" ".join(self.words[j] for j in row if j >= 0) for row in ids]

  def logprob(self, text: str) -> float:
    """Natural log of the true probability of `text`; -inf if it is not a sentence."""
    ids = [self.index.get(w) for w in text.split(" ")]
    if not text or None in ids or len(ids) > self.max_words:
      return -math.inf
    T, C = self.transitions, self.num_classes
    lp, state = 0.0, C
    for i in ids:
      c = int(self.word_class[i])
      lp += math.log(T[state, c]) + math.log(self.emit[i])
      state = c
    if len(ids) < self.max_words:  # at max_words the end is certain
      lp += math.log(T[state, C])
    return lp

  def class_occupancy(self) -> np.ndarray:
    """[max_words, C]: P(the sentence has a word at position i, of class c)."""
    C = self.num_classes
    occupancy = np.zeros((self.max_words, C))
    occupancy[0] = self.transitions[C, :C]
    for i in range(1, self.max_words):
      occupancy[i] = occupancy[i - 1] @ self.transitions[:C, :C]
    return occupancy

  def word_frequencies(self) -> dict[str, float]:
    """Each word's expected share of all word tokens."""
    expected = self.emit * self.class_occupancy().sum(0)[self.word_class]  # [V] per sentence
    expected /= expected.sum()
    return dict(zip(self.words, expected.tolist()))

  def mean_words(self) -> float:
    """Expected words per sentence."""
    return float(self.class_occupancy().sum())
