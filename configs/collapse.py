"""Model collapse: a model trained on its own text, under one data policy per run.

  python -m selfimprove_jax.main --config=configs/collapse.py:replace --workdir=/tmp/collapse_replace
  python -m selfimprove_jax.main --config=configs/collapse.py:accumulate --workdir=/tmp/collapse_accumulate
  python -m selfimprove_jax.main --config=configs/collapse.py:mix --workdir=/tmp/collapse_mix
  python -m selfimprove_jax.compare --out=/tmp/collapse.png /tmp/collapse_replace \
      /tmp/collapse_accumulate /tmp/collapse_mix

The human text is a procedural language whose true distribution is known
(language.py), so the tails and the KL divergence from the truth are measured
exactly. Generation 0 learns it from 20,000 sentences; each later generation
samples 1,000 sentences from the previous model and trains on them under the
arm's data policy. Each arm takes about three minutes on 2 CPU cores;
docs/collapse.md has what they printed.
"""

import ml_collections

ARMS = ("replace", "accumulate", "mix")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  policy = arg or "replace"
  if policy not in ARMS:
    raise ValueError(f"configs/collapse.py takes one of {list(ARMS)} after ':', got {policy!r}")
  c = ml_collections.ConfigDict()
  c.seed = 0
  # Language-model mode: plain text in, the model's own text back (lm.py).
  c.mode = "lm"
  # Generations trained on the model's own text, after generation 0 on human text.
  c.generations = 5
  c.time_budget_minutes = 0.0  # no limit: the arms run every generation
  # "replace": only the newest synthetic text (Shumailov et al. 2024: collapse);
  # "accumulate": human text plus all synthetic text so far (Gerstgrasser et al. 2024);
  # "mix": the newest synthetic text plus data.mix_fraction of human text in every batch.
  c.data_policy = policy
  # One model: collapse is about a model and its own samples.
  c.ensemble_size = 1

  c.model = ml_collections.ConfigDict()
  # Small enough for three arms in ten CPU minutes, big enough to spell 400 words.
  c.model.num_layers = 2
  c.model.embed_dim = 64
  c.model.num_heads = 4
  c.model.mlp_dim = 256
  # Positions matter inside words; RoPE gives them.
  c.model.pos_encoding = "rope"
  c.model.dtype = "float32"
  # "cudnn" on NVIDIA GPUs with a bfloat16 dtype (see configs/default.py).
  c.model.attention = "xla"

  c.lm = ml_collections.ConfigDict()
  # "procedural" (exact truth), "file:PATH" (your own text, one text per line), or a
  # TFDS text dataset by name, e.g. "tiny_shakespeare" or "lm1b" (needs a download).
  c.lm.source = "procedural"
  # For TFDS datasets: the text feature and the splits used for training and held out.
  c.lm.text_feature = "text"
  c.lm.train_split = "train"
  c.lm.eval_split = "test"
  # Real text is cut into pieces of at most this many characters; it also caps samples.
  c.lm.max_chars = 96
  # Training packs whole texts end to end into rows of this many tokens.
  c.lm.row_tokens = 128
  # 0: sample from scratch; N: continue the first N characters of human texts.
  c.lm.prompt_chars = 0
  # Synthetic texts sampled from the model each generation. Few, so that rare
  # words are missed by chance: the finite-sample error that drives collapse.
  c.lm.samples_per_generation = 1_000

  c.language = ml_collections.ConfigDict()
  # The procedural language (lm.source="procedural"): V words in C classes, each
  # class Zipfian with this exponent; sentences of about mean_words words.
  c.language.vocab_size = 300
  c.language.num_classes = 8
  c.language.zipf = 1.1
  c.language.mean_words = 5.0
  c.language.max_words = 10

  c.data = ml_collections.ConfigDict()
  # Human texts in the training split.
  c.data.train_size = 20_000
  # data_policy="mix": the share of every batch that is human text.
  c.data.mix_fraction = 0.1
  # Where the TFDS datasets are built; "" means <workdir>/tfds.
  c.data.dir = ""

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 32
  # Generation 0 learns the language; each later generation fits its own samples.
  c.train.steps = 320
  c.train.steps_per_generation = 40
  # "continue" from the last generation's weights, or "restart" from generation 0's.
  c.train.init = "continue"
  # "fresh" AdamW moments each generation, or "carried" from the last.
  c.train.optimizer_moments = "fresh"
  c.train.log_every = 20
  # Stop after this many non-finite (skipped) steps in a row.
  c.train.max_nonfinite_steps = 20

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.learning_rate = 3e-3
  c.optimizer.schedule = "cosine"
  c.optimizer.warmup_steps = 50
  c.optimizer.weight_decay = 0.1
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.98
  c.optimizer.grad_clip = 1.0

  c.sample = ml_collections.ConfigDict()
  # Ancestral sampling at temperature 1: the model's own distribution, untruncated.
  c.sample.temperature = 1.0
  c.sample.top_k = 0
  c.sample.top_p = 1.0
  c.sample.rows_per_call = 2_048

  c.eval = ml_collections.ConfigDict()
  # Held-out human texts for heldout_nll and the KL estimate.
  c.eval.heldout_size = 1_000
  # Samples drawn from each generation's model to measure its text.
  c.eval.samples = 500
  # The tail: the rarest words that together make up this share of true word tokens.
  c.eval.tail_mass = 0.1

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every_steps = 500
  # Keep every generation (0): with real text, generation 0's model is the reference.
  c.checkpoint.max_to_keep = 0
  return c
