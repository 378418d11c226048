"""Every config field checked before any compute: each field's type, range or choices from
one table (the model's and optimizer's from their dataclasses, base/fields.py the spec
language), then the relations between fields. A bad value is a one-line ValueError naming
the field and what it accepts; a missing or unknown field is named too. What each field
means is said beside it in configs/default.py.
"""

import ml_collections

from selfimprove_jax.base import fields
from selfimprove_jax.base.fields import Bool, Int, OneOf, Real, Str
from selfimprove_jax.core import mixture as mixture_lib
from selfimprove_jax.core import model as model_lib
from selfimprove_jax.core import sharding
from selfimprove_jax.core import train as train_lib
from selfimprove_jax.core.tokenizer import CharTokenizer, TEXT_ALPHABET
from selfimprove_jax.grading import curriculum, filtering, judge, judge_lessons, scoring
from selfimprove_jax.grading.tasks import TASKS, get_task
from selfimprove_jax.text import lm

TRAIN_INIT = ("continue", "restart")
OPTIMIZER_MOMENTS = ("fresh", "carried")
JUDGE_LESSONS = ("near_miss", "own_answers")
JUDGE_LATER = ("self", "frozen", "consensus", "settled")
JUDGE_WEIGHTS = ("shared", "separate")
ROUND_TRIP_COMBINE = ("product", "gate", "either")
MODES = ("task", "lm")


# Every field's type and accepted range, checked before anything else, so that no later
# comparison meets a string or a NaN (base/fields.py has the spec language). The model's
# and the optimizer's fields are declared where they are used, in ModelConfig and
# OptimizerConfig, and read from there.
_I, _R, _STR, _BOOL = Int, Real, Str(), Bool()
_FIELDS = {
    "": {"seed": _I(0), "generations": _I(0), "time_budget_minutes": _R("[0, inf)"),
         "ensemble_size": _I(1),
         "data.train_size": _I(1), "data.mix_fraction": _R("[0, 1]"), "data.dir": _STR,
         "data_policy": OneOf(mixture_lib.POLICIES), "train.batch_size": _I(1),
         "train.steps": _I(1), "train.steps_per_generation": _I(1),
         "train.init": OneOf(TRAIN_INIT), "train.optimizer_moments": OneOf(OPTIMIZER_MOMENTS),
         "train.log_every": _I(1),
         "train.max_nonfinite_steps": _I(1), "sample.temperature": _R("[0, inf)"),
         "sample.top_k": _I(0), "sample.top_p": _R("(0, 1]"), "sample.rows_per_call": _I(1),
         "checkpoint.every_steps": _I(0), "checkpoint.max_to_keep": _I(0)},
    "task": {"task": _STR, "scorer": _STR, "data.min_difficulty": _I(1),
             "data.max_difficulty": _I(1), "train.pack": _BOOL, "train.pack_tokens": _I(0),
             "train.own_batches": _BOOL,
             "sample.prompts_per_generation": _I(1),
             "sample.samples_per_prompt": _I(1), "sample.equivalents": _STR,
             "filter.threshold": _R("[0, 1]"),
             "filter.keep": OneOf(filtering.KEEP), "filter.dedupe": _BOOL,
             "curriculum.gate": OneOf(curriculum.GATES), "curriculum.gate_threshold": _R("[0, 1]"),
             "curriculum.window": _I(1), "eval.max_difficulty": _I(1),
             "eval.per_difficulty": _I(1), "judge.fraction": _R("(0, 1)"),
             "judge.lessons": OneOf(JUDGE_LESSONS), "judge.problems": _I(1),
             "judge.samples": _I(1), "judge.temperature": _R("(0, inf)"),
             "judge.holdout": _R("(0, 1)"), "judge.steps": _I(1),
             "judge.later": OneOf(JUDGE_LATER), "judge.combine": OneOf(judge.COMBINE),
             "judge.weight": _R("[0, 1]"), "judge.later_steps": _I(0),
             "judge.early_steps": _STR,
             "judge.precision": _R("[0, 1)"), "judge.weights": OneOf(JUDGE_WEIGHTS),
             "round_trip.combine": OneOf(ROUND_TRIP_COMBINE),
             "round_trip.threshold": _R("(0, 1]"),
             "feedback.file": _STR, "feedback.weight": _R("[0, 1]"),
             "noise.generation": _I(0), "noise.fraction": _R("[0, 1]")},
    "lm": {"lm.source": _STR, "lm.text_feature": _STR, "lm.train_split": _STR,
           "lm.eval_split": _STR, "lm.max_chars": _I(1), "lm.row_tokens": _I(1),
           "lm.prompt_chars": _I(0), "lm.samples_per_generation": _I(1),
           "eval.heldout_size": _I(1), "eval.samples": _I(1), "eval.tail_mass": _R("(0, 1)")},
}
# The procedural language's fields, when lm.source is "procedural".
_LANGUAGE_FIELDS = {"language.vocab_size": _I(1), "language.num_classes": _I(1),
                    "language.zipf": _R("(0, inf)"), "language.mean_words": _R("[1, inf)"),
                    "language.max_words": _I(1)}
# What 0 means, where it means something special.
_ZERO_MEANS = {"sample.temperature": "0: greedy", "sample.top_k": "0: no limit",
               "noise.generation": "0: no injection",
               "checkpoint.every_steps": "0: per generation only", "checkpoint.max_to_keep": "0: all",
               "train.pack_tokens": "0: train.batch_size rows", "time_budget_minutes": "0: no limit"}
# Sections that are a settings dataclass: (the dataclass, the fields the code sets, whether
# a config may leave the section out).
_DATACLASSES = {"model": (model_lib.ModelConfig, {"vocab_size"}, False),
                "optimizer": (train_lib.OptimizerConfig, {"total_steps"}, False),
                # What generations 1 on change of `optimizer` (nothing by default).
                "generation_optimizer": (train_lib.OptimizerConfig, {"total_steps"}, True)}


def _field(config: ml_collections.ConfigDict, field: str):
  value = config
  for part in field.split("."):
    try:
      value = value[part]
    except (KeyError, TypeError, AttributeError):
      raise ValueError(f"the config has no field {field} (see configs/default.py for every "
                       "field)") from None
  return value


def _check_fields(config: ml_collections.ConfigDict) -> None:
  checks = {field: (accepted, _ZERO_MEANS.get(field, ""))
            for field, accepted in (_FIELDS[""] | _FIELDS[mode(config)]).items()}
  if mode(config) == "lm" and _field(config, "lm.source") == "procedural":
    checks |= {field: (accepted, "") for field, accepted in _LANGUAGE_FIELDS.items()}
  for section, (cls, set_by_code, optional) in _DATACLASSES.items():
    if optional and section not in config:
      continue
    given = _field(config, section)
    known = set(fields.specs(cls)) - set_by_code
    unknown = sorted(set(given) - known)
    if unknown:
      raise ValueError(f"{section}.{unknown[0]} is not a field; {section} takes {sorted(known)}")
    checks |= {f"{section}.{name}": (meta["accepted"], meta["note"])
               for name, meta in fields.specs(cls).items()
               if name in given and not (optional and given[name] is None)}  # None: unset
  for field, (accepted, note) in checks.items():
    fields.check(field, _field(config, field), accepted, note)


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
  if config.train.init == "restart" and config.checkpoint.max_to_keep:
    raise ValueError("train.init='restart' reloads generation 0's checkpoint every generation; "
                     "set checkpoint.max_to_keep=0 so that it is kept")
  later_clip = (config.get("generation_optimizer") or {}).get("grad_clip")
  if (config.train.optimizer_moments == "carried" and later_clip is not None
      and (later_clip > 0) != (config.optimizer.grad_clip > 0)):
    raise ValueError("train.optimizer_moments='carried' needs generation_optimizer.grad_clip "
                     "and optimizer.grad_clip both 0 or both positive (one optimizer's moments "
                     "go on in the other)")
  # How the model's fields relate (each alone was checked above).
  model_lib.ModelConfig(vocab_size=tokenizer(config).vocab_size, **config.model)
  if config.model.attention == "cudnn" and mesh.devices.flat[0].platform != "gpu":
    raise ValueError("model.attention='cudnn' needs NVIDIA GPUs, and this run's devices are "
                     f"{mesh.devices.flat[0].platform}; use 'xla'")
  sharding.check_divisible(config.train.batch_size, mesh, field="train.batch_size")


def _check_task(config: ml_collections.ConfigDict) -> None:
  task = get_task(config.task)
  task.parse_forms(config.sample.equivalents)
  names = scoring.parse(config.scorer)
  if "round_trip" in names and not task.has_inverse:
    has_one = sorted(name for name, t in TASKS.items() if t.has_inverse)
    raise ValueError(f"scorer 'round_trip' asks each answer's inverse question, and task "
                     f"{config.task!r} has none; it takes task {' or '.join(has_one)}")
  if ("self_judge" in names and "round_trip" in names and config.judge.combine != "product"
      and config.round_trip.combine != "product"):
    raise ValueError("judge.combine and round_trip.combine each weigh one grader against the "
                     "other stages: set one of them to 'product'")
  if ("feedback" in names) != bool(config.feedback.file):
    raise ValueError("scorer 'feedback' and feedback.file go together: name a ratings file "
                     "with --config.feedback.file=PATH and add 'feedback' to the scorer, or neither")
  if "self_judge" in names and config.judge.later == "settled" and (
      config.judge.weights != "separate"
      or not set(names) - {"length", "self_judge", "feedback"}):
    raise ValueError("judge.later='settled' trains a judge of its own on what the other "
                     "graders settle first: set judge.weights='separate' and a scorer with "
                     "a grader besides length and self_judge (e.g. length,majority_vote,self_judge)")
  if config.judge.precision and config.judge.lessons != "own_answers":
    raise ValueError("judge.precision sets the judge's threshold on held-out answers of its "
                     "own: set judge.lessons='own_answers' as well, or judge.precision=0")
  early = config.judge.early_steps
  if early and (config.judge.lessons != "own_answers" or not _increasing_below(
      early, config.train.steps)):
    raise ValueError(f"judge.early_steps must be increasing train steps of generation 0, each "
                     f"in 1..{config.train.steps - 1} (train.steps - 1), comma-separated, with "
                     f"judge.lessons='own_answers', got {early!r}")
  if config.train.pack_tokens and not config.train.pack:
    raise ValueError("train.pack_tokens sizes packed batches: set train.pack=True as well, "
                     "or train.pack_tokens=0")
  lo, hi = config.data.min_difficulty, config.data.max_difficulty
  if not 1 <= lo <= hi <= config.eval.max_difficulty:
    raise ValueError("need 1 <= data.min_difficulty <= data.max_difficulty <= "
                     f"eval.max_difficulty, got {lo}, {hi}, {config.eval.max_difficulty}")


def _increasing_below(steps: str, limit: int) -> bool:
  """Whether `steps` is a comma-separated increasing list of ints in 1..limit-1."""
  try:
    values = list(judge_lessons.early_steps(steps))
  except ValueError:
    return False
  return all(0 < a < b for a, b in zip(values, values[1:] + [limit]))


def tokenizer(config: ml_collections.ConfigDict) -> CharTokenizer:
  """Task mode: the problems' characters. LM mode: printable ASCII, whatever the corpus."""
  return CharTokenizer(TEXT_ALPHABET) if mode(config) == "lm" else CharTokenizer()
