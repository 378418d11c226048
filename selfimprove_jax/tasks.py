"""Procedural problems whose difficulty is a length, each with its ground truth.

A problem is a prompt string and an answer string; a completion is right when
it equals the answer exactly (`verify`). Numbers in the reversed tasks are
written least-significant digit first, the format in which Lee et al. 2025
showed transformers extend addition to far longer operands than they saw:
the model produces the digit it can compute first.
"""

import dataclasses
from collections.abc import Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Problem:
  prompt: str  # e.g. "123+456=" (the model continues after the '=')
  answer: str  # the one correct completion, e.g. "579"
  difficulty: int  # the length that makes it hard: digits per operand, characters


# Each task: a generator (rng, n) -> (prompt, answer) and the answer lengths its
# prompt allows, read off the prompt alone. The `length` scorer uses the latter
# (Lee et al.'s length filter), so it must never look at the answer.


def _digits(rng: np.random.Generator, n: int) -> int:
  """A uniformly random number with exactly n digits."""
  if n <= 18:  # within int64: one draw
    return int(rng.integers(10 ** (n - 1) if n > 1 else 0, 10 ** n))
  # Beyond int64 (Lee et al. go to 100 digits): a leading 1-9, then free digits.
  digits = rng.integers(0, 10, n)
  digits[0] = rng.integers(1, 10)
  return int("".join(map(str, digits)))


def _rev(x: int) -> str:
  return str(x)[::-1]


def _reverse_addition(rng, n):
  a, b = _digits(rng, n), _digits(rng, n)
  return f"{_rev(a)}+{_rev(b)}=", _rev(a + b)


def _addition(rng, n):
  a, b = _digits(rng, n), _digits(rng, n)
  return f"{a}+{b}=", str(a + b)


def _sum_lengths(prompt):
  # A sum has as many digits as its longer operand, or one more for the carry.
  n = max(len(x) for x in prompt[:-1].split("+"))
  return n, n + 1


def _multiplication(rng, n):
  # n-digit times 1-digit keeps the answer length linear in n, reversed like addition.
  a, b = _digits(rng, n), int(rng.integers(1, 10))
  return f"{_rev(a)}*{b}=", _rev(a * b)


def _product_lengths(prompt):
  n = len(prompt[:-1].split("*")[0])
  return 1 if n == 1 else n, n + 1  # a 1-digit operand may be 0, and 0 * b is "0"


_LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


def _copy(rng, n):
  s = "".join(rng.choice(_LETTERS, n))
  return f"{s}=", s


def _reversal(rng, n):
  s = "".join(rng.choice(_LETTERS, n))
  return f"{s}>", s[::-1]


def _same_length(prompt):
  return len(prompt) - 1, len(prompt) - 1


@dataclasses.dataclass(frozen=True)
class Task:
  name: str
  _make: Callable[[np.random.Generator, int], tuple[str, str]]
  _lengths: Callable[[str], tuple[int, int]]

  def generate(self, rng: np.random.Generator, difficulty: int) -> Problem:
    if difficulty < 1:
      raise ValueError(f"difficulty must be >= 1, got {difficulty}")
    prompt, answer = self._make(rng, difficulty)
    return Problem(prompt, answer, difficulty)

  def batch(self, rng: np.random.Generator, difficulties) -> list[Problem]:
    """One problem per entry of `difficulties`."""
    return [self.generate(rng, int(d)) for d in difficulties]

  def answer_lengths(self, prompt: str) -> tuple[int, int]:
    """(shortest, longest) answer the prompt allows, from the prompt alone."""
    return self._lengths(prompt)

  @staticmethod
  def verify(problem: Problem, completion: str) -> bool:
    return completion == problem.answer


TASKS = {t.name: t for t in (
    Task("reverse_addition", _reverse_addition, _sum_lengths),
    Task("addition", _addition, _sum_lengths),
    Task("multiplication", _multiplication, _product_lengths),
    Task("copy", _copy, _same_length),
    Task("reversal", _reversal, _same_length),
)}


def get_task(name: str) -> Task:
  if name not in TASKS:
    raise ValueError(f"task must be one of {sorted(TASKS)}, got {name!r}")
  return TASKS[name]
