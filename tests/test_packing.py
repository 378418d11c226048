"""Packed rows (data.pack): several examples per row, kept apart by their segments, train
exactly as the same examples would one per row."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selfimprove_jax.core import data
from selfimprove_jax.core import model as model_lib
from selfimprove_jax.core.mixture import Example
from selfimprove_jax.core.tokenizer import BOS, EOS, PAD, CharTokenizer
from test_train import sgd_step

TOK = CharTokenizer()


def sums(n: int, seed: int = 0) -> list[Example]:
  rng = np.random.default_rng(seed)
  digits = rng.integers(1, 6, n)
  a = [int(rng.integers(10 ** (d - 1), 10 ** d)) for d in digits]
  b = [int(rng.integers(10 ** (d - 1), 10 ** d)) for d in digits]
  return [Example(f"{x}+{y}=", str(x + y), int(d), 0) for x, y, d in zip(a, b, digits)]


def drawer(examples):
  stream = iter(examples)
  return lambda n: [next(stream) for _ in range(n)]


def unpack(batch: data.Batch) -> list[tuple[str, str]]:
  """(prompt, completion) of every packed sequence, read back from the batch alone."""
  out = []
  for r in range(batch.inputs.shape[0]):
    for s in sorted(set(batch.segments[r].tolist()) - {0}):
      at = np.nonzero(batch.segments[r] == s)[0]
      tokens = np.append(batch.inputs[r, at], batch.targets[r, at[-1]])
      weighted = batch.weights[r, at].astype(bool)
      start = int(np.argmax(weighted)) + 1  # the first completion token
      out.append((TOK.decode(tokens[:start]), TOK.decode(tokens[start:])))
  return out


def test_pack_puts_whole_examples_end_to_end_with_their_segments():
  examples = [Example("ab>", "ba", 2, 0), Example("abc>", "cba", 3, 0), Example("a>", "a", 1, 0),
              Example("abcd>", "dcba", 4, 0)]
  # Drawn two at a time and taken from the end of each draw: abc, ab | abcd, a.
  batch = data.pack(TOK, drawer(examples * 2), rows=2, width=13)
  # Row 0: "abc>cba" (9 tokens) and "ab>ba" does not fit after it (9 + 7 > 14).
  expect0 = [BOS, *TOK.encode("abc>cba"), EOS] + [PAD] * 5
  np.testing.assert_array_equal(np.append(batch.inputs[0], batch.targets[0, -1]), expect0)
  assert batch.segments[0].tolist() == [1] * 9 + [0] * 4
  # Targets are the completion and its EOS only.
  assert batch.weights[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0]
  # Row 1: "ab>ba", then "abcd>dcba" would need 11 more of 14: it starts no third row.
  expect1 = [BOS, *TOK.encode("ab>ba"), EOS] + [PAD] * 7
  np.testing.assert_array_equal(np.append(batch.inputs[1], batch.targets[1, -1]), expect1)
  assert batch.segments[1].tolist() == [1] * 7 + [0] * 6


def test_first_fit_puts_a_short_example_back_into_an_earlier_row():
  a, b, c = Example("abc>", "cba", 3, 0), Example("abcd>", "dcba", 4, 0), Example("a>", "a", 1, 0)
  stream = [b, a, b, c]  # drawn two at a time, each draw taken from its end: a, b, c, b
  first = data.pack(TOK, drawer(stream), rows=2, width=13)
  # a (9 tokens) in row 0, b (11) in row 1, c (5) back in row 0; the second b fits nowhere.
  assert first.segments[0].tolist() == [1] * 9 + [2] * 4 and first.segments[1].tolist() == (
      [1] * 11 + [0] * 2)
  np.testing.assert_array_equal(np.append(first.inputs[0], first.targets[0, -1]),
                                [BOS, *TOK.encode("abc>cba"), EOS, BOS, *TOK.encode("a>a"), EOS])
  # Row by row, c would start a third row: packing stops at b's row.
  turn = data.pack(TOK, drawer(stream), rows=2, width=13, first_fit=False)
  assert turn.segments[0].tolist() == [1] * 9 + [0] * 4


def test_pack_fills_rows_with_several_examples_each():
  examples = sums(200)
  batch = data.pack(TOK, drawer(examples), rows=8, width=48)
  packed = unpack(batch)
  assert len(packed) > 8 * 2  # several per row
  # Every example went in whole: its prompt, its answer and EOS, nothing cut.
  by_prompt = {e.prompt: e.completion for e in examples}
  for prompt, completion in packed:
    assert by_prompt[prompt] == completion
  # And the rows are mostly examples, not padding.
  assert (batch.segments > 0).mean() > 0.8


@pytest.mark.parametrize("pos_encoding", ["none", "rope"])
def test_a_packed_row_computes_what_each_sequence_computes_alone(pos_encoding):
  cfg = model_lib.ModelConfig(vocab_size=TOK.vocab_size, num_layers=2, embed_dim=32,
                              num_heads=4, mlp_dim=64, pos_encoding=pos_encoding)
  graphdef, params = model_lib.create(cfg, seed=1)
  apply = jax.jit(lambda tokens, segments=None: model_lib.apply(graphdef, params, tokens,
                                                               segments=segments)[0])
  batch = data.pack(TOK, drawer(sums(40, seed=1)), rows=1, width=64)
  packed = apply(jnp.asarray(batch.inputs), jnp.asarray(batch.segments))
  segments = sorted(set(batch.segments[0].tolist()) - {0})
  assert len(segments) >= 3
  for s in segments:  # the second and later ones are where a missing mask would show
    at = np.nonzero(batch.segments[0] == s)[0]
    alone = apply(jnp.asarray(batch.inputs[:1, at]))
    np.testing.assert_allclose(packed[0, at], alone[0], atol=2e-5)


def test_a_packed_step_is_the_step_on_the_same_examples_one_per_row(mesh1):
  packed = data.pack(TOK, drawer(sums(64, seed=2)), rows=4, width=32)
  prompts, completions = zip(*unpack(packed))
  plain = data.make_batch(TOK, prompts, completions)
  assert plain.inputs.size > packed.inputs.size  # the same examples, padded, take more room
  assert plain.weights.sum() == packed.weights.sum()
  cfg = model_lib.ModelConfig(vocab_size=TOK.vocab_size, num_layers=2, embed_dim=32,
                              num_heads=4, mlp_dim=64)
  graphdef, params = model_lib.create(cfg, seed=0)
  params = jax.device_get(params)
  (p1, m1), (p2, m2) = (sgd_step(graphdef, params, batch, mesh1) for batch in (packed, plain))
  assert m1["loss"] == pytest.approx(m2["loss"], rel=1e-5)
  assert m1["grad_norm"] == pytest.approx(m2["grad_norm"], rel=1e-5)
  for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_pack_tokens_keeps_the_tokens_of_a_step_as_examples_grow(mesh8):
  from types import SimpleNamespace

  from selfimprove_jax.core.mixture import Mixture, Source
  from selfimprove_jax.grading.labelling import TaskMode
  def setup(pack_tokens):
    train = SimpleNamespace(batch_size=64, pack=True, pack_tokens=pack_tokens)
    return SimpleNamespace(config=SimpleNamespace(train=train),
                           devices=SimpleNamespace(tok=TOK, mesh=mesh8))
  short = Source.from_list("short", sums(100))  # at most 5 digits: rows of 24
  long = Source.from_list("long", [Example("1" * 16 + "+" + "2" * 16 + "=", "3" * 16, 16, 1)])
  rng = np.random.default_rng(0)
  for sources, width, rows in [((short,), 24, 40), ((short, long), 56, 16)]:
    mixture = Mixture(sources, (1 / len(sources),) * len(sources))
    assert TaskMode.batches(None, setup(1024), mixture)(rng).inputs.shape == (rows, width)
    assert TaskMode.batches(None, setup(0), mixture)(rng).inputs.shape == (64, width)
