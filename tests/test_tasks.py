import numpy as np
import pytest

from selfimprove_jax.core.tokenizer import CharTokenizer
from selfimprove_jax.grading import tasks


def solve(name, prompt):
  """An independent solver, parsing the prompt the way a reader would."""
  body = prompt[:-1]
  if name == "reverse_addition":
    a, b = (int(x[::-1]) for x in body.split("+"))
    return str(a + b)[::-1]
  if name == "padded_reverse_addition":  # always one digit longer than the longer operand
    a, b = body.split("+")
    total = str(int(a[::-1]) + int(b[::-1]))[::-1]
    return total + "0" * (max(len(a), len(b)) + 1 - len(total))
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


def test_padded_reverse_addition_trains_on_mixed_operand_lengths_and_is_asked_equal_ones():
  task, rng = tasks.get_task("padded_reverse_addition"), np.random.default_rng(2)
  asked = [task.generate(rng, 5) for _ in range(50)]
  assert {tuple(map(len, p.prompt[:-1].split("+"))) for p in asked} == {(5, 5)}
  taught = [task.ground_truth(rng, 5) for _ in range(400)]
  lengths = {tuple(map(len, p.prompt[:-1].split("+"))) for p in taught}
  assert lengths == {(5, k) for k in range(1, 6)} | {(k, 5) for k in range(1, 6)}
  for p in asked + taught:
    assert p.difficulty == 5 and len(p.answer) == 6 == task.answer_lengths(p.prompt)[0]
    assert p.answer == solve("padded_reverse_addition", p.prompt) == task.parse(p.prompt).answer
  # Without a carry out of the top digit the padding is a trailing zero: 21 + 3 = 24.
  assert task.parse("12+3=").answer == "420"
  # Tasks without a wider ground truth teach what they ask.
  plain = tasks.get_task("reverse_addition")
  assert plain.ground_truth(np.random.default_rng(3), 4) == plain.generate(np.random.default_rng(3), 4)


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


@pytest.mark.parametrize("name", sorted(tasks.TASKS))
def test_parse_recovers_the_problem_behind_a_prompt(name):
  task = tasks.get_task(name)
  rng = np.random.default_rng(1)
  for d in (1, 3, 30):
    problem = task.generate(rng, d)
    assert task.parse(problem.prompt) == problem
    assert task.parse(problem.prompt).answer == solve(name, problem.prompt)


@pytest.mark.parametrize("name, prompt", [
    ("reverse_addition", "12+34"), ("reverse_addition", "1a+2="), ("addition", "+3="),
    ("multiplication", "12*34="), ("copy", "abc>"), ("reversal", "ab1>"), ("reversal", "")])
def test_parse_refuses_prompts_of_another_shape(name, prompt):
  with pytest.raises(ValueError, match="is not a prompt of this task"):
    tasks.get_task(name).parse(prompt)


def _one_edit_apart(a: str, b: str) -> bool:
  """b is a with one symbol changed, dropped or doubled, or two neighbours swapped."""
  if len(a) == len(b):
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    swap = len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    return len(diff) == 1 or swap
  short, long = sorted((a, b), key=len)
  return len(long) == len(short) + 1 and any(long[:i] + long[i + 1:] == short for i in range(len(long)))


@pytest.mark.parametrize("name", sorted(tasks.TASKS))
def test_near_misses_are_wrong_close_and_in_the_tasks_symbols(name):
  task = tasks.get_task(name)
  rng = np.random.default_rng(2)
  kinds = set()
  for _ in range(300):
    problem = task.generate(rng, int(rng.integers(1, 6)))
    miss = task.near_miss(problem.answer, rng)
    assert not task.verify(problem, miss)
    assert _one_edit_apart(problem.answer, miss), (problem.answer, miss)
    assert set(miss) <= set(task.symbols)
    kinds.add(len(miss) - len(problem.answer))
  assert kinds == {-1, 0, 1}  # changed or swapped, dropped, doubled


@pytest.mark.parametrize("name", sorted(tasks.TASKS))
def test_equivalent_prompts_have_the_same_answer_and_only_the_sums_have_them(name):
  task = tasks.get_task(name)
  sums = name in ("reverse_addition", "padded_reverse_addition", "addition")
  assert task.equivalent_forms == (("swapped", "shifted") if sums else ())
  rng = np.random.default_rng(2)
  for d in (1, 4, 25):
    problem = task.generate(rng, d)
    others = task.equivalents(problem.prompt, list(task.equivalent_forms))
    assert len(others) == 2 * sums
    assert all(solve(name, q) == problem.answer for q in others)


@pytest.mark.parametrize("name", ["reverse_addition", "padded_reverse_addition", "addition"])
def test_a_shifted_sum_keeps_each_operands_length_and_changes_its_columns(name):
  task, rng = tasks.get_task(name), np.random.default_rng(3)
  read = (lambda s: int(s[::-1])) if name != "addition" else int
  top = (lambda s: s[-1]) if name != "addition" else (lambda s: s[0])  # most significant
  top_changed = 0
  for _ in range(200):
    problem = task.generate(rng, int(rng.integers(2, 30)))
    a, b = problem.prompt[:-1].split("+")
    shifted, = task.equivalents(problem.prompt, ["shifted"])
    assert task.equivalents(problem.prompt, ["shifted"]) == [shifted]  # the prompt decides it
    a2, b2 = shifted[:-1].split("+")
    assert (len(a2), len(b2)) == (len(a), len(b)) and a2 != a and "-" not in shifted
    assert read(a2) + read(b2) == read(a) + read(b)
    assert solve(name, shifted) == problem.answer
    top_changed += top(a2) != top(a)
  assert top_changed > 120  # the top column mostly differs, where b+a keeps it
  # Where no other split keeps both lengths, the form is the prompt itself.
  assert task.equivalents("9+9=", ["shifted"]) == ["9+9="]


def test_equivalent_forms_are_named_and_a_wrong_name_says_which_exist():
  task = tasks.get_task("reverse_addition")
  assert task.parse_forms("") == []
  assert task.parse_forms("shifted, swapped") == ["shifted", "swapped"]
  for bad in ("swap", "swapped,swapped"):
    with pytest.raises(ValueError, match=r"^sample.equivalents must name distinct equivalent forms "
                                         r"of task 'reverse_addition' joined by ',' \(this task's "
                                         r"are \['swapped', 'shifted'\]\), got"):
      task.parse_forms(bad)
  with pytest.raises(ValueError, match=r"of task 'reversal' .*\(it has none\), got 'swapped'$"):
    tasks.get_task("reversal").parse_forms("swapped")
