"""From (prompt, completion) strings to padded token arrays.

Training sequences are `BOS prompt completion EOS`, right-padded to a length
bucket; the loss weights cover the completion and its EOS only. Prompts for
sampling are `BOS prompt`; the sampler left-pads them itself.
"""

from collections.abc import Sequence

import numpy as np

from selfimprove_jax.tokenizer import PAD, CharTokenizer
from selfimprove_jax.train import Batch

LENGTH_BUCKET = 8  # sequence lengths round up to this: few shapes to compile, little padding


def prompt_tokens(tok: CharTokenizer, prompts: Sequence[str]) -> list[list[int]]:
  return [tok.encode(p, bos=True) for p in prompts]


def make_batch(tok: CharTokenizer, prompts: Sequence[str], completions: Sequence[str],
               seq_len: int | None = None) -> Batch:
  """A numpy `Batch` of B sequences; `seq_len` (inputs per row) defaults to a bucket."""
  seqs, starts = [], []
  for prompt, completion in zip(prompts, completions, strict=True):
    p = tok.encode(prompt, bos=True)
    seqs.append(p + tok.encode(completion, eos=True))
    starts.append(len(p))
  longest = max(len(s) for s in seqs) - 1  # inputs drop the last token
  if seq_len is None:
    seq_len = -(-longest // LENGTH_BUCKET) * LENGTH_BUCKET
  elif longest > seq_len:
    raise ValueError(f"a sequence needs {longest} positions but seq_len is {seq_len}")
  tokens = np.full((len(seqs), seq_len + 1), PAD, np.int32)
  weights = np.zeros((len(seqs), seq_len), np.float32)
  for r, (s, start) in enumerate(zip(seqs, starts)):
    tokens[r, :len(s)] = s
    # Target t is token t+1: the first completion token is the target at start-1.
    weights[r, start - 1:len(s) - 1] = 1.0
  return Batch(inputs=tokens[:, :-1], targets=tokens[:, 1:], weights=weights)
