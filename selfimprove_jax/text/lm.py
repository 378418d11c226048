"""Language-model mode: the same loop on plain text, to measure model collapse.

Generation 0 trains on human text. Generation g samples `lm.samples_per_generation`
texts from the model of generation g-1 (unconditionally, or continuing the first
`lm.prompt_chars` characters of human texts), keeps every text that ended, and
trains on them under the data policy: `replace` (its own text only, Shumailov
et al. 2024), `accumulate` (human text plus every generation's, Gerstgrasser
et al. 2024) or `mix` (its own text plus a fixed share of human text).

No self-scoring is applied here: collapse is what happens to a model trained on
its own unfiltered output. Evaluation measures, for the model after each
generation (collapse.py has the definitions):

  heldout_nll          held-out human text under the model, nats per token
  kl_estimate          KL(truth || model) per token (procedural language only)
  true_nll             the model's own samples under the truth, per token (ditto)
  valid_fraction       share of samples that are sentences of the language (ditto)
  tail_mass_ratio      the samples' share of tail words over the truth's share
  vocab_coverage       share of the vocabulary the samples use
  distinct_1..3        distinct word n-grams in the samples
  perplexity_histogram per-sample perplexity under the truth, or under the
                       generation-0 model when the truth is real text (as
                       Shumailov et al. measure it)

`human.json` in the workdir holds the same sample statistics for as many
held-out human texts: the line every generation is measured against.
"""

import dataclasses
import functools
import json
import time

import ml_collections
import numpy as np

from selfimprove_jax.base import files, preemption
from selfimprove_jax.base.modes import Labels
from selfimprove_jax.core import data, sharding
from selfimprove_jax.core.mixture import Example, Source
from selfimprove_jax.core.train import member
from selfimprove_jax.text import collapse, report
from selfimprove_jax.text.language import Language


def check(config: ml_collections.ConfigDict) -> None:
  """How LM mode's fields must relate (their types and ranges are checked before, in
  config_check.check); raises ValueError naming the first bad one."""
  cfg = config.lm
  if cfg.row_tokens < cfg.max_chars + 2:
    raise ValueError(f"lm.row_tokens must hold the longest text with BOS and EOS "
                     f"(>= lm.max_chars + 2 = {cfg.max_chars + 2}), got {cfg.row_tokens}")
  if not 0 <= cfg.prompt_chars < cfg.max_chars:
    raise ValueError(f"lm.prompt_chars must be in [0, lm.max_chars), got {cfg.prompt_chars}")
  if config.ensemble_size != 1:
    raise ValueError(f"ensemble_size must be 1 in LM mode (one model, its own text), "
                     f"got {config.ensemble_size}")
  if cfg.source == "procedural":
    lang = config.language
    if not 1 <= lang.num_classes <= lang.vocab_size:
      raise ValueError(f"need 1 <= language.num_classes <= language.vocab_size, "
                       f"got {lang.num_classes}, {lang.vocab_size}")
    if not 1 <= lang.mean_words <= lang.max_words:
      raise ValueError(f"need 1 <= language.mean_words <= language.max_words, "
                       f"got {lang.mean_words}, {lang.max_words}")
  elif config.checkpoint.max_to_keep:
    raise ValueError("with real text, perplexities are measured under generation 0's model, "
                     "so its checkpoint must stay: set checkpoint.max_to_keep=0")


@dataclasses.dataclass(frozen=True, eq=False)
class TextWorld:
  """The human text and what every generation's text is measured against."""
  train: list[str]  # human texts to train on
  heldout: list[str]  # held-out human texts
  language: Language | None  # the true distribution, for the procedural source
  tail: frozenset[str]  # the rarest words, together `eval.tail_mass` of the true word tokens
  tail_share: float  # their share of word tokens under the truth
  vocabulary: frozenset[str]
  heldout_true_logprobs: np.ndarray | None  # [N] log p_true of each held-out text
  human: dict  # text_metrics of held-out human texts, as many as eval.samples


def prepare(config: ml_collections.ConfigDict, data_dir) -> TextWorld:
  from selfimprove_jax.text import corpora  # tensorflow_datasets loads here, not with the package
  cfg = config.lm
  procedural = cfg.source == "procedural"
  corpus = corpora.load(
      cfg.source, data_dir, seed=config.seed, train_size=config.data.train_size,
      eval_size=config.eval.heldout_size, max_chars=cfg.max_chars,
      language=config.language.to_dict() if procedural else None,
      text_feature=cfg.text_feature, train_split=cfg.train_split, eval_split=cfg.eval_split)
  longest = max(len(t) for t in corpus.train + corpus.eval)
  if longest > cfg.max_chars:
    raise ValueError(f"lm.max_chars={cfg.max_chars} is shorter than the longest human text "
                     f"({longest} characters); raise it or lower language.max_words")
  lang = corpus.language
  freqs = lang.word_frequencies() if lang else collapse.word_frequencies(corpus.train)
  tail = collapse.tail_words(freqs, config.eval.tail_mass)
  true_lp = None
  if lang:
    true_lp = np.array([lang.logprob(t) for t in corpus.eval])
  world = TextWorld(train=corpus.train, heldout=corpus.eval, language=lang, tail=tail,
                    tail_share=sum(freqs[w] for w in tail), vocabulary=frozenset(freqs),
                    heldout_true_logprobs=true_lp, human={})
  world.human.update(text_metrics(world, corpus.eval[:config.eval.samples]))
  if lang:  # the truth's own NLL of the held-out text: the floor heldout_nll can reach
    tokens = sum(len(t) + 1 for t in corpus.eval)
    world.human.update(heldout_nll=float(-true_lp.sum() / tokens), kl_estimate=0.0)
  return world


def human_source(texts: list[str]) -> Source:
  """Human texts as training examples: no prompt, the loss on every character."""
  examples = [Example("", t, 0, 0) for t in texts]
  return Source.from_list("human", examples)


def text_metrics(world: TextWorld, texts: list[str]) -> dict:
  """Diversity and tail statistics of some texts (see the module docstring)."""
  m = dict(tail_mass_ratio=collapse.tail_mass(texts, world.tail) / world.tail_share,
           vocab_coverage=collapse.vocab_coverage(texts, world.vocabulary),
           **{f"distinct_{n}": collapse.distinct_n(texts, n) for n in (1, 2, 3)},
           mean_chars=float(np.mean([len(t) for t in texts])) if texts else 0.0)
  if world.language:
    logprobs = np.array([world.language.logprob(t) for t in texts])
    tokens = np.array([len(t) + 1 for t in texts])  # characters and EOS, as the model counts
    valid = np.isfinite(logprobs)
    m.update(valid_fraction=float(valid.mean()) if len(texts) else 0.0,
             true_nll=float(-logprobs[valid].sum() / tokens[valid].sum()) if valid.any() else None,
             perplexity_histogram=collapse.perplexity_histogram(logprobs, tokens))
  return m


# ----------------------------------------------------------------------------
# The mode: what differs from task mode.


@dataclasses.dataclass(eq=False)
class TextMode:
  """Plain text (modes.py has the interface): no curriculum and no scoring; one model
  trains on its own text under the data policy, and the collapse metrics measure it."""
  world: TextWorld

  @functools.cached_property
  def ground_truth(self) -> Source:
    return human_source(self.world.train)

  def curriculum(self, setup, frontier) -> None:
    del setup, frontier

  def start(self, setup) -> None:
    if sharding.is_writer():  # the human reference every generation is measured against
      files.atomic_write(setup.workdir.path / "human.json",
                         json.dumps(self.world.human, indent=1))

  def label(self, setup, params, curriculum, g: int, key, rng) -> Labels:
    """Generation g's synthetic text, as rows of its examples file, and their stats."""
    del curriculum
    tic = time.perf_counter()
    cfg = setup.config.lm
    n, k, train = cfg.samples_per_generation, cfg.prompt_chars, self.world.train
    prefixes = [""] * n if k == 0 else [train[i][:k] for i in rng.integers(0, len(train), n)]
    texts, out = _sample(setup, member(params, 0), prefixes, cfg.max_chars - k + 1, key)
    # A text cut off at max_chars never ended: it is no sample of a whole text.
    kept = out.done & np.array([len(t) > 0 for t in texts])
    rows = [dict(generation=g, difficulty=0, prompt="", completion=t, prefix_chars=k,
                 finished=bool(f), kept=bool(ok), mean_logprob=round(float(lp), 6))
            for t, f, ok, lp in zip(texts, out.done, kept, out.mean_logprob)]
    stats = out.token_stats() | dict(kept=int(kept.sum()), kept_fraction=float(kept.mean()))
    return Labels(rows=rows, lessons=None, stats=stats,
                  seconds={"sample": time.perf_counter() - tic})

  def lessons(self, setup, label_files) -> None:
    del setup, label_files  # no self-judge in text mode

  def lessons_join_at(self, setup, g: int) -> None:
    del setup, g  # no self-judge in text mode

  def early_answer_steps(self, setup, g: int) -> tuple[int, ...]:
    del setup, g  # no self-judge in text mode
    return ()

  def early_answers(self, setup, params, key, step: int) -> None:
    raise AssertionError("text mode has no self-judge, so no early answers")

  def batches(self, setup, mixture):
    # Whole texts packed end to end into rows: no padding to the longest.
    cfg = setup.config
    return lambda rng: data.pack_texts(
        setup.devices.tok, lambda n: [x.completion for x in mixture.draw(rng, n)],
        cfg.train.batch_size, cfg.lm.row_tokens)

  def evaluate(self, setup, params, curriculum, stats: dict, g: int, key):
    """The collapse metrics of member 0 (see the module docstring)."""
    del curriculum, stats
    world, cfg, params = self.world, setup.config, member(params, 0)
    logprobs, tokens = _logprobs(setup, params, world.heldout)
    m = dict(heldout_nll=float(-logprobs.sum() / tokens.sum()))
    if world.language:
      m["kl_estimate"] = collapse.kl_estimate(world.heldout_true_logprobs, logprobs, tokens.sum())
    texts, out = _sample(setup, params, [""] * cfg.eval.samples, cfg.lm.max_chars + 1, key)
    ended = [t for t, f in zip(texts, out.done) if f]
    m.update(text_metrics(world, ended), unfinished_fraction=float(1 - out.done.mean()))
    if not world.language:  # real text: perplexities under the model that learned it
      reference = params if g == 0 else member(setup.workdir.restore_generation(0)[0].params, 0)
      ref_lp, ref_tokens = _logprobs(setup, reference, ended)
      m["perplexity_histogram"] = collapse.perplexity_histogram(ref_lp, ref_tokens)
    return m, None

  def report(self, setup, history: list[dict]) -> None:
    print(report.lm_table(history, self.world.human), flush=True)
    report.lm_plot(history, self.world.human, setup.workdir.path / "report.png")


def _logprobs(setup, params, texts: list[str]):
  # One width for every call: the longest text a run allows.
  return setup.devices.logprobs(params, texts, data.bucket(setup.config.lm.max_chars + 1))


def _sample(setup, params, prefixes: list[str], max_new_tokens: int, key):
  """(texts, i.e. prefix + completion, and the sampler's output) from one model."""
  tok = setup.devices.tok
  sampler = setup.devices.sampler(setup.sample_method, max_new_tokens)
  out = sampler.in_chunks(params, data.prompt_tokens(tok, prefixes), key,
                          setup.config.sample.rows_per_call,
                          lambda rows: preemption.stop_if_requested("while sampling"))
  return [p + tok.decode(t) for p, t in zip(prefixes, out.tokens)], out
