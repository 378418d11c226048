"""A seconds-long run for tests and smoke checks: a 2-layer model, a few hundred steps.

  python -m selfimprove_jax.main --config=configs/tiny.py --workdir=/tmp/selfimprove_tiny

Finishes in about 11 s on 2 CPU cores; accuracy is far from perfect by design
(1-digit sums mostly right, longer ones wrong).
"""

from pathlib import Path

import ml_collections

from selfimprove_jax import config_files


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  c = config_files.load(Path(__file__).with_name("default.py"))
  # Small enough to compile and train in seconds, large enough to learn 1-2 digits.
  c.model.num_layers = 2
  c.model.embed_dim = 64
  c.model.num_heads = 4
  c.model.mlp_dim = 128
  c.data.max_difficulty = 3
  c.train.steps = 150
  c.train.log_every = 25
  c.eval.max_difficulty = 4
  c.eval.per_difficulty = 32
  return c
