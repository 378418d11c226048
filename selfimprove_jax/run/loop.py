"""The self-improvement loop.

Generation 0 trains on ground truth. Every later generation g runs

  sample -> score -> filter -> data -> train -> evaluate -> checkpoint

Each stage is a function of the loop's named state (`LoopState`) and of keys
derived from the one root seed: `fold_in(fold_in(root, g), stage)`, then the
step (numpy draws use `default_rng([seed, g, stage, step])`). A run resumed from
any checkpoint therefore draws exactly what an uninterrupted run draws.

The same loop runs in both modes. Everything that differs is behind
`setup.mode` (modes.py): in task mode (labelling.TaskMode) a generation samples
answers to problems past the frontier, scores and filters them, and is measured
by its accuracy; in text mode (`mode="lm"`, lm.TextMode) it samples plain text
from the previous model, keeps every text that ended, and is measured for
collapse.

Ground truth enters in two places only: generation 0's training data, and
measurement (accuracy, and how many kept self-labels are really right), which
is written down and never fed back. The `verifier` scorer is the exception
that proves the rule: it is the "paths that work" mode, and it says so.
"""

import contextlib
import dataclasses
import logging
import time

import jax
import ml_collections
import numpy as np

from selfimprove_jax.base import files, preemption
from selfimprove_jax.base.errors import UserError, first_line
from selfimprove_jax.core import sharding
from selfimprove_jax.core import mixture as mixture_lib
from selfimprove_jax.core import train as train_lib
from selfimprove_jax.core.mixture import Mixture, Source
from selfimprove_jax.grading.curriculum import Curriculum
from selfimprove_jax.run.experiment import (Setup, build, judge_optimizer, judge_steps,
                                            train_steps)
from selfimprove_jax.run.training import Progress, train_stage
from selfimprove_jax.run.workdir import examples_file

SAMPLE, TRAIN, EVALUATE, JUDGE = 1, 2, 3, 4  # stage ids folded into the generation's key


@dataclasses.dataclass(frozen=True)
class LoopState:
  generation: int  # the last finished generation (-1 before generation 0)
  curriculum: Curriculum | None  # task mode only
  train: train_lib.TrainState  # every leaf [E, ...]: the ensemble's E models
  label_files: tuple[str, ...]  # examples files of generations 1..generation, workdir-relative
  # judge.weights="separate": the self-judge's own E models, after generation 0
  judge: train_lib.TrainState | None = None


# ----------------------------------------------------------------------------
# Data (each mode's labelling and evaluation are behind setup.mode; the training steps
# are in training.py).


def data_stage(setup: Setup, state: LoopState) -> Mixture | None:
  """The data policy's mixture; with a shared self-judge, plus the judge's lessons."""
  ground_truth = setup.mode.ground_truth
  if not state.label_files:  # generation 0: ground truth alone
    mixture = Mixture((ground_truth,), (1.0,))
  else:
    kept = [Source.from_list(f, setup.workdir.read_labels(f)) for f in state.label_files]
    mixture = mixture_lib.training_mixture(setup.config.data_policy, ground_truth, kept,
                                           setup.config.data.mix_fraction)
  lessons = None if setup.separate_judge else setup.mode.lessons(setup, state.label_files)
  if lessons is None:
    return mixture
  return mixture_lib.with_share(mixture, lessons, setup.config.judge.fraction)


# ----------------------------------------------------------------------------
# One generation.


class Stopwatch:
  """Seconds per stage: `with clock("train"): ...` adds that block's wall time."""

  def __init__(self):
    self.seconds: dict[str, float] = {}

  @contextlib.contextmanager
  def __call__(self, stage: str):
    tic = time.perf_counter()
    try:
      yield
    finally:
      self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - tic


@dataclasses.dataclass(frozen=True)
class Resumed:
  """Where an interrupted attempt at a generation left its training."""
  step: int  # the last training step saved
  train: train_lib.TrainState
  tokens_trained: int  # before that step, this generation


def generation_step(setup: Setup, state: LoopState) -> tuple[LoopState, dict]:
  """Generation g = state.generation + 1: label (g > 0), train, evaluate, checkpoint."""
  g = state.generation + 1
  preemption.stop_if_requested(f"before generation {g}")
  key, clock = jax.random.fold_in(setup.root_key, g), Stopwatch()
  resumed = _resume_point(setup, g)
  stats, label_files = {}, state.label_files
  refit = None  # judge.later="settled": the judge its labelling trained
  if g > 0:
    stats, refit = _labels(setup, state, g, key, resumed, clock)
    label_files += (str(examples_file(g)),)
  with clock("data"):
    mixture = data_stage(setup, dataclasses.replace(state, label_files=label_files))
  train_state, tokens, judge_stats = _train(setup, state, g, mixture, resumed, key, clock)
  judge_state = refit if refit is not None else _train_judge(setup, state, g, train_state, key,
                                                             clock, judge_stats)
  stats = stats | judge_stats
  judging = {} if judge_state is None else dict(judge_params=judge_state.params)
  with clock("evaluate"):
    evaluation, curriculum = setup.mode.evaluate(setup, train_state.params, state.curriculum,
                                                 stats, g, jax.random.fold_in(key, EVALUATE),
                                                 **judging)
  metrics = dict(generation=g, data_policy=setup.config.data_policy, kept=stats.get("kept", 0),
                 kept_fraction=stats.get("kept_fraction"),
                 token_entropy=stats.get("token_entropy"),
                 tokens_sampled=stats.get("tokens_sampled", 0), tokens_trained=tokens,
                 train_examples=mixture.size if mixture else 0, **evaluation,
                 seconds=clock.seconds)
  new_state = LoopState(generation=g, curriculum=curriculum, train=train_state,
                        label_files=label_files, judge=judge_state)
  with clock("checkpoint"):  # recorded in metrics.jsonl; the checkpoint's copy predates it
    arrays = setup.workdir.arrays(train_state, judge_state)
    setup.workdir.checkpoints.save_generation(g, arrays, dict(
        generation=g, frontier=curriculum.frontier if curriculum else None,
        label_files=list(label_files), metrics=metrics))
  return new_state, metrics


def _labels(setup: Setup, state: LoopState, g: int, key, resumed, clock: Stopwatch):
  """(generation g's labelling stats, the judge it trained or None): its labels made and
  written now, or, when its training is being resumed, the stats written before it
  started (a judge trained then is trained again from its lessons, by _train_judge)."""
  if resumed is not None:
    stats, seconds = setup.workdir.label_stats(g)
    clock.seconds.update(seconds)
    return stats, None
  rng = np.random.default_rng([setup.config.seed, g, SAMPLE])
  judging, refit = {}, {}
  if state.judge is not None:
    judging = dict(judge_params=state.judge.params)
  if state.judge is not None and setup.config.judge.later == "settled":
    def refit_judge(lessons: list[dict]):  # as read back from the judge.jsonl they go to
      refit["judge"] = _fit_judge(setup, g, state.judge.params, setup.mode.replayed_with(
          setup, mixture_lib.kept_examples(lessons)), clock)
      return refit["judge"].params
    judging["refit_judge"] = refit_judge
  labels = setup.mode.label(setup, state.train.params, state.curriculum, g,
                            jax.random.fold_in(key, SAMPLE), rng, **judging)
  clock.seconds.update(labels.seconds)
  setup.workdir.write_labels(g, labels)
  return labels.stats, refit.get("judge")


def _train(setup: Setup, state: LoopState, g: int, mixture, resumed: "Resumed | None", key,
           clock: Stopwatch):
  """(train state, tokens trained, the judge's lesson stats) after generation g's
  training, resumed or from its start. Where the mode's judge learns from the models'
  own answers (generation 0), those are made part way, and join the later steps."""
  cfg = setup.config
  steps = train_steps(cfg, g)
  if resumed is not None:
    logging.info("generation %d: resuming training after step %d", g, resumed.step)
    train_state, start, before = resumed.train, resumed.step, resumed.tokens_trained
  elif g == 0:
    train_state, start, before = state.train, 0, 0
  else:
    start_from = state.train
    if cfg.train.init == "restart":  # ReST-EM: every generation starts from gen 0
      start_from = setup.workdir.restore_generation(0)[0]
    train_state, start, before = setup.devices.train_state(start_from.params,
                                                           setup.optimizer(g)), 0, 0
    if cfg.train.optimizer_moments == "carried":
      train_state = train_lib.carry_moments(train_state, start_from)
  if mixture is None or not mixture.size:
    logging.warning("generation %d: the %s policy left no data; weights unchanged", g,
                    cfg.data_policy)
    return train_state, before, {}
  join = None if setup.separate_judge else setup.mode.lessons_join_at(setup, g)
  phases = [(steps, mixture)] if join is None else [(join, mixture), (steps, None)]
  # The models' answers part way through, for the judge's lessons: a phase ends at each step.
  early = setup.mode.early_answer_steps(setup, g)
  phases = [(step, mixture) for step in early] + phases
  tokens, stats = before, {}
  after_step, step_fn = Progress(setup, g, steps, before).after_step, setup.train_step(g)
  for end, phase_mixture in phases:
    if phase_mixture is None:  # the judge's lessons from the models' answers so far
      with clock("judge"):
        lessons, stats = setup.mode.own_answers(setup, train_state.params,
                                                jax.random.fold_in(key, JUDGE))
      phase_mixture = mixture_lib.with_share(mixture, lessons, cfg.judge.fraction)
    if start < end:
      with clock("train"):
        train_state, more = train_stage(
            setup, g, train_state, phase_mixture, steps=end, start=start,
            step_fn=step_fn, stage=TRAIN, after_step=lambda step, s, t, more=tokens - before:
            after_step(step, s, more + t))
      tokens, start = tokens + more, end
    if end in early and start == end:  # (a run resumed past `end` wrote them on its way)
      with clock("judge"):
        setup.mode.early_answers(setup, train_state.params, jax.random.fold_in(key, JUDGE), end)
  return train_state, tokens, stats


def _train_judge(setup: Setup, state: LoopState, g: int, train_state, key, clock: Stopwatch,
                 stats: dict):
  """The separate judge after generation g (None without one): in generation 0 a copy of
  the trained models, taught their own answers; later trained on the generation's
  lessons from the judge it was, or left as it was (judge.later="frozen"); with
  "settled", trained so by the labelling stage already, unless that ran in an earlier
  attempt at the generation. It trains from its start whenever a generation is redone,
  and is saved with the generation."""
  if not setup.separate_judge:
    return None
  cfg = setup.config
  if g == 0:
    params, lessons = train_state.params, setup.mode.lessons(setup, ())  # near misses
    if cfg.judge.lessons == "own_answers":
      with clock("judge"):
        lessons, lesson_stats = setup.mode.own_answers(setup, train_state.params,
                                                       jax.random.fold_in(key, JUDGE))
      stats.update(lesson_stats)  # reported with the generation's metrics
  elif cfg.judge.later == "frozen":
    return state.judge
  else:
    lessons, params = setup.mode.lessons(setup, state.label_files + (str(examples_file(g)),)), (
        state.judge.params)
  return _fit_judge(setup, g, params, lessons, clock)


def _fit_judge(setup: Setup, g: int, params, lessons, clock: Stopwatch):
  """The separate judge trained its steps of generation g (experiment.judge_steps) from
  `params` on `lessons` (a Source)."""
  if sharding.is_writer():
    files.trim_jsonl(setup.workdir.path / "judge_log.jsonl", lambda r: r["generation"] < g,
                     fields=dict(generation=int))
  judge_state = setup.devices.train_state(params, judge_optimizer(setup.config, g))
  if not lessons.size:
    logging.warning("generation %d: no lessons for the judge; its weights stay as they were", g)
    return judge_state
  with clock("judge"):
    judge_state, _ = train_stage(setup, g, judge_state, Mixture((lessons,), (1.0,)),
                                 steps=judge_steps(setup.config, g), start=0,
                                 step_fn=setup.judge_step(g), after_step=lambda *_: None,
                                 stage=JUDGE, what="judge")
  return judge_state


def _resume_point(setup: Setup, g: int) -> Resumed | None:
  """Where generation g's training was saved by an interrupted attempt, or None; the
  training log loses the lines that attempt wrote after that point."""
  saved = _restore_progress(setup, g)
  resumed = Resumed(saved[0], saved[1], saved[2]["tokens_trained"]) if saved else None
  if sharding.is_writer():
    files.trim_jsonl(setup.workdir.path / "train_log.jsonl", lambda r: r["generation"] < g or (
        resumed is not None and r["step"] <= resumed.step), fields=dict(generation=int, step=int))
  return resumed


def _restore_progress(setup: Setup, g: int):
  """(step, train state, meta) saved inside generation g's training, or None.

  An unreadable progress checkpoint is set aside: the generation then starts
  over, and redraws exactly what it drew before.
  """
  step = setup.workdir.checkpoints.latest_progress(g)
  if step is None:
    return None
  try:
    return step, *setup.workdir.restore_progress(g, step)
  except Exception as e:  # noqa: BLE001  Orbax and TensorStore raise plain Exceptions
    logging.warning("generation %d: progress checkpoint at step %d cannot be read (%s); "
                    "restarting the generation", g, step, first_line(e))
    setup.workdir.checkpoints.set_aside("progress", g, step)
    return None


def initial_state(setup: Setup) -> LoopState:
  return LoopState(generation=-1, curriculum=setup.mode.curriculum(setup, None),
                   train=setup.initial_train, label_files=())


def restore(setup: Setup, generation: int) -> LoopState:
  train_state, judge_state, meta = setup.workdir.restore_generation_and_judge(generation)
  return LoopState(generation=generation, curriculum=setup.mode.curriculum(setup, meta["frontier"]),
                   train=train_state, label_files=tuple(meta["label_files"]), judge=judge_state)


def resume(setup: Setup) -> tuple[LoopState, list[dict]]:
  """The state of the newest readable generation checkpoint, and the metrics up to it.

  A checkpoint that cannot be restored (truncated, corrupted) is set aside
  with a warning and the one before it is used: the generations after it are
  then redone, drawing what they drew the first time.
  """
  ckpt = setup.workdir.checkpoints
  state, unreadable = initial_state(setup), []
  for g in reversed(ckpt.generations()):
    try:
      state = restore(setup, g)
      break
    except Exception as e:  # noqa: BLE001  Orbax and TensorStore raise plain Exceptions
      logging.warning("the checkpoint of generation %d cannot be read (%s)", g, first_line(e))
      unreadable.append((g, e))
  else:
    if unreadable:  # every one failing is more likely a bug or a version change than a disk
      g, e = unreadable[-1]
      raise UserError(f"no checkpoint in {ckpt.directory} can be read (generation {g}: "
                      f"{first_line(e)}); move it away or use a new --workdir")
  for g, _ in unreadable:
    ckpt.set_aside("generations", g, g)
  if unreadable:
    logging.warning("falling back to generation %d; the generations after it are redone",
                    state.generation)
  ckpt.drop_stale_progress(keep=state.generation + 1)

  # Lines after the checkpoint (if any) belong to nothing saved; a missing
  # line (a crash between checkpoint and log) comes back from the checkpoint.
  history = [m for m in files.read_metrics(setup.workdir.path / "metrics.jsonl")
             if m["generation"] <= state.generation]
  if state.generation >= 0 and (not history or history[-1]["generation"] < state.generation):
    history.append(ckpt.generation_meta(state.generation)["metrics"])
  if sharding.is_writer():
    files.write_jsonl(setup.workdir.path / "metrics.jsonl", history)
  return state, history


def quiet_library_logs() -> None:
  """Orbax (several lines per checkpoint) and JAX (backend probing) speak up only
  for warnings; the loop's own messages stay."""
  for name in ("absl", "jax"):
    logging.getLogger(name).setLevel(logging.WARNING)


def seconds_of(metrics: dict) -> float:
  """A finished generation's time: the sum of its stages' seconds."""
  return sum(metrics["seconds"].values())


def out_of_time(budget_minutes: float, history: list[dict]) -> bool:
  """Whether the next generation, taking as long as the last one did, would end past
  `budget_minutes` of the generations' own time (0: never)."""
  if not budget_minutes or not history:
    return False
  return 60 * minutes_spent(history) + seconds_of(history[-1]) > 60 * budget_minutes


def minutes_spent(history: list[dict]) -> float:
  return sum(map(seconds_of, history)) / 60


def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  """Runs (or resumes) every generation; returns the per-generation metrics."""
  setup = build(config, workdir)  # holds the workdir until setup.close()
  try:
    setup.mode.start(setup)
    state, history = resume(setup)
    if state.generation >= config.generations:
      print(f"{setup.workdir.path}: all {config.generations} generations are done; nothing to do.")
      return history
    if state.generation >= 0:
      print(f"resuming after generation {state.generation} in {setup.workdir.path}")
    with preemption.watch():
      for g in range(state.generation + 1, config.generations + 1):
        if out_of_time(config.time_budget_minutes, history):
          print(f"stopping before generation {g}: {minutes_spent(history):.1f} of the "
                f"{config.time_budget_minutes:g} minutes of time_budget_minutes are spent, and "
                "another generation at the last one's pace would end past them")
          break
        state, metrics = generation_step(setup, state)
        history.append(metrics)
        if sharding.is_writer():
          files.append_jsonl(setup.workdir.path / "metrics.jsonl", metrics)
          setup.mode.report(setup, history)
  finally:
    setup.close()
  return history
