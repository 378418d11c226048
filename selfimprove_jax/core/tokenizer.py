"""A character-level tokenizer: one token per character, plus PAD, BOS and EOS.

Every task in this project writes its problems and answers as short strings of
digits, letters and a few separators, so characters are the natural unit: an
answer is right exactly when its characters are, and length generalization is
about counting characters.
"""

from collections.abc import Sequence

import numpy as np

PAD, BOS, EOS = 0, 1, 2
_SPECIALS = ("<pad>", "<bos>", "<eos>")

# Digits first so that token id - 3 is the digit's value (handy when reading dumps).
DEFAULT_ALPHABET = "0123456789+-*=>|:?. abcdefghijklmnopqrstuvwxyz"
# Language-model mode: printable ASCII, space included; every corpus is reduced to it.
TEXT_ALPHABET = "".join(chr(i) for i in range(32, 127))


class CharTokenizer:
  """Maps characters of a fixed alphabet to ids 3.. (0, 1, 2 are PAD, BOS, EOS)."""

  pad_id = PAD
  bos_id = BOS
  eos_id = EOS

  def __init__(self, alphabet: str = DEFAULT_ALPHABET):
    if len(set(alphabet)) != len(alphabet):
      raise ValueError(f"tokenizer alphabet has repeated characters: {alphabet!r}")
    self.alphabet = alphabet
    self._ids = {ch: i + len(_SPECIALS) for i, ch in enumerate(alphabet)}

  @property
  def vocab_size(self) -> int:
    return len(_SPECIALS) + len(self.alphabet)

  def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
    try:
      ids = [self._ids[ch] for ch in text]
    except KeyError as e:
      raise ValueError(
          f"character {e.args[0]!r} in {text!r} is not in the tokenizer alphabet "
          f"{self.alphabet!r}") from None
    return [BOS] * bos + ids + [EOS] * eos

  def decode(self, ids: Sequence[int] | np.ndarray) -> str:
    """Characters up to the first EOS or PAD; BOS is skipped."""
    chars = []
    for i in np.asarray(ids).tolist():
      if i in (EOS, PAD):
        break
      if i != BOS:
        chars.append(self.alphabet[i - len(_SPECIALS)])
    return "".join(chars)
