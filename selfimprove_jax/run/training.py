"""Training inside a generation: the steps over a mixture's batches, and what follows each
step (a progress checkpoint when one is due; on SIGTERM, one at this step and a stop).

The loop (loop.py) decides which models train on what, and for how many steps.
"""

import jax
import numpy as np

from selfimprove_jax.base import files, preemption, progress
from selfimprove_jax.core import sharding
from selfimprove_jax.core import train as train_lib
from selfimprove_jax.core.mixture import Mixture
from selfimprove_jax.run.experiment import Setup


def member_batches(next_batch, key: list[int], members: int):
  """One step's batch, drawn by `next_batch(rng)` from the step's `key`; for several
  members, one each stacked [B, E, ...]: member 0's is the one batch a lone model
  draws, member e's is drawn with e appended to the key."""
  if members == 1:
    return next_batch(np.random.default_rng(key))
  batches = [next_batch(np.random.default_rng(key + ([e] if e else []))) for e in range(members)]
  return jax.tree.map(lambda *xs: np.stack(xs, 1), *batches)


def train_stage(setup: Setup, g: int, train_state, mixture: Mixture, *, steps: int, start: int,
                step_fn, after_step, stage: int, what: str = "train"):
  """Steps start..steps-1 of generation g on batches drawn from `mixture`, each step's from
  the key [seed, g, `stage`, step]; logged to `what`_log.jsonl ("judge": the separate judge)."""
  cfg = setup.config.train
  next_batch = setup.mode.batches(setup, mixture)
  tokens, metrics = 0, None
  guard = train_lib.NonFiniteGuard(cfg.max_nonfinite_steps, jax.device_get(train_state.skipped))
  members = setup.config.ensemble_size if setup.own_batches else 1
  log = f"{what}_log.jsonl"
  with progress.bar(range(start, steps), desc=f"gen {g} {what}", unit="step") as bar:
    for step in bar:
      batch = member_batches(next_batch, [setup.config.seed, g, stage, step], members)
      tokens += int(batch.weights.sum())
      if metrics is not None:
        sharding.wait(metrics, setup.devices.mesh)  # see sharding.wait
      previous = metrics
      train_state, metrics = step_fn(train_state, sharding.shard_batch(batch, setup.devices.mesh))
      if previous is not None:  # a step behind: the host never waits on the step just queued
        guard.update(jax.device_get(previous["skipped"]), f"generation {g}, step {step}")
      if (step + 1) % cfg.log_every == 0 or step + 1 == steps:
        m = {k: np.asarray(v).tolist() for k, v in jax.device_get(metrics).items()}
        bar.set_postfix(loss=f"{np.mean(m['loss']):.3f}", refresh=False)
        if sharding.is_writer():
          files.append_jsonl(setup.workdir.path / log, dict(generation=g, step=step + 1, **m))
      after_step(step + 1, train_state, tokens)
  if metrics is not None:
    guard.update(jax.device_get(metrics["skipped"]), f"generation {g}, step {steps}")
  return train_state, tokens


class Progress:
  """After each training step of generation g: a progress checkpoint when one is due,
  and on SIGTERM a checkpoint at this step and a stop."""

  def __init__(self, setup: Setup, g: int, steps: int, tokens_before: int):
    self.setup, self.g, self.steps, self.tokens_before = setup, g, steps, tokens_before

  def after_step(self, step: int, train_state, tokens: int) -> None:
    workdir, g = self.setup.workdir, self.g
    # Step ids grow through the whole run, as the multi-host agreement needs.
    preempted = preemption.requested(g * 10_000_000 + step)
    if workdir.checkpoints.due(step, self.steps) or preempted:
      workdir.checkpoints.save_progress(g, step, workdir.arrays(train_state), dict(
          generation=g, step=step, tokens_trained=self.tokens_before + tokens))
    if preempted:
      raise preemption.Preempted(f"stopped on SIGTERM after step {step} of generation {g}, "
                                 "saved; rerun the same command to resume")
