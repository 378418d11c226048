"""Workdir files: torn writes are survived, anything else malformed is named by file and line."""

import json
import resource
import signal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfimprove_jax.base import files

FIELDS = dict(generation=int, prompt=str, kept=bool)


def write(tmp_path, text: str | bytes):
  path = tmp_path / "rows.jsonl"
  (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
  return path


def test_rows_are_read_in_order_and_blank_lines_skipped(tmp_path):
  path = write(tmp_path, '{"generation": 1, "prompt": "a", "kept": true}\n\n'
                         '{"generation": 2, "prompt": "b", "kept": false, "extra": 1}\n')
  assert [r["prompt"] for r in files.read_jsonl(path, FIELDS)] == ["a", "b"]


def test_a_torn_last_line_is_dropped_with_a_warning(tmp_path, caplog):
  path = write(tmp_path, '{"generation": 1, "prompt": "a", "kept": true}\n{"generation": 2, "pro')
  assert len(files.read_jsonl(path, FIELDS)) == 1
  assert "rows.jsonl:2: dropping a torn last line" in caplog.text


@pytest.mark.parametrize("text, message", [
    ('{"generation": 1, "pro\n{"generation": 2}\n', r"rows.jsonl:1 is not valid JSON"),
    ('[1, 2]\n', r"rows.jsonl:1 must be a JSON object, got list"),
    ('{"generation": 1, "prompt": "a"}\n', r"rows.jsonl:1 lacks the field 'kept'"),
    ('{"generation": 1.5, "prompt": "a", "kept": true}\n',
     r"rows.jsonl:1 field 'generation' must be an integer, got float"),
    ('{"generation": true, "prompt": "a", "kept": true}\n',
     r"rows.jsonl:1 field 'generation' must be an integer, got bool"),
    ('{"generation": 1, "prompt": null, "kept": true}\n',
     r"rows.jsonl:1 field 'prompt' must be a string, got null"),
    (b'{"generation": 1, "prompt": "a", "kept": true}\n{"prompt": "\xff"}\n',
     r"rows.jsonl:2 is not UTF-8 text"),
])
def test_malformed_rows_name_the_file_and_line(tmp_path, text, message):
  with pytest.raises(files.FileError, match=message) as e:
    files.read_jsonl(write(tmp_path, text), FIELDS)
  assert "\n" not in str(e.value)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300),
                 st.lists(st.dictionaries(st.sampled_from(["generation", "prompt", "kept", "x"]),
                                          st.one_of(st.none(), st.booleans(), st.integers(),
                                                    st.floats(), st.text(max_size=5))),
                          max_size=4).map(lambda rows: "".join(json.dumps(r) + "\n" for r in rows))))
def test_any_file_content_gives_rows_or_one_clean_error(tmp_path_factory, content):
  path = write(tmp_path_factory.mktemp("fuzz"), content)
  try:
    rows = files.read_jsonl(path, FIELDS)
  except files.FileError as e:
    assert str(e).startswith(str(path)) and "\n" not in str(e)
  else:
    for row in rows:
      assert type(row["generation"]) is int and type(row["prompt"]) is str
      assert type(row["kept"]) is bool


def test_atomic_write_on_a_full_disk_keeps_the_old_file(tmp_path):
  path = tmp_path / "metrics.jsonl"
  files.atomic_write(path, "old\n")
  # A file-size limit makes the kernel refuse the write, as a full disk does.
  soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
  previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
  resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))
  try:
    with pytest.raises(files.WriteFailed, match=r"could not write .*metrics.jsonl \(File too large\)"):
      files.atomic_write(path, "new\n" * 1000)
  finally:
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, previous)
  assert path.read_text() == "old\n"
  assert list(tmp_path.iterdir()) == [path]  # no temporary file left


def test_read_json_refuses_a_truncated_file(tmp_path):
  path = tmp_path / "labelling.json"
  path.write_text('{"kept": 3, "sam')
  with pytest.raises(files.FileError, match=r"labelling.json:1 is not valid JSON"):
    files.read_json(path)
