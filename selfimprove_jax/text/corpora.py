"""The human text for language-model mode, always read through TFDS.

`lm.source` names one of three kinds of corpus:

  "procedural"   sentences of `language.Language`, whose true distribution is
                 known exactly; written by this module's own builder
  "file:PATH"    a local UTF-8 text file, one text per non-empty line, for
                 your own corpus offline; written by this module's own builder
  any other      a TFDS catalog dataset with a text feature, by name
                 ("tiny_shakespeare", "lm1b", ...), prepared under the data
                 dir wherever the machine can download it

Either way the data are array_record files read back by index with
`tfds.data_source`, with no TensorFlow involved. Every text is cut into lines,
reduced to printable ASCII (the tokenizer's alphabet) and split at word
boundaries into pieces of at most `max_chars` characters; the procedural
sentences are kept whole, since a piece of a sentence is not a sentence.
"""

import dataclasses
import hashlib
import re
import unicodedata
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from selfimprove_jax.core.tokenizer import TEXT_ALPHABET
from selfimprove_jax.text.language import Language
_ALLOWED = frozenset(TEXT_ALPHABET)
_READ_BLOCK = 1024  # records per batched read
_TEXT_FEATURES = tfds.features.FeaturesDict({"text": tfds.features.Text()})


def clean(raw: str, max_chars: int) -> list[str]:
  """Lines of `raw` as printable ASCII with single spaces, cut into pieces of <= max_chars."""
  out = []
  for line in raw.splitlines():
    ascii_line = unicodedata.normalize("NFKD", line).encode("ascii", "ignore").decode()
    piece = ""
    for word in ascii_line.split():
      word = "".join(ch for ch in word if ch in _ALLOWED)
      if not word:
        continue
      while len(word) > max_chars:  # a "word" longer than a piece is cut where it must be
        if piece:
          out.append(piece)
        out.append(word[:max_chars])
        piece, word = "", word[max_chars:]
      if piece and len(piece) + 1 + len(word) > max_chars:
        out.append(piece)
        piece = ""
      piece = f"{piece} {word}" if piece else word
    if piece:
      out.append(piece)
  return out


# ----------------------------------------------------------------------------
# The project's two builders.


@dataclasses.dataclass(kw_only=True)
class LanguageConfig(tfds.core.BuilderConfig):
  seed: int = 0
  vocab_size: int = 400
  num_classes: int = 8
  zipf: float = 1.1
  mean_words: float = 6.0
  max_words: int = 12
  train_size: int = 20_000
  eval_size: int = 1_000

  def language(self) -> Language:
    return Language.make(self.seed, vocab_size=self.vocab_size, num_classes=self.num_classes,
                         zipf=self.zipf, mean_words=self.mean_words, max_words=self.max_words)


def language_config(**fields) -> LanguageConfig:
  """The config, named after every field so that other settings build another dataset."""
  name = "lang-" + "-".join(f"{k}{v}" for k, v in sorted(fields.items())).replace(".", "p")
  return LanguageConfig(name=name, **fields)


class SelfimproveLanguage(tfds.core.GeneratorBasedBuilder):
  """Sentences drawn from a procedural language (see language.py)."""

  VERSION = tfds.core.Version("1.0.0")
  BUILDER_CONFIGS = []  # made on demand by `language_config`

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(builder=self, features=_TEXT_FEATURES,
                                 description="Sentences of a procedural Zipfian language.")

  def _split_generators(self, dl_manager):
    del dl_manager  # generated, nothing to download
    cfg = self.builder_config
    return {"train": self._generate_examples(1, cfg.train_size), "eval": self._generate_examples(2, cfg.eval_size)}

  def _generate_examples(self, split_id: int, size: int):
    cfg = self.builder_config
    texts = cfg.language().sample(np.random.default_rng([cfg.seed, split_id]), size)
    for i, text in enumerate(texts):
      yield i, {"text": text}


@dataclasses.dataclass(kw_only=True)
class TextFileConfig(tfds.core.BuilderConfig):
  path: str = ""
  eval_fraction: float = 0.1  # lines held out, chosen by a seeded shuffle
  seed: int = 0


def text_file_config(path: str | Path, seed: int = 0) -> TextFileConfig:
  """Named after the file's content, so an edited file builds a new dataset."""
  path = Path(path).expanduser().resolve()
  try:
    content = path.read_bytes()
  except OSError as e:
    raise ValueError(f"lm.source file:{path} cannot be read ({e.strerror})") from None
  try:
    text = content.decode("utf-8")
  except UnicodeDecodeError as e:
    line = content[:e.start].count(b"\n") + 1
    raise ValueError(f"{path}:{line} is not UTF-8 text; lm.source file: takes UTF-8 text, "
                     "one example per line") from None
  if "\x00" in text:
    line = text[:text.index("\x00")].count("\n") + 1
    raise ValueError(f"{path}:{line} holds a NUL byte; lm.source file: takes text, not binary")
  if not text.strip():
    raise ValueError(f"{path} holds no text; lm.source file: takes one example per line")
  digest = hashlib.sha256(content).hexdigest()[:12]
  stem = re.sub(r"[^a-z0-9]+", "_", path.stem.lower()).strip("_") or "text"
  return TextFileConfig(name=f"{stem}-{digest}-s{seed}", path=str(path), seed=seed)


class SelfimproveTextFile(tfds.core.GeneratorBasedBuilder):
  """A local text file, one example per non-empty line."""

  VERSION = tfds.core.Version("1.0.0")
  BUILDER_CONFIGS = []  # made on demand by `text_file_config`

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(builder=self, features=_TEXT_FEATURES,
                                 description="The non-empty lines of a local text file.")

  def _split_generators(self, dl_manager):
    del dl_manager
    cfg = self.builder_config
    lines = [line for line in Path(cfg.path).read_text(encoding="utf-8").splitlines()
             if line.strip()]
    order = np.random.default_rng(cfg.seed).permutation(len(lines))
    held_out = max(1, round(len(lines) * cfg.eval_fraction)) if len(lines) > 1 else 0
    return {"train": self._generate_examples(lines, sorted(order[held_out:])),
            "eval": self._generate_examples(lines, sorted(order[:held_out]))}

  def _generate_examples(self, lines, indices):
    for i in indices:
      yield int(i), {"text": lines[i]}


# ----------------------------------------------------------------------------
# Loading.


@dataclasses.dataclass(frozen=True)
class Corpus:
  train: list[str]  # human texts to train on
  eval: list[str]  # held-out human texts
  language: Language | None  # the true distribution, when it is known


def _records(source, start: int, stop: int) -> list[dict]:
  try:
    return source.__getitems__(list(range(start, stop)))
  except TypeError:  # tfds.testing.mock_data's sources cannot read batches; one at a time
    return [source[i] for i in range(start, stop)]


def _texts(source, feature: str, limit: int, max_chars: int, whole: bool) -> list[str]:
  """Up to `limit` cleaned texts from a data source, reading records in order."""
  out = []
  for start in range(0, len(source), _READ_BLOCK):
    for record in _records(source, start, min(len(source), start + _READ_BLOCK)):
      if feature not in record:
        raise ValueError(f"lm.text_feature {feature!r} is not a feature of this dataset; "
                         f"it has {sorted(record)}")
      value = record[feature]
      text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
      out += [text] if whole else clean(text, max_chars)
      if len(out) >= limit:
        return out[:limit]
  return out


def _prepare(builder) -> None:
  tfds.display_progress_bar(False)
  builder.download_and_prepare()


def load(source: str, data_dir: str | Path, *, seed: int, train_size: int, eval_size: int,
         max_chars: int, language: dict | None = None, text_feature: str = "text",
         train_split: str = "train", eval_split: str = "test") -> Corpus:
  """The human texts named by `source` (see the module docstring), built or opened under data_dir.

  `language` holds the procedural language's shape (LanguageConfig fields);
  the split names and `text_feature` apply to catalog datasets only.
  """
  data_dir = str(data_dir)
  lang = None
  if source == "procedural":
    config = language_config(seed=seed, train_size=train_size, eval_size=eval_size,
                             **(language or {}))
    builder = SelfimproveLanguage(config=config, data_dir=data_dir, file_format="array_record")
    name, splits, feature, lang = f"{builder.name}/{config.name}", ("train", "eval"), "text", \
        config.language()
  elif source.startswith("file:"):
    config = text_file_config(source[len("file:"):], seed)
    builder = SelfimproveTextFile(config=config, data_dir=data_dir, file_format="array_record")
    name, splits, feature = f"{builder.name}/{config.name}", ("train", "eval"), "text"
  else:
    try:
      builder = tfds.builder(source, data_dir=data_dir, file_format="array_record")
    except tfds.core.registered.DatasetNotFoundError:
      raise ValueError(f"lm.source must be 'procedural', 'file:PATH' or a TFDS dataset name, "
                       f"got {source!r}") from None
    name, splits, feature = source, (train_split, eval_split), text_feature
  try:
    _prepare(builder)
  except Exception as e:  # a download or a build that failed: say which source, in one line
    message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise ValueError(f"lm.source {source!r} could not be prepared under {data_dir}: "
                     f"{message}") from None
  train, held_out = (tfds.data_source(name, split=s, data_dir=data_dir, download=False)
                     for s in splits)
  whole = lang is not None
  corpus = Corpus(_texts(train, feature, train_size, max_chars, whole),
                  _texts(held_out, feature, eval_size, max_chars, whole), lang)
  for split, texts in (("train", corpus.train), ("eval", corpus.eval)):
    if not texts:
      raise ValueError(f"lm.source {source!r}: the {split} split has no text")
  return corpus
