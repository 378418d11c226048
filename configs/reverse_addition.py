"""Lee et al. 2025's reverse addition at their scale, for one GPU: 16 digits to 100.

  python -m selfimprove_jax.main --config=configs/reverse_addition.py --workdir=/tmp/ra

Their recipe (JackCai1206/arithmetic-self-improve, experiments/run_addition_new.sh):
a 6-layer, width-384 NoPE transformer learns 1-16 digit sums from ground truth (in
their format, `padded_reverse_addition`: every sum written with one digit more than its
longer operand, and ground-truth operands of independent lengths) in
10,000 steps of 1,024; every round then labels 50,000 sums one digit longer greedily,
keeps every answer (no filter), and trains 1,000 more steps in which the newest labels
are half of every batch and ground truth and the older rounds share the rest by length.

Where this config still differs, and why:
- the learning rate decays to 0, theirs to 1% of the peak; AdamW's epsilon is optax's
  1e-8, theirs 1e-12;
- their ground truth draws both operands' lengths uniformly from 1-16; ours draws the
  longer length uniformly (the loop's difficulty) and the other from 1 to it, so
  short sums are as common as long ones;
- accuracy is measured on 128 sums at every length from 1 to 100 after each
  generation; theirs on 1,024 sums at the 8 lengths around the frontier.

Not yet run on a GPU: docs/addition.md gives the expected runtime and the check
to run first (`bench generation`).
"""

from pathlib import Path

import ml_collections

from selfimprove_jax import config_files


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  c = config_files.load(Path(__file__).with_name("default.py"))
  c.task = "padded_reverse_addition"
  # 16 -> 100 digits at one digit a generation.
  c.generations = 84
  c.scorer = "none"
  c.ensemble_size = 1
  c.data_policy = "newest"
  c.data.mix_fraction = 0.5

  c.model.num_layers = 6
  c.model.embed_dim = 384
  c.model.num_heads = 6
  c.model.mlp_dim = 1536
  c.model.pos_encoding = "none"
  c.model.dtype = "bfloat16"

  c.data.min_difficulty = 1
  c.data.max_difficulty = 16
  # Drawn with replacement: 2M distinct sums stand in for their 10M-sum stream.
  c.data.train_size = 2_000_000

  c.train.batch_size = 1024
  c.train.steps = 10_000
  c.train.steps_per_generation = 1_000
  c.train.pack = True
  c.train.log_every = 100

  # Warmup 10%, stable 70%, decay 20%, as theirs.
  c.optimizer.learning_rate = 5e-4
  c.optimizer.schedule = "wsd"
  c.optimizer.warmup_steps = 1_000
  c.optimizer.decay_fraction = 0.2
  c.optimizer.weight_decay = 0.01
  c.optimizer.b2 = 0.98
  # Each round resumes AdamW's moments, as theirs resumes its optimizer, over a schedule
  # of its own: no warmup, then half stable, half decaying.
  c.train.optimizer_moments = "carried"
  c.generation_optimizer.warmup_steps = 0
  c.generation_optimizer.decay_fraction = 0.5

  # 50,000 greedy labels per round, one per sum.
  c.sample.prompts_per_generation = 50_000
  c.sample.samples_per_prompt = 1
  c.sample.temperature = 0.0
  c.sample.rows_per_call = 8192
  c.filter.threshold = 0.5
  c.filter.keep = "best"

  c.curriculum.gate = "always"

  c.eval.max_difficulty = 100
  c.eval.per_difficulty = 128

  c.checkpoint.every_steps = 1_000
  # The last three generations' checkpoints; the examples files keep every label.
  c.checkpoint.max_to_keep = 3
  return c
