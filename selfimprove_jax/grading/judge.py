"""The self-judge: the same transformer learns to say whether an answer is right.

Besides answering ("abc>" -> "cba"), the models learn a second format from
the same data stream:

  "<prompt><answer>?"  ->  "y" or "n"        e.g. "abc>cba?" -> "y", "abc>cab?" -> "n"

and the `self_judge` scorer scores a sampled answer by P("y") / (P("y") + P("n"))
at the position after "?", averaged over the ensemble's members.

Where the judge's lessons come from:
  generation 0   ground truth: every training problem once with its answer ("y")
                 and once with a near miss of it ("n"), so the data is balanced
  generation g   only the judge's own verdicts on generation g's samples: its
                 kept labels are "y", the answers it scored below the threshold
                 are "n", topped up with near misses of its own kept labels so
                 that yes and no stay balanced. No ground truth.

`judge.fraction` of every training batch is judge examples. How well the
judge agrees with the truth is measured (never fed back) on each
generation's samples (`judge_auc`, `judge_precision`) and on the fixed
evaluation problems with and without a near miss (`judge_eval_auc`).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from selfimprove_jax.core import data, sharding
from selfimprove_jax.core import model as model_lib
from selfimprove_jax.core.mixture import Example, Source
from selfimprove_jax.core.train import member
from selfimprove_jax.grading import scoring
from selfimprove_jax.grading.tasks import Task

YES, NO = "y", "n"


def question(prompt: str, completion: str) -> str:
  """The judge's prompt for one proposed answer."""
  return f"{prompt}{completion}?"


def ground_truth_source(task: Task, ground_truth: Source, seed: int) -> Source:
  """Generation 0's judge examples: example 2i is problem i's answer ("y"), 2i+1 a near miss ("n")."""
  def get(indices):
    out = []
    for i in indices:
      ex = ground_truth.get([i // 2])[0]
      if i % 2:
        rng = np.random.default_rng([seed, 7, int(i)])  # the same near miss every time it is drawn
        out.append(Example(question(ex.prompt, task.near_miss(ex.completion, rng)), NO,
                           ex.difficulty, 0))
      else:
        out.append(Example(question(ex.prompt, ex.completion), YES, ex.difficulty, 0))
    return out
  # A near miss may be one symbol longer than the answer; "?" and the verdict add two more.
  return Source("judge_ground_truth", 2 * ground_truth.size, get, ground_truth.longest + 3)


def self_examples(task: Task, rows: list[dict], threshold: float, rng: np.random.Generator,
                  generation: int) -> list[dict]:
  """Generation g's judge lessons, from its examples-file rows alone (no ground truth).

  Reads each row's prompt, completion, kept, finished and score, never
  `correct`. "y": every kept label. "n": finished answers scored below the
  threshold, then near misses of kept labels until there are as many "n" as "y".
  """
  yes = [r for r in rows if r["kept"]]
  if not yes:
    return []
  no = [r for r in rows if r["finished"] and not r["kept"] and r["score"] < threshold]
  if len(no) > len(yes):
    no = [no[i] for i in sorted(rng.choice(len(no), len(yes), replace=False))]
  lessons = [dict(r, verdict=YES, origin="kept") for r in yes]
  lessons += [dict(r, verdict=NO, origin="rejected") for r in no]
  for r in (yes[i] for i in rng.integers(0, len(yes), len(yes) - len(no))):
    lessons.append(dict(r, completion=task.near_miss(r["completion"], rng), verdict=NO,
                        origin="near_miss"))
  # `kept` makes every lesson a training example when the file is read back.
  return [dict(generation=generation, difficulty=r["difficulty"],
               prompt=question(r["prompt"], r["completion"]), completion=r["verdict"],
               kept=True, origin=r["origin"], about=r["prompt"], proposed=r["completion"])
          for r in lessons]


def _yes_probability(graphdef, verdict_ids, params, inputs, last):
  """One device's rows: inputs [B, T], last [B] the position of "?" -> [B] P(y | y or n)."""
  logits, _ = model_lib.apply(graphdef, params, inputs)  # [B, T, V]
  at = jnp.take_along_axis(logits, last[:, None, None], axis=1)[:, 0]  # [B, V]
  return jax.nn.softmax(at[:, list(verdict_ids)].astype(jnp.float32), axis=-1)[:, 0]


def p_yes(devices, params, prompts, completions, rows_per_call: int = 1024) -> np.ndarray:
  """[N] P("y") for each (prompt, completion), averaged over the ensemble's members
  (`devices`: core/devices.py)."""
  verdict_ids = tuple(devices.tok.encode(v)[0] for v in (YES, NO))
  step = devices.compiled("judge", lambda: sharding.data_parallel(
      functools.partial(_yes_probability, devices.graphdef, verdict_ids), devices.mesh,
      in_specs=(P(), P(sharding.DATA), P(sharding.DATA)), out_specs=P(sharding.DATA)))
  questions = [question(p, c) for p, c in zip(prompts, completions)]
  if not questions:
    return np.zeros(0)
  width = data.bucket(max(len(q) for q in questions) + 1)  # BOS + question
  tokens = np.zeros((len(questions), width), np.int32)
  last = np.zeros(len(questions), np.int32)  # where "?" is: the verdict comes next
  for r, q in enumerate(questions):
    ids = devices.tok.encode(q, bos=True)
    tokens[r, :len(ids)], last[r] = ids, len(ids) - 1
  members = jax.tree.leaves(params)[0].shape[0]
  # Each call's rows are placed on the devices once and judged by every member.
  per_member = sharding.map_rows(
      lambda rows: tuple(step(member(params, e), *rows) for e in range(members)),
      (tokens, last), devices.mesh, rows_per_call)
  total = np.zeros(len(questions))  # float64: the members' verdicts summed as before
  for verdict in per_member:
    total += verdict
  return total / members


def verdicts(devices, params, cands: scoring.Candidates) -> np.ndarray:
  """[N, K] P("y") for every valid candidate (0 for the rest), each distinct answer judged once."""
  valid = cands.initially_valid()
  pairs = sorted({(cands.prompts[i], cands.completions[i][j]) for i, j in zip(*np.nonzero(valid))})
  judged = dict(zip(pairs, p_yes(devices, params, [p for p, _ in pairs], [c for _, c in pairs])))
  out = np.zeros(cands.shape)
  for i, j in zip(*np.nonzero(valid)):
    out[i, j] = judged[cands.prompts[i], cands.completions[i][j]]
  return out


def quality(p: np.ndarray, correct: np.ndarray, threshold: float) -> dict:
  """How the verdicts agree with ground truth (measurement only): AUC, and the share of
  answers judged right (P(y) >= threshold) that are right, with the share of right ones found."""
  p, correct = np.ravel(p), np.ravel(correct).astype(bool)
  yes = p >= threshold
  return dict(judge_auc=scoring.auc(p, correct),
              judge_precision=float(correct[yes].mean()) if yes.any() else None,
              judge_recall=float(yes[correct].mean()) if correct.any() else None)


def evaluate(devices, task: Task, seed: int, params, problems) -> dict[str, float | None]:
  """AUC by difficulty on the evaluation problems, each with its answer and one near miss."""
  rng = np.random.default_rng([seed, 7])
  prompts = [p.prompt for p in problems] * 2
  completions = [p.answer for p in problems] + [task.near_miss(p.answer, rng) for p in problems]
  p = p_yes(devices, params, prompts, completions)
  right = np.arange(len(prompts)) < len(problems)
  difficulty = np.array([q.difficulty for q in problems] * 2)
  return {str(d): scoring.auc(p[difficulty == d], right[difficulty == d])
          for d in sorted(set(difficulty.tolist()))}
