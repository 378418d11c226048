"""What a generation trains on: examples, the sources they are drawn from, and the data policy.

The data policy decides what generation g trains on:
  accumulate  the ground truth plus every generation's kept labels so far, drawn
              uniformly from their union (Gerstgrasser et al. 2024: no collapse)
  replace     only generation g's kept labels (Shumailov et al. 2024: collapse)
  mix         generation g's kept labels, with ground truth making up a fixed
              fraction `mix_fraction` of every batch
  newest      generation g's kept labels are 1 - `mix_fraction` of every batch; ground
              truth and the older generations' labels share the rest evenly by
              difficulty (Lee et al. 2025's schedule, at mix_fraction 0.5), and all of
              it when generation g kept nothing
"""

import dataclasses
from collections.abc import Sequence

import numpy as np

POLICIES = ("accumulate", "replace", "mix", "newest")


@dataclasses.dataclass(frozen=True)
class Example:
  prompt: str
  completion: str
  difficulty: int
  generation: int  # where it came from: 0 is ground truth, g > 0 a kept self-label


def kept_examples(rows) -> list[Example]:
  """The kept rows of an examples file or judge.jsonl (dicts), as examples, in order."""
  return [Example(r["prompt"], r["completion"], r["difficulty"], r["generation"])
          for r in rows if r["kept"]]


@dataclasses.dataclass(frozen=True)
class Source:
  """Examples to draw from: ground truth by index from disk, or kept labels in memory."""
  name: str
  size: int
  get: object  # indices -> list[Example]
  longest: int  # most characters of prompt + completion in any example (sets the batch width)
  difficulties: int = 1  # how many difficulties its examples span (the `newest` policy's weight)

  @classmethod
  def from_list(cls, name: str, examples: Sequence[Example]) -> "Source":
    longest = max((len(x.prompt) + len(x.completion) for x in examples), default=0)
    return cls(name, len(examples), lambda idx: [examples[i] for i in idx], longest,
               max(1, len({x.difficulty for x in examples})))


@dataclasses.dataclass(frozen=True)
class Mixture:
  """Sources and the probability that a batch row comes from each."""
  sources: tuple[Source, ...]
  weights: tuple[float, ...]

  @property
  def size(self) -> int:
    return sum(s.size for s in self.sources)

  def draw(self, rng: np.random.Generator, batch_size: int) -> list[Example]:
    """`batch_size` examples, each from a source picked by weight, uniform inside it."""
    which = rng.choice(len(self.sources), batch_size, p=np.asarray(self.weights))
    rows: list[Example | None] = [None] * batch_size
    for s, source in enumerate(self.sources):
      slots = np.nonzero(which == s)[0]
      for slot, ex in zip(slots, source.get(rng.integers(0, source.size, len(slots)))):
        rows[slot] = ex
    return rows


def training_mixture(policy: str, ground_truth: Source, kept: Sequence[Source],
                     mix_fraction: float) -> Mixture | None:
  """What the next generation trains on; `kept[i]` holds generation i+1's labels.

  None when the policy leaves nothing to train on (e.g. `replace` after a
  generation that kept no label): the generation then keeps its weights.
  """
  if policy not in POLICIES:
    raise ValueError(f"data_policy must be one of {list(POLICIES)}, got {policy!r}")
  if policy == "accumulate":
    sources = [s for s in (ground_truth, *kept) if s.size]
    total = sum(s.size for s in sources)
    return Mixture(tuple(sources), tuple(s.size / total for s in sources))
  latest = kept[-1] if kept else None
  if policy == "replace":
    return Mixture((latest,), (1.0,)) if latest and latest.size else None
  older = [s for s in (ground_truth, *kept[:-1]) if s.size]
  total = sum(s.difficulties for s in older)
  by_difficulty = [s.difficulties / total for s in older]
  if not (latest and latest.size):  # mix and newest, before any label or after none was kept
    if policy == "mix":
      return Mixture((ground_truth,), (1.0,))
    # newest: what the older generations taught stays, by difficulty, as it would beside
    # new labels (ground truth alone would unlearn the lengths they reached).
    return Mixture(tuple(older), tuple(by_difficulty))
  if policy == "mix":
    return Mixture((ground_truth, latest), (mix_fraction, 1.0 - mix_fraction))
  return Mixture((*older, latest), (*(mix_fraction * w for w in by_difficulty), 1.0 - mix_fraction))


def with_share(mixture: Mixture | None, source: Source, fraction: float) -> Mixture | None:
  """`mixture` with `source` added as `fraction` of every batch (all of it if mixture is None)."""
  if not source.size:
    return mixture
  if mixture is None:
    return Mixture((source,), (1.0,))
  return Mixture(mixture.sources + (source,),
                 tuple(w * (1 - fraction) for w in mixture.weights) + (fraction,))


def concat(name: str, sources: Sequence[Source]) -> Source:
  """One source holding every example of `sources`, in order (index i of the second
  source is index sources[0].size + i)."""
  starts = np.cumsum([0] + [s.size for s in sources])
  def get(indices):
    out = []
    for i in indices:
      k = int(np.searchsorted(starts, i, side="right")) - 1
      out.extend(sources[k].get([int(i) - int(starts[k])]))
    return out
  return Source(name, int(starts[-1]), get, max(s.longest for s in sources),
                max(s.difficulties for s in sources))
