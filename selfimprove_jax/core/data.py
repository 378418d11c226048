"""From (prompt, completion) strings to padded token arrays.

Training sequences are `BOS prompt completion EOS`, right-padded to a length
bucket; the loss weights cover the completion and its EOS only. Prompts for
sampling are `BOS prompt`; the sampler left-pads them itself.
"""

from collections.abc import Sequence
from typing import NamedTuple

import jax
import numpy as np
from flax import struct

from selfimprove_jax.core.tokenizer import CharTokenizer, PAD

LENGTH_BUCKET = 8  # the finest step that sequence lengths round up to (see bucket)


@struct.dataclass(kw_only=True)
class Batch:
  inputs: jax.Array  # [B, T] int32 tokens fed to the model
  targets: jax.Array  # [B, T] int32 next tokens
  weights: jax.Array  # [B, T] float32, 1 on completion targets, else 0
  # [B, T] int32, packed rows only: which sequence of its row each input belongs to
  # (1, 2, ...; 0 is padding). A token then sees only its own sequence (model.py).
  segments: jax.Array | None = None


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


def pack(tok: CharTokenizer, draw, rows: int, width: int, *, segments: bool = True,
         first_fit: bool = True) -> Batch:
  """Whole `BOS prompt completion EOS` sequences packed end to end into `rows` rows of
  `width` inputs each, so that a step computes on sequences rather than on padding.

  `draw(n)` returns the next n examples (`.prompt`, `.completion`; e.g. from a seeded
  mixture). Each goes into the first row with room for it (`first_fit`; otherwise
  into the current row, or the next one when it does not fit), and packing stops at
  the first example no row has room for. The loss covers each completion and its EOS,
  as in `make_batch`; predicting the next sequence's BOS is part of no example. With
  `segments`, each input is tagged with its sequence, and the model keeps the
  sequences apart: attention and positions restart at every sequence, so a packed
  row computes exactly what its sequences would alone.
  """
  tokens = np.full((rows, width + 1), PAD, np.int32)
  weights = np.zeros((rows, width + 1), np.float32)  # by target token: shifted below
  tags = np.zeros((rows, width + 1), np.int32)
  used = np.zeros(rows, np.int64)  # tokens in each row so far
  count = np.zeros(rows, np.int32)  # sequences in each row so far
  current, pending = 0, []
  while True:
    if not pending:
      pending = list(draw(rows))
    example = pending.pop()
    prompt = tok.encode(example.prompt, bos=True)
    seq = prompt + tok.encode(example.completion, eos=True)
    if len(seq) > width + 1:
      raise ValueError(f"a sequence of {len(seq)} tokens does not fit a row of {width}")
    if first_fit:
      room = np.nonzero(used + len(seq) <= width + 1)[0]
      if not len(room):
        break
      r = int(room[0])
    else:  # the current row, or the next one
      r = current if used[current] + len(seq) <= width + 1 else current + 1
      if r == rows:
        break
    current, col = r, used[r]
    count[r] += 1
    tokens[r, col:col + len(seq)] = seq
    weights[r, col + len(prompt):col + len(seq)] = 1.0
    tags[r, col:col + len(seq)] = count[r]
    used[r] += len(seq)
  return Batch(inputs=tokens[:, :-1], targets=tokens[:, 1:], weights=weights[:, 1:],
               segments=tags[:, :-1] if segments else None)


def pack_texts(tok: CharTokenizer, draw, rows: int, width: int) -> Batch:
  """Whole texts packed end to end into rows (language modelling): `pack` with texts as
  completions of an empty prompt, and no segments, so a text sees the texts before it
  in its row; each row filled in turn (the layout the collapse study was measured
  with). `draw(n)` returns the next n texts."""
  return pack(tok, lambda n: [_Text("", t) for t in draw(n)], rows, width, segments=False,
              first_fit=False)


class _Text(NamedTuple):
  prompt: str
  completion: str
