"""Self-scoring: how much to trust each sampled completion, mostly without the answer.

A scorer is a plain function `(candidates, valid) -> scores`: `candidates` holds
K completions for each of N prompts (from one model's K samples, or from an
ensemble's members, K = members x samples), `valid` [N, K] says which of them
are still in play, and the scores [N, K] lie in [0, 1], 0 for anything not
valid. A completion is valid to begin with when it ended with EOS and is not
empty: an answer cut off at the length limit, or no answer at all, is never a
label.

  none           1 for every valid completion: no filtering at all
  majority_vote  share of the K samples that gave this exact answer (self-consistency)
  confidence     the model's own mean token probability, exp(mean log p)
  length         1 if the answer length is plausible for the operands (Lee et al.), else 0
  self_judge     the model's own P("y") when asked whether the answer is right (judge.py)
  round_trip     the model's own probability of getting the prompt back when asked the
                 inverse question of its answer (round_trip.py; reversal and copy)
  verifier       1 if the task's ground-truth check passes: "the paths that work"
  feedback       users' ratings, blended into the other scores (feedback.py)

Only `verifier` reads ground truth; `make_scorer` hands the answers to it alone.
Scorers compose left to right ("length,majority_vote"): a completion an earlier
stage scores 0 is out of play for the later ones (it casts no vote), and the
final score is the product of the stage scores. `feedback` is not a stage: it
is blended into the composed score afterwards (labelling.py).
"""

import collections
import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from selfimprove_jax.grading.tasks import Task


@dataclasses.dataclass(frozen=True, kw_only=True)
class Candidates:
  """K decoded completions per prompt, with what the sampler reported for each."""
  prompts: Sequence[str]  # N
  completions: Sequence[Sequence[str]]  # N x K answer strings, cut at EOS
  finished: np.ndarray  # [N, K] bool, the completion ended with EOS
  mean_logprob: np.ndarray  # [N, K] mean log p(token) over the completion, EOS included

  def __post_init__(self):
    n, k = self.finished.shape
    if len(self.prompts) != n or any(len(row) != k for row in self.completions):
      raise ValueError(f"candidates need {n} prompts with {k} completions each")

  @property
  def shape(self) -> tuple[int, int]:
    return self.finished.shape

  def initially_valid(self) -> np.ndarray:
    nonempty = np.array([[len(c) > 0 for c in row] for row in self.completions], bool)
    return self.finished & nonempty.reshape(self.shape)

  def distinct_answers(self) -> list[tuple[str, str]]:
    """Every distinct valid (prompt, completion), sorted: what a grader that runs the
    model (the self-judge, the round trip) asks about once each."""
    return sorted({(self.prompts[i], self.completions[i][j])
                   for i, j in zip(*np.nonzero(self.initially_valid()))})

  def spread(self, graded: dict) -> np.ndarray:
    """[N, K] graded[(prompt, completion)] for every valid candidate, 0 for the rest."""
    out = np.zeros(self.shape)
    for i, j in zip(*np.nonzero(self.initially_valid())):
      out[i, j] = graded[self.prompts[i], self.completions[i][j]]
    return out


Scorer = Callable[[Candidates, np.ndarray], np.ndarray]


def vote_counts(cands: Candidates, valid: np.ndarray) -> np.ndarray:
  """[N, K] int: how many valid completions of the same prompt give this answer (0 if invalid)."""
  votes = np.zeros(cands.shape, np.int32)
  for i, row in enumerate(cands.completions):
    counts = collections.Counter(c for c, ok in zip(row, valid[i]) if ok)
    votes[i] = [counts[c] if ok else 0 for c, ok in zip(row, valid[i])]
  return votes


def majority_vote(cands: Candidates, valid: np.ndarray) -> np.ndarray:
  # Divided by all K samples, not just the valid ones: cut-off or filtered samples
  # count as disagreement, so a filter in front can never inflate agreement.
  return vote_counts(cands, valid) / cands.shape[1]


def confidence(cands: Candidates, valid: np.ndarray) -> np.ndarray:
  return np.where(valid, np.exp(np.minimum(cands.mean_logprob, 0.0)), 0.0)


def none(cands: Candidates, valid: np.ndarray) -> np.ndarray:
  return valid.astype(float)


def computed(grades: np.ndarray) -> Scorer:
  """Grades [N, K] computed beforehand because they need the model: the self-judge's
  P("y"), the round trip's P(prompt back)."""
  return lambda cands, valid: np.where(valid, grades, 0.0)


def length(task: Task) -> Scorer:
  def score(cands: Candidates, valid: np.ndarray) -> np.ndarray:
    out = np.zeros(cands.shape)
    for i, (prompt, row) in enumerate(zip(cands.prompts, cands.completions)):
      lo, hi = task.answer_lengths(prompt)
      out[i] = [lo <= len(c) <= hi for c in row]
    return np.where(valid, out, 0.0)
  return score


def verifier(task: Task, problems) -> Scorer:
  """The ground-truth check; `problems[i]` is the problem behind prompt i."""
  def score(cands: Candidates, valid: np.ndarray) -> np.ndarray:
    out = np.zeros(cands.shape)
    for i, (p, row) in enumerate(zip(problems, cands.completions)):
      if p.prompt != cands.prompts[i]:
        raise ValueError(f"verifier: problem {i} is {p.prompt!r}, prompt is {cands.prompts[i]!r}")
      out[i] = [task.verify(p, c) for c in row]
    return np.where(valid, out, 0.0)
  return score


SCORERS = ("none", "majority_vote", "confidence", "length", "self_judge", "round_trip",
           "verifier", "feedback")


def parse(spec: str) -> list[str]:
  """'length,majority_vote' -> ['length', 'majority_vote'], or a one-line error naming `scorer`."""
  names = [s.strip() for s in spec.split(",")]
  if not spec.strip() or any(n not in SCORERS for n in names):
    raise ValueError(f"scorer must be one or more of {list(SCORERS)} joined by ',', got {spec!r}")
  return names


def make_scorer(spec: str, task: Task, problems=None, p_yes: np.ndarray | None = None,
                p_back: np.ndarray | None = None) -> Callable[[Candidates], np.ndarray]:
  """The composed scorer named by `spec` (its stages other than `feedback`).

  `problems` (ground truth) goes to `verifier` only; `p_yes` [N, K] holds the
  self-judge's verdicts, `p_back` [N, K] the round trip's probabilities. With no
  stage but `feedback`, every valid completion scores 0 until a rating says otherwise.
  """
  stages = []
  for name in parse(spec):
    if name == "verifier":
      if problems is None:
        raise ValueError("scorer 'verifier' needs the problems' ground truth")
      stages.append(verifier(task, problems))
    elif name == "self_judge":
      if p_yes is None:
        raise ValueError("scorer 'self_judge' needs the judge's verdicts")
      stages.append(computed(p_yes))
    elif name == "round_trip":
      if p_back is None:
        raise ValueError("scorer 'round_trip' needs the round trip's probabilities")
      stages.append(computed(p_back))
    elif name == "length":
      stages.append(length(task))
    elif name != "feedback":
      stages.append({"none": none, "majority_vote": majority_vote, "confidence": confidence}[name])
  if not stages:  # feedback alone
    return lambda cands: np.zeros(cands.shape)
  return lambda cands: compose(cands, stages)


def compose(cands: Candidates, stages: Sequence[Scorer]) -> np.ndarray:
  valid = cands.initially_valid()
  score = np.ones(cands.shape)
  for stage in stages:
    s = stage(cands, valid)
    score *= s
    valid &= s > 0
  return np.where(valid, score, 0.0)


COMBINE = ("gate", "either", "weighted")


def combine(how: str, others: np.ndarray, threshold: float, grader: np.ndarray,
            grader_threshold: float | None, weight: float = 0.5) -> np.ndarray:
  """[N, K] scores of the other stages and one grader's (the self-judge's, the round
  trip's) -> scores kept at >= 1.

  Each is measured against its own bar: the others' score in units of `threshold`
  (any score > 0 passes a bar of 0), the grader's in units of `grader_threshold`
  (None: no threshold reached the target precision, so the grader passes nothing).
  `gate` needs both to pass (the weaker decides), `either` one (the stronger),
  `weighted` their geometric mean with the grader's share `weight` (in logs: a
  weighted sum of how far each is above or below its bar). An answer the other
  stages scored 0 (the length filter, an unfinished answer) stays 0: the grader
  never overrides a veto.
  """
  if how not in COMBINE:
    raise ValueError(f"combine must be one of {list(COMBINE)}, got {how!r}")
  alive = others > 0
  mine = np.where(alive, others / threshold, 0.0) if threshold > 0 else alive.astype(float)
  graded = grader / grader_threshold if grader_threshold else np.zeros_like(grader)
  if how == "weighted":
    both = lambda a, b: a ** (1.0 - weight) * b ** weight
  else:
    both = np.minimum if how == "gate" else np.maximum
  return np.where(alive, both(mine, graded), 0.0)


def self_consistency(cands: Candidates) -> float:
  """Mean over prompts of the largest share of samples agreeing on one answer (no ground truth)."""
  return float(np.mean(np.max(majority_vote(cands, cands.initially_valid()), axis=1)))


def auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
  """Area under the ROC curve: the chance that a random right answer scores above a
  random wrong one, ties counting half. None without both kinds."""
  scores, labels = np.ravel(scores).astype(float), np.ravel(labels).astype(bool)
  pos, neg = scores[labels], scores[~labels]
  if not len(pos) or not len(neg):
    return None
  # Mann-Whitney U from average ranks (1-based), so that ties count half.
  _, group, counts = np.unique(np.concatenate([pos, neg]), return_inverse=True,
                               return_counts=True)
  rank = (np.cumsum(counts) - (counts - 1) / 2)[group]
  u = rank[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
  return float(u / (len(pos) * len(neg)))
