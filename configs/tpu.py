"""configs/reverse_addition.py on a Cloud TPU VM with 8 chips (v4-8 or v5e-8).

  python -m selfimprove_jax.main --config=configs/tpu.py --workdir=$HOME/ra_tpu

Every device holds the whole model and an eighth of each batch (see
sharding.py); the global batch below is 512 rows per chip. Runtime has not been
measured yet (no TPU was at hand).
"""

from pathlib import Path

import ml_collections

from selfimprove_jax import config_files


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  c = config_files.load(Path(__file__).with_name("reverse_addition.py"))
  # 8 chips: a global batch of 4096 (a multiple of the device count).
  c.train.batch_size = 4096
  # Four times the batch of the GPU config, so a quarter of its steps.
  c.train.steps = 2_500
  c.train.steps_per_generation = 400
  c.optimizer.learning_rate = 1e-3
  c.optimizer.warmup_steps = 200
  # Longer sampler calls keep every chip busy.
  c.sample.rows_per_call = 32_768
  return c
