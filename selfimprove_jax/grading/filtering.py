"""From scores to kept labels.

Filtering keeps a completion when its score reaches `threshold`, either every
such completion (`keep="threshold"`) or only the best one per prompt
(`keep="best"`, ties to the first sampled); `dedupe` then drops repeats of the
same (prompt, completion), so a label that many samples agreed on is trained
once, not once per vote.
"""

from collections.abc import Sequence

import numpy as np

KEEP = ("threshold", "best")


def select(scores: np.ndarray, threshold: float, keep: str) -> np.ndarray:
  """[N, K] scores -> [N, K] bool kept. A score of 0 is never kept, whatever the threshold."""
  passed = (scores >= threshold) & (scores > 0)
  if keep == "threshold":
    return passed
  if keep == "best":
    best = np.zeros_like(passed)
    rows = np.arange(scores.shape[0])
    best[rows, np.argmax(scores, axis=1)] = True  # argmax: the first of equal scores
    return best & passed
  raise ValueError(f"filter.keep must be one of {list(KEEP)}, got {keep!r}")


def dedupe(prompts: Sequence[str], completions: Sequence[Sequence[str]],
           kept: np.ndarray) -> np.ndarray:
  """`kept` with every repeat of an already kept (prompt, completion) pair switched off."""
  out = np.zeros_like(kept)
  seen = set()
  for i, k in zip(*np.nonzero(kept)):
    pair = (prompts[i], completions[i][k])
    if pair not in seen:
      seen.add(pair)
      out[i, k] = True
  return out
