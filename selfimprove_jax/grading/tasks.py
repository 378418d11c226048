"""Procedural problems whose difficulty is a length, each with its ground truth.

A problem is a prompt string and an answer string; a completion is right when
it equals the answer exactly (`verify`). Numbers in the reversed tasks are
written least-significant digit first, the format in which Lee et al. 2025
showed transformers extend addition to far longer operands than they saw:
the model produces the digit it can compute first.
"""

import dataclasses
import random
import re
import zlib
from collections.abc import Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Problem:
  prompt: str  # e.g. "123+456=" (the model continues after the '=')
  answer: str  # the one correct completion, e.g. "579"
  difficulty: int  # the length that makes it hard: digits per operand, characters


# Each task: a generator (rng, n) -> (prompt, answer), the answer lengths its
# prompt allows, read off the prompt alone, and a solver prompt -> (answer,
# difficulty) for prompts that come from elsewhere (user feedback). The `length`
# scorer uses the lengths (Lee et al.'s length filter), so they must never look
# at the answer; the solver is ground truth, for measurement only.


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


def _swapped_addends(prompt):
  a, b = prompt.removesuffix("=").split("+")
  return f"{b}+{a}="


def _shifted_addends(reverse: bool):
  """a+b asked as (a+c)+(b-c), each operand keeping its number of digits: every column's
  digits and carries change, where b+a keeps them (the top column's carry above all, the
  one two models get wrong the same way). c is drawn from a generator seeded by the
  prompt, so a prompt always has the same shifted form; it is 0 only where no other
  split of the sum keeps both lengths."""
  def shifted(prompt):
    a, b = prompt.removesuffix("=").split("+")
    read = (lambda s: int(s[::-1])) if reverse else int
    write = _rev if reverse else str
    total = read(a) + read(b)
    lowest = lambda n: 10 ** (n - 1) if n > 1 else 0
    lo = max(lowest(len(a)), total - (10 ** len(b) - 1))
    hi = min(10 ** len(a) - 1, total - lowest(len(b)))
    if lo == hi:
      return prompt
    pick = random.Random(zlib.crc32(prompt.encode())).randint(lo, hi - 1)
    new_a = pick + (pick >= read(a))  # any split but a+b's own
    return f"{write(new_a)}+{write(total - new_a)}="
  return shifted


def _padded(prompt, answer):
  # Lee et al.'s format: a sum written with one digit more than its longer operand, so
  # one without a carry out of the top digit ends in "0" (reversed) and every answer's
  # length is known from the prompt.
  return prompt, answer.ljust(_padded_sum_length(prompt)[0], "0")


def _padded_reverse_addition(rng, n):
  return _padded(*_reverse_addition(rng, n))


def _mixed_padded_reverse_addition(rng, n):
  # Their ground truth draws the operands' lengths independently: one operand has n
  # digits, the other 1 to n, so the model sees digits aligned at every offset.
  a, b = _digits(rng, n), _digits(rng, int(rng.integers(1, n + 1)))
  if rng.integers(2):
    a, b = b, a
  return _padded(f"{_rev(a)}+{_rev(b)}=", _rev(a + b))


def _addition(rng, n):
  a, b = _digits(rng, n), _digits(rng, n)
  return f"{a}+{b}=", str(a + b)


def _operands(prompt, pattern):
  match = re.fullmatch(pattern, prompt)
  if not match:
    raise ValueError(f"{prompt!r} is not a prompt of this task")
  return match.groups()


def _solve_reverse_addition(prompt):
  a, b = _operands(prompt, r"(\d+)\+(\d+)=")
  return _rev(int(a[::-1]) + int(b[::-1])), max(len(a), len(b))


def _solve_padded_reverse_addition(prompt):
  answer, n = _solve_reverse_addition(prompt)
  return _padded(prompt, answer)[1], n


def _solve_addition(prompt):
  a, b = _operands(prompt, r"(\d+)\+(\d+)=")
  return str(int(a) + int(b)), max(len(a), len(b))


def _sum_lengths(prompt):
  # A sum has as many digits as its longer operand, or one more for the carry.
  n = max(len(x) for x in prompt[:-1].split("+"))
  return n, n + 1


def _padded_sum_length(prompt):
  longest = _sum_lengths(prompt)[1]  # the operand's digits and a carry's
  return longest, longest


def _multiplication(rng, n):
  # n-digit times 1-digit keeps the answer length linear in n, reversed like addition.
  a, b = _digits(rng, n), int(rng.integers(1, 10))
  return f"{_rev(a)}*{b}=", _rev(a * b)


def _solve_multiplication(prompt):
  a, b = _operands(prompt, r"(\d+)\*(\d)=")
  return _rev(int(a[::-1]) * int(b)), len(a)


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


def _solve_copy(prompt):
  s, = _operands(prompt, r"([a-z]+)=")
  return s, len(s)


def _solve_reversal(prompt):
  s, = _operands(prompt, r"([a-z]+)>")
  return s[::-1], len(s)


def _inverse_of(form: str):
  """The inverse question of a task that is its own inverse up to `form`: the answer asked
  back in the same form ("abc>" answered "cba" asks "cba>"), whose right answer is the
  prompt's string."""
  def inverse(prompt, answer):
    return form.format(answer), prompt[:-1]
  return inverse


def _same_length(prompt):
  return len(prompt) - 1, len(prompt) - 1


_DIGITS, _ALPHA = "0123456789", "".join(_LETTERS)


@dataclasses.dataclass(frozen=True)
class Task:
  name: str
  _make: Callable[[np.random.Generator, int], tuple[str, str]]
  _lengths: Callable[[str], tuple[int, int]]
  _solve: Callable[[str], tuple[str, int]]
  symbols: str  # the characters answers are written in
  # The ground-truth training problems, where they are drawn more widely than the
  # problems the model is evaluated and self-labels on (None: the same).
  _make_ground_truth: Callable[[np.random.Generator, int], tuple[str, str]] | None = None
  # Other prompts with the same answer, by name (a+b as b+a: "swapped"), each read off
  # the prompt alone.
  _equivalents: dict[str, Callable[[str], str]] = dataclasses.field(default_factory=dict)
  # (prompt, answer) -> (the inverse question, the answer it must get back), for tasks
  # whose inverse is a task of their own (None: none). The `round_trip` scorer asks it.
  _inverse: Callable[[str, str], tuple[str, str]] | None = None

  def generate(self, rng: np.random.Generator, difficulty: int) -> Problem:
    return self._problem(self._make, rng, difficulty)

  def ground_truth(self, rng: np.random.Generator, difficulty: int) -> Problem:
    """A training problem of the human data: as `generate`, or drawn more widely."""
    return self._problem(self._make_ground_truth or self._make, rng, difficulty)

  @staticmethod
  def _problem(make, rng: np.random.Generator, difficulty: int) -> Problem:
    if difficulty < 1:
      raise ValueError(f"difficulty must be >= 1, got {difficulty}")
    prompt, answer = make(rng, difficulty)
    return Problem(prompt, answer, difficulty)

  def batch(self, rng: np.random.Generator, difficulties) -> list[Problem]:
    """One problem per entry of `difficulties`."""
    return [self.generate(rng, int(d)) for d in difficulties]

  @property
  def equivalent_forms(self) -> tuple[str, ...]:
    """The names of the task's equivalent forms (none for most tasks)."""
    return tuple(self._equivalents)

  def parse_forms(self, spec: str) -> list[str]:
    """'swapped,shifted' -> ['swapped', 'shifted'] ('' -> none), or a one-line error naming
    `sample.equivalents` and the forms this task has."""
    forms = [f.strip() for f in spec.split(",") if f.strip()]
    if any(f not in self._equivalents for f in forms) or len(set(forms)) < len(forms):
      has = f"this task's are {list(self._equivalents)}" if self._equivalents else "it has none"
      raise ValueError(f"sample.equivalents must name distinct equivalent forms of task "
                       f"{self.name!r} joined by ',' ({has}), got {spec!r}")
    return forms

  def equivalents(self, prompt: str, forms: list[str]) -> list[str]:
    """The prompt in each named form: other prompts whose right answer is this prompt's. A
    model that answers them differently is wrong on at least one, with no answer looked at."""
    return [self._equivalents[f](prompt) for f in forms]

  @property
  def has_inverse(self) -> bool:
    return self._inverse is not None

  def inverse(self, prompt: str, answer: str) -> tuple[str, str]:
    """The question that asks `answer` back, and what it must answer if `answer` is right:
    built from the prompt and the answer alone, never from ground truth."""
    if self._inverse is None:
      raise ValueError(f"task {self.name!r} has no inverse question")
    return self._inverse(prompt, answer)

  def answer_lengths(self, prompt: str) -> tuple[int, int]:
    """(shortest, longest) answer the prompt allows, from the prompt alone."""
    return self._lengths(prompt)

  @staticmethod
  def verify(problem: Problem, completion: str) -> bool:
    return completion == problem.answer

  def parse(self, prompt: str) -> Problem:
    """The problem behind a prompt written elsewhere; ValueError if it is not this task's."""
    answer, difficulty = self._solve(prompt)
    return Problem(prompt, answer, difficulty)

  def near_miss(self, answer: str, rng: np.random.Generator) -> str:
    """A wrong answer close to `answer`, as a model gets it wrong: one symbol
    changed (half the time), two neighbours swapped, one dropped or one doubled."""
    for _ in range(100):
      i = int(rng.integers(len(answer)))
      op = rng.choice(["change", "change", "swap", "drop", "double"])
      if op == "change":
        out = answer[:i] + rng.choice([c for c in self.symbols if c != answer[i]]) + answer[i + 1:]
      elif op == "swap" and i + 1 < len(answer):
        out = answer[:i] + answer[i + 1] + answer[i] + answer[i + 2:]
      elif op == "drop" and len(answer) > 1:
        out = answer[:i] + answer[i + 1:]
      else:
        out = answer[:i] + answer[i] + answer[i:]
      if out != answer:
        return out
    raise AssertionError(f"no near miss found for {answer!r}")


_REVERSED_SUMS = dict(swapped=_swapped_addends, shifted=_shifted_addends(reverse=True))
TASKS = {t.name: t for t in (
    Task("reverse_addition", _reverse_addition, _sum_lengths, _solve_reverse_addition, _DIGITS,
         _equivalents=_REVERSED_SUMS),
    Task("padded_reverse_addition", _padded_reverse_addition, _padded_sum_length,
         _solve_padded_reverse_addition, _DIGITS, _mixed_padded_reverse_addition,
         _equivalents=_REVERSED_SUMS),
    Task("addition", _addition, _sum_lengths, _solve_addition, _DIGITS,
         _equivalents=dict(swapped=_swapped_addends, shifted=_shifted_addends(reverse=False))),
    Task("multiplication", _multiplication, _product_lengths, _solve_multiplication, _DIGITS),
    Task("copy", _copy, _same_length, _solve_copy, _ALPHA, _inverse=_inverse_of("{}=")),
    Task("reversal", _reversal, _same_length, _solve_reversal, _ALPHA,
         _inverse=_inverse_of("{}>")),
)}


def get_task(name: str) -> Task:
  if name not in TASKS:
    raise ValueError(f"task must be one of {sorted(TASKS)}, got {name!r}")
  return TASKS[name]
