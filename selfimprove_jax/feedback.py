"""Simulated users, to try the feedback scorer without people:

  python -m selfimprove_jax.feedback --from_run=/tmp/run --out=/tmp/ratings.jsonl

rates the answers a finished run sampled (its examples files) as users who are
right with probability --rater_accuracy would: 1 for a right answer, 0 for a
wrong one, flipped when the rater errs. Ground truth enters here, as it does
through real users. The file is what `--config.feedback.file` reads
(grading/ratings.py).
"""

from pathlib import Path

import numpy as np

from selfimprove_jax.base import files


def simulate(rows: list[dict], rater_accuracy: float, rated_fraction: float,
             rng: np.random.Generator) -> list[dict]:
  """Ratings of the finished answers to a random `rated_fraction` of the rows' prompts."""
  prompts = sorted({r["prompt"] for r in rows})
  chosen = set(rng.permutation(prompts)[:int(round(rated_fraction * len(prompts)))].tolist())
  out = []
  for r in rows:
    if r["prompt"] in chosen and r["finished"]:
      right = r["correct"] != (rng.random() > rater_accuracy)
      out.append(dict(prompt=r["prompt"], completion=r["completion"], rating=int(right)))
  return out


def main(argv):
  from absl import app, flags
  del argv
  args = flags.FLAGS
  rows = []
  for path in sorted(Path(args.from_run).glob("generations/*/examples.jsonl")):
    rows += files.read_jsonl(path, dict(prompt=str, completion=str, finished=bool, correct=bool))
  if not rows:
    raise app.UsageError(f"--from_run {args.from_run} has no generations/*/examples.jsonl")
  ratings = simulate(rows, args.rater_accuracy, args.rated_fraction,
                     np.random.default_rng(args.seed))
  files.write_jsonl(Path(args.out), ratings)
  print(f"wrote {len(ratings)} ratings of {len({r['prompt'] for r in ratings})} prompts "
        f"to {args.out}")


if __name__ == "__main__":
  from absl import app, flags
  flags.DEFINE_string("from_run", None, "Workdir of a finished task-mode run.", required=True)
  flags.DEFINE_string("out", None, "Where to write the ratings (JSON lines).", required=True)
  flags.DEFINE_float("rater_accuracy", 0.9, "Chance that a simulated user rates right.")
  flags.DEFINE_float("rated_fraction", 0.5, "Share of the run's prompts that get rated.")
  flags.DEFINE_integer("seed", 0, "Seed of the simulated users.")
  app.run(main)
