"""Supervised training on ground-truth problems, then greedy evaluation by difficulty.

This is generation 0 of self-improvement: the model learns the task from
"human" data at the easy lengths, and the evaluation shows how far past them
it already reaches.
"""

import json
import logging
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from selfimprove_jax import data, evaluate, sampling, sharding
from selfimprove_jax import model as model_lib
from selfimprove_jax import train as train_lib
from selfimprove_jax.tasks import get_task
from selfimprove_jax.tokenizer import CharTokenizer


def build(config: ml_collections.ConfigDict, mesh):
  """Everything a run needs, checked before any compute: fails on a bad config field."""
  task = get_task(config.task)
  tok = CharTokenizer()
  model_cfg = model_lib.ModelConfig(vocab_size=tok.vocab_size, **config.model)
  opt_cfg = train_lib.OptimizerConfig(total_steps=config.train.steps, **config.optimizer)
  if opt_cfg.schedule not in train_lib.SCHEDULES:
    raise ValueError(f"optimizer.schedule must be one of {train_lib.SCHEDULES}, "
                     f"got {opt_cfg.schedule!r}")
  for field in ("steps", "log_every"):
    if config.train[field] <= 0:
      raise ValueError(f"train.{field} must be positive, got {config.train[field]}")
  sharding.check_divisible(config.train.batch_size, mesh, field="train.batch_size")
  lo, hi = config.data.min_difficulty, config.data.max_difficulty
  if not 1 <= lo <= hi <= config.eval.max_difficulty:
    raise ValueError("need 1 <= data.min_difficulty <= data.max_difficulty <= "
                     f"eval.max_difficulty, got {lo}, {hi}, {config.eval.max_difficulty}")
  return task, tok, model_cfg, opt_cfg


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[int, float]:
  """Trains on ground truth, evaluates, writes `train_log.jsonl` and `eval.json` to workdir."""
  mesh = sharding.make_mesh()
  task, tok, model_cfg, opt_cfg = build(config, mesh)
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)

  graphdef, params = model_lib.create(model_cfg, seed=config.seed)
  tx = train_lib.make_optimizer(opt_cfg)
  state = sharding.replicate(train_lib.init_state(params, tx), mesh)
  train_step, _ = train_lib.make_steps(graphdef, tx, mesh)
  logging.info("model: %s, %.2fM parameters", model_cfg, model_lib.num_params(params) / 1e6)

  difficulties = np.arange(config.data.min_difficulty, config.data.max_difficulty + 1)
  seq_len = None  # fixed after the first batch so every step has one shape
  t0 = time.perf_counter()
  with open(workdir / "train_log.jsonl", "w") as log, \
       tqdm(range(config.train.steps), desc="train", unit="step") as bar:
    for step in bar:
      rng = np.random.default_rng([config.seed, step])  # a resumed run draws the same batches
      problems = task.batch(rng, rng.choice(difficulties, config.train.batch_size))
      batch = data.make_batch(tok, [p.prompt for p in problems], [p.answer for p in problems],
                              seq_len)
      seq_len = batch.inputs.shape[1]
      if step:
        sharding.wait(metrics, mesh)  # the previous step: see its docstring
      state, metrics = train_step(state, sharding.shard_batch(batch, mesh))
      if (step + 1) % config.train.log_every == 0 or step + 1 == config.train.steps:
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        bar.set_postfix(loss=f"{metrics['loss']:.3f}")
        log.write(json.dumps(dict(step=step + 1, seconds=time.perf_counter() - t0, **metrics)) + "\n")
        log.flush()

  sampler = sampling.Sampler.for_model(graphdef, model_cfg, mesh,
                                       max_new_tokens=config.eval.max_difficulty + 2)
  problems = evaluate.eval_problems(task, range(1, config.eval.max_difficulty + 1),
                                    config.eval.per_difficulty, config.seed)
  graded = evaluate.grade(sampler, state.params, tok, task, problems,
                          jax.random.fold_in(jax.random.key(config.seed), 1))
  accuracy = evaluate.accuracy_by_difficulty(graded)
  (workdir / "eval.json").write_text(json.dumps({str(d): a for d, a in accuracy.items()}, indent=1))

  trained = set(difficulties.tolist())
  print(f"\n{'difficulty':>10}  {'accuracy':>8}")
  for d, a in accuracy.items():
    print(f"{d:>10}  {a:>8.3f}{'  (trained)' if d in trained else ''}")
  print("\nsamples (greedy):")
  for g in graded[::max(1, len(graded) // 8)][:8]:
    print(f"  {g.problem.prompt}{g.completion:<12} {'ok' if g.correct else 'want ' + g.problem.answer}")
  return accuracy
