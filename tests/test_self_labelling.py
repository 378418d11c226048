"""Self-labelling generations end to end, on configs/tiny.py with the self-judge:

- ground truth reaches only the `verifier` scorer and measurement: with every
  problem's answer corrupted, and `Task.verify`/`Task.parse` raising anywhere
  else, a generation scores, keeps, teaches the judge, gates and trains exactly
  as before;
- a gate that does not pass holds the frontier, and the next generation labels
  the same difficulty again;
- the data stage mixes exactly the sources and weights each policy prescribes.
"""

import dataclasses
import json
import shutil
import sys

import pytest

import crash_harness as harness
from selfimprove_jax.grading import tasks
from selfimprove_jax.run import loop
from test_loop import tiny

# The places allowed to ask whether an answer is right: the verifier scorer, and
# measurement (kept-label precision, the judge lessons' truth, evaluation).
VERIFIER = ("selfimprove_jax.grading.scoring", "verifier.<locals>.score")
MEASUREMENT = {("selfimprove_jax.grading.labelling", "TaskMode.filter"),
               ("selfimprove_jax.grading.labelling", "TaskMode._lesson_truth"),
               ("selfimprove_jax.grading.evaluate", "grade")}


def config(generations: int):
  # Every stage of scoring in play. The low threshold keeps labels although the tiny
  # model's votes (1/8 and up) times its verdicts (about 0.5) are small. The gate
  # asks that every prompt's samples agree: the tiny model never manages that.
  return tiny(scorer="length,majority_vote,self_judge", generations=generations,
              **{"filter.threshold": 0.02, "curriculum.gate": "self_consistency",
                 "curriculum.gate_threshold": 1.0})


def read(workdir, name) -> list[dict]:
  return [json.loads(x) for x in (workdir / name).read_text().splitlines()]


def without(rows, *fields):
  return [{k: v for k, v in r.items() if k not in fields} for r in rows]


def caller() -> tuple[str, str]:
  """(module, function) of the project code that called the guarded function."""
  frame = sys._getframe(2)
  while frame.f_code.co_name.startswith("<"):  # comprehensions and generators
    frame = frame.f_back
  return frame.f_globals["__name__"], frame.f_code.co_qualname


def honest_and_corrupted(base, make_config, measured=MEASUREMENT):
  """Generation 0 once; then generation 1 as it is ("honest"), and from the same
  generation 0 with ground truth corrupted and guarded ("corrupted"); every place in
  `measured` must have measured."""
  honest, corrupted = base / "honest", base / "corrupted"
  loop.run(make_config(0), str(honest))
  shutil.copytree(honest, corrupted)
  loop.run(make_config(1), str(honest))
  digest = harness.params_digest(honest)

  asked = []
  def verify(problem, completion):
    asked.append(caller())
    if asked[-1] not in measured | {VERIFIER}:
      raise AssertionError(f"{asked[-1]} read ground truth")
    return completion == problem.answer
  def parse(self, prompt):
    raise AssertionError(f"{caller()} parsed {prompt!r}, recovering its answer")
  original_batch = tasks.Task.batch
  def batch(self, rng, difficulties):  # every answer wrong, and no sample can match it
    return [dataclasses.replace(p, answer=p.answer + "#")
            for p in original_batch(self, rng, difficulties)]
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(tasks.Task, "verify", staticmethod(verify))
    patch.setattr(tasks.Task, "parse", parse)
    patch.setattr(tasks.Task, "batch", batch)
    loop.run(make_config(1), str(corrupted))
  assert set(asked) == measured  # every measurement ran, and nothing else asked
  return honest, corrupted, digest


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  return honest_and_corrupted(tmp_path_factory.mktemp("self_labelling"), config)


def own_answers_config(generations: int):
  """The judge taught in generation 0 by the models' own answers, then by the vote's
  consensus, its bar set on held-out answers, either grader keeping a label. The two
  members answer greedily, so that they agree now and then (no length filter: the tiny
  models' answers to 3-digit sums are mostly too short)."""
  return tiny(scorer="majority_vote,self_judge", generations=generations,
              **{"filter.threshold": 0.5, "sample.temperature": 0.0,
                 "sample.samples_per_prompt": 1, "sample.prompts_per_generation": 128,
                 "judge.lessons": "own_answers", "judge.problems": 64, "judge.samples": 2,
                 "judge.steps": 10, "judge.later": "consensus", "judge.combine": "either",
                 "judge.precision": 0.5})


@pytest.fixture(scope="module")
def own_answer_runs(tmp_path_factory):
  return honest_and_corrupted(tmp_path_factory.mktemp("own_answers"), own_answers_config)


def test_a_judge_taught_by_its_own_answers_never_sees_them_after_generation_0(own_answer_runs):
  honest, corrupted, digest = own_answer_runs
  for name in ("generations/001/examples.jsonl", "generations/001/judge.jsonl"):
    rows = read(honest, name)
    assert rows and without(read(corrupted, name), "correct") == without(rows, "correct")
  assert {x["origin"] for x in read(honest, "generations/001/judge.jsonl")} >= {"unanimous"}
  gen1, gen1_corrupted = read(honest, "metrics.jsonl")[1], read(corrupted, "metrics.jsonl")[1]
  assert gen1["kept"] > 0
  for field in ("kept", "judge_threshold", "judge_heldout_auc", "judge_lessons",
                "tokens_trained", "accuracy"):
    assert gen1_corrupted[field] == gen1[field], field
  assert harness.params_digest(corrupted) == digest


def test_self_scores_labels_lessons_gate_and_weights_never_see_the_answers(runs):
  honest, corrupted, digest = runs
  name = "generations/001/examples.jsonl"
  rows, rows_corrupted = read(honest, name), read(corrupted, name)
  assert sum(r["kept"] for r in rows) > 0 and {r["score_source"] for r in rows} == {"self"}
  # Every score, vote, verdict and kept flag is the same; only the truth differs.
  assert without(rows_corrupted, "correct") == without(rows, "correct")
  assert not any(r["correct"] for r in rows_corrupted)
  name = "generations/001/judge.jsonl"
  lessons = read(honest, name)
  assert lessons and without(read(corrupted, name), "correct") == without(lessons, "correct")
  gen1, gen1_corrupted = read(honest, "metrics.jsonl")[1], read(corrupted, "metrics.jsonl")[1]
  for field in ("kept", "kept_fraction", "self_consistency", "gate_passed", "frontier",
                "tokens_sampled", "tokens_trained", "train_examples", "accuracy"):
    assert gen1_corrupted[field] == gen1[field], field
  assert gen1_corrupted["kept_precision"] == gen1_corrupted["sample_accuracy"] == 0
  # Trained on the same labels: the same weights, bit for bit.
  assert harness.params_digest(corrupted) == digest


def test_a_gate_that_fails_holds_the_frontier_and_the_difficulty_is_labelled_again(runs):
  honest, _, _ = runs
  history = loop.run(config(2), str(honest))
  for m in history[1:]:
    assert m["gate_passed"] is (m["self_consistency"] >= 1.0) is False
    assert m["difficulty"] == 3 and m["frontier"] == 2  # data.max_difficulty is 2
  rows = read(honest, "generations/002/examples.jsonl")
  assert {r["difficulty"] for r in rows} == {3}


@pytest.mark.parametrize("policy", ["accumulate", "replace", "mix"])
def test_the_data_stage_mixes_what_the_policy_says(runs, policy):
  honest, _, _ = runs
  if not (honest / "generations/002").exists():
    loop.run(config(2), str(honest))
  kept = [sum(r["kept"] for r in read(honest, f"generations/{g:03d}/examples.jsonl"))
          for g in (1, 2)]
  assert min(kept) > 0
  truth = tiny().data.train_size
  judge = 0.25  # judge.fraction: the newest judge lessons take that share of every batch
  # accumulate: in proportion to size; replace: the newest labels; mix: truth's fixed share.
  share = {
      "accumulate": {"ground_truth": truth, "generations/001/examples.jsonl": kept[0],
                     "generations/002/examples.jsonl": kept[1]},
      "replace": {"generations/002/examples.jsonl": 1.0},
      "mix": {"ground_truth": 0.25, "generations/002/examples.jsonl": 0.75},
  }[policy]
  total = sum(share.values())
  want = {name: (1 - judge) * n / total for name, n in share.items()}
  want["generations/002/judge.jsonl"] = judge

  setup = loop.build(config(2), str(honest))
  try:
    other = config(2)
    other.data_policy, other.data.mix_fraction = policy, 0.25
    mixture = loop.data_stage(dataclasses.replace(setup, config=other), loop.restore(setup, 2))
  finally:
    setup.close()
  got = {s.name: w for s, w in zip(mixture.sources, mixture.weights)}
  assert list(got) == list(want)
  assert got == pytest.approx(want, rel=1e-12)
  sizes = {s.name: s.size for s in mixture.sources}
  assert sizes["generations/002/examples.jsonl"] == kept[1]
