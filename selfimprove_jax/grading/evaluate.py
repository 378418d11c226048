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


def grade(sampler: Sampler, params, tok: CharTokenizer, task: Task, problems, key) -> list[Graded]:
  out = sampler(params, data.prompt_tokens(tok, [p.prompt for p in problems]), key)
  completions = [tok.decode(row) for row in out.tokens]
  return [Graded(p, c, task.verify(p, c) and bool(done))
          for p, c, done in zip(problems, completions, out.done)]


def accuracy_by_difficulty(graded: list[Graded]) -> dict[int, float]:
  by_d: dict[int, list[bool]] = {}
  for g in graded:
    by_d.setdefault(g.problem.difficulty, []).append(g.correct)
  return {d: float(np.mean(v)) for d, v in sorted(by_d.items())}
