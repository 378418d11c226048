"""The default demo with one model that grades its own answers by the round trip.

  python -m selfimprove_jax.main --config=configs/one_model.py --workdir=/tmp/one_model

One model instead of three, and no vote: each sampled answer to "abcdef>" is scored
by the model's own probability of giving "abcdef" back when asked the answer's
inverse question ("fedcba>"; grading/round_trip.py). The frontier moves on only once
the round trip kept labels for 30% of the prompts, so that a generation whose model is
still weak at its new length labels that length again rather than the next one.
About 2 minutes on 2 CPU cores; docs/grading.md has what it printed on six seeds.
"""

from pathlib import Path

import ml_collections

from selfimprove_jax import config_files


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  c = config_files.load(Path(__file__).with_name("default.py"))
  c.ensemble_size = 1
  c.scorer = "length,round_trip"
  c.curriculum.gate = "kept_fraction"
  c.curriculum.gate_threshold = 0.3
  return c
