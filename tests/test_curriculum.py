import pytest

from selfimprove_jax.grading import curriculum
from selfimprove_jax.grading.curriculum import Curriculum


def test_labels_just_past_the_frontier_and_advances_only_when_the_gate_passes():
  c = Curriculum(frontier=4, window=2)
  assert c.next_difficulties() == [5, 6]
  assert c.advance(False) == c
  assert c.advance(True).frontier == 5 and c.advance(True).next_difficulties() == [6, 7]


@pytest.mark.parametrize("gate, consistency, kept, passes", [
    ("self_consistency", 0.6, 0.0, True),
    ("self_consistency", 0.4, 1.0, False),
    ("kept_fraction", 0.0, 0.5, True),
    ("kept_fraction", 1.0, 0.49, False),
    ("always", 0.0, 0.0, True),
])
def test_gate(gate, consistency, kept, passes):
  assert curriculum.gate_passes(gate, 0.5, consistency, kept) is passes


def test_unknown_gate_names_the_field():
  with pytest.raises(ValueError, match=r"^curriculum.gate must be one of \['self_consistency'"):
    curriculum.gate_value("oracle", 1.0, 1.0)
