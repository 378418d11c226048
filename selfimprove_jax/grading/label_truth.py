"""What ground truth says about a generation's labels, and the one experiment that
changes them: measurement only, never fed back into scoring or filtering.

  kept_label_stats  how many labels were kept and how many of them are right, how
                    well the scores rank right answers above wrong ones
  inject_errors     the error-avalanche experiment (Lee et al. 2025, section 8.2):
                    kept labels replaced by near misses of the truth
"""

import numpy as np

from selfimprove_jax.grading import scoring


def kept_label_stats(rows, scores, kept, correct, valid, cands, injected: int) -> dict:
  """What ground truth says about the kept labels (measurement only)."""
  solvable = correct.any(axis=1)
  kept_rows = [r for r in rows if r["kept"]]
  return dict(
      kept=int(kept.sum()),
      # Over the rows trained on, after any injected errors.
      kept_precision=float(np.mean([r["correct"] for r in kept_rows])) if kept_rows else None,
      injected=injected,
      # How well the final scores rank right above wrong answers (1: perfectly, 0.5: chance).
      score_auc=scoring.auc(scores[valid], correct[valid]),
      # Of the prompts some sample answered right, the share that kept a right label.
      kept_recall=float(((kept & correct).any(1) & solvable).sum() / solvable.sum())
      if solvable.any() else None,
      kept_fraction=float(kept.any(axis=1).mean()),
      sample_accuracy=float(correct.mean()),
      self_consistency=scoring.self_consistency(cands),
      distinct_answers=float(np.mean([len(set(r)) for r in cands.completions])),
  )


def inject_errors(task, problems, rows: list[dict], fraction: float, rng) -> int:
  """The error-avalanche experiment: `fraction` of the kept rows get a wrong answer
  (a near miss of the truth) in place of theirs; returns how many."""
  by_prompt = {p.prompt: p for p in problems}
  kept = [r for r in rows if r["kept"]]
  chosen = rng.choice(len(kept), int(round(fraction * len(kept))), replace=False) if kept else []
  for i in sorted(chosen):
    row = kept[i]
    row.update(completion=task.near_miss(by_prompt[row["prompt"]].answer, rng), correct=False,
               injected=True)
  return len(chosen)
