"""Human text through TFDS: the procedural builder, a local file, a catalog dataset under mock_data."""

import math
import sys

import pytest
from hypothesis import given, settings
import tensorflow_datasets as tfds  # a core dependency: a broken import fails, never skips
from hypothesis import strategies as st

from selfimprove_jax.text import corpora

SMALL_LANGUAGE = dict(vocab_size=40, num_classes=4, mean_words=4.0, max_words=8)


def load(source, data_dir, **kwargs):
  args = dict(seed=0, train_size=200, eval_size=50, max_chars=40, language=SMALL_LANGUAGE)
  return corpora.load(source, data_dir, **(args | kwargs))


def test_clean_keeps_printable_ascii_and_cuts_at_word_boundaries():
  assert corpora.clean("Héllo,\tworld!\x01\n\n  two  spaces ", 40) == ["Hello, world!", "two spaces"]
  assert corpora.clean("aaa bbb ccc", 7) == ["aaa bbb", "ccc"]
  assert corpora.clean("abcdefghij xy", 4) == ["abcd", "efgh", "ij", "xy"]
  assert all(ch in corpora.TEXT_ALPHABET for t in corpora.clean("naïve café — ok", 40) for ch in t)


def test_procedural_corpus_is_deterministic_and_its_sentences_are_true_sentences(tmp_path):
  one, two = load("procedural", tmp_path / "a"), load("procedural", tmp_path / "b")
  assert one.train == two.train and one.eval == two.eval
  assert len(one.train) == 200 and len(one.eval) == 50 and one.train != one.eval
  assert all(math.isfinite(one.language.logprob(t)) for t in one.train + one.eval)
  assert load("procedural", tmp_path / "a", seed=1).train != one.train
  assert list(tmp_path.rglob("*.array_record*"))
  assert "tensorflow" not in sys.modules


def test_a_local_text_file_is_split_into_train_and_held_out_lines(tmp_path):
  path = tmp_path / "corpus.txt"
  path.write_text("\n".join(f"sentence number {i}" for i in range(40)) + "\n\n")
  corpus = load(f"file:{path}", tmp_path / "tfds")
  assert len(corpus.eval) == 4 and len(corpus.train) == 36 and corpus.language is None
  assert sorted(corpus.train + corpus.eval) == sorted(f"sentence number {i}" for i in range(40))
  # An edited file is another dataset, not a stale copy of the old one.
  path.write_text("just one new line\nand another\n")
  assert sorted(load(f"file:{path}", tmp_path / "tfds").train + load(
      f"file:{path}", tmp_path / "tfds").eval) == ["and another", "just one new line"]


def test_a_tfds_catalog_dataset_is_read_by_name_under_mock_data(tmp_path):
  with tfds.testing.mock_data(num_examples=6):
    corpus = load("tiny_shakespeare", tmp_path, max_chars=8, train_size=5)
  assert len(corpus.train) == 5 and corpus.eval and corpus.language is None
  assert all(0 < len(t) <= 8 and set(t) <= set(corpora.TEXT_ALPHABET)
             for t in corpus.train)


@pytest.mark.parametrize("source, message", [
    ("no_such_dataset_anywhere", "lm.source must be 'procedural', 'file:PATH' or a TFDS"),
    ("file:/no/such/file.txt", "lm.source file:/no/such/file.txt cannot be read"),
])
def test_bad_sources_are_one_line_errors(tmp_path, source, message):
  with pytest.raises(ValueError) as e:
    load(source, tmp_path)
  assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_missing_text_feature_is_named(tmp_path):
  with tfds.testing.mock_data(num_examples=3):
    with pytest.raises(ValueError, match="lm.text_feature 'body' is not a feature"):
      load("tiny_shakespeare", tmp_path, text_feature="body")


@pytest.mark.parametrize("content, message", [
    (b"one line\nanother\n\xff\xfe broken\n", r"text.txt:3 is not UTF-8 text"),
    (b"fine\n\x00\x01\x02", r"text.txt:2 holds a NUL byte"),
    (b"\n  \n", r"text.txt holds no text"),
])
def test_a_malformed_text_file_is_refused_with_file_and_line(tmp_path, content, message):
  path = tmp_path / "text.txt"
  path.write_bytes(content)
  with pytest.raises(ValueError, match=message) as e:
    load(f"file:{path}", tmp_path / "tfds")
  assert "\n" not in str(e.value)
  assert not (tmp_path / "tfds").exists()  # refused before anything was built


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_as_a_text_file_give_a_corpus_or_one_clean_error(tmp_path_factory, content):
  base = tmp_path_factory.mktemp("fuzz")
  path = base / "text.txt"
  path.write_bytes(content)
  try:
    corpus = load(f"file:{path}", base / "tfds")
  except ValueError as e:
    assert str(path) in str(e) and "\n" not in str(e)
  else:
    assert corpus.train and all(isinstance(t, str) and t for t in corpus.train)
