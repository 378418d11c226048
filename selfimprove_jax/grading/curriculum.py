"""The curriculum: which difficulty each generation labels, and when to move on.

The frontier is the hardest difficulty the model has been trained on: the top
of the ground-truth range at first, then every difficulty whose self-labels
passed the gate. Each generation labels problems just past it (`window`
difficulties: frontier+1 .. frontier+window). The frontier advances by one when
the gate passes on this generation's samples; otherwise the next generation
labels the same difficulties again, from a model that has now trained on the
labels it did trust.

The gate never looks at ground truth:
  self_consistency  mean share of samples agreeing with each prompt's most common answer
  kept_fraction     fraction of prompts with at least one kept label
  always            advance every generation (Lee et al.'s schedule)
"""

import dataclasses

GATES = ("self_consistency", "kept_fraction", "always")


@dataclasses.dataclass(frozen=True)
class Curriculum:
  frontier: int  # hardest difficulty trained on so far
  window: int = 1  # difficulties labelled per generation, starting at frontier+1

  def next_difficulties(self) -> list[int]:
    return list(range(self.frontier + 1, self.frontier + 1 + self.window))

  def advance(self, passed: bool) -> "Curriculum":
    return dataclasses.replace(self, frontier=self.frontier + int(passed))


def gate_value(kind: str, self_consistency: float, kept_fraction: float) -> float:
  """The number the gate compares with its threshold (1.0 for `always`)."""
  if kind == "self_consistency":
    return self_consistency
  if kind == "kept_fraction":
    return kept_fraction
  if kind == "always":
    return 1.0
  raise ValueError(f"curriculum.gate must be one of {list(GATES)}, got {kind!r}")


def gate_passes(kind: str, threshold: float, self_consistency: float,
                kept_fraction: float) -> bool:
  return gate_value(kind, self_consistency, kept_fraction) >= threshold
