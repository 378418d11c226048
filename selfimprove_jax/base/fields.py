"""What a setting accepts, written once: a spec checks a value and, when it is refused,
says in one line which field it was and what the field takes.

  Int(1)          an integer from 1 on          Real("[0, 1)")  a real number in [0, 1)
  OneOf(names)    one of these strings          Str(), Bool()   that type

A dataclass of settings (model.ModelConfig, train.OptimizerConfig) declares each
field's spec in its metadata (`spec(Int(1))`) and checks itself with
`check_dataclass`; config_check.py reads the same specs for the config file's
sections, so a field's range lives in one place.
"""

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class Int:
  low: int

  def refuse(self, value) -> str | None:
    if not isinstance(value, int) or isinstance(value, bool):
      return "must be an integer"
    if value < self.low:
      return "must be a positive integer" if self.low == 1 else f"must be an integer >= {self.low}"
    return None


@dataclasses.dataclass(frozen=True)
class Real:
  interval: str  # "[0, 1)", "(0, inf)", ...; NaN is in none

  def refuse(self, value) -> str | None:
    low, high = (float(x) for x in self.interval[1:-1].split(","))
    closed_low, closed_high = self.interval[0] == "[", self.interval[-1] == "]"
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if is_number and not math.isnan(value) and (low < value or (closed_low and value == low)) and (
        value < high or (closed_high and value == high)):
      return None
    return "must be " + {"(0, inf)": "positive", "[0, inf)": ">= 0"}.get(
        self.interval, f"in {self.interval}")


@dataclasses.dataclass(frozen=True)
class OneOf:
  choices: tuple[str, ...]

  def refuse(self, value) -> str | None:
    return None if isinstance(value, str) and value in self.choices else (
        f"must be one of {list(self.choices)}")


@dataclasses.dataclass(frozen=True)
class Str:
  def refuse(self, value) -> str | None:
    return None if type(value) is str else "must be a string"


@dataclasses.dataclass(frozen=True)
class Bool:
  def refuse(self, value) -> str | None:
    return None if type(value) is bool else "must be true or false"


_WRONG_TYPE = ("must be an integer", "must be a string", "must be true or false")


def check(field: str, value, accepted, note: str = "") -> None:
  """Raises ValueError("<field> must be ..., got <value>") unless `accepted` takes it;
  `note` says what a special value means, e.g. "0: greedy"."""
  refused = accepted.refuse(value)
  if refused:
    if note and refused not in _WRONG_TYPE and not isinstance(accepted, OneOf):
      refused += f" ({note})"
    raise ValueError(f"{field} {refused}, got {value!r}")


def spec(accepted, note: str = "") -> dict:
  """A dataclass field's metadata: what it accepts, and what a special value means."""
  return dict(accepted=accepted, note=note)


def specs(cls) -> dict[str, dict]:
  """name -> spec metadata of every field of a settings dataclass that declares one."""
  return {f.name: f.metadata for f in dataclasses.fields(cls) if "accepted" in f.metadata}


def check_dataclass(obj, section: str) -> None:
  """Checks every declared field of a settings dataclass, named `<section>.<field>`."""
  for name, meta in specs(type(obj)).items():
    check(f"{section}.{name}", getattr(obj, name), meta["accepted"], meta["note"])
