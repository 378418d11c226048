"""A mode: what the loop asks of task mode and of text mode, through one interface.

The loop (loop.py) is the same for both; everything that differs lives behind
one object, which also holds the mode's world (the task and its problems, or the
human text):

  ground_truth                 the human data generation 0 trains on (a Source)
  curriculum(setup, frontier)  the difficulties to label next (None in text mode)
  start(setup)                 once, before the first generation of a run
  label(setup, params, curriculum, g, key, rng) -> Labels
                               generation g's examples file, from the model's samples
  lessons(setup, label_files)  the self-judge's training examples (a Source), or None
  lessons_join_at(setup, g)    the step of generation g at which the judge's lessons from
                               the models' own answers are made, `own_answers(setup,
                               params, key)` -> (Source, stats), and join; or None
  batches(setup, mixture)      a function rng -> training Batch drawn from `mixture`
  evaluate(setup, params, curriculum, stats, g, key) -> (metrics, curriculum)
                               measurement against ground truth (or the human text), and
                               the curriculum for the next generation
  report(setup, history)       the table printed and the figure drawn after a generation

`setup` is the run (experiment.Setup): its config, `devices` (core/devices.py) and
`workdir` (run/workdir.py). Task mode (problems with answers, scored and filtered)
is `labelling.TaskMode`; text mode (plain text, for collapse experiments) is
`lm.TextMode`.
"""

import dataclasses
from typing import Protocol


@dataclasses.dataclass(frozen=True)
class Labels:
  """One generation's labelling, as the loop writes it down."""
  rows: list[dict]  # the examples file: every distinct sample, kept or not
  lessons: list[dict] | None  # the self-judge's lessons (task mode with `self_judge`)
  stats: dict  # labelling.json: what the stages measured
  seconds: dict  # stage -> seconds


class Mode(Protocol):
  ground_truth: object
  def curriculum(self, setup, frontier): ...
  def start(self, setup) -> None: ...
  def label(self, setup, params, curriculum, g: int, key, rng) -> Labels: ...
  def lessons(self, setup, label_files: tuple[str, ...]): ...
  def lessons_join_at(self, setup, g: int) -> int | None: ...
  def early_answer_steps(self, setup, g: int) -> tuple[int, ...]: ...
  def early_answers(self, setup, params, key, step: int) -> None: ...
  def batches(self, setup, mixture): ...
  def evaluate(self, setup, params, curriculum, stats: dict, g: int, key): ...
  def report(self, setup, history: list[dict]) -> None: ...
