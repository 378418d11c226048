"""Seconds-long: a 2-layer model, generation 0 plus two self-labelling generations.

  python -m selfimprove_jax.main --config=configs/tiny.py --workdir=/tmp/selfimprove_tiny

For tests and smoke checks; takes under a minute on 2 CPU cores. The model is far
too small to learn reverse addition, so the filter keeps any plausible answer
and the gate always opens, to run every stage; its labels are mostly wrong and
the table says so (low `prec`): that is what measuring them is for.
"""

from pathlib import Path

import ml_collections

from selfimprove_jax import config_files


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  c = config_files.load(Path(__file__).with_name("default.py"))
  c.generations = 2
  # Two members: the ensemble path runs, at little cost.
  c.ensemble_size = 2
  # Small enough to compile and train in seconds.
  c.model.num_layers = 2
  c.model.embed_dim = 32
  c.model.num_heads = 2
  c.model.mlp_dim = 64
  c.task = "reverse_addition"
  c.data.max_difficulty = 2
  c.data.train_size = 2000
  c.train.steps = 60
  c.train.steps_per_generation = 20
  c.train.log_every = 10
  c.optimizer.warmup_steps = 10
  c.sample.prompts_per_generation = 32
  c.sample.samples_per_prompt = 4
  c.eval.max_difficulty = 4
  c.eval.per_difficulty = 16
  c.filter.threshold = 0.1
  c.curriculum.gate = "always"
  c.checkpoint.every_steps = 10
  return c
