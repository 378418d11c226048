"""Lee et al. 2025's headline on a laptop CPU: reverse addition learned on 1-6 digits,
then extended one digit at a time by training on its own labels.

  python -m selfimprove_jax.main --config=configs/addition_cpu.py --workdir=/tmp/addition

One 4-layer NoPE model (as the paper's, smaller). Generation 0 trains on ground truth at
1-6 digits; every later generation samples fresh sums one digit past the frontier, keeps
the answers of plausible length that most of its samples agree on, and trains on them as
half of each batch. Accuracy is measured greedily on 128 sums per length (ground truth,
measurement only).

In progress: these settings are the latest of the tuning runs on seeds 1 and 2 in
docs/addition.md, and they do not yet get far past 7 digits.
"""

from pathlib import Path

import ml_collections

from selfimprove_jax import config_files


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  c = config_files.load(Path(__file__).with_name("default.py"))
  c.task = "reverse_addition"
  # 6 -> 20 digits if every generation succeeds; a 60-minute budget ends it sooner.
  c.generations = 14
  # Drop answers of implausible length (an n-digit sum has n or n+1 digits; a quarter of
  # the wrong labels at a new length are a digit short), then keep an answer most of its
  # samples agree on.
  c.scorer = "length,majority_vote"
  # One model: a vote of seeded models costs one training run per member.
  c.ensemble_size = 1

  # The paper's 6x384 model, scaled to 2 cores; NoPE, as the paper finds it generalizes.
  c.model.num_layers = 4
  c.model.embed_dim = 128
  c.model.num_heads = 4
  c.model.mlp_dim = 512
  c.model.pos_encoding = "none"

  c.data.min_difficulty = 1
  c.data.max_difficulty = 6
  c.data.train_size = 100_000
  # Half of every batch is the newest generation's labels, the rest ground truth and the
  # older labels by length (Lee et al.'s schedule).
  c.data_policy = "newest"
  c.data.mix_fraction = 0.5

  c.train.batch_size = 128
  c.train.steps = 2_500
  c.train.steps_per_generation = 400
  # Several sums per row, and as many tokens a step at every length: a generation costs
  # the same at 16 digits as at 7.
  c.train.pack = True
  c.train.pack_tokens = 128 * 24
  c.train.log_every = 100

  # The paper's warmup-stable-decay at 5e-4.
  c.optimizer.learning_rate = 5e-4
  c.optimizer.schedule = "wsd"
  c.optimizer.warmup_steps = 300
  c.optimizer.weight_decay = 0.01
  # A generation's few hundred steps start at the peak rate and decay over their second half.
  c.generation_optimizer.warmup_steps = 0
  c.generation_optimizer.decay_fraction = 0.5

  c.sample.prompts_per_generation = 2_000
  # Four samples a sum, tempered so that an unsure model disagrees with itself.
  c.sample.samples_per_prompt = 4
  c.sample.temperature = 0.5
  c.sample.rows_per_call = 2_000
  # At least 3 of the 4 samples agree.
  c.filter.threshold = 0.75
  c.filter.keep = "best"

  # One digit further only when the samples agreed: a length the model is unsure of is
  # labelled again by the model that trained on the labels it did agree on. Advancing
  # every generation (Lee et al.'s schedule) labelled 8 digits at 9% accuracy (seed 2).
  c.curriculum.gate = "self_consistency"
  c.curriculum.gate_threshold = 0.9

  c.eval.max_difficulty = 22
  c.eval.per_difficulty = 128

  c.checkpoint.every_steps = 1_000
  return c
