"""The self-judge's lessons from the models' own answers (judge.lessons="own_answers").

After generation 0's training, where ground truth is the human data, the models answer
`judge.problems` training problems (one greedy answer and `judge.samples - 1` at
`judge.temperature` each), the task's checker labels every answer, and the judge learns
from them (judge.own_answer_lessons balances and holds out). With `judge.early_steps`
the models also answer the same problems part way through generation 0, and the
mistakes they made then join the lessons. Everything is written to the workdir once and
read back on a resume; nothing here runs after generation 0, so ground truth enters
nowhere later. The held-out lessons set the judge's bar (`threshold`).
"""

import jax
import numpy as np

from selfimprove_jax.base import files
from selfimprove_jax.core import data, sampling
from selfimprove_jax.core.mixture import Source
from selfimprove_jax.core.train import member
from selfimprove_jax.grading import judge, scoring
from selfimprove_jax.grading.tasks import Problem

# Generation 0's lessons from the models' own answers.
LESSONS = "generations/000/judge.jsonl"
# The models' answers to the same problems after generation 0's step s (judge.early_steps).
EARLY_ANSWERS = "generations/000/judge_answers_step{step}.jsonl"
_LESSON_FIELDS = dict(difficulty=int, prompt=str, completion=str, kept=bool, heldout=bool,
                      origin=str, about=str, proposed=str)
STAGE = 4  # folded into generation 0's rng for the own-answer problems


def early_steps(spec: str) -> tuple[int, ...]:
  """judge.early_steps ("200,400") as steps; "" gives none."""
  return tuple(int(s) for s in spec.split(",")) if spec else ()


def problems(setup, ground_truth: Source) -> tuple[np.random.Generator, list[Problem]]:
  """judge.problems training problems, and the rng that chose them (which then holds
  problems out and balances the lessons)."""
  rng = np.random.default_rng([setup.config.seed, 0, STAGE])
  chosen = np.sort(rng.choice(ground_truth.size,
                              min(setup.config.judge.problems, ground_truth.size),
                              replace=False))
  return rng, [Problem(x.prompt, x.completion, x.difficulty) for x in ground_truth.get(chosen)]


def answers(setup, params, key, asked: list[Problem], width: int) -> list[list[str]]:
  """Every member's finished answers to each problem, at most `width` tokens: one greedy
  and judge.samples - 1 at judge.temperature."""
  cfg, devices = setup.config.judge, setup.devices
  prompts = data.prompt_tokens(devices.tok, [p.prompt for p in asked])
  given = [[] for _ in asked]
  tempered = sampling.method_from_config(cfg.temperature)
  for e in range(setup.config.ensemble_size):
    for s in range(cfg.samples):
      sampler = devices.sampler(sampling.Greedy() if s == 0 else tempered, width)
      out = sampler.in_chunks(member(params, e), prompts,
                              jax.random.fold_in(jax.random.fold_in(key, e), s),
                              setup.config.sample.rows_per_call)
      for answered, tokens, done in zip(given, out.tokens, out.done):
        answer = devices.tok.decode(tokens)
        if done and answer:
          answered.append(answer)
  return given


def write_early(setup, params, key, step: int, ground_truth: Source, width_of) -> None:
  """The models' answers after generation 0's step `step` to the lessons' problems,
  sampled as those are (the key folded with the step), written to EARLY_ANSWERS once: a
  resume that passes the step again reads them back."""
  relative = EARLY_ANSWERS.format(step=step)
  if not (setup.workdir.path / relative).exists():
    asked = problems(setup, ground_truth)[1]
    given = answers(setup, params, jax.random.fold_in(key, step), asked, width_of(asked))
    setup.workdir.write_rows(relative, [dict(prompt=p.prompt, answers=a)
                                        for p, a in zip(asked, given)])


def from_own_answers(setup, params, key, task, ground_truth: Source,
                     width_of) -> tuple[Source, dict]:
  """Generation 0's lessons (made once and written to LESSONS, read back on a resume), and
  what they hold. `width_of(problems)`: the most tokens an answer to them may take."""
  path = setup.workdir.path / LESSONS
  if not path.exists():
    setup.workdir.write_rows(LESSONS, _rows(setup, params, key, task, ground_truth, width_of))
  rows = files.read_jsonl(path, _LESSON_FIELDS)
  trained = [r for r in rows if r["kept"]]
  stats = dict(judge_lessons=len(trained), judge_lesson_precision=1.0 if trained else None,
               judge_lessons_by_origin={o: sum(r["origin"] == o for r in trained)
                                        for o in ("right", "wrong", "early", "near_miss")})
  return replayed(setup), stats


def replayed(setup) -> Source:
  """Generation 0's own-answer lessons, as written."""
  return Source.from_list(LESSONS, setup.workdir.read_labels(LESSONS))


def _rows(setup, params, key, task, ground_truth: Source, width_of) -> list[dict]:
  """The trained models' answers to the problems, with those made at judge.early_steps,
  labelled by the task's checker (judge.own_answer_lessons)."""
  rng, asked = problems(setup, ground_truth)
  early = [[] for _ in asked]
  for step in early_steps(setup.config.judge.early_steps):
    rows = files.read_jsonl(setup.workdir.path / EARLY_ANSWERS.format(step=step),
                            dict(prompt=str, answers=list))
    for given, row in zip(early, rows):
      given += row["answers"]
  return judge.own_answer_lessons(task, asked, answers(setup, params, key, asked,
                                                      width_of(asked)),
                                  setup.config.judge.holdout, rng, early)


def threshold(setup, params) -> tuple[float | None, dict]:
  """The judge's bar for `gate` and `either`: set on generation 0's held-out lessons for
  judge.precision when there are some (None if no threshold reaches it), else 0.5; with
  what the held-out lessons measured."""
  cfg = setup.config.judge
  heldout = [r for r in files.read_jsonl(setup.workdir.path / LESSONS, _LESSON_FIELDS)
             if r["heldout"]] if cfg.lessons == "own_answers" else []
  if not heldout:
    return 0.5, {}
  p = judge.p_yes(setup.devices, params, [r["about"] for r in heldout],
                  [r["proposed"] for r in heldout])
  right = np.array([r["completion"] == judge.YES for r in heldout])
  bar = judge.calibrate(p, right, cfg.precision) if cfg.precision else 0.5
  passed = p >= (bar if bar is not None else np.inf)
  return bar, dict(
      judge_threshold=bar, judge_heldout_auc=scoring.auc(p, right),
      judge_heldout_precision=float(right[passed].mean()) if passed.any() else None,
      judge_questions=len(heldout))
