"""Ground-truth evaluation on a fake sampler: which greedy answers count as right."""

import numpy as np
import pytest

from selfimprove_jax.core.sampling import SampleOutput
from selfimprove_jax.core.tokenizer import CharTokenizer, EOS, PAD
from selfimprove_jax.grading import evaluate
from selfimprove_jax.grading.tasks import Problem, get_task

TOK = CharTokenizer()
TASK = get_task("reverse_addition")


class FakeSampler:
  """Answers each prompt with a scripted completion; `None` for EOS means cut off."""

  def __init__(self, script: dict[str, tuple[str, bool]], width: int = 8):
    self.script, self.width, self.seen = script, width, []

  def __call__(self, params, prompts, key):
    del params, key
    rows, done = np.full((len(prompts), self.width), PAD, np.int32), []
    for r, tokens in enumerate(prompts):
      prompt = TOK.decode(tokens)
      self.seen.append((tokens[0], prompt))
      text, ended = self.script[prompt]
      ids = TOK.encode(text, eos=ended)
      rows[r, :len(ids)] = ids
      done.append(ended)
    lengths = np.array([int((row != PAD).sum()) for row in rows], np.int32)
    zeros = np.zeros(rows.shape, np.float32)
    return SampleOutput(tokens=rows, logprobs=zeros, entropies=zeros, lengths=lengths,
                        done=np.array(done))


PROBLEMS = [
    Problem("1+2=", "3", 1),  # right, ended with EOS
    Problem("4+4=", "8", 1),  # wrong
    Problem("21+31=", "52", 2),  # right digits, cut off before EOS: not an answer
    Problem("55+55=", "011", 2),  # right, ended
    Problem("12+12=", "24", 2),  # right, then more digits: wrong
    Problem("33+33=", "66", 2),  # empty answer
]
SCRIPT = {"1+2=": ("3", True), "4+4=": ("9", True), "21+31=": ("52", False),
          "55+55=": ("011", True), "12+12=": ("240", True), "33+33=": ("", True)}


def test_an_answer_is_right_only_when_exact_and_ended():
  sampler = FakeSampler(SCRIPT)
  graded = evaluate.grade(sampler, None, TOK, TASK, PROBLEMS, key=None)
  assert [g.problem for g in graded] == PROBLEMS
  assert [g.completion for g in graded] == ["3", "9", "52", "011", "240", ""]
  assert [g.correct for g in graded] == [True, False, False, True, False, False]
  # The sampler saw each prompt once, after BOS, in order.
  assert sampler.seen == [(TOK.bos_id, p.prompt) for p in PROBLEMS]


def test_accuracy_is_grouped_by_difficulty():
  graded = evaluate.grade(FakeSampler(SCRIPT), None, TOK, TASK, PROBLEMS, key=None)
  accuracy = evaluate.accuracy_by_difficulty(graded)
  assert list(accuracy) == [1, 2]  # sorted
  assert accuracy[1] == pytest.approx(1 / 2)
  assert accuracy[2] == pytest.approx(1 / 4)


def test_a_completion_is_read_up_to_its_eos():
  # Tokens after EOS (a sampler pads with PAD, but anything there) do not count.
  out = FakeSampler({"1+2=": ("3", True)})(None, [TOK.encode("1+2=", bos=True)], None)
  out.tokens[0, 2:] = TOK.encode("77")[0]
  assert out.tokens[0, 1] == EOS
  sampler = lambda params, prompts, key: out
  [graded] = evaluate.grade(sampler, None, TOK, TASK, [Problem("1+2=", "3", 1)], key=None)
  assert graded.completion == "3" and graded.correct
