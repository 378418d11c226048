"""Config validation: any value in any field passes or gets one line naming the field."""

import json

import ml_collections
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfimprove_jax import config_files
from selfimprove_jax.run import config_check, experiment

CONFIGS = {name: config_files.load(name) for name in ("tiny", "collapse")}
FIELDS = {name: sorted(experiment._flat(json.loads(c.to_json_best_effort())))
          for name, c in CONFIGS.items()}

# Values a config file could hold: every JSON-ish type, the edges of every range.
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.integers(), st.floats(allow_nan=True),
    st.sampled_from([0.0, 1.0, 0.5, -0.0, 1e-9, float("inf"), 1e30]),
    st.text(max_size=8), st.sampled_from(["", "rope", "cosine", "mix", "confidence", "restart",
                                          "bfloat16", "file:/no/such/file", "none"]),
    st.lists(st.integers(0, 3), max_size=2))


def with_value(name: str, field: str, value) -> ml_collections.ConfigDict:
  """The config with one field replaced, types unchecked, as a user's config file may hold."""
  d = CONFIGS[name].to_dict()
  *sections, last = field.split(".")
  node = d
  for s in sections:
    node = node[s]
  node[last] = value
  return ml_collections.ConfigDict(d)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(sorted(CONFIGS)), st.data(), VALUES)
def test_every_field_and_value_passes_or_names_the_field(mesh8, name, data, value):
  field = data.draw(st.sampled_from(FIELDS[name]))
  config = with_value(name, field, value)
  try:
    config_check.check(config, mesh8)
  except ValueError as e:
    message = str(e)
    assert "\n" not in message and len(message) < 400
    assert field in message or field.split(".")[-1] in message, (field, value, message)
  else:  # accepted: then it is of the type the run was written for (an int may stand for a float)
    section, _, last = field.rpartition(".")
    stock = (config_check._field(CONFIGS[name], section) if section else CONFIGS[name]).get_type(last)
    if value is None and stock is not type(None):  # a placeholder field, which None leaves unset
      assert field.startswith("generation_optimizer."), field
      return
    assert type(value) is stock or (stock is float and type(value) is int), (field, value)


@pytest.mark.parametrize("field, value, message", [
    ("train.steps", "100", "train.steps must be an integer, got '100'"),
    ("train.steps", 10.0, "train.steps must be an integer, got 10.0"),
    ("optimizer.learning_rate", float("nan"), "optimizer.learning_rate must be positive, got nan"),
    ("optimizer.b2", 1.0, "optimizer.b2 must be in [0, 1), got 1.0"),
    ("filter.dedupe", "yes", "filter.dedupe must be true or false, got 'yes'"),
    ("seed", -1, "seed must be an integer >= 0, got -1"),
    ("checkpoint.every_steps", -1,
     "checkpoint.every_steps must be an integer >= 0 (0: per generation only), got -1"),
    ("model.dtype", "float8", "model.dtype must be one of"),
    ("model.attention", "cudnn", "model.attention='cudnn' needs model.dtype bfloat16"),
])
def test_bad_values_are_named_with_what_is_accepted(mesh8, field, value, message):
  with pytest.raises(ValueError) as e:
    config_check.check(with_value("tiny", field, value), mesh8)
  assert str(e.value).startswith(message)


@pytest.mark.parametrize("lessons, steps", [
    ("near_miss", "10"), ("own_answers", "ten"), ("own_answers", "20,10"),
    ("own_answers", "10,10"), ("own_answers", "0"), ("own_answers", "60"), ("own_answers", "5,")])
def test_early_answer_steps_are_increasing_steps_inside_generation_0(mesh8, lessons, steps):
  config = with_value("tiny", "judge.lessons", lessons)
  config.judge.early_steps = steps
  with pytest.raises(ValueError, match=r"^judge.early_steps must be increasing train steps of "
                     r"generation 0, each in 1..59 \(train.steps - 1\)"):
    config_check.check(config, mesh8)
  config.judge.lessons, config.judge.early_steps = "own_answers", "1,30,59"
  config_check.check(config, mesh8)


def test_cudnn_attention_is_refused_without_a_gpu(mesh8):
  config = with_value("tiny", "model.dtype", "bfloat16")
  config.model.attention = "cudnn"
  with pytest.raises(ValueError, match="needs NVIDIA GPUs, and this run's devices are cpu"):
    config_check.check(config, mesh8)


def test_missing_and_unknown_fields_are_named(mesh8):
  d = CONFIGS["tiny"].to_dict()
  del d["train"]["log_every"]
  with pytest.raises(ValueError, match="^the config has no field train.log_every"):
    config_check.check(ml_collections.ConfigDict(d), mesh8)
  with pytest.raises(ValueError,
                     match=r"^model.depth is not a field; model takes \['attention', 'dtype'"):
    config_check.check(with_value("tiny", "model.depth", 3), mesh8)


def test_start_over_renames_the_old_run_and_keeps_it(tmp_path):
  workdir = tmp_path / "run"
  assert experiment.set_aside_workdir(workdir) is None  # nothing there: nothing to do
  workdir.mkdir()
  (workdir / "metrics.jsonl").write_text("old\n")
  first = experiment.set_aside_workdir(workdir)
  workdir.mkdir()
  (workdir / "metrics.jsonl").write_text("older\n")
  second = experiment.set_aside_workdir(workdir)  # within the same second: another name
  assert not workdir.exists() and first != second
  assert first.name.startswith("run.replaced-") and (first / "metrics.jsonl").read_text() == "old\n"
  assert (second / "metrics.jsonl").read_text() == "older\n"


def test_later_generations_take_the_generation_optimizer_fields():
  config = with_value("tiny", "optimizer.warmup_steps", 10)
  config.generation_optimizer = ml_collections.ConfigDict(dict(warmup_steps=0, schedule="wsd"))
  first, later = (experiment.optimizer_config(config, g) for g in (0, 3))
  assert (first.warmup_steps, first.schedule, first.total_steps) == (10, "cosine", 60)
  assert (later.warmup_steps, later.schedule, later.total_steps) == (0, "wsd", 20)
  assert later.learning_rate == first.learning_rate  # what it does not name stays


def test_any_generation_optimizer_field_can_be_set_on_a_locked_config():
  config = config_files.load("addition_cpu")
  config.lock()  # as the command line's overrides find it: no new fields
  config.generation_optimizer.weight_decay = 0.05
  first, later = (experiment.optimizer_config(config, g) for g in (0, 1))
  assert (first.weight_decay, later.weight_decay) == (0.01, 0.05)
  assert (later.warmup_steps, later.decay_fraction) == (0, 0.5)  # the config's own settings
  assert later.b2 == first.b2  # unset (None): the optimizer's
  config.generation_optimizer.b2 = 1.0
  with pytest.raises(ValueError, match=r"^generation_optimizer.b2 must be in \[0, 1\), got 1.0$"):
    config_check._check_fields(config)


def test_a_run_saved_before_a_generation_optimizer_field_is_compared_by_what_it_trained_with(
    tmp_path):
  config = config_files.load("addition_cpu")
  saved = json.loads(config.to_json_best_effort())
  saved["generation_optimizer"] = dict(warmup_steps=0, decay_fraction=0.5)  # no learning_rate
  (tmp_path / "config.json").write_text(json.dumps(saved))
  # Its generations trained at optimizer.learning_rate, 5e-4; this config's at 2e-4.
  with pytest.raises(ValueError, match=r"holds a run with generation_optimizer.learning_rate="
                                       r"0.0005, not 0.0002"):
    experiment.refuse_other_experiment(config, tmp_path)
  config.generation_optimizer.learning_rate = 5e-4
  experiment.refuse_other_experiment(config, tmp_path)  # the same settings, spelled out


@pytest.mark.parametrize("path", sorted(str(p) for p in config_files.CONFIG_DIR.glob("*.py")))
def test_every_shipped_config_passes_the_checks(mesh8, path):
  config_check.check(config_files.load(path), mesh8)


def test_a_field_added_since_a_run_began_is_no_difference_at_its_default(tmp_path):
  config = CONFIGS["tiny"]
  saved = json.loads(config.to_json_best_effort())
  del saved["train"]["pack"]  # as a workdir written before train.pack existed
  (tmp_path / "config.json").write_text(json.dumps(saved))
  experiment.refuse_other_experiment(config, tmp_path)  # the default: the old behaviour
  with pytest.raises(ValueError, match=r"holds a run with train.pack=None, not True"):
    experiment.refuse_other_experiment(with_value("tiny", "train.pack", True), tmp_path)


def test_a_saved_config_reads_fields_added_since_as_their_defaults(tmp_path):
  saved = json.loads(with_value("tiny", "judge.combine", "either").to_json_best_effort())
  del saved["round_trip"]  # as a workdir written before the round trip existed
  del saved["judge"]["early_steps"]
  (tmp_path / "config.json").write_text(json.dumps(saved))
  config = experiment.saved_config(tmp_path)
  assert config.round_trip.to_dict() == {"combine": "product", "threshold": 0.5}
  assert config.judge.early_steps == "" and config.judge.combine == "either"  # what it saved
  assert config.task == "reverse_addition" and config.ensemble_size == 2


def test_a_run_from_before_forms_had_names_resumes_with_the_form_it_used(tmp_path):
  for old, same in ((True, "swapped"), (False, "")):
    saved = json.loads(with_value("tiny", "sample.equivalents", same).to_json_best_effort())
    saved["sample"]["equivalents"] = old  # a workdir written when the field was a bool
    (tmp_path / "config.json").write_text(json.dumps(saved))
    experiment.refuse_other_experiment(with_value("tiny", "sample.equivalents", same), tmp_path)
    with pytest.raises(ValueError, match=rf"holds a run with sample.equivalents={same!r}, not "
                                         r"'swapped,shifted'"):
      experiment.refuse_other_experiment(
          with_value("tiny", "sample.equivalents", "swapped,shifted"), tmp_path)
