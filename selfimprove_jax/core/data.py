"""From (prompt, completion) strings to padded token arrays.

Training sequences are `BOS prompt completion EOS`, right-padded to a length
bucket; the loss weights cover the completion and its EOS only. Prompts for
sampling are `BOS prompt`; the sampler left-pads them itself.
"""

from collections.abc import Sequence

import jax
import numpy as np
from flax import struct

from selfimprove_jax.core.tokenizer import BOS, CharTokenizer, PAD

LENGTH_BUCKET = 8  # the finest step that sequence lengths round up to (see bucket)


@struct.dataclass(kw_only=True)
class Batch:
  inputs: jax.Array  # [B, T] int32 tokens fed to the model
  targets: jax.Array  # [B, T] int32 next tokens
  weights: jax.Array  # [B, T] float32, 1 on completion targets, else 0


def bucket(n: int, multiple: int = LENGTH_BUCKET) -> int:
  """n rounded up to one of few lengths, so that few shapes get compiled.

  Steps are `multiple`, or a quarter of the power of two below n if coarser
  (..., 56, 64, 80, 96, 112, 128, 160, ...): a length that grows by a token
  per generation, as answers do along the curriculum, recompiles O(log n)
  times and is padded by at most a quarter.
  """
  step = max(multiple, (1 << max(0, n.bit_length() - 1)) // 4)
  return -(-n // step) * step


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
    seq_len = bucket(longest)
  elif longest > seq_len:
    raise ValueError(f"a sequence needs {longest} positions but seq_len is {seq_len}")
  tokens = np.full((len(seqs), seq_len + 1), PAD, np.int32)
  weights = np.zeros((len(seqs), seq_len), np.float32)
  for r, (s, start) in enumerate(zip(seqs, starts)):
    tokens[r, :len(s)] = s
    # Target t is token t+1: the first completion token is the target at start-1.
    weights[r, start - 1:len(s) - 1] = 1.0
  return Batch(inputs=tokens[:, :-1], targets=tokens[:, 1:], weights=weights)


def pack_texts(tok: CharTokenizer, draw, rows: int, width: int) -> Batch:
  """Whole texts packed end to end into `rows` rows of `width` inputs each (language modelling).

  Each text goes in as `BOS text EOS`, so every text is learned in the same
  context it is sampled from; a text that does not fit in what is left of a
  row starts the next row, and the tail of each row is padding. `draw(n)`
  returns the next n texts (e.g. from a seeded mixture). The loss covers every
  character and EOS; predicting the next text's BOS is not part of any text.
  """
  tokens = np.full((rows, width + 1), PAD, np.int32)
  row, col, pending = 0, 0, []
  while row < rows:
    if not pending:
      pending = list(draw(rows))
    seq = tok.encode(pending.pop(), bos=True, eos=True)
    if len(seq) > width + 1:
      raise ValueError(f"a text of {len(seq) - 2} characters does not fit a row of {width}")
    if col + len(seq) > width + 1:
      row, col = row + 1, 0
      if row == rows:
        break
    tokens[row, col:col + len(seq)] = seq
    col += len(seq)
  targets = tokens[:, 1:]
  weights = ((targets != PAD) & (targets != BOS)).astype(np.float32)
  return Batch(inputs=tokens[:, :-1], targets=targets, weights=weights)
