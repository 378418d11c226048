"""Everything fixed for one run of the loop, checked before any compute.

`build(config, workdir)` validates every config field (config_check.py: a bad one
is a one-line error naming it), then opens the workdir, builds or opens the TFDS data,
initializes the ensemble and makes the jitted steps. `Setup` carries all of it
to the loop's stages, which therefore take (setup, state, key) and nothing
hidden.
"""

import dataclasses
import functools
import json
import os
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
from jax.sharding import PartitionSpec as P

from selfimprove_jax.base import files, workdir_lock
from selfimprove_jax.base.errors import UserError
from selfimprove_jax.core import data, sampling, sharding
from selfimprove_jax.core import model as model_lib
from selfimprove_jax.core import train as train_lib
from selfimprove_jax.core.mixture import Example, Mixture, Source
from selfimprove_jax.core.tokenizer import CharTokenizer
from selfimprove_jax.grading import labelling, scoring
from selfimprove_jax.grading import ratings as ratings_lib
from selfimprove_jax.grading.tasks import Task, get_task
from selfimprove_jax.text import lm
from selfimprove_jax.run import checkpoint
from selfimprove_jax.run.config_check import check, mode, tokenizer

# Fields a resumed run may change; any other difference means another experiment.
_RESUMABLE_CHANGES = ("generations", "train.log_every", "train.max_nonfinite_steps",
                      "checkpoint.every_steps", "model.attention")


def _flat(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def refuse_other_experiment(config: ml_collections.ConfigDict, workdir: Path) -> None:
  """A workdir holds one experiment: resuming it with other settings is refused (read only)."""
  path = workdir / "config.json"
  if not path.exists():
    return
  saved = _flat(files.read_json(path))
  for field, value in _flat(json.loads(config.to_json_best_effort())).items():
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


@dataclasses.dataclass(eq=False)
class Setup:
  config: ml_collections.ConfigDict
  workdir: Path
  task: Task | None  # task mode only
  tok: CharTokenizer
  model_cfg: model_lib.ModelConfig
  mesh: jax.sharding.Mesh
  graphdef: object
  root_key: jax.Array
  ground_truth: Source  # the TFDS train split, read by index
  eval_problems: list  # the TFDS eval split, in memory (task mode)
  checkpoints: checkpoint.Checkpoints
  initial_train: train_lib.TrainState  # generation 0's starting point, [E, ...] leaves
  sample_method: object
  mode: object  # labelling.TaskMode or lm.TextMode: what the loop asks of the mode (modes.py)
  text: lm.TextWorld | None = None  # LM mode only: the human text and its reference statistics
  ratings: ratings_lib.Ratings | None = None  # users' ratings, when the scorer has `feedback`
  lock: workdir_lock.WorkdirLock | None = None  # held by process 0 until close()
  _samplers: dict = dataclasses.field(default_factory=dict)
  _steps: dict = dataclasses.field(default_factory=dict)

  def close(self) -> None:
    """Waits for checkpoint writes and lets the next run into the workdir."""
    self.checkpoints.close()
    if self.lock:
      self.lock.release()

  @property
  def judging(self) -> bool:
    """The models learn and use the self-judge (judge.py)."""
    return self.task is not None and "self_judge" in scoring.parse(self.config.scorer)

  def compiled(self, name: str, make):
    """The program `make()` returns, built once per run."""
    if name not in self._steps:
      self._steps[name] = make()
    return self._steps[name]

  def optimizer(self, generation: int):
    steps = self.config.train.steps if generation == 0 else self.config.train.steps_per_generation
    return train_lib.make_optimizer(
        train_lib.OptimizerConfig(total_steps=steps, **self.config.optimizer))

  def train_step(self, generation: int):
    """Generation 0 and the later ones differ in schedule length, so in their step."""
    return self.compiled(f"train {min(generation, 1)}", lambda: train_lib.make_ensemble_train_step(
        self.graphdef, self.optimizer(generation), self.mesh))

  def logprobs(self, params, texts: list[str], rows_per_call: int = 512):
    """([N] total log-probability, [N] tokens) of each text under one model, EOS included."""
    step = self.compiled("logprobs", lambda: sharding.data_parallel(
        functools.partial(train_lib.sequence_logprobs, self.graphdef), self.mesh,
        in_specs=(P(), P(sharding.DATA)), out_specs=(P(sharding.DATA), P(sharding.DATA))))
    if not texts:
      return np.zeros(0), np.zeros(0)
    # One width for every call: the longest text a run allows.
    batch = data.make_batch(self.tok, [""] * len(texts), list(texts),
                            data.bucket(self.config.lm.max_chars + 1))
    return sharding.map_rows(lambda rows: step(params, rows), batch, self.mesh, rows_per_call)

  def restore_params(self, generation: int):
    """The ensemble's parameters ([E, ...] leaves) saved after `generation`."""
    arrays, _ = self.checkpoints.restore_generation(generation,
                                                    like=self.arrays(self.initial_train))
    return arrays["train"].params

  def fresh_optimizer(self, params, generation: int) -> train_lib.TrainState:
    tx = self.optimizer(generation)
    params = jax.device_get(params)  # initialized on the host, then placed on every device
    return sharding.replicate(jax.vmap(lambda p: train_lib.init_state(p, tx))(params), self.mesh)

  def sampler(self, method, max_new_tokens: int) -> sampling.Sampler:
    key = (method, max_new_tokens)
    if key not in self._samplers:
      self._samplers[key] = sampling.Sampler.for_model(
          self.graphdef, self.model_cfg, self.mesh, max_new_tokens=max_new_tokens, method=method)
    return self._samplers[key]

  def max_answer_tokens(self, problems) -> int:
    # The longest plausible answer, one character of slack to see overruns, and EOS;
    # bucketed, so a sampler serves several generations' difficulties. A row
    # stops at its EOS, so the extra room costs only cache slots.
    return data.bucket(max(self.task.answer_lengths(p.prompt)[1] for p in problems) + 2)

  def seq_len(self, mixture: Mixture) -> int:
    longest = max(s.longest for s in mixture.sources) + 1  # BOS ... EOS, inputs drop one
    return data.bucket(longest)

  def arrays(self, train_state) -> dict:
    """What a checkpoint holds as arrays: the train state and the root key."""
    # The key as plain numbers: a host array, saved alike by one process or many.
    return dict(train=train_state, rng=np.asarray(jax.random.key_data(self.root_key)))


def _ground_truth_source(task: Task, problems, max_difficulty: int) -> Source:
  example = task.generate(np.random.default_rng(0), max_difficulty)
  longest = len(example.prompt) + task.answer_lengths(example.prompt)[1]
  get = lambda idx: [Example(p.prompt, p.answer, p.difficulty, 0) for p in problems[idx]]
  return Source("ground_truth", len(problems), get, longest)


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

  data_dir = config.data.dir or workdir / "tfds"
  tok, task, text = tokenizer(config), None, None
  if mode(config) == "lm":
    try:
      text = sharding.process_0_first(lambda: lm.prepare(config, data_dir), "corpus")
    except ValueError as e:  # a corpus that cannot be found, read or built
      raise UserError(str(e)) from None
    ground_truth, eval_problems = lm.human_source(text.train), []
  else:
    from selfimprove_jax.grading import datasets  # tensorflow_datasets loads here, not with the package
    task = get_task(config.task)
    dataset = datasets.make_config(
        config.task, config.seed, (config.data.min_difficulty, config.data.max_difficulty),
        config.data.train_size, (1, config.eval.max_difficulty), config.eval.per_difficulty)
    splits = sharding.process_0_first(lambda: datasets.load(dataset, data_dir), "dataset")
    ground_truth = _ground_truth_source(task, splits["train"], config.data.max_difficulty)
    eval_problems = splits["eval"].all()

  model_cfg = model_lib.ModelConfig(vocab_size=tok.vocab_size, **config.model)
  # Member e of the ensemble starts from its own seed; member 0 from `seed` itself.
  seeds = [config.seed + 1_000_003 * e for e in range(config.ensemble_size)]
  setup = Setup(
      config=config, workdir=workdir, task=task, tok=tok, model_cfg=model_cfg, mesh=mesh,
      graphdef=None, root_key=jax.random.key(config.seed),
      ground_truth=ground_truth, eval_problems=eval_problems, text=text, ratings=ratings,
      checkpoints=checkpoint.Checkpoints(workdir, every_steps=config.checkpoint.every_steps,
                                         max_to_keep=config.checkpoint.max_to_keep or None),
      initial_train=None, lock=lock,
      mode=lm.TextMode() if mode(config) == "lm" else labelling.TaskMode(),
      sample_method=sampling.method_from_config(config.sample.temperature, config.sample.top_k,
                                                config.sample.top_p))
  setup.graphdef, initial = train_lib.init_ensemble(model_cfg, seeds, setup.optimizer(0))
  setup.initial_train = sharding.replicate(initial, mesh)
  return setup
