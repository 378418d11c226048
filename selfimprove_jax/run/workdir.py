"""The workdir as the run sees it: its files, its checkpoints, and the examples files.

  config.json, metrics.jsonl, train_log.jsonl, report.png
  generations/<g>/examples.jsonl   generation g's labels: every distinct sample, kept or not
  generations/<g>/judge.jsonl      the self-judge's lessons (with `self_judge`); generation
                                   0's, with judge.lessons="own_answers", hold its
                                   held-out lessons too
  generations/<g>/labelling.json   what the labelling stages measured, and their seconds
  checkpoints/                     (checkpoint.py)

Process 0 writes (`sharding.is_writer`); the other processes read after a barrier.
Each generation's labels are written once, whole, before training reads them back.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np

from selfimprove_jax.base import files, workdir_lock
from selfimprove_jax.base.modes import Labels
from selfimprove_jax.core import sharding
from selfimprove_jax.core.mixture import Example, kept_examples
from selfimprove_jax.run import checkpoint

# What training reads from an examples file; the other fields are for people.
_EXAMPLE_FIELDS = dict(generation=int, difficulty=int, prompt=str, completion=str, kept=bool)


def examples_file(g: int) -> Path:
  """Generation g's examples file, relative to the workdir."""
  return Path("generations") / f"{g:03d}" / "examples.jsonl"


@dataclasses.dataclass(eq=False)
class Workdir:
  path: Path
  checkpoints: checkpoint.Checkpoints
  rng: np.ndarray  # the root key's data: saved with every checkpoint, alike by one process or many
  like: object  # a train state of the run's shapes (generation 0's start): what restores fill
  lock: workdir_lock.WorkdirLock | None = None  # held by process 0 until close()
  # judge.weights="separate": generation checkpoints also hold the judge's own train state,
  # shaped like the models' (progress checkpoints never do: the judge trains after them).
  separate_judge: bool = False

  def close(self) -> None:
    """Waits for checkpoint writes and lets the next run into the workdir."""
    self.checkpoints.close()
    if self.lock:
      self.lock.release()

  def arrays(self, train_state, judge=None) -> dict:
    """What a checkpoint holds as arrays: the train state and the root key, and in a
    generation checkpoint of a run with a separate judge, the judge's train state."""
    return dict(train=train_state, rng=self.rng) | ({"judge": judge} if judge is not None else {})

  def restore_generation(self, g: int):
    """(train state, meta) saved after generation g."""
    train, _, meta = self.restore_generation_and_judge(g)
    return train, meta

  def restore_generation_and_judge(self, g: int):
    """(train state, the separate judge's train state or None, meta) saved after generation g."""
    like = self.arrays(self.like, self.like if self.separate_judge else None)
    arrays, meta = self.checkpoints.restore_generation(g, like=like)
    return arrays["train"], arrays.get("judge"), meta

  def restore_progress(self, g: int, step: int):
    """(train state, meta) saved after step `step` of generation g's training."""
    arrays, meta = self.checkpoints.restore_progress(g, step, like=self.arrays(self.like))
    return arrays["train"], meta

  def write_labels(self, g: int, labels: Labels) -> None:
    """Generation g's examples file (after the judge's lessons, if any) and labelling.json."""
    directory = self.path / examples_file(g).parent
    if sharding.is_writer():  # every process computed the same rows; one writes them
      directory.mkdir(parents=True, exist_ok=True)
      if labels.lessons is not None:  # first: the examples file marks the labels as written
        files.write_jsonl(directory / "judge.jsonl", labels.lessons)
      files.write_jsonl(directory / "examples.jsonl", labels.rows)
      files.atomic_write(directory / "labelling.json",
                         json.dumps(dict(labels.stats, seconds=labels.seconds), indent=1))
    sharding.sync(f"labels {g}")

  def write_rows(self, relative: str, rows: list[dict]) -> None:
    """A JSON-lines file of the run's (process 0 writes it; the others wait for it)."""
    if sharding.is_writer():
      (self.path / relative).parent.mkdir(parents=True, exist_ok=True)
      files.write_jsonl(self.path / relative, rows)
    sharding.sync(f"write {relative}")

  def label_stats(self, g: int) -> tuple[dict, dict]:
    """(stats, seconds) that generation g's labelling wrote to its labelling.json."""
    stats = files.read_json(self.path / examples_file(g).parent / "labelling.json")
    return stats, stats.pop("seconds")

  def read_labels(self, relative: str) -> list[Example]:
    """The kept labels of one examples file (or judge.jsonl), in file order."""
    return kept_examples(files.read_jsonl(self.path / relative, _EXAMPLE_FIELDS))
