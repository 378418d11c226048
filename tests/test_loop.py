"""The loop end to end on configs/tiny.py: outputs, resuming, refusing bad configs."""

import json
import shutil

import jax
import numpy as np
import optax
import pytest

from conftest import StopRun
from selfimprove_jax import config_files
from selfimprove_jax.base.errors import UserError
from selfimprove_jax.core import train as train_lib
from selfimprove_jax.run import experiment, loop, training

REQUIRED = {"generation", "difficulty", "scorer", "accuracy", "kept", "kept_precision",
            "tokens_sampled", "tokens_trained", "seconds"}


def tiny(**overrides):
  config = config_files.load("tiny")
  for field, value in overrides.items():
    section, _, name = field.rpartition(".")
    (config[section] if section else config)[name] = value
  return config


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("full")
  return workdir, loop.run(tiny(), str(workdir))


def final_arrays(workdir):
  setup = loop.build(tiny(), str(workdir))
  state = loop.restore(setup, setup.workdir.checkpoints.latest_generation())
  setup.close()
  return jax.device_get(state.train)


def without_seconds(history):
  return [{k: v for k, v in m.items() if k != "seconds"} for m in history]


def test_tiny_run_writes_metrics_examples_and_report(full_run, capsys):
  workdir, history = full_run
  lines = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert lines == history and [m["generation"] for m in lines] == [0, 1, 2]
  for m in lines:
    assert REQUIRED <= set(m)
    assert set(m["accuracy"]) == {"1", "2", "3", "4"}
  gen1, gen2 = lines[1], lines[2]
  # The gate is "always" in tiny: generation 1 labels 3 digits, generation 2 labels 4.
  assert (gen1["difficulty"], gen2["difficulty"]) == (3, 4)
  assert gen1["kept"] > 0 and 0 <= gen1["kept_precision"] <= 1
  assert gen1["tokens_sampled"] > 0 and gen1["tokens_trained"] > 0
  assert {"sample", "score", "filter", "data", "train", "evaluate"} <= set(gen1["seconds"])
  rows = [json.loads(x) for x in (workdir / "generations/001/examples.jsonl").read_text().splitlines()]
  assert {"generation", "prompt", "completion", "score", "votes", "kept", "correct"} <= set(rows[0])
  assert sum(r["kept"] for r in rows) == gen1["kept"]
  # Kept-label precision is measured against ground truth, row by row.
  kept = [r for r in rows if r["kept"]]
  assert gen1["kept_precision"] == pytest.approx(sum(r["correct"] for r in kept) / len(kept))
  assert (workdir / "report.png").stat().st_size > 10_000


def test_finished_run_does_no_work_and_says_so(full_run, capsys):
  workdir, history = full_run
  before = (workdir / "metrics.jsonl").read_text()
  assert loop.run(tiny(), str(workdir)) == history
  assert "all 2 generations are done; nothing to do" in capsys.readouterr().out
  assert (workdir / "metrics.jsonl").read_text() == before


# Resuming after a generation's checkpoint, at every stage, and after SIGTERM is
# tested through the command line in test_crash.py; here, in-process, inside training.
def test_resumed_run_matches_the_uninterrupted_one(full_run, tmp_path, stop_at, monkeypatch):
  workdir, history = full_run
  stop_at(2, 10)
  with pytest.raises(StopRun):
    loop.run(tiny(), str(tmp_path))
  monkeypatch.undo()
  resumed = loop.run(tiny(), str(tmp_path))
  assert without_seconds(resumed) == without_seconds(history)
  for g in (1, 2):
    name = f"generations/{g:03d}/examples.jsonl"
    assert (tmp_path / name).read_text() == (workdir / name).read_text()
  jax.tree.map(np.testing.assert_array_equal, final_arrays(tmp_path), final_arrays(workdir))
  steps = [(r["generation"], r["step"]) for r in map(json.loads, (tmp_path / "train_log.jsonl").open())]
  assert len(steps) == len(set(steps))  # nothing logged twice by the interrupted attempt


def saved_train(workdir, g, config):
  """Generation g's saved train state, on the host."""
  setup = loop.build(config, str(workdir))
  state = jax.device_get(loop.restore(setup, g).train)
  setup.close()
  return state


def optimizer_counts(state):
  """(AdamW's step count, the learning-rate schedule's) in a train state."""
  nodes = jax.tree.leaves(state.opt_state, is_leaf=lambda n: isinstance(
      n, (optax.ScaleByAdamState, optax.ScaleByScheduleState)))
  adam, = [n.count for n in nodes if isinstance(n, optax.ScaleByAdamState)]
  schedule, = [n.count for n in nodes if isinstance(n, optax.ScaleByScheduleState)]
  return int(np.max(adam)), int(np.max(schedule))


def test_carried_moments_go_on_from_the_last_generation_and_the_schedule_restarts(full_run,
                                                                                   tmp_path):
  workdir, _ = full_run
  carried = tiny(generations=1, **{"train.optimizer_moments": "carried"})
  loop.run(carried, str(tmp_path))
  # tiny: generation 0 trains 60 steps, each later one 20.
  assert optimizer_counts(saved_train(workdir, 1, tiny())) == (20, 20)  # fresh: both from 0
  assert optimizer_counts(saved_train(tmp_path, 1, carried)) == (80, 20)
  # Generation 0 is the same either way.
  jax.tree.map(np.testing.assert_array_equal, saved_train(tmp_path, 0, carried),
               saved_train(workdir, 0, tiny()))


def test_a_corrupted_latest_checkpoint_is_set_aside_and_its_generation_redone(full_run, tmp_path,
                                                                            caplog):
  workdir, history = full_run
  shutil.copytree(workdir, tmp_path, dirs_exist_ok=True)
  data = max((tmp_path / "checkpoints/generations/2/arrays").rglob("d/*"), key=lambda p: p.stat().st_size)
  data.write_bytes(data.read_bytes()[:100])  # truncated, as by a failing disk
  resumed = loop.run(tiny(), str(tmp_path))
  assert "the checkpoint of generation 2 cannot be read" in caplog.text
  assert "falling back to generation 1" in caplog.text
  assert without_seconds(resumed) == without_seconds(history)
  jax.tree.map(np.testing.assert_array_equal, final_arrays(tmp_path), final_arrays(workdir))
  assert (tmp_path / "checkpoints/unreadable/generations_2/arrays").is_dir()  # kept, not deleted


def test_a_workdir_whose_checkpoints_all_fail_is_refused_untouched(full_run, tmp_path):
  workdir, _ = full_run
  shutil.copytree(workdir, tmp_path, dirs_exist_ok=True)
  for g in (0, 1, 2):
    (tmp_path / f"checkpoints/generations/{g}/arrays/_METADATA").write_text("{")
  before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
  with pytest.raises(UserError, match=r"no checkpoint in .* can be read \(generation 0: .*\); "
                     r"move it away or use a new --workdir"):
    loop.run(tiny(), str(tmp_path))
  assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_nonfinite_steps_in_a_row_stop_the_run_and_keep_the_last_checkpoint(full_run, tmp_path,
                                                                           monkeypatch):
  workdir, _ = full_run
  shutil.copytree(workdir, tmp_path, dirs_exist_ok=True)
  original = experiment.Setup.train_step

  def poisoned(self, g):  # every batch's loss is NaN
    step = original(self, g)
    return lambda state, batch: step(state, batch.replace(weights=batch.weights * np.nan))

  monkeypatch.setattr(experiment.Setup, "train_step", poisoned)
  # A third self-labelling generation (`generations` may grow on resume) meets the NaNs.
  with pytest.raises(train_lib.Diverged,
                     match=r"^generation 3, step 3: 3 steps in a row had a non-finite loss"):
    loop.run(tiny(**{"train.max_nonfinite_steps": 3, "generations": 3}), str(tmp_path))
  monkeypatch.undo()
  assert [m["generation"] for m in map(json.loads, (tmp_path / "metrics.jsonl").open())] == [0, 1, 2]
  setup = loop.build(tiny(), str(tmp_path))
  assert setup.workdir.checkpoints.generations() == [0, 1, 2]
  state = loop.restore(setup, 2)  # readable, and its weights are finite
  setup.close()
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(state.train.params)))


def test_resuming_with_other_settings_is_refused(full_run):
  workdir, _ = full_run
  with pytest.raises(UserError, match=r"holds a run with scorer='length,majority_vote', not 'confidence'"):
    loop.run(tiny(scorer="confidence"), str(workdir))


@pytest.mark.parametrize("field, value, message", [
    ("task", "sum", "task must be one of"),
    ("scorer", "vote", "scorer must be one or more of"),
    ("data_policy", "forget", "data_policy must be one of"),
    ("filter.threshold", 1.5, "filter.threshold must be in [0, 1], got 1.5"),
    ("curriculum.gate_threshold", -0.1, "curriculum.gate_threshold must be in [0, 1]"),
    ("data.mix_fraction", 2.0, "data.mix_fraction must be in [0, 1]"),
    ("sample.samples_per_prompt", 0, "sample.samples_per_prompt must be a positive integer"),
    ("train.steps_per_generation", -5, "train.steps_per_generation must be a positive integer"),
    ("ensemble_size", 0, "ensemble_size must be a positive integer"),
    ("sample.temperature", -1.0, "sample.temperature must be >= 0 (0: greedy), got -1.0"),
    ("scorer", "length,feedback", "scorer 'feedback' and feedback.file go together"),
    ("feedback.file", "ratings.jsonl", "scorer 'feedback' and feedback.file go together"),
    ("judge.fraction", 1.0, "judge.fraction must be in (0, 1), got 1.0"),
    ("judge.lessons", "truth", "judge.lessons must be one of"),
    ("judge.later", "own", "judge.later must be one of"),
    ("judge.combine", "and", "judge.combine must be one of"),
    ("judge.precision", 0.95, "judge.precision sets the judge's threshold on held-out answers"),
    ("noise.fraction", 1.5, "noise.fraction must be in [0, 1], got 1.5"),
    ("noise.generation", -1, "noise.generation must be an integer >= 0 (0: no injection)"),
])
def test_bad_config_fails_before_any_compute(tmp_path, field, value, message):
  with pytest.raises(UserError) as e:
    loop.run(tiny(**{field: value}), str(tmp_path / "run"))
  assert str(e.value).startswith(message) and "\n" not in str(e.value)
  assert not (tmp_path / "run").exists()


def test_members_with_own_batches_draw_apart_and_member_0_as_a_lone_model():
  draw = lambda rng: {"rows": rng.integers(0, 1000, (4, 3))}  # stands in for a mode's batches
  key = [7, 2, loop.TRAIN, 5]
  alone = training.member_batches(draw, key, members=1)
  three = training.member_batches(draw, key, members=3)
  assert three["rows"].shape == (4, 3, 3)  # rows first, then members
  np.testing.assert_array_equal(three["rows"][:, 0], alone["rows"])
  np.testing.assert_array_equal(three["rows"][:, 2], draw(np.random.default_rng(key + [2]))["rows"])
  assert not np.array_equal(three["rows"][:, 1], three["rows"][:, 0])


def test_the_time_budget_starts_no_generation_that_would_end_past_it():
  spent = lambda *seconds: [dict(generation=g, seconds=dict(train=s)) for g, s in enumerate(seconds)]
  assert not loop.out_of_time(0.0, spent(600.0, 600.0))  # 0: no limit
  assert not loop.out_of_time(1.0, [])
  # 30 s spent, the last generation took 20 s: the next would end at 50 s.
  assert not loop.out_of_time(50 / 60, spent(10.0, 20.0))
  assert loop.out_of_time(49 / 60, spent(10.0, 20.0))


def test_a_spent_time_budget_starts_no_generation_even_when_more_are_asked(full_run, tmp_path,
                                                                        capsys):
  workdir, history = full_run
  shutil.copytree(workdir, tmp_path / "run")
  # The budget may change on resume (the run began without one); generation 3 is not begun.
  after = loop.run(tiny(generations=3, time_budget_minutes=1e-6), str(tmp_path / "run"))
  assert after == history
  assert "stopping before generation 3" in capsys.readouterr().out
  assert (tmp_path / "run/metrics.jsonl").read_text() == (workdir / "metrics.jsonl").read_text()


@pytest.mark.parametrize("name", ["default", "tiny", "addition_cpu", "reverse_addition",
                                  "collapse", "tpu"])
def test_every_shipped_config_passes_the_checks(name):
  from selfimprove_jax.core import sharding
  from selfimprove_jax.run import config_check
  config_check.check(config_files.load(name), sharding.make_mesh())


def test_equivalent_prompts_on_a_task_without_them_fail_before_any_compute(tmp_path):
  with pytest.raises(UserError, match=r"^sample.equivalents must name distinct equivalent forms "
                                       r"of task 'reversal'"):
    loop.run(tiny(task="reversal", **{"sample.equivalents": "swapped"}), str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()
