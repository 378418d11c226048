"""Ground-truth evaluation: greedy answers checked by the task (measurement only)."""

import dataclasses

import numpy as np

from selfimprove_jax.core import data
from selfimprove_jax.core.sampling import Sampler
from selfimprove_jax.core.tokenizer import CharTokenizer
from selfimprove_jax.grading.tasks import Problem, Task


@dataclasses.dataclass(frozen=True)
class Graded:
  problem: Problem
  completion: str
  correct: bool


def grade(sampler: Sampler, params, tok: CharTokenizer, task: Task, problems, key,
          rows_per_call: int = 0) -> list[Graded]:
  """Each problem's greedy answer, checked; `rows_per_call` rows a sampler call (0: all)."""
  prompts = data.prompt_tokens(tok, [p.prompt for p in problems])
  out = (sampler.in_chunks(params, prompts, key, rows_per_call) if rows_per_call
         else sampler(params, prompts, key))
  completions = [tok.decode(row) for row in out.tokens]
  return [Graded(p, c, task.verify(p, c) and bool(done))
          for p, c, done in zip(problems, completions, out.done)]


def accuracy_by_difficulty(graded: list[Graded]) -> dict[int, float]:
  by_d: dict[int, list[bool]] = {}
  for g in graded:
    by_d.setdefault(g.problem.difficulty, []).append(g.correct)
  return {d: float(np.mean(v)) for d, v in sorted(by_d.items())}


def standard_error(accuracy: float, n: int) -> float:
  """Of an accuracy measured on n independent problems (binomial)."""
  return float(np.sqrt(accuracy * (1 - accuracy) / n))
