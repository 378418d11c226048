"""Everything fixed for one run of the loop, checked before any compute.

`build(config, workdir)` validates every config field (a bad one is a one-line
ValueError naming it), then opens the workdir, builds or opens the TFDS data,
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
from selfimprove_jax.core import mixture as mixture_lib
from selfimprove_jax.core import model as model_lib
from selfimprove_jax.core import train as train_lib
from selfimprove_jax.core.mixture import Example, Mixture, Source
from selfimprove_jax.core.tokenizer import CharTokenizer, TEXT_ALPHABET
from selfimprove_jax.grading import curriculum, filtering, labelling, scoring
from selfimprove_jax.grading import ratings as ratings_lib
from selfimprove_jax.grading.tasks import Task, get_task
from selfimprove_jax.text import lm
from selfimprove_jax.run import checkpoint

TRAIN_INIT = ("continue", "restart")
MODES = ("task", "lm")


# Fields a resumed run may change; any other difference means another experiment.
_RESUMABLE_CHANGES = ("generations", "train.log_every", "train.max_nonfinite_steps",
                      "checkpoint.every_steps", "model.attention")


# Every field's type and accepted range, checked before anything else, so that
# no later comparison meets a string or a NaN. ("int", low): an integer from
# low on; an interval: any real number in it; "str"/"bool": that type.
_FIELDS = {
    "": {"seed": ("int", 0), "generations": ("int", 0), "ensemble_size": ("int", 1),
         "model.num_layers": ("int", 1), "model.embed_dim": ("int", 1),
         "model.num_heads": ("int", 1), "model.mlp_dim": ("int", 1),
         "model.pos_encoding": ("str",), "model.dtype": ("str",),
         "model.attention": ("str",), "data.train_size": ("int", 1),
         "data.mix_fraction": ("[0, 1]",), "data.dir": ("str",), "data_policy": ("str",),
         "train.batch_size": ("int", 1), "train.steps": ("int", 1),
         "train.steps_per_generation": ("int", 1), "train.init": ("str",),
         "train.log_every": ("int", 1), "train.max_nonfinite_steps": ("int", 1),
         "optimizer.learning_rate": ("(0, inf)",), "optimizer.schedule": ("str",),
         "optimizer.warmup_steps": ("int", 0), "optimizer.weight_decay": ("[0, inf)",),
         "optimizer.b1": ("[0, 1)",), "optimizer.b2": ("[0, 1)",),
         "optimizer.grad_clip": ("[0, inf)",), "sample.temperature": ("[0, inf)",),
         "sample.top_k": ("int", 0), "sample.top_p": ("(0, 1]",),
         "sample.rows_per_call": ("int", 1), "checkpoint.every_steps": ("int", 0),
         "checkpoint.max_to_keep": ("int", 0)},
    "task": {"task": ("str",), "scorer": ("str",), "data.min_difficulty": ("int", 1),
             "data.max_difficulty": ("int", 1), "sample.prompts_per_generation": ("int", 1),
             "sample.samples_per_prompt": ("int", 1), "filter.threshold": ("[0, 1]",),
             "filter.keep": ("str",), "filter.dedupe": ("bool",), "curriculum.gate": ("str",),
             "curriculum.gate_threshold": ("[0, 1]",), "curriculum.window": ("int", 1),
             "eval.max_difficulty": ("int", 1), "eval.per_difficulty": ("int", 1),
             "judge.fraction": ("(0, 1)",), "feedback.file": ("str",),
             "feedback.weight": ("[0, 1]",), "noise.generation": ("int", 0),
             "noise.fraction": ("[0, 1]",)},
    "lm": {"lm.source": ("str",), "lm.text_feature": ("str",), "lm.train_split": ("str",),
           "lm.eval_split": ("str",), "lm.max_chars": ("int", 1), "lm.row_tokens": ("int", 1),
           "lm.prompt_chars": ("int", 0), "lm.samples_per_generation": ("int", 1),
           "eval.heldout_size": ("int", 1), "eval.samples": ("int", 1),
           "eval.tail_mass": ("(0, 1)",)},
}
# The procedural language's fields, when lm.source is "procedural".
_LANGUAGE_FIELDS = {"language.vocab_size": ("int", 1), "language.num_classes": ("int", 1),
                    "language.zipf": ("(0, inf)",), "language.mean_words": ("[1, inf)",),
                    "language.max_words": ("int", 1)}
# What 0 means, where it means something special.
_ZERO_MEANS = {"sample.temperature": "0: greedy", "sample.top_k": "0: no limit",
               "noise.generation": "0: no injection",
               "checkpoint.every_steps": "0: per generation only", "checkpoint.max_to_keep": "0: all"}


def _field(config: ml_collections.ConfigDict, field: str):
  value = config
  for part in field.split("."):
    try:
      value = value[part]
    except (KeyError, TypeError, AttributeError):
      raise ValueError(f"the config has no field {field} (see configs/default.py for every "
                       "field)") from None
  return value


def _check_field(config: ml_collections.ConfigDict, field: str, spec: tuple) -> None:
  value, kind = _field(config, field), spec[0]
  is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
  note = f" ({_ZERO_MEANS[field]})" if field in _ZERO_MEANS else ""
  if kind == "int":
    if not (is_number and isinstance(value, int)):
      raise ValueError(f"{field} must be an integer, got {value!r}")
    if value < spec[1]:
      bound = "a positive integer" if spec[1] == 1 else f"an integer >= {spec[1]}"
      raise ValueError(f"{field} must be {bound}{note}, got {value!r}")
  elif kind in ("str", "bool"):
    if type(value) is not {"str": str, "bool": bool}[kind]:
      name = "a string" if kind == "str" else "true or false"
      raise ValueError(f"{field} must be {name}, got {value!r}")
  else:  # an interval such as "[0, 1)"; NaN is in none
    low, high = (float(x) for x in kind[1:-1].split(","))
    inside = is_number and (low < value or (kind[0] == "[" and value == low)) and (
        value < high or (kind[-1] == "]" and value == high))
    if not inside:
      wording = {"(0, inf)": "positive", "[0, inf)": ">= 0"}.get(kind, f"in {kind}")
      raise ValueError(f"{field} must be {wording}{note}, got {value!r}")


def _check_fields(config: ml_collections.ConfigDict) -> None:
  fields = _FIELDS[""] | _FIELDS[mode(config)]
  if mode(config) == "lm" and _field(config, "lm.source") == "procedural":
    fields |= _LANGUAGE_FIELDS
  for field, spec in fields.items():
    _check_field(config, field, spec)


def mode(config: ml_collections.ConfigDict) -> str:
  """"task" (problems with answers) or "lm" (plain text, for collapse experiments)."""
  return config.get("mode", "task")


def check(config: ml_collections.ConfigDict, mesh) -> None:
  """Raises ValueError naming the first bad field; touches no data and runs nothing."""
  if mode(config) not in MODES:
    raise ValueError(f"mode must be one of {list(MODES)}, got {mode(config)!r}")
  _check_fields(config)  # types and ranges; what follows are choices and relations
  if mode(config) == "lm":
    lm.check(config)
  else:
    _check_task(config)
  if config.data_policy not in mixture_lib.POLICIES:
    raise ValueError(f"data_policy must be one of {list(mixture_lib.POLICIES)}, "
                     f"got {config.data_policy!r}")
  if config.train.init not in TRAIN_INIT:
    raise ValueError(f"train.init must be one of {list(TRAIN_INIT)}, got {config.train.init!r}")
  if config.train.init == "restart" and config.checkpoint.max_to_keep:
    raise ValueError("train.init='restart' reloads generation 0's checkpoint every generation; "
                     "set checkpoint.max_to_keep=0 so that it is kept")
  opt = _make(train_lib.OptimizerConfig, "optimizer", config.optimizer)
  if opt.schedule not in train_lib.SCHEDULES:
    raise ValueError(f"optimizer.schedule must be one of {list(train_lib.SCHEDULES)}, "
                     f"got {opt.schedule!r}")
  _make(functools.partial(model_lib.ModelConfig, vocab_size=tokenizer(config).vocab_size),
        "model", config.model)
  if config.model.attention == "cudnn" and mesh.devices.flat[0].platform != "gpu":
    raise ValueError("model.attention='cudnn' needs NVIDIA GPUs, and this run's devices are "
                     f"{mesh.devices.flat[0].platform}; use 'xla'")
  sharding.check_divisible(config.train.batch_size, mesh, field="train.batch_size")


def _make(cls, section: str, fields: ml_collections.ConfigDict):
  """cls(**fields), with a field cls does not know reported by name."""
  fixed = getattr(cls, "keywords", {})  # set by the code, e.g. model.vocab_size
  known = {f.name for f in dataclasses.fields(getattr(cls, "func", cls))} - set(fixed)
  unknown = sorted(set(fields) - known)
  if unknown:
    raise ValueError(f"{section}.{unknown[0]} is not a field; {section} takes {sorted(known)}")
  return cls(**fields)


def _check_task(config: ml_collections.ConfigDict) -> None:
  get_task(config.task)
  names = scoring.parse(config.scorer)
  if ("feedback" in names) != bool(config.feedback.file):
    raise ValueError("scorer 'feedback' and feedback.file go together: name a ratings file "
                     "with --config.feedback.file=PATH and add 'feedback' to the scorer, or neither")
  if config.filter.keep not in filtering.KEEP:
    raise ValueError(f"filter.keep must be one of {list(filtering.KEEP)}, got {config.filter.keep!r}")
  curriculum.gate_value(config.curriculum.gate, 0.0, 0.0)
  lo, hi = config.data.min_difficulty, config.data.max_difficulty
  if not 1 <= lo <= hi <= config.eval.max_difficulty:
    raise ValueError("need 1 <= data.min_difficulty <= data.max_difficulty <= "
                     f"eval.max_difficulty, got {lo}, {hi}, {config.eval.max_difficulty}")


def tokenizer(config: ml_collections.ConfigDict) -> CharTokenizer:
  """Task mode: the problems' characters. LM mode: printable ASCII, whatever the corpus."""
  return CharTokenizer(TEXT_ALPHABET) if mode(config) == "lm" else CharTokenizer()


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
