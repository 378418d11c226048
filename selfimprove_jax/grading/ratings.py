"""User feedback: ratings of a model's answers, read from a file and blended into self-scores.

People who used a model write what they asked, what it answered and how good
the answer was, one JSON object per line:

  {"prompt": "abc>", "completion": "cba", "rating": 1}
  {"prompt": "abc>", "completion": "cab", "rating": 0.2}

`rating` is a number in [0, 1] (1: right or helpful) or true/false; several
ratings of the same answer are averaged. Each prompt must be one of the task's
prompts: the problems behind the prompts at the difficulties a generation
labels join that generation's problems, so the model answers them again and
its answers can meet the ratings.

Blending (`blend`): a rated completion scores
  weight * rating + (1 - weight) * self_score,
an unrated one keeps its self-score, and every score says where it came from
("self", "feedback" when no self-scorer is configured, or "blend"). A
completion the self-scorers ruled out (cut off, implausible length) stays out:
no rating makes a wrong-length answer right.
"""

import collections
import dataclasses
from pathlib import Path

import numpy as np

from selfimprove_jax.base import files
from selfimprove_jax.base.errors import UserError
from selfimprove_jax.core.tokenizer import CharTokenizer
from selfimprove_jax.grading.tasks import Problem, Task

_FIELDS = dict(prompt=str, completion=str, rating=(int, float, bool))


@dataclasses.dataclass(frozen=True)
class Ratings:
  mean: dict[tuple[str, str], float]  # (prompt, completion) -> mean rating
  count: dict[tuple[str, str], int]  # how many ratings were averaged
  problems: tuple[Problem, ...]  # the distinct prompts, in file order, with ground truth

  def at(self, difficulties) -> list[Problem]:
    """The rated prompts at these difficulties, in file order."""
    return [p for p in self.problems if p.difficulty in set(difficulties)]

  def lookup(self, prompts, completions) -> tuple[np.ndarray, np.ndarray]:
    """([N, K] mean rating, [N, K] bool rated) for K completions of each of N prompts."""
    shape = (len(prompts), len(completions[0]) if completions else 0)
    rating, rated = np.zeros(shape), np.zeros(shape, bool)
    for i, (prompt, row) in enumerate(zip(prompts, completions)):
      for j, c in enumerate(row):
        if (prompt, c) in self.mean:
          rating[i, j], rated[i, j] = self.mean[prompt, c], True
    return rating, rated


def load(path: str | Path, task: Task, tok: CharTokenizer) -> Ratings:
  """Reads and checks a feedback file; a bad line is a FileError naming file:line."""
  path = Path(path)
  if not path.is_file():
    raise UserError(f"feedback.file {path} does not exist; give a JSON-lines file of "
                    '{"prompt", "completion", "rating"} objects')
  problems = {}  # prompt -> Problem, in file order

  def check(row, where):
    if not 0 <= float(row["rating"]) <= 1:  # NaN fails this too
      raise files.FileError(f"{where} field 'rating' must be in [0, 1] or true/false, "
                            f"got {row['rating']!r}")
    try:
      if row["prompt"] not in problems:
        problems[row["prompt"]] = task.parse(row["prompt"])
      tok.encode(row["completion"])
    except ValueError as e:
      raise files.FileError(f"{where}: {e}") from None

  rows = files.read_jsonl(path, _FIELDS, check)
  sums, count = collections.defaultdict(float), collections.Counter()
  for row in rows:
    sums[row["prompt"], row["completion"]] += float(row["rating"])
    count[row["prompt"], row["completion"]] += 1
  if not rows:
    raise UserError(f"feedback.file {path} holds no ratings")
  return Ratings(mean={k: v / count[k] for k, v in sums.items()}, count=dict(count),
                 problems=tuple(problems.values()))


def blend(self_score: np.ndarray, valid: np.ndarray, rating: np.ndarray, rated: np.ndarray,
          weight: float, has_self: bool) -> tuple[np.ndarray, np.ndarray]:
  """([N, K] score, [N, K] source) from the self-scores and the ratings (see the module doc)."""
  use = rated & valid
  if has_self:
    score = np.where(use, weight * rating + (1 - weight) * self_score, self_score)
    source = np.where(use, "blend", "self")
  else:
    score = np.where(use, rating, 0.0)
    source = np.where(use, "feedback", "self")
  return np.where(valid, score, 0.0), source.astype(object)
