"""The workdir's text files, written so that a crash at any instant loses nothing.

Two kinds of writes, and what a SIGKILL can leave of each:

  atomic_write   the whole file at once (tmp file, fsync, rename): the old
                 file or the new one, never half of one.
  append_jsonl   one JSON line at the end of a log: at worst a torn last line
                 without its newline, which `read_jsonl` drops with a warning
                 (the loop rebuilds what it held from the checkpoints).

Anything else wrong in a JSON-lines file (a user's edit, another program's
file) is refused by `read_jsonl` as a `FileError` naming the file and line.
"""

import json
import logging
import os
from pathlib import Path

from selfimprove_jax.base.errors import UserError


class FileError(UserError):
  """A file the run reads is malformed: one line naming the file, the line and the fix."""


class WriteFailed(UserError):
  """A file or checkpoint could not be written (a full disk, a lost mount); what was
  written before it is intact."""


def atomic_write(path: Path, text: str) -> None:
  tmp = path.with_name(path.name + ".tmp")
  try:
    with open(tmp, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())  # on disk before it replaces the old file
  except OSError as e:
    tmp.unlink(missing_ok=True)
    raise WriteFailed(f"could not write {path} ({e.strerror}); its previous version, "
                      "if any, is intact") from None
  os.replace(tmp, path)


def free_name(path: Path) -> Path:
  """`path`, or the first of `path.1`, `path.2`, ... that does not exist: set-aside
  copies never overwrite one another."""
  candidate, n = path, 1
  while candidate.exists():
    candidate, n = path.with_name(f"{path.name}.{n}"), n + 1
  return candidate


def write_jsonl(path: Path, rows: list[dict]) -> None:
  atomic_write(path, "".join(json.dumps(r) + "\n" for r in rows))


def append_jsonl(path: Path, row: dict) -> None:
  try:
    with open(path, "a") as f:
      f.write(json.dumps(row) + "\n")
  except OSError as e:  # a torn line at worst, which read_jsonl drops
    raise WriteFailed(f"could not append to {path} ({e.strerror}); the lines before are "
                      "intact") from None


def _describe(value) -> str:
  return type(value).__name__ if value is not None else "null"


def read_jsonl(path: Path, fields: dict[str, type | tuple[type, ...]] | None = None,
               check=None) -> list[dict]:
  """The JSON objects of a JSON-lines file, each checked to hold `fields` of their types.

  Blank lines are skipped. A last line without its newline that is not valid
  JSON is what a killed writer leaves: it is dropped with a warning. Every
  other fault raises FileError("<path>:<line> ..."). `check(row, where)`, if
  given, checks each row further, `where` being its "<path>:<line>".
  """
  path = Path(path)
  if not path.exists():
    return []
  try:
    text = path.read_text(encoding="utf-8")
  except UnicodeDecodeError as e:
    line = path.read_bytes()[:e.start].count(b"\n") + 1
    raise FileError(f"{path}:{line} is not UTF-8 text; fix or remove that line") from None
  lines = text.split("\n")
  rows = []
  for n, line in enumerate(lines, 1):
    if not line.strip():
      continue
    try:
      row = json.loads(line)
    except json.JSONDecodeError:
      if n == len(lines):  # no newline after it: a write cut short
        logging.warning("%s:%d: dropping a torn last line (an interrupted write)", path, n)
        continue
      raise FileError(f"{path}:{n} is not valid JSON; fix or remove that line") from None
    if not isinstance(row, dict):
      raise FileError(f"{path}:{n} must be a JSON object, got {_describe(row)}")
    for field, kind in (fields or {}).items():
      if field not in row:
        raise FileError(f"{path}:{n} lacks the field {field!r}")
      value = row[field]
      # JSON has no int/bool distinction worth trusting: true is not a number here.
      if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _types(kind)):
        raise FileError(f"{path}:{n} field {field!r} must be {_names(kind)}, got {_describe(value)}")
    if check is not None:
      check(row, f"{path}:{n}")
    rows.append(row)
  return rows


def _types(kind) -> tuple[type, ...]:
  return kind if isinstance(kind, tuple) else (kind,)


def _names(kind) -> str:
  return " or ".join({str: "a string", int: "an integer", float: "a number", bool: "true/false",
                      dict: "an object", list: "a list", type(None): "null"}[t] for t in _types(kind))


def trim_jsonl(path: Path, keep, fields: dict | None = None) -> None:
  """Drops the lines of a JSON-lines log for which keep(row) is false (work being redone)."""
  if path.exists():
    write_jsonl(path, [r for r in read_jsonl(path, fields) if keep(r)])


def read_json(path: Path) -> dict:
  """A JSON object written whole by `atomic_write`; anything else is a FileError."""
  try:
    value = json.loads(Path(path).read_text(encoding="utf-8"))
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    line = getattr(e, "lineno", 1)
    raise FileError(f"{path}:{line} is not valid JSON; restore it or use a new --workdir") from None
  if not isinstance(value, dict):
    raise FileError(f"{path} must hold a JSON object, got {_describe(value)}")
  return value


def read_metrics(path: Path) -> list[dict]:
  """metrics.jsonl: one object per finished generation."""
  return read_jsonl(path, {"generation": int})
