"""The ground-truth ("human") data and the evaluation sets, as TFDS datasets.

One `GeneratorBasedBuilder` writes a task's problems to array_record files and
`tfds.data_source` reads them back by index, with no TensorFlow involved. The
builder is deterministic: its config (task, seed, difficulty ranges, sizes)
fixes every example, and that config is also its name, so changing any of them
builds a new dataset next to the old one instead of silently reusing it.

Splits:
  train  `train_size` problems, difficulties drawn uniformly from train_difficulties
  eval   `eval_per_difficulty` problems at each of eval_difficulties

Only this module imports tensorflow_datasets; the loop imports it when it
needs the data, so the model, sampler and trainer never touch it.
"""

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from selfimprove_jax.grading.tasks import Problem, get_task

_CHUNK = 4096  # problems per rng stream: any example can be regenerated from (seed, split, chunk)


@dataclasses.dataclass(kw_only=True)
class ProblemsConfig(tfds.core.BuilderConfig):
  task: str = "reverse_addition"
  seed: int = 0
  train_difficulties: tuple[int, int] = (1, 4)  # inclusive range
  train_size: int = 20_000
  eval_difficulties: tuple[int, int] = (1, 8)
  eval_per_difficulty: int = 128


def make_config(task: str, seed: int, train_difficulties, train_size: int, eval_difficulties,
                eval_per_difficulty: int) -> ProblemsConfig:
  (lo, hi), (elo, ehi) = train_difficulties, eval_difficulties
  name = f"{task}-s{seed}-train{lo}to{hi}x{train_size}-eval{elo}to{ehi}x{eval_per_difficulty}"
  return ProblemsConfig(name=name, task=task, seed=seed, train_difficulties=(lo, hi),
                        train_size=train_size, eval_difficulties=(elo, ehi),
                        eval_per_difficulty=eval_per_difficulty)


class SelfimproveProblems(tfds.core.GeneratorBasedBuilder):
  """Procedural problems with their ground-truth answers (see the module docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  BUILDER_CONFIGS = []  # configs are made on demand by `make_config`

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description="Procedural problems (prompt, ground-truth answer, difficulty).",
        features=tfds.features.FeaturesDict({
            "prompt": tfds.features.Text(),
            "answer": tfds.features.Text(),
            "difficulty": tfds.features.Scalar(np.int32),
        }))

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download: the problems are generated
    cfg = self.builder_config
    lo, hi = cfg.train_difficulties
    elo, ehi = cfg.eval_difficulties
    per = cfg.eval_per_difficulty
    return {
        # Training difficulties are drawn uniformly; eval has a block per difficulty.
        "train": self._generate_examples(1, cfg.train_size,
                                         lambda rng, idx: rng.integers(lo, hi + 1, len(idx))),
        "eval": self._generate_examples(2, (ehi - elo + 1) * per, lambda rng, idx: elo + idx // per),
    }

  def _generate_examples(self, split_id: int, size: int, difficulties_fn):
    cfg = self.builder_config
    task = get_task(cfg.task)
    generate = task.ground_truth if split_id == 1 else task.generate
    for start in range(0, size, _CHUNK):
      rng = np.random.default_rng([cfg.seed, split_id, start // _CHUNK])
      idx = np.arange(start, min(size, start + _CHUNK))
      for i, d in zip(idx, difficulties_fn(rng, idx)):
        p = generate(rng, int(d))
        yield int(i), {"prompt": p.prompt, "answer": p.answer, "difficulty": p.difficulty}


class Problems:
  """A read-only, indexable view of one split: `problems[[3, 9]]` -> list[Problem].

  Each record is read and decoded once, then kept: decoding costs about 0.2 ms a
  record in Python, which a training loop drawing a few hundred a step would pay
  every step (a tenth of a step on 2 cores). A problem is ~100 bytes, so even a
  million of them stay small next to the model.
  """

  def __init__(self, source):
    self._source = source
    self._decoded: dict[int, Problem] = {}

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, indices) -> list[Problem]:
    indices = [int(i) for i in indices]
    missing = sorted({i for i in indices if i not in self._decoded})
    if missing:
      for i, r in zip(missing, self._source.__getitems__(missing)):
        self._decoded[i] = Problem(r["prompt"].decode(), r["answer"].decode(), int(r["difficulty"]))
    return [self._decoded[i] for i in indices]

  def all(self) -> list[Problem]:
    return self[range(len(self))]


def load(config: ProblemsConfig, data_dir: str | Path) -> dict[str, Problems]:
  """Builds the dataset under data_dir if it is not there yet, then opens both splits."""
  builder = SelfimproveProblems(config=config, data_dir=str(data_dir), file_format="array_record")
  tfds.display_progress_bar(False)
  builder.download_and_prepare()
  name = f"{builder.name}/{config.name}"
  return {split: Problems(tfds.data_source(name, split=split, data_dir=str(data_dir),
                                           download=False))
          for split in ("train", "eval")}
