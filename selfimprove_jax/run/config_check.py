"""Every config field checked before any compute: its type and range from one table, then
the choices and the relations between fields. A bad value is a one-line ValueError naming
the field and what it accepts; a missing or unknown field is named too.
"""

import dataclasses
import functools

import ml_collections

from selfimprove_jax.core import mixture as mixture_lib
from selfimprove_jax.core import model as model_lib
from selfimprove_jax.core import sharding
from selfimprove_jax.core import train as train_lib
from selfimprove_jax.core.tokenizer import CharTokenizer, TEXT_ALPHABET
from selfimprove_jax.grading import curriculum, filtering, scoring
from selfimprove_jax.grading.tasks import get_task
from selfimprove_jax.text import lm

TRAIN_INIT = ("continue", "restart")
MODES = ("task", "lm")


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
