import numpy as np
import pytest

from selfimprove_jax import tasks
from selfimprove_jax.tokenizer import CharTokenizer


def solve(name, prompt):
  """An independent solver, parsing the prompt the way a reader would."""
  body = prompt[:-1]
  if name == "reverse_addition":
    a, b = (int(x[::-1]) for x in body.split("+"))
    return str(a + b)[::-1]
  if name == "addition":
    a, b = (int(x) for x in body.split("+"))
    return str(a + b)
  if name == "multiplication":
    a, b = body.split("*")
    return str(int(a[::-1]) * int(b))[::-1]
  if name == "copy":
    return body
  return body[::-1]


@pytest.mark.parametrize("name", sorted(tasks.TASKS))
def test_answers_are_right_and_difficulty_is_the_length(name):
  task = tasks.get_task(name)
  rng = np.random.default_rng(0)
  tok = CharTokenizer()
  for d in (1, 2, 5, 9, 19, 100):  # past 18 digits, beyond int64
    for p in task.batch(rng, [d] * 20):
      assert p.difficulty == d
      assert p.answer == solve(name, p.prompt)
      assert task.verify(p, p.answer) and not task.verify(p, p.answer + "0")
      assert tok.decode(tok.encode(p.prompt + p.answer)) == p.prompt + p.answer
      assert len(p.answer) <= d + 1
      lo, hi = task.answer_lengths(p.prompt)
      assert lo <= len(p.answer) <= hi and hi - lo <= 1


def test_reverse_addition_operands_have_exactly_d_digits():
  rng = np.random.default_rng(1)
  for p in tasks.get_task("reverse_addition").batch(rng, [4] * 50):
    a, b = p.prompt[:-1].split("+")
    assert len(a) == len(b) == 4 and a[-1] != "0" and b[-1] != "0"


def test_same_seed_same_problems():
  task = tasks.get_task("addition")
  a = task.batch(np.random.default_rng(7), [3] * 10)
  b = task.batch(np.random.default_rng(7), [3] * 10)
  assert a == b


def test_unknown_task_names_the_choices():
  with pytest.raises(ValueError, match=r"task must be one of \[.*'reverse_addition'.*\], got 'sum'"):
    tasks.get_task("sum")


def test_tokenizer_refuses_unknown_characters():
  with pytest.raises(ValueError, match="not in the tokenizer alphabet"):
    CharTokenizer().encode("12#3")
