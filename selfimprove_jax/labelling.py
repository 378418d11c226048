"""Task mode's labelling: sample -> score -> filter, and the examples files it leaves.

Each generation's labels are written once, whole, to
`<workdir>/generations/<g>/examples.jsonl` (one row per distinct answer, with
its score, whether it was kept, and whether ground truth says it is right),
before training reads them back. Language-model mode has its own sampling
(lm.label_stage) and writes the same files.
"""

import json
import time

import jax
import numpy as np
from tqdm import tqdm

from selfimprove_jax import data, files, filtering, preemption, scoring, sharding
from selfimprove_jax.curriculum import Curriculum
from selfimprove_jax.experiment import Setup
from selfimprove_jax.filtering import Example


def member(params, e: int):
  """Ensemble member e's parameters (every leaf is stacked [E, ...])."""
  return jax.tree.map(lambda x: x[e], params)


def label_stage(setup: Setup, params, curriculum: Curriculum, g: int, key, rng):
  """Task mode's sample -> score -> filter: the rows of generation g's examples file."""
  seconds, tic = {}, time.perf_counter()
  problems, cands, stats = sample_stage(setup, params, curriculum, g, key, rng)
  seconds["sample"] = time.perf_counter() - tic
  tic = time.perf_counter()
  # Only `verifier` receives the problems: make_scorer hands them to nobody else.
  scores = scoring.make_scorer(setup.config.scorer, setup.task, problems)(cands)
  seconds["score"] = time.perf_counter() - tic
  tic = time.perf_counter()
  rows, filter_stats = filter_stage(setup, g, problems, cands, scores)
  seconds["filter"] = time.perf_counter() - tic
  return rows, stats | filter_stats, seconds



def sample_stage(setup: Setup, params, curriculum: Curriculum, g: int, key, rng):
  """K samples from each ensemble member for fresh problems just past the frontier."""
  cfg = setup.config.sample
  difficulties = curriculum.next_difficulties()
  problems = setup.task.batch(rng, np.resize(difficulties, cfg.prompts_per_generation))
  k, members = cfg.samples_per_prompt, setup.config.ensemble_size
  # Prompt i's samples are rows i*K .. i*K+K-1 of each member's calls.
  rows = [t for t in data.prompt_tokens(setup.tok, [p.prompt for p in problems]) for _ in range(k)]
  sampler = setup.sampler(setup.sample_method, setup.max_answer_tokens(problems))
  with tqdm(total=len(rows) * members, desc=f"gen {g} sample", unit="seq", leave=False) as bar:
    def on_chunk(rows):
      bar.update(rows)
      preemption.stop_if_requested(f"while sampling generation {g}")
    outs = [sampler.in_chunks(member(params, e), rows, jax.random.fold_in(key, e),
                              cfg.rows_per_call, on_chunk) for e in range(members)]
  out = jax.tree.map(lambda *xs: np.concatenate(xs), *outs)
  n = len(problems)
  # [E * N * K] in member-major order -> [N, E * K]
  regroup = lambda x: np.asarray(x).reshape(members, n, k).transpose(1, 0, 2).reshape(n, members * k)
  texts = regroup(np.array([setup.tok.decode(t) for t in out.tokens], dtype=object))
  cands = scoring.Candidates(prompts=[p.prompt for p in problems], completions=texts.tolist(),
                             finished=regroup(out.done), mean_logprob=regroup(out.mean_logprob))
  stats = out.token_stats()
  return problems, cands, stats



def filter_stage(setup: Setup, g: int, problems, cands: scoring.Candidates, scores):
  """Kept labels, plus what ground truth says about them (measurement only)."""
  cfg = setup.config.filter
  valid = cands.initially_valid()
  votes = scoring.vote_counts(cands, valid)
  kept = filtering.select(scores, cfg.threshold, cfg.keep)
  if cfg.dedupe:
    kept = filtering.dedupe(cands.prompts, cands.completions, kept)
  correct = np.array([[setup.task.verify(p, c) for c in row]
                      for p, row in zip(problems, cands.completions)]) & valid
  rows = []
  for i, p in enumerate(problems):
    seen = {}
    for j, c in enumerate(cands.completions[i]):
      if c in seen:  # one row per distinct answer; kept if any copy was kept
        rows[seen[c]]["kept"] |= bool(kept[i, j])
        continue
      seen[c] = len(rows)
      rows.append(dict(generation=g, difficulty=p.difficulty, prompt=p.prompt, completion=c,
                       votes=int(votes[i, j]), score=round(float(scores[i, j]), 6),
                       kept=bool(kept[i, j]), correct=bool(correct[i, j])))
  num_kept = int(kept.sum())
  solvable = correct.any(axis=1)
  stats = dict(
      kept=num_kept,
      kept_precision=float((kept & correct).sum() / num_kept) if num_kept else None,
      # Of the prompts some sample answered right, the share that kept a right label.
      kept_recall=float(((kept & correct).any(1) & solvable).sum() / solvable.sum())
      if solvable.any() else None,
      kept_fraction=float(kept.any(axis=1).mean()),
      sample_accuracy=float(correct.mean()),
      self_consistency=scoring.self_consistency(cands),
      distinct_answers=float(np.mean([len(set(r)) for r in cands.completions])),
  )
  return rows, stats



def write_labels(setup: Setup, g: int, rows, stats: dict) -> str:
  """Writes generation g's examples file and stage metrics; returns the file's relative path."""
  directory = setup.workdir / "generations" / f"{g:03d}"
  if jax.process_index() == 0:  # every process computed the same rows; one writes them
    directory.mkdir(parents=True, exist_ok=True)
    files.write_jsonl(directory / "examples.jsonl", rows)
    files.atomic_write(directory / "labelling.json", json.dumps(stats, indent=1))
  sharding.sync(f"labels {g}")
  return str((directory / "examples.jsonl").relative_to(setup.workdir))


# What training reads from an examples file; the other fields are for people.
_EXAMPLE_FIELDS = dict(generation=int, difficulty=int, prompt=str, completion=str, kept=bool)


def read_labels(setup: Setup, relative: str) -> list[Example]:
  """The kept labels of one examples file, in file order."""
  rows = files.read_jsonl(setup.workdir / relative, _EXAMPLE_FIELDS)
  return [Example(r["prompt"], r["completion"], r["difficulty"], r["generation"])
          for r in rows if r["kept"]]

