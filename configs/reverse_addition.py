"""Lee et al. 2025 at their scale, for one GPU: reverse addition from 16 digits upward.

  python -m selfimprove_jax.main --config=configs/reverse_addition.py --workdir=/tmp/ra

A 6-layer, width-384 NoPE transformer learns 1-16 digit sums from ground truth,
then every generation self-labels 50k sums one digit longer, keeps the answers
that pass the length filter and on which an ensemble of three independently
seeded models (two samples each) agrees, and trains on everything kept so far.
Runtime has not been measured yet (no accelerator was at hand); on CPU this
config is far too slow to be useful.
"""

from pathlib import Path

import ml_collections

from selfimprove_jax import config_files


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  c = config_files.load(Path(__file__).with_name("default.py"))
  c.task = "reverse_addition"
  # 16 -> 100 digits at +1 digit per passing generation.
  c.generations = 84
  c.scorer = "length,majority_vote"
  c.data_policy = "accumulate"
  # Independently seeded models vote together: their mistakes differ, a lone
  # model's tend to repeat across its own samples.
  c.ensemble_size = 3

  c.model.num_layers = 6
  c.model.embed_dim = 384
  c.model.num_heads = 6
  c.model.mlp_dim = 1536
  c.model.pos_encoding = "none"
  c.model.dtype = "bfloat16"

  c.data.min_difficulty = 1
  c.data.max_difficulty = 16
  c.data.train_size = 1_000_000

  c.train.batch_size = 1024
  c.train.steps = 10_000
  c.train.steps_per_generation = 1_500
  c.train.log_every = 100

  c.optimizer.learning_rate = 5e-4
  c.optimizer.warmup_steps = 500

  # 50k self-labelled problems per generation, 2 samples from each of 3 models.
  c.sample.prompts_per_generation = 50_000
  c.sample.samples_per_prompt = 2
  c.sample.temperature = 0.7
  c.sample.rows_per_call = 8192

  # Keep an answer when at least 4 of the 6 votes agree on it.
  c.filter.threshold = 4 / 6
  c.filter.keep = "best"

  c.curriculum.gate = "self_consistency"
  c.curriculum.gate_threshold = 0.5

  c.eval.max_difficulty = 100
  c.eval.per_difficulty = 64

  c.checkpoint.every_steps = 1_000
  # Keep the last three generations' checkpoints (~100 MB each); the examples
  # files keep every generation's labels regardless.
  c.checkpoint.max_to_keep = 3
  return c
