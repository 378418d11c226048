"""Task-mode labelling: the error injection of the avalanche experiment."""

import numpy as np
import pytest

from selfimprove_jax.grading import labelling
from selfimprove_jax.grading.tasks import get_task

TASK = get_task("reverse_addition")


@pytest.mark.parametrize("fraction, expected", [(0.5, 5), (0.25, 2), (1.0, 10), (0.0, 0)])
def test_injection_replaces_that_fraction_of_kept_labels_by_wrong_answers(fraction, expected):
  rng = np.random.default_rng(0)
  problems = [TASK.generate(rng, 3) for _ in range(10)]
  rows = [dict(prompt=p.prompt, completion=p.answer, kept=True, correct=True) for p in problems]
  rows += [dict(prompt=p.prompt, completion="1", kept=False, correct=False) for p in problems]
  before = [dict(r) for r in rows]
  assert labelling.inject_errors(TASK, problems, rows, fraction, rng) == expected
  changed = [(b, r) for b, r in zip(before, rows) if b != r]
  assert len(changed) == expected
  for b, r in changed:
    assert b["kept"] and r["injected"] and not r["correct"]
    problem = next(p for p in problems if p.prompt == r["prompt"])
    assert not TASK.verify(problem, r["completion"])
