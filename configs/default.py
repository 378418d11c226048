"""The CPU demo: learn reverse addition on 1-5 digits, then test on up to 8 digits.

  python -m selfimprove_jax.main --workdir=/tmp/selfimprove_default

Takes about 7 minutes on 2 CPU cores (2,000 steps at ~0.2 s) and prints accuracy per
digit count: about 1.0 at 1-3 digits, 0.9 at 4, 0.6 at 5, ~0 at 6-8 (see README).
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  c = ml_collections.ConfigDict()
  # One root seed: model init, data draws and sampling keys all fold from it.
  c.seed = 0
  # Which procedural task (see selfimprove_jax/tasks.py).
  c.task = "reverse_addition"

  c.model = ml_collections.ConfigDict()
  # Four layers is the smallest depth that learned reverse addition in our CPU probes.
  c.model.num_layers = 4
  c.model.embed_dim = 128
  c.model.num_heads = 4
  # SwiGLU hidden width (4x embed_dim).
  c.model.mlp_dim = 512
  # No positional encoding: the causal mask alone lets the model count (NoPE),
  # which generalizes to longer operands better than RoPE (Lee et al. 2025).
  c.model.pos_encoding = "none"
  # float32 on CPU; bfloat16 on accelerators.
  c.model.dtype = "float32"

  c.data = ml_collections.ConfigDict()
  # Ground-truth training data covers these difficulties (digits per operand).
  c.data.min_difficulty = 1
  c.data.max_difficulty = 5

  c.train = ml_collections.ConfigDict()
  # Global batch, split across devices; must be a multiple of the device count.
  c.train.batch_size = 64
  c.train.steps = 2000
  c.train.log_every = 50

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.learning_rate = 1e-3
  # "cosine" (warmup then cosine to 10%), "wsd" (warmup-stable-decay) or "constant".
  c.optimizer.schedule = "cosine"
  c.optimizer.warmup_steps = 100
  # Decoupled AdamW decay, applied to weight matrices only.
  c.optimizer.weight_decay = 0.1
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.98
  # Clip the global gradient norm; 0 turns clipping off.
  c.optimizer.grad_clip = 1.0

  c.eval = ml_collections.ConfigDict()
  # Accuracy is measured at every difficulty from 1 to this.
  c.eval.max_difficulty = 8
  c.eval.per_difficulty = 128
  return c
