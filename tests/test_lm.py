"""Language-model mode: packing, the data policies on text, and a two-generation run."""

import json
import math

import numpy as np
import pytest

from conftest import StopRun
from selfimprove_jax import config_files
from selfimprove_jax.core import data, sampling
from selfimprove_jax.core import mixture as mixture_lib
from selfimprove_jax.core.tokenizer import BOS, CharTokenizer, EOS, PAD, TEXT_ALPHABET
from selfimprove_jax.text import lm
from selfimprove_jax.run import loop
from selfimprove_jax.run.experiment import UserError


def small_lm(policy="replace", **overrides):
  """configs/collapse.py shrunk to seconds: a tiny model, language and sample."""
  c = config_files.load(f"collapse:{policy}")
  c.generations = 2
  c.model.num_layers, c.model.embed_dim, c.model.num_heads, c.model.mlp_dim = 1, 32, 2, 64
  c.language.vocab_size, c.language.max_words, c.language.mean_words = 40, 6, 3.0
  c.lm.max_chars, c.lm.row_tokens, c.lm.samples_per_generation = 60, 64, 64
  c.data.train_size, c.eval.heldout_size, c.eval.samples = 400, 64, 64
  c.train.batch_size, c.train.steps, c.train.steps_per_generation = 8, 30, 10
  c.train.log_every, c.optimizer.warmup_steps, c.checkpoint.every_steps = 10, 5, 5
  for field, value in overrides.items():
    section, _, name = field.rpartition(".")
    (c[section] if section else c)[name] = value
  return c


def test_packing_puts_whole_texts_end_to_end_and_weights_every_character():
  tok = CharTokenizer(TEXT_ALPHABET)
  texts = iter(["ab", "cde", "f", "ghij", "k"] * 3)
  batch = data.pack_texts(tok, lambda n: [next(texts) for _ in range(n)][::-1], rows=2, width=9)
  # Row 0 holds "ab" and "cde" (4 + 5 of 10 tokens; "f" would not fit), row 1 "f" and "ghij".
  expect = [[BOS, *tok.encode("ab"), EOS, BOS, *tok.encode("cde"), EOS, PAD],
            [BOS, *tok.encode("f"), EOS, BOS, *tok.encode("ghij"), EOS, PAD]]
  np.testing.assert_array_equal(np.concatenate([batch.inputs, batch.targets[:, -1:]], 1), expect)
  # Every character and EOS is a target; the BOS that starts the next text is not.
  assert batch.weights[0].tolist() == [1, 1, 1, 0, 1, 1, 1, 1, 0]
  assert batch.weights[1].tolist() == [1, 1, 0, 1, 1, 1, 1, 1, 0]


def test_data_policies_compose_human_and_synthetic_text():
  human = lm.human_source(["human one", "human two"])
  gens = [mixture_lib.Source.from_list(f"g{g}", [mixture_lib.Example("", f"synthetic {g}", 0, g)])
          for g in (1, 2)]
  rng = np.random.default_rng(0)

  def drawn(policy):
    mixture = mixture_lib.training_mixture(policy, human, gens, 0.1)
    return [x.completion for x in mixture.draw(rng, 4000)]

  replace, accumulate, mix = drawn("replace"), drawn("accumulate"), drawn("mix")
  assert set(replace) == {"synthetic 2"}
  assert set(accumulate) == {"human one", "human two", "synthetic 1", "synthetic 2"}
  assert np.mean([t.startswith("human") for t in accumulate]) == pytest.approx(0.5, abs=0.03)
  assert set(mix) == {"human one", "human two", "synthetic 2"}
  assert np.mean([t.startswith("human") for t in mix]) == pytest.approx(0.1, abs=0.02)


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("lm")
  return workdir, loop.run(small_lm(), str(workdir))


def test_two_generation_lm_run_writes_collapse_metrics(lm_run):
  workdir, history = lm_run
  lines = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert lines == history and [m["generation"] for m in lines] == [0, 1, 2]
  for m in lines:
    for key in ("heldout_nll", "kl_estimate", "valid_fraction", "tail_mass_ratio",
                "vocab_coverage", "distinct_1", "distinct_2", "distinct_3"):
      assert m[key] is not None and math.isfinite(m[key]), key
    # The samples' NLL under the truth exists when some sample is a sentence.
    assert (m["true_nll"] is None) == (m["valid_fraction"] == 0)
    assert m["heldout_nll"] > 0 and sum(m["perplexity_histogram"]) > 0
  # The model is not the truth: held-out NLL sits above the truth's own, by the KL.
  human = json.loads((workdir / "human.json").read_text())
  assert human["kl_estimate"] == 0.0 and human["valid_fraction"] == 1.0
  for m in lines:
    assert m["heldout_nll"] == pytest.approx(human["heldout_nll"] + m["kl_estimate"], abs=1e-4)
  # Generation g trains on what generation g-1 sampled: every text is in the examples file.
  rows = [json.loads(x) for x in (workdir / "generations/001/examples.jsonl").read_text().splitlines()]
  assert len(rows) == 64 and sum(r["kept"] for r in rows) == lines[1]["kept"] > 0
  assert all(r["prompt"] == "" and (r["finished"] or not r["kept"]) for r in rows)
  assert lines[1]["tokens_trained"] > 0 and (workdir / "report.png").stat().st_size > 10_000


def test_resumed_lm_run_matches_the_uninterrupted_one(lm_run, tmp_path, stop_at, monkeypatch):
  _, history = lm_run
  stop_at(2, 5)
  with pytest.raises(StopRun):
    loop.run(small_lm(), str(tmp_path))
  monkeypatch.undo()
  resumed = loop.run(small_lm(), str(tmp_path))
  strip = lambda h: [{k: v for k, v in m.items() if k != "seconds"} for m in h]
  assert strip(resumed) == strip(history)


@pytest.mark.parametrize("field, value, message", [
    ("lm.prompt_chars", 60, "lm.prompt_chars must be in [0, lm.max_chars)"),
    ("lm.row_tokens", 30, "lm.row_tokens must hold the longest text"),
    ("ensemble_size", 2, "ensemble_size must be 1 in LM mode"),
    ("eval.tail_mass", 1.0, "eval.tail_mass must be in (0, 1)"),
    ("language.mean_words", 9.0, "need 1 <= language.mean_words <= language.max_words"),
    ("lm.max_chars", 20, "lm.max_chars=20 is shorter than the longest human text"),
    ("lm.source", "no_such_corpus_anywhere", "lm.source must be 'procedural', 'file:PATH'"),
])
def test_bad_lm_settings_are_one_line_errors(tmp_path, field, value, message):
  overrides = {field: value}
  if field == "lm.max_chars":
    overrides["lm.prompt_chars"] = 0
  with pytest.raises(UserError) as e:
    loop.run(small_lm(**overrides), str(tmp_path / "run"))
  assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_collapse_config_takes_one_of_the_three_arms():
  assert [config_files.load(f"collapse:{a}").data_policy for a in ("replace", "accumulate", "mix")] \
      == ["replace", "accumulate", "mix"]
  with pytest.raises(ValueError, match="takes one of"):
    config_files.load("collapse:forget")


def test_continuations_start_with_human_prompts(tmp_path, monkeypatch):
  calls = []  # what the sampler was asked for and what it gave back, call by call
  original = sampling.Sampler.in_chunks
  def in_chunks(self, params, prompts, *args, **kwargs):
    out = original(self, params, prompts, *args, **kwargs)
    calls.append((prompts, out))
    return out
  monkeypatch.setattr(sampling.Sampler, "in_chunks", in_chunks)
  # 32 evaluation samples against 64 labelled: the labelling call is the one of 64.
  config = small_lm(**{"lm.prompt_chars": 4, "generations": 1, "eval.samples": 32})
  loop.run(config, str(tmp_path))
  tok = CharTokenizer(TEXT_ALPHABET)
  human = {t[:4] for t in lm.prepare(config, tmp_path / "tfds").train}
  rows = [json.loads(x) for x in (tmp_path / "generations/001/examples.jsonl").read_text().splitlines()]
  # Generation 1's labelling call: its prompts are human prefixes (a human text shorter
  # than 4 characters is a prompt of its own length), BOS first, and each row is that
  # prefix followed by what the model wrote after it.
  [(prompts, out)] = [c for c in calls if len(c[0]) == len(rows) == 64]
  assert rows and all(r["prefix_chars"] == 4 for r in rows)
  assert all(p[0] == BOS and tok.decode(p) in human for p in prompts)
  assert len({tok.decode(p) for p in prompts}) > 1  # drawn from many texts, not one
  assert [r["completion"] for r in rows] == [tok.decode(p) + tok.decode(t)
                                             for p, t in zip(prompts, out.tokens)]


def test_real_text_from_a_local_file_is_measured_against_generation_0(tmp_path):
  rng = np.random.default_rng(0)
  words = ["the", "cat", "sat", "on", "a", "mat", "and", "then", "ran", "far", "quixotic"]
  lines = [" ".join(rng.choice(words, rng.integers(2, 8), p=[.2, .1, .1, .1, .1, .1, .1, .1,
                                                              .05, .04, .01])) for _ in range(300)]
  (tmp_path / "corpus.txt").write_text("\n".join(lines))
  config = small_lm(**{"lm.source": f"file:{tmp_path / 'corpus.txt'}", "generations": 1})
  history = loop.run(config, str(tmp_path / "run"))
  for m in history:
    # No truth: no KL or true NLL; perplexities come from generation 0's model instead.
    assert "kl_estimate" not in m and "true_nll" not in m
    assert math.isfinite(m["heldout_nll"]) and sum(m["perplexity_histogram"]) > 0
    assert m["tail_mass_ratio"] >= 0 and 0 < m["vocab_coverage"] <= 1
  human = json.loads((tmp_path / "run" / "human.json").read_text())
  assert human["vocab_coverage"] > 0.5 and "kl_estimate" not in human
