"""Everything fixed for one run of the loop, checked before any compute.

`build(config, workdir)` validates every config field (config_check.py: a bad one
is a one-line error naming it), then takes the workdir, builds or opens the TFDS
data and initializes the ensemble. The `Setup` it returns is the run in three parts:
`devices` (core/devices.py: mesh, model structure, compiled programs), `workdir`
(workdir.py: files, checkpoints, the lock) and `mode` (the task or the human text,
base/modes.py). The loop's stages take (setup, state, key) and nothing hidden.
"""

import dataclasses
import json
import os
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np

from selfimprove_jax.base import config_files
from selfimprove_jax.base import files, workdir_lock
from selfimprove_jax.base.errors import UserError
from selfimprove_jax.core import sampling, sharding
from selfimprove_jax.core import model as model_lib
from selfimprove_jax.core import train as train_lib
from selfimprove_jax.core.devices import Devices
from selfimprove_jax.core.mixture import Example, Source
from selfimprove_jax.grading import labelling, scoring
from selfimprove_jax.grading import ratings as ratings_lib
from selfimprove_jax.grading.tasks import get_task
from selfimprove_jax.text import lm
from selfimprove_jax.run import checkpoint
from selfimprove_jax.run.workdir import Workdir
from selfimprove_jax.run.config_check import check, mode, tokenizer

# Fields a resumed run may change; any other difference means another experiment.
_RESUMABLE_CHANGES = ("generations", "time_budget_minutes", "train.log_every",
                      "train.max_nonfinite_steps", "checkpoint.every_steps", "model.attention")


def _flat(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def _resolved(flat: dict) -> dict:
  """`flat` with each unset generation_optimizer field (None, or absent from a run saved
  before it existed) as the `optimizer` value it stands for: runs are compared by the
  settings their generations trained with."""
  out = dict(flat)
  for f in dataclasses.fields(train_lib.OptimizerConfig):
    if out.get(f"generation_optimizer.{f.name}") is None and f"optimizer.{f.name}" in out:
      out[f"generation_optimizer.{f.name}"] = out[f"optimizer.{f.name}"]
  return out


def saved_config(workdir: Path) -> ml_collections.ConfigDict:
  """The config a run saved (config.json) over the defaults: a field added since the run
  began reads as its default, which keeps the behaviour the run had before it existed."""
  def merged(defaults: dict, saved: dict) -> dict:
    return defaults | {k: merged(defaults[k], v) if isinstance(v, dict)
                       and isinstance(defaults.get(k), dict) else v for k, v in saved.items()}
  defaults = json.loads(config_files.load("default").to_json_best_effort())
  return ml_collections.ConfigDict(merged(defaults, files.read_json(workdir / "config.json")))


def refuse_other_experiment(config: ml_collections.ConfigDict, workdir: Path) -> None:
  """A workdir holds one experiment: resuming it with other settings is refused (read only)."""
  path = workdir / "config.json"
  if not path.exists():
    return
  current = _resolved(_flat(json.loads(config.to_json_best_effort())))
  saved = _resolved(_flat(files.read_json(path)))
  if isinstance(saved.get("sample.equivalents"), bool):  # before forms had names: b+a or none
    saved["sample.equivalents"] = "swapped" if saved["sample.equivalents"] else ""
  # A field added since the run began is no difference at its default, which keeps the
  # behaviour the run had before the field existed.
  defaults = _flat(json.loads(config_files.load("default").to_json_best_effort()))
  for field, value in current.items():
    if field not in saved and field in defaults and value == defaults[field]:
      continue
    if field not in _RESUMABLE_CHANGES and saved.get(field) != value:
      raise ValueError(f"workdir {workdir} holds a run with {field}={saved.get(field)!r}, "
                       f"not {value!r}; use a new --workdir, the original settings, or "
                       "--start_over (which keeps the old run, renamed)")


def check_same_experiment(config: ml_collections.ConfigDict, workdir: Path) -> None:
  """refuse_other_experiment, then (process 0) the settings saved, e.g. a raised `generations`."""
  refuse_other_experiment(config, workdir)
  if sharding.is_writer():  # the others see it once process 0 wrote it
    files.atomic_write(workdir / "config.json",
                       json.dumps(json.loads(config.to_json_best_effort()), indent=1))


def set_aside_workdir(workdir: str | Path) -> Path | None:
  """Renames an existing, non-empty workdir out of the way (never deletes it); returns its
  new name. A workdir that a live run holds is refused (workdir_lock.Busy)."""
  workdir = Path(workdir).resolve()
  if not workdir.is_dir() or not any(workdir.iterdir()):
    return None
  lock = workdir_lock.acquire(workdir)  # held while renaming: no run can start in between
  try:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = files.free_name(workdir.with_name(f"{workdir.name}.replaced-{stamp}"))
    os.replace(workdir, target)
  finally:
    lock.release()
  return target


def optimizer_config(config, generation: int) -> train_lib.OptimizerConfig:
  """Generation 0 trains `train.steps` with `optimizer`; each later one trains
  `train.steps_per_generation`, with `generation_optimizer`'s fields that are set (not
  None) in place of those."""
  fields = dict(config.optimizer)
  if generation == 0:
    steps = train_steps(config, 0)
  else:
    steps = config.train.steps_per_generation
    later = config.get("generation_optimizer") or {}
    fields.update({name: value for name, value in later.items() if value is not None})
  return train_lib.OptimizerConfig(total_steps=steps, **fields)


def train_steps(config, generation: int) -> int:
  """Generation 0's steps: train.steps, and judge.steps more when the judge learns from
  the models' own answers (labelling.TaskMode.lessons_join_at); later: steps_per_generation."""
  if generation:
    return config.train.steps_per_generation
  own = (judging(config) and config.judge.lessons == "own_answers"
         and config.judge.weights == "shared")
  return config.train.steps + (config.judge.steps if own else 0)


def judging(config) -> bool:
  """Whether the run's scorer has the self-judge (task mode only)."""
  return mode(config) == "task" and "self_judge" in scoring.parse(config.scorer)


def separate_judge(config) -> bool:
  """Whether the self-judge has weights of its own (judge.weights="separate")."""
  return judging(config) and config.judge.weights == "separate"


def judge_steps(config, generation: int) -> int:
  """The separate judge's steps in a generation: judge.steps in generation 0, and
  judge.later_steps (0: judge.steps again) in each later one."""
  return config.judge.steps if generation == 0 else (config.judge.later_steps
                                                      or config.judge.steps)


def judge_optimizer(config, generation: int):
  """The separate judge's optimizer over its steps in a generation: the later
  generations' settings (`generation_optimizer`), as it fine-tunes a trained model."""
  later = optimizer_config(config, 1)
  return train_lib.make_optimizer(dataclasses.replace(
      later, total_steps=judge_steps(config, generation)))


def optimizer(config, generation: int):
  return train_lib.make_optimizer(optimizer_config(config, generation))


@dataclasses.dataclass(eq=False)
class Setup:
  """One run: its settings, and the three parts that do its work. `devices` holds the
  mesh and the compiled programs, `workdir` the files and checkpoints, and `mode` the
  world the labels come from (a task and its problems, or the human text)."""
  config: ml_collections.ConfigDict
  devices: Devices
  workdir: Workdir
  mode: labelling.TaskMode | lm.TextMode  # what the loop asks of the mode (modes.py)
  root_key: jax.Array  # every stage's key is folded in from it (loop.py)
  initial_train: train_lib.TrainState  # generation 0's starting point, [E, ...] leaves
  sample_method: object  # sampling.Greedy / Temperature / TopK / TopP, from config.sample

  def close(self) -> None:
    self.workdir.close()

  def optimizer(self, generation: int):
    return optimizer(self.config, generation)

  def train_step(self, generation: int):
    """Generation 0 and the later ones differ in schedule length, so in their step."""
    return self.devices.train_step(f"generation {min(generation, 1)}", self.optimizer(generation),
                                   self.own_batches)

  @property
  def separate_judge(self) -> bool:
    return separate_judge(self.config)

  def judge_step(self, generation: int):
    """The separate judge's train step in a generation (its own optimizer, the models'
    program)."""
    steps = judge_steps(self.config, generation)
    return self.devices.train_step(f"judge{steps}", judge_optimizer(self.config, generation),
                                   self.own_batches)

  @property
  def own_batches(self) -> bool:
    """Whether each ensemble member trains on batches of its own (task mode: a text
    run has one model, and no such field)."""
    return self.config.ensemble_size > 1 and bool(self.config.train.own_batches)


def _task_mode(config, data_dir: Path, ratings) -> labelling.TaskMode:
  from selfimprove_jax.grading import datasets  # tensorflow_datasets loads here, not with the package
  task = get_task(config.task)
  dataset = datasets.make_config(
      config.task, config.seed, (config.data.min_difficulty, config.data.max_difficulty),
      config.data.train_size, (1, config.eval.max_difficulty), config.eval.per_difficulty)
  splits = sharding.process_0_first(lambda: datasets.load(dataset, data_dir), "dataset")
  problems = splits["train"]
  example = task.generate(np.random.default_rng(0), config.data.max_difficulty)
  longest = len(example.prompt) + task.answer_lengths(example.prompt)[1]
  get = lambda idx: [Example(p.prompt, p.answer, p.difficulty, 0) for p in problems[idx]]
  return labelling.TaskMode(
      task=task, ground_truth=Source("ground_truth", len(problems), get, longest,
                                     config.data.max_difficulty - config.data.min_difficulty + 1),
      eval_problems=splits["eval"].all(), ratings=ratings,
      judging=judging(config))


def _text_mode(config, data_dir: Path) -> lm.TextMode:
  try:
    return lm.TextMode(sharding.process_0_first(lambda: lm.prepare(config, data_dir), "corpus"))
  except ValueError as e:  # a corpus that cannot be found, read or built
    raise UserError(str(e)) from None


def build(config: ml_collections.ConfigDict, workdir: str | Path) -> Setup:
  mesh = sharding.make_mesh()
  workdir = Path(workdir).resolve()
  ratings = None
  try:
    check(config, mesh)
    if mode(config) == "task" and config.feedback.file:  # read before the workdir is touched
      ratings = ratings_lib.load(config.feedback.file, get_task(config.task), tokenizer(config))
    if workdir.exists() and not workdir.is_dir():
      raise ValueError(f"--workdir {workdir} exists and is not a directory")
    workdir.mkdir(parents=True, exist_ok=True)
    # Before the lock file is made: a workdir of another experiment is left as it was.
    refuse_other_experiment(config, workdir)
  except ValueError as e:
    raise UserError(str(e)) from None
  lock = lock_workdir(workdir)  # the comparison is repeated under it, before config.json is written
  try:
    return _build_in(config, workdir, mesh, ratings, lock)
  except BaseException:
    if lock:
      lock.release()
    raise


def lock_workdir(workdir: Path) -> workdir_lock.WorkdirLock | None:
  """Process 0 locks the workdir for the run, before anything is written; every
  process stops with one line if another run holds it."""
  lock, busy = None, ""
  if sharding.is_writer():
    try:
      lock = workdir_lock.acquire(workdir)
    except workdir_lock.Busy as e:
      busy = str(e)
  if not sharding.process_0_says(not busy):
    raise workdir_lock.Busy(busy or f"--workdir {workdir} is in use by another run (process 0 "
                            "names it)")
  return lock


def _build_in(config, workdir: Path, mesh, ratings, lock) -> "Setup":
  """The rest of build, in a workdir this run holds."""
  try:
    sharding.process_0_first(lambda: check_same_experiment(config, workdir), "config.json")
    # Every process reads what process 0 writes (datasets, labels, checkpoints).
    if not sharding.all_processes_see(workdir / "config.json"):
      raise ValueError(f"--workdir {workdir} is not shared: process 0 wrote config.json there "
                       "but another process cannot see it; give every process the same "
                       "directory on shared storage (NFS, a mounted bucket)")
  except ValueError as e:
    raise UserError(str(e)) from None

  data_dir = Path(config.data.dir or workdir / "tfds")
  run_mode = _text_mode(config, data_dir) if mode(config) == "lm" else _task_mode(
      config, data_dir, ratings)
  tok = tokenizer(config)
  model_cfg = model_lib.ModelConfig(vocab_size=tok.vocab_size, **config.model)
  # Member e of the ensemble starts from its own seed; member 0 from `seed` itself.
  seeds = [config.seed + 1_000_003 * e for e in range(config.ensemble_size)]
  graphdef, initial = train_lib.init_ensemble(model_cfg, seeds, optimizer(config, 0))
  initial = sharding.replicate(initial, mesh)
  root_key = jax.random.key(config.seed)
  # The key as plain numbers: a host array, saved alike by one process or many.
  rundir = Workdir(workdir, checkpoint.Checkpoints(
      workdir, every_steps=config.checkpoint.every_steps,
      max_to_keep=config.checkpoint.max_to_keep or None),
      rng=np.asarray(jax.random.key_data(root_key)), like=initial, lock=lock,
      separate_judge=separate_judge(config))
  return Setup(
      config=config, devices=Devices(mesh, graphdef, model_cfg, tok), workdir=rundir,
      mode=run_mode, root_key=root_key, initial_train=initial,
      sample_method=sampling.method_from_config(config.sample.temperature, config.sample.top_k,
                                                config.sample.top_p))
