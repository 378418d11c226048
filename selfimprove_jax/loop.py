"""The self-improvement loop.

Generation 0 trains on ground truth. Every later generation g runs

  sample -> score -> filter -> data -> train -> evaluate -> checkpoint

Each stage is a function of the loop's named state (`LoopState`) and of keys
derived from the one root seed: `fold_in(fold_in(root, g), stage)`, then the
step (numpy draws use `default_rng([seed, g, stage, step])`). A run resumed from
any checkpoint therefore draws exactly what an uninterrupted run draws.

In language-model mode (`mode="lm"`, lm.py) the same loop runs on plain
text: generation 0 trains on human text, each later generation samples text
from the previous model and trains on it under the data policy, and the
evaluation measures collapse instead of accuracy.

Ground truth enters in two places only: generation 0's training data, and
measurement (accuracy, and how many kept self-labels are really right), which
is written down and never fed back. The `verifier` scorer is the exception
that proves the rule: it is the "paths that work" mode, and it says so.
"""

import dataclasses
import json
import logging
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np

from selfimprove_jax import curriculum, data, evaluate, files, filtering, judge, labelling, lm
from selfimprove_jax import preemption, progress, report, sampling, sharding
from selfimprove_jax import train as train_lib
from selfimprove_jax.curriculum import Curriculum
from selfimprove_jax.filtering import Mixture, Source
from selfimprove_jax.errors import UserError, first_line
from selfimprove_jax.experiment import Setup, build

SAMPLE, TRAIN, EVALUATE = 1, 2, 3  # stage ids folded into the generation's key

# Labelling statistics copied into metrics.jsonl when a run produces them.
_LABEL_METRICS = ("score_auc", "injected", "judge_auc", "judge_precision", "judge_recall",
                  "judge_lessons", "judge_lesson_precision", "feedback_rated", "kept_by_source")


@dataclasses.dataclass(frozen=True)
class LoopState:
  generation: int  # the last finished generation (-1 before generation 0)
  curriculum: Curriculum | None  # task mode only
  train: train_lib.TrainState  # every leaf [E, ...]: the ensemble's E models
  label_files: tuple[str, ...]  # examples files of generations 1..generation, workdir-relative


def _writer() -> bool:
  """Logs and plots are appended by process 0 alone; per-generation files are
  written whole (atomically, identically) by every process, which all read them."""
  return jax.process_index() == 0


# ----------------------------------------------------------------------------
# Stages (task mode's labelling is in labelling.py, LM mode's in lm.py).


def data_stage(setup: Setup, state: LoopState) -> Mixture | None:
  """The data policy's mixture; with the self-judge, plus the judge's newest lessons."""
  if not state.label_files:  # generation 0: ground truth alone
    mixture = Mixture((setup.ground_truth,), (1.0,))
  else:
    kept = [Source.from_list(f, labelling.read_labels(setup, f)) for f in state.label_files]
    mixture = filtering.training_mixture(setup.config.data_policy, setup.ground_truth, kept,
                                         setup.config.data.mix_fraction)
  if not setup.judging:
    return mixture
  if not state.label_files:  # generation 0: the judge learns from ground truth
    lessons = judge.ground_truth_source(setup.task, setup.ground_truth, setup.config.seed)
  else:  # later: only from its own verdicts on the newest generation's samples
    relative = str(Path(state.label_files[-1]).with_name("judge.jsonl"))
    lessons = Source.from_list(relative, labelling.read_labels(setup, relative))
  return filtering.with_share(mixture, lessons, setup.config.judge.fraction)


def train_stage(setup: Setup, g: int, train_state, mixture: Mixture, *, steps: int, start: int,
                step_fn, on_progress):
  """Steps start..steps-1 of generation g on batches drawn from `mixture`."""
  cfg = setup.config.train
  seq_len = None if setup.text else setup.seq_len(mixture)
  tokens, metrics = 0, None
  guard = train_lib.NonFiniteGuard(cfg.max_nonfinite_steps, jax.device_get(train_state.skipped))
  with progress.bar(range(start, steps), desc=f"gen {g} train", unit="step") as bar:
    for step in bar:
      rng = np.random.default_rng([setup.config.seed, g, TRAIN, step])
      if setup.text:  # LM mode: whole texts packed into rows, no padding to the longest
        batch = data.pack_texts(setup.tok, lambda n: [x.completion for x in mixture.draw(rng, n)],
                                cfg.batch_size, setup.config.lm.row_tokens)
      else:
        examples = mixture.draw(rng, cfg.batch_size)
        batch = data.make_batch(setup.tok, [x.prompt for x in examples],
                                [x.completion for x in examples], seq_len)
      tokens += int(batch.weights.sum())
      if metrics is not None:
        sharding.wait(metrics, setup.mesh)  # see sharding.wait
      previous = metrics
      train_state, metrics = step_fn(train_state, sharding.shard_batch(batch, setup.mesh))
      if previous is not None:  # a step behind: the host never waits on the step just queued
        guard.update(jax.device_get(previous["skipped"]), f"generation {g}, step {step}")
      if (step + 1) % cfg.log_every == 0 or step + 1 == steps:
        m = {k: np.asarray(v).tolist() for k, v in jax.device_get(metrics).items()}
        bar.set_postfix(loss=f"{np.mean(m['loss']):.3f}", refresh=False)
        if _writer():
          files.append_jsonl(setup.workdir / "train_log.jsonl",
                             dict(generation=g, step=step + 1, **m))
      on_progress(step + 1, train_state, tokens)
  if metrics is not None:
    guard.update(jax.device_get(metrics["skipped"]), f"generation {g}, step {steps}")
  return train_state, tokens


def evaluate_stage(setup: Setup, params) -> dict:
  """Greedy accuracy of member 0 on the fixed evaluation set, by difficulty; with the
  self-judge, also how well it tells each answer from a near miss (AUC by difficulty)."""
  sampler = setup.sampler(sampling.Greedy(), setup.max_answer_tokens(setup.eval_problems))
  graded = evaluate.grade(sampler, labelling.member(params, 0), setup.tok, setup.task,
                          setup.eval_problems, jax.random.key(0))
  accuracy = evaluate.accuracy_by_difficulty(graded)
  out = dict(accuracy={str(d): a for d, a in accuracy.items()})
  if setup.judging:
    out["judge_eval_auc"] = judge.evaluate(setup, params, setup.eval_problems)
  return out


# ----------------------------------------------------------------------------
# One generation, and the setup.


def generation_step(setup: Setup, state: LoopState, stop_after=None) -> tuple[LoopState, dict]:
  g = state.generation + 1
  preemption.stop_if_requested(f"before generation {g}")
  key = jax.random.fold_in(setup.root_key, g)
  ckpt, cfg = setup.checkpoints, setup.config
  seconds, stats = {}, {}
  saved = _restore_progress(setup, g, state.train)
  resumed = saved[0] if saved else None  # the last training step saved
  label_files = state.label_files
  # Log lines from an interrupted attempt at this generation are about to be redone.
  if _writer():
    files.trim_jsonl(setup.workdir / "train_log.jsonl", lambda r: r["generation"] < g or (
        resumed is not None and r["step"] <= resumed), fields=dict(generation=int, step=int))

  tic = time.perf_counter()
  if g > 0:
    relative = str(Path("generations") / f"{g:03d}" / "examples.jsonl")
    if resumed is not None:  # the labels were written before training started
      stats = files.read_json(setup.workdir / "generations" / f"{g:03d}" / "labelling.json")
      seconds = stats.pop("seconds")
    else:
      sample_key, rng = jax.random.fold_in(key, SAMPLE), np.random.default_rng([cfg.seed, g, SAMPLE])
      lessons = None  # the self-judge's, if any
      if setup.text:  # LM mode: the model's own text, unscored
        rows, stats = lm.label_stage(setup, labelling.member(state.train.params, 0), g,
                                     sample_key, rng)
        seconds["sample"] = time.perf_counter() - tic
      else:
        rows, lessons, stats, seconds = labelling.label_stage(
            setup, state.train.params, state.curriculum, g, sample_key, rng)
      relative = labelling.write_labels(setup, g, rows, dict(stats, seconds=seconds), lessons)
    label_files = state.label_files + (relative,)
    tic = time.perf_counter()

  mixture = data_stage(setup, dataclasses.replace(state, label_files=label_files))
  seconds["data"] = time.perf_counter() - tic

  tic = time.perf_counter()
  steps = cfg.train.steps if g == 0 else cfg.train.steps_per_generation
  step_fn = setup.train_step(g)
  if resumed is not None:
    _, arrays, meta = saved
    train_state, start, tokens_before = arrays["train"], resumed, meta["tokens_trained"]
    logging.info("generation %d: resuming training after step %d", g, resumed)
  else:
    start, tokens_before = 0, 0
    if g == 0:
      train_state = state.train
    else:
      params = state.train.params
      if cfg.train.init == "restart":  # ReST-EM: every generation starts from gen 0
        params = ckpt.restore_generation(0, like=setup.arrays(state.train))[0]["train"].params
      train_state = setup.fresh_optimizer(params, g)

  def on_progress(step, train_state, tokens):
    # Step ids grow through the whole run, as the multi-host agreement needs.
    preempted = preemption.requested(g * 10_000_000 + step)
    if ckpt.due(step, steps) or preempted:
      ckpt.save_progress(g, step, setup.arrays(train_state),
                         dict(generation=g, step=step, tokens_trained=tokens_before + tokens))
    if preempted:
      raise preemption.Preempted(f"stopped on SIGTERM after step {step} of generation {g}, "
                                 "saved; rerun the same command to resume")
    if stop_after == (g, step):
      raise StopRun(f"stopped after generation {g}, step {step}")

  tokens = tokens_before
  if mixture is not None and mixture.size:
    train_state, new_tokens = train_stage(setup, g, train_state, mixture, steps=steps, start=start,
                                          step_fn=step_fn, on_progress=on_progress)
    tokens += new_tokens
  else:
    logging.warning("generation %d: the %s policy left no data; weights unchanged", g,
                    cfg.data_policy)
  seconds["train"] = time.perf_counter() - tic

  tic = time.perf_counter()
  metrics = dict(generation=g, data_policy=cfg.data_policy, kept=stats.get("kept", 0),
                 kept_fraction=stats.get("kept_fraction"),
                 token_entropy=stats.get("token_entropy"),
                 tokens_sampled=stats.get("tokens_sampled", 0), tokens_trained=tokens,
                 train_examples=mixture.size if mixture else 0)
  new_curriculum = state.curriculum
  if setup.text:
    metrics.update(lm.evaluate_stage(setup, labelling.member(train_state.params, 0), g,
                                     jax.random.fold_in(key, EVALUATE)))
  else:
    evaluation = evaluate_stage(setup, train_state.params)
    passed = None
    if g > 0:
      passed = curriculum.gate_passes(cfg.curriculum.gate, cfg.curriculum.gate_threshold,
                                      stats["self_consistency"], stats["kept_fraction"])
    new_curriculum = state.curriculum.advance(bool(passed))
    metrics.update(
        difficulty=state.curriculum.next_difficulties()[0] if g > 0 else None, scorer=cfg.scorer,
        **evaluation,
        kept_precision=stats.get("kept_precision"), kept_recall=stats.get("kept_recall"),
        sample_accuracy=stats.get("sample_accuracy"),
        self_consistency=stats.get("self_consistency"), gate_passed=passed,
        frontier=new_curriculum.frontier, distinct_answers=stats.get("distinct_answers"),
        **{k: stats[k] for k in _LABEL_METRICS if k in stats})
  seconds["evaluate"] = time.perf_counter() - tic
  metrics["seconds"] = seconds

  tic = time.perf_counter()
  new_state = LoopState(generation=g, curriculum=new_curriculum, train=train_state,
                        label_files=label_files)
  ckpt.save_generation(g, setup.arrays(train_state), dict(
      generation=g, frontier=new_curriculum.frontier if new_curriculum else None,
      label_files=list(label_files), metrics=metrics))
  seconds["checkpoint"] = time.perf_counter() - tic
  return new_state, metrics


def _restore_progress(setup: Setup, g: int, like):
  """(step, arrays, meta) saved inside generation g's training, or None.

  An unreadable progress checkpoint is set aside: the generation then starts
  over, and redraws exactly what it drew before.
  """
  step = setup.checkpoints.latest_progress(g)
  if step is None:
    return None
  try:
    return step, *setup.checkpoints.restore_progress(g, step, like=setup.arrays(like))
  except Exception as e:  # noqa: BLE001  Orbax and TensorStore raise plain Exceptions
    logging.warning("generation %d: progress checkpoint at step %d cannot be read (%s); "
                    "restarting the generation", g, step, first_line(e))
    setup.checkpoints.set_aside("progress", g, step)
    return None


class StopRun(Exception):
  """Raised by `run(stop_after=...)`: tests use it to interrupt a run where they choose."""


def _curriculum(setup: Setup, frontier: int) -> Curriculum | None:
  return None if setup.text else Curriculum(frontier, setup.config.curriculum.window)


def initial_state(setup: Setup) -> LoopState:
  frontier = None if setup.text else setup.config.data.max_difficulty
  return LoopState(generation=-1, curriculum=_curriculum(setup, frontier),
                   train=setup.initial_train, label_files=())


def restore(setup: Setup, generation: int) -> LoopState:
  arrays, meta = setup.checkpoints.restore_generation(generation, like=setup.arrays(setup.initial_train))
  return LoopState(generation=generation, curriculum=_curriculum(setup, meta["frontier"]),
                   train=arrays["train"], label_files=tuple(meta["label_files"]))


def resume(setup: Setup) -> tuple[LoopState, list[dict]]:
  """The state of the newest readable generation checkpoint, and the metrics up to it.

  A checkpoint that cannot be restored (truncated, corrupted) is set aside
  with a warning and the one before it is used: the generations after it are
  then redone, drawing what they drew the first time.
  """
  ckpt = setup.checkpoints
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
  history = [m for m in report.read_metrics(setup.workdir / "metrics.jsonl")
             if m["generation"] <= state.generation]
  if state.generation >= 0 and (not history or history[-1]["generation"] < state.generation):
    history.append(ckpt.generation_meta(state.generation)["metrics"])
  if _writer():
    files.write_jsonl(setup.workdir / "metrics.jsonl", history)
  return state, history


def quiet_library_logs() -> None:
  """Orbax (several lines per checkpoint) and JAX (backend probing) speak up only
  for warnings; the loop's own messages stay."""
  for name in ("absl", "jax"):
    logging.getLogger(name).setLevel(logging.WARNING)


def run(config: ml_collections.ConfigDict, workdir: str, *,
        stop_after: tuple[int, int | None] | None = None) -> list[dict]:
  """Runs (or resumes) every generation; returns the per-generation metrics.

  `stop_after=(g, step)` stops after that training step of generation g, or
  after generation g is saved when step is None (for tests of resuming).
  """
  setup = build(config, workdir)  # holds the workdir until setup.close()
  try:
    if setup.text and _writer():  # the human reference every generation is measured against
      files.atomic_write(setup.workdir / "human.json", json.dumps(setup.text.human, indent=1))
    state, history = resume(setup)
    if state.generation >= config.generations:
      print(f"{setup.workdir}: all {config.generations} generations are done; nothing to do.")
      return history
    if state.generation >= 0:
      print(f"resuming after generation {state.generation} in {setup.workdir}")
    with preemption.watch():
      for _ in range(state.generation + 1, config.generations + 1):
        state, metrics = generation_step(setup, state, stop_after)
        history.append(metrics)
        if _writer():
          files.append_jsonl(setup.workdir / "metrics.jsonl", metrics)
          if setup.text:
            print(report.lm_table(history, setup.text.human), flush=True)
            report.lm_plot(history, setup.text.human, setup.workdir / "report.png")
          else:
            print(report.table(history, trained_max=config.data.max_difficulty), flush=True)
            report.plot(history, setup.workdir / "report.png")
        if stop_after == (state.generation, None):
          raise StopRun(f"stopped after generation {state.generation}")
  finally:
    setup.close()
  return history
