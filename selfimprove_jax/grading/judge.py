"""The self-judge: the same transformer learns to say whether an answer is right.

Besides answering ("abc>" -> "cba"), the models learn a second format from
the same data stream:

  "<prompt><answer>?"  ->  "y" or "n"        e.g. "abc>cba?" -> "y", "abc>cab?" -> "n"

and the `self_judge` scorer scores a sampled answer by P("y") / (P("y") + P("n"))
at the position after "?", averaged over the ensemble's members.

Where generation 0's lessons come from (`judge.lessons`), ground truth either way:
  near_miss     every training problem once with its answer ("y") and once with
                a synthetic near miss of it ("n")
  own_answers   the models' own answers, greedy and tempered, to training
                problems at the taught difficulties, after generation 0's
                answer training (and, with `judge.early_steps`, at those of its
                steps too: the mistakes the models made while they learned);
                each labelled by the task's checker, as many "y" as "n" at
                every difficulty (real mistakes first, near misses of right
                answers at most a third of the "n"). Part of the problems is
                held out: the judge never trains on them, and its threshold is
                set on the trained models' answers to them (`calibrate`) for
                `judge.precision`. The judge then trains `judge.steps` more
                steps of generation 0.

Where later generations' lessons come from (`judge.later`), never ground truth:
  self          the judge's own verdicts on the generation's samples: its kept
                labels "y", the answers it scored below the threshold "n",
                topped up with near misses (a confirmation loop, kept for
                comparison)
  frozen        none: generation 0's lessons are replayed, nothing else
  consensus     generation 0's lessons replayed, plus the answers another
                grader settled: "y" for answers every sample of every member
                gave, "n" for the answers that lost a majority vote; they teach
                the judge after the generation, for the next one's answers
  settled       the same, settled before the judge speaks: "y" for the labels
                the other stages keep on their own (the vote at
                filter.threshold), "n" for the answers those outvoted; the
                judge trains on them first (with generation 0's replayed), then
                judges the same generation's answers, whose length it has now
                seen, where the first three judge answers one length past
                their lessons

How the judge's verdict combines with the other stages (`judge.combine`):
  product       a stage like the others: the scores multiply, one threshold
  gate          each grader against its own bar (the others' score against
                filter.threshold, the judge's against its calibrated threshold);
                kept when both pass
  either        the same bars; kept when either passes (length and other vetoes
                still apply)
  weighted      the same bars as evidence: kept when (score / its bar)^(1 - w) x
                (P(y) / the judge's bar)^w >= 1, w = judge.weight, so a judge
                sure of an answer makes up for a vote a little short of its bar,
                and the reverse (vetoes still apply)

`judge.fraction` of every training batch is judge examples. How well the
judge agrees with the truth is measured (never fed back) on each
generation's samples (`judge_auc`, `judge_precision`), on the held-out
generation-0 lessons (`judge_heldout_auc`) and on the fixed evaluation
problems with and without a near miss (`judge_eval_auc`).
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


def _balanced(task: Task, right: list, wrong: list, rng: np.random.Generator):
  """(yes, no): as many "y" as "n" from one difficulty's right (prompt, answer) pairs and
  wrong (prompt, answer, origin) triples; near misses of right answers top up the "n",
  at most half as many as the real mistakes (a third of the "n"), and never one that is
  right by chance."""
  spare = min(len(right) - len(wrong), len(wrong) // 2) if len(right) > len(wrong) else 0
  near = []
  for i in (rng.permutation(len(right))[:spare] if spare > 0 else []):
    prompt, answer = right[i]
    near.append((prompt, task.near_miss(answer, rng)))
  no = list(wrong) + [(p, a, "near_miss") for p, a in near]
  pairs = min(len(right), len(no))
  pick = lambda items: [items[i] for i in sorted(rng.choice(len(items), pairs, replace=False))]
  return [(p, a, "right") for p, a in pick(right)], pick(no)


def own_answer_lessons(task: Task, problems, answers, holdout: float,
                       rng: np.random.Generator, early_answers=None) -> list[dict]:
  """Generation 0's lessons from the models' own answers (ground truth labels them).

  `problems[i]` (training problems) was answered `answers[i]` (finished answers
  of every member and sample) after training, and `early_answers[i]` part way
  through it (judge.early_steps; none by default). Each distinct answer is
  checked by the task; a `holdout` share of the distinct problems is held out
  (`kept` False: never trained on, `heldout` True: used to set the threshold),
  and only the trained models' answers are held out, so the bar is set on
  answers like those the judge will judge. Train and held-out lessons are each
  balanced per difficulty; a mistake made only part way has origin "early".
  """
  early_answers = early_answers or [[] for _ in problems]
  prompts = list(dict.fromkeys(p.prompt for p in problems))  # a problem drawn twice is one
  held = dict(zip(prompts, rng.random(len(prompts)) < holdout))
  out = []
  for part in (False, True):
    by_difficulty: dict[int, tuple[list, list]] = {}
    seen = set()
    for p, given, early in zip(problems, answers, early_answers):
      if held[p.prompt] != part:
        continue
      right, wrong = by_difficulty.setdefault(p.difficulty, ([], []))
      sources = [(a, "wrong") for a in given] + ([] if part else [(a, "early") for a in early])
      for a, origin in sources:  # each distinct answer once, in the order sampled
        if (p.prompt, a) not in seen:
          seen.add((p.prompt, a))
          if task.verify(p, a):
            right.append((p.prompt, a))
          else:
            wrong.append((p.prompt, a, origin))
    for d, (right, wrong) in sorted(by_difficulty.items()):
      yes, no = _balanced(task, right, wrong, rng)
      for (prompt, answer, origin), verdict in [(x, YES) for x in yes] + [(x, NO) for x in no]:
        out.append(dict(generation=0, difficulty=d, prompt=question(prompt, answer),
                        completion=verdict, kept=not part, heldout=part, origin=origin,
                        about=prompt, proposed=answer))
  return out


def calibrate(p_yes: np.ndarray, right: np.ndarray, precision: float) -> float | None:
  """The lowest threshold t at which the answers judged right (P(y) >= t) are at least
  `precision` right, on held-out answers whose truth is known; None if none reaches it."""
  p, right = np.ravel(p_yes).astype(float), np.ravel(right).astype(bool)
  order = np.argsort(-p, kind="stable")
  p, right = p[order], right[order]
  kept_precision = np.cumsum(right) / np.arange(1, len(p) + 1)
  # A threshold keeps every answer tied with the last one it keeps.
  ends_ties = np.r_[p[1:] != p[:-1], True] if len(p) else np.zeros(0, bool)
  ok = np.nonzero((kept_precision >= precision) & ends_ties)[0]
  return float(p[ok[-1]]) if len(ok) else None


def consensus_examples(task: Task, rows: list[dict], samples: int, rng: np.random.Generator,
                       generation: int) -> list[dict]:
  """Generation g's judge lessons settled by the vote, from its examples-file rows alone
  (never `correct`). "y": answers every one of a prompt's `samples` samples gave. "n":
  answers that lost to a strict majority at their prompt, then near misses of the "y"
  until there are as many "n" as "y"."""
  by_prompt: dict[str, list[dict]] = {}
  for r in rows:
    if r["finished"]:
      by_prompt.setdefault(r["prompt"], []).append(r)
  yes, no = [], []
  for answers in by_prompt.values():
    top = max(r["votes"] for r in answers)
    yes += [r for r in answers if r["votes"] == samples]
    if 2 * top > samples:
      no += [r for r in answers if r["votes"] < top]
  return _verdict_lessons(task, yes, no, ("unanimous", "outvoted"), rng, generation)


def settled_examples(task: Task, problems, cands: scoring.Candidates, settled: np.ndarray,
                     rng: np.random.Generator, generation: int) -> list[dict]:
  """Generation g's judge lessons settled by the other graders before the judge: "y" for
  each prompt's answer that `settled` [N, K] keeps, "n" for the other distinct answers
  given at that prompt (the ones it outvoted), balanced as `consensus_examples`'. Reads
  the problems' difficulties, never their answers."""
  valid = cands.initially_valid()
  yes, no = [], []
  for i in np.nonzero(settled.any(axis=1))[0]:
    prompt, row = cands.prompts[i], cands.completions[i]
    top = row[int(np.argmax(settled[i]))]
    difficulty = problems[i].difficulty
    yes.append(dict(prompt=prompt, completion=top, difficulty=difficulty))
    others = dict.fromkeys(c for c, ok in zip(row, valid[i]) if ok and c != top)
    no += [dict(prompt=prompt, completion=c, difficulty=difficulty) for c in others]
  return _verdict_lessons(task, yes, no, ("settled", "outvoted"), rng, generation)


def _verdict_lessons(task: Task, yes: list[dict], no: list[dict], origins: tuple[str, str],
                     rng: np.random.Generator, generation: int) -> list[dict]:
  """Lessons from examples-file rows judged "y" and "n" (`origins` names the two kinds),
  balanced: "n" drawn down to as many as "y", or topped up with near misses of the "y"."""
  if not yes:
    return []
  if len(no) > len(yes):
    no = [no[i] for i in sorted(rng.choice(len(no), len(yes), replace=False))]
  lessons = [dict(r, verdict=YES, origin=origins[0]) for r in yes]
  lessons += [dict(r, verdict=NO, origin=origins[1]) for r in no]
  for r in (yes[i] for i in rng.integers(0, len(yes), len(yes) - len(no))):
    lessons.append(dict(r, completion=task.near_miss(r["completion"], rng), verdict=NO,
                        origin="near_miss"))
  # `kept` makes every lesson a training example when the file is read back.
  return [dict(generation=generation, difficulty=r["difficulty"],
               prompt=question(r["prompt"], r["completion"]), completion=r["verdict"],
               kept=True, origin=r["origin"], about=r["prompt"], proposed=r["completion"])
          for r in lessons]


COMBINE = ("product",) + scoring.COMBINE  # scoring.combine's ways, or one more factor


def self_examples(task: Task, rows: list[dict], threshold: float, rng: np.random.Generator,
                  generation: int) -> list[dict]:
  """Generation g's judge lessons, from its examples-file rows alone (no ground truth).

  Reads each row's prompt, completion, kept, finished and score, never
  `correct`. "y": every kept label. "n": finished answers scored below the
  threshold, then near misses of kept labels until there are as many "n" as "y".
  """
  yes = [r for r in rows if r["kept"]]
  no = [r for r in rows if r["finished"] and not r["kept"] and r["score"] < threshold]
  return _verdict_lessons(task, yes, no, ("kept", "rejected"), rng, generation)


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
  pairs = cands.distinct_answers()
  return cands.spread(dict(zip(pairs, p_yes(devices, params, [p for p, _ in pairs],
                                            [c for _, c in pairs]))))


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
