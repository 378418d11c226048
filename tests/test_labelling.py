"""Task-mode labelling: equivalent prompts in the vote, and the error injection of the
avalanche experiment."""

import types

import jax
import ml_collections
import numpy as np
import pytest

from selfimprove_jax.core import sampling
from selfimprove_jax.core.tokenizer import CharTokenizer
from selfimprove_jax.grading import label_truth, labelling, scoring
from selfimprove_jax.grading.tasks import get_task

TASK = get_task("reverse_addition")


@pytest.mark.parametrize("fraction, expected", [(0.5, 5), (0.25, 2), (1.0, 10), (0.0, 0)])
def test_injection_replaces_that_fraction_of_kept_labels_by_wrong_answers(fraction, expected):
  rng = np.random.default_rng(0)
  problems = [TASK.generate(rng, 3) for _ in range(10)]
  rows = [dict(prompt=p.prompt, completion=p.answer, kept=True, correct=True) for p in problems]
  rows += [dict(prompt=p.prompt, completion="1", kept=False, correct=False) for p in problems]
  before = [dict(r) for r in rows]
  assert label_truth.inject_errors(TASK, problems, rows, fraction, rng) == expected
  changed = [(b, r) for b, r in zip(before, rows) if b != r]
  assert len(changed) == expected
  for b, r in changed:
    assert b["kept"] and r["injected"] and not r["correct"]
    problem = next(p for p in problems if p.prompt == r["prompt"])
    assert not TASK.verify(problem, r["completion"])


class ByRuleSampler:
  """Stands in for the sampler: member e answers each token prompt by `rule(e, prompt)`."""

  def __init__(self, tok, rule):
    self.tok, self.rule = tok, rule

  def in_chunks(self, params, rows, key, rows_per_call, on_chunk=lambda rows: None):
    del key, rows_per_call
    answers = [self.tok.encode(self.rule(int(params["member"]), self.tok.decode(r)), eos=True)
               for r in rows]
    tokens = np.zeros((len(rows), 12), np.int32)  # the sampler's fixed width
    for i, a in enumerate(answers):
      tokens[i, :len(a)] = a
    on_chunk(len(rows))
    zeros = np.zeros(tokens.shape, np.float32)
    return sampling.SampleOutput(tokens=tokens, logprobs=zeros, entropies=zeros,
                                 lengths=np.array([len(a) for a in answers], np.int32),
                                 done=np.ones(len(rows), bool))


@pytest.mark.parametrize("equivalents, wrong_on", [("", None), ("swapped", "swapped"),
                                                   ("swapped,shifted", "shifted")])
def test_equivalent_prompts_join_the_vote_and_an_inconsistent_answer_loses_it(equivalents,
                                                                                wrong_on):
  task, tok = get_task("reverse_addition"), CharTokenizer()
  truth = lambda prompt: task.parse(prompt).answer
  problems = task.batch(np.random.default_rng(0), [4] * 20)
  # Both members right on a+b; on one equivalent form, member 1 is wrong when a starts odd.
  origin = {task.equivalents(p.prompt, [wrong_on])[0]: p.prompt for p in problems} if wrong_on else {}
  def rule(e, prompt):
    wrong = e == 1 and prompt in origin and int(origin[prompt][0]) % 2
    return "0" + truth(prompt) if wrong else truth(prompt)
  config = ml_collections.ConfigDict(dict(
      ensemble_size=2, sample=dict(prompts_per_generation=20, samples_per_prompt=1,
                                   equivalents=equivalents, rows_per_call=64)))
  setup = types.SimpleNamespace(
      config=config, sample_method=None,
      devices=types.SimpleNamespace(tok=tok, sampler=lambda method, n: ByRuleSampler(tok, rule)))
  mode = labelling.TaskMode(task=task, ground_truth=None, eval_problems=[], judging=False)
  forms = mode.forms(setup, problems[0])
  assert forms == [problems[0].prompt, *task.equivalents(problems[0].prompt,
                                                         task.parse_forms(equivalents))]
  curriculum = types.SimpleNamespace(next_difficulties=lambda: [4])
  rng = np.random.default_rng(0)
  got, cands, _ = mode.sample(setup, {"member": np.arange(2)}, curriculum, 1, jax.random.key(0), rng)
  assert [p.prompt for p in got] == [p.prompt for p in problems]  # the same draws either way
  assert cands.shape == (20, 2 * len(forms))
  scores = scoring.make_scorer("majority_vote", task)(cands)
  unanimous = (scores == 1.0).any(axis=1)
  inconsistent = np.array([int(p.prompt.split("+")[0][0]) % 2 == 1 for p in problems])
  assert inconsistent.any() and not inconsistent.all()
  np.testing.assert_array_equal(unanimous, ~inconsistent if wrong_on else True)
