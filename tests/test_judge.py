"""The self-judge: its lessons (ground truth in generation 0, its own verdicts after),
its verdicts on a real model, and how its quality is measured."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selfimprove_jax.core import model as model_lib
from selfimprove_jax.core.mixture import Example, Source
from selfimprove_jax.grading import judge
from selfimprove_jax.grading.tasks import get_task

TASK = get_task("reversal")
TASK_RA = get_task("reverse_addition")


def test_generation_0_lessons_are_balanced_ground_truth_and_near_misses():
  problems = [TASK.generate(np.random.default_rng(i), 1 + i % 5) for i in range(50)]
  truth = Source.from_list("ground_truth", [Example(p.prompt, p.answer, p.difficulty, 0)
                                            for p in problems])
  lessons = judge.ground_truth_source(TASK, truth, seed=0)
  assert lessons.size == 100
  drawn = lessons.get(range(100))
  assert [x.completion for x in drawn] == ["y", "n"] * 50
  for i, (yes, no) in enumerate(zip(drawn[::2], drawn[1::2])):
    p = problems[i]
    assert yes.prompt == f"{p.prompt}{p.answer}?"
    assert no.prompt.startswith(p.prompt) and no.prompt.endswith("?")
    assert not TASK.verify(p, no.prompt[len(p.prompt):-1])  # a wrong answer
  assert lessons.get([7, 3]) == [drawn[7], drawn[3]]  # the same lesson whenever drawn
  assert lessons.longest >= max(len(x.prompt) + 1 for x in drawn)


def rows(kept, rejected, unsure=0, cut_off=0):
  """Examples-file rows for prompt "abc>": kept labels, answers scored below the
  threshold, answers above it but not kept, and cut-off answers."""
  out, letters = [], iter("defghijklmnopqrstuvwxyz" * 3)
  def row(**kw):
    out.append(dict(generation=3, difficulty=3, prompt="abc>", completion=next(letters) * 3,
                    finished=True, kept=False, score=0.1, correct=True) | kw)
  for _ in range(kept):
    row(kept=True, score=0.9)
  for _ in range(rejected):
    row(score=0.2)
  for _ in range(unsure):
    row(score=0.7)
  for _ in range(cut_off):
    row(finished=False, score=0.0)
  return out


@pytest.mark.parametrize("kept, rejected", [(4, 2), (3, 9), (5, 5)])
def test_later_lessons_are_the_judges_own_verdicts_balanced(kept, rejected):
  given = rows(kept, rejected, unsure=2, cut_off=3)
  lessons = judge.self_examples(TASK, given, 0.5, np.random.default_rng(0), generation=3)
  verdicts = [x["completion"] for x in lessons]
  assert verdicts.count("y") == verdicts.count("n") == kept
  origins = [x["origin"] for x in lessons]
  assert origins.count("rejected") == min(kept, rejected)
  assert origins.count("near_miss") == max(0, kept - rejected)
  assert all(x["generation"] == 3 and x["kept"] for x in lessons)
  by_origin = lambda origin: {x["proposed"] for x in lessons if x["origin"] == origin}
  assert by_origin("kept") == {r["completion"] for r in given if r["kept"]}
  assert by_origin("rejected") <= {r["completion"] for r in given
                                   if r["finished"] and not r["kept"] and r["score"] < 0.5}
  # Not kept but above the threshold (unsure) and cut off: never a lesson.
  unsure = {r["completion"] for r in given if not r["kept"] and r["score"] >= 0.5}
  cut_off = {r["completion"] for r in given if not r["finished"]}
  assert len(unsure) == 2 and len(cut_off) == 3
  assert not {x["proposed"] for x in lessons} & (unsure | cut_off)


def test_later_lessons_never_read_ground_truth():
  base = rows(3, 5, unsure=1)
  flipped = [dict(r, correct=not r["correct"]) for r in base]
  no_truth = [{k: v for k, v in r.items() if k != "correct"} for r in base]
  out = [judge.self_examples(TASK, rs, 0.5, np.random.default_rng(1), 1)
         for rs in (base, flipped, no_truth)]
  strip = lambda ls: [{k: v for k, v in x.items() if k != "correct"} for x in ls]
  assert strip(out[0]) == strip(out[1]) == strip(out[2])


def test_no_kept_label_means_no_lessons():
  assert judge.self_examples(TASK, rows(0, 4), 0.5, np.random.default_rng(0), 2) == []


def test_p_yes_is_the_share_of_y_against_n_after_the_question(two_members):
  tok, graphdef, members = two_members.tok, two_members.graphdef, two_members.members
  params, devices = two_members.params, two_members.devices
  prompts, answers = ["abc>", "x>", "hello>"] * 4, ["cba", "x", "ollehh"] * 4
  got = judge.p_yes(devices, params, prompts, answers, rows_per_call=8)  # two calls
  y, n = tok.encode("y")[0], tok.encode("n")[0]
  for p, a in set(zip(prompts, answers)):
    want = []
    for _, member in members:  # each question alone, unpadded
      logits, _ = model_lib.apply(graphdef, member, jnp.array([tok.encode(f"{p}{a}?", bos=True)]))
      want.append(jax.nn.softmax(logits[0, -1, jnp.array([y, n])])[0])
    for i in np.nonzero([(q, b) == (p, a) for q, b in zip(prompts, answers)])[0]:
      assert got[i] == pytest.approx(float(np.mean(want)), abs=1e-5)


def test_quality_measures_verdicts_against_the_truth():
  p = np.array([0.9, 0.8, 0.6, 0.3, 0.2])
  correct = np.array([1, 0, 1, 1, 0], bool)
  q = judge.quality(p, correct, threshold=0.5)
  assert q["judge_precision"] == pytest.approx(2 / 3)  # judged right: .9 .8 .6
  assert q["judge_recall"] == pytest.approx(2 / 3)  # of the right ones: .9 .6 found
  assert q["judge_auc"] == pytest.approx(4 / 6)  # (.9>.8 .9>.2) (.6<.8 .6>.2) (.3<.8 .3>.2)


def test_a_short_judge_run_learns_from_truth_then_only_from_itself(tmp_path):
  import json

  from selfimprove_jax.run import loop
  from test_loop import tiny
  config = tiny(scorer="length,self_judge", generations=1)
  history = loop.run(config, str(tmp_path))
  gen1 = history[1]
  for m in history:  # held-out judge quality every generation, by difficulty
    assert set(m["judge_eval_auc"]) == {"1", "2", "3", "4"}
  assert {"judge_auc", "judge_precision", "judge_recall", "judge_lessons",
          "judge_lesson_precision", "score_auc"} <= set(gen1)
  examples = [json.loads(x) for x in (tmp_path / "generations/001/examples.jsonl").open()]
  lessons = [json.loads(x) for x in (tmp_path / "generations/001/judge.jsonl").open()]
  assert len(lessons) == gen1["judge_lessons"] == 2 * gen1["kept"] > 0
  assert [x["completion"] for x in lessons].count("y") == gen1["kept"]
  # Its "y" lessons are exactly its kept labels; every score is its own verdict.
  assert sorted((x["about"], x["proposed"]) for x in lessons if x["completion"] == "y") == sorted(
      (r["prompt"], r["completion"]) for r in examples if r["kept"])
  for r in examples:
    assert r["score"] in (0.0, r["judge"])

  setup = loop.build(config, str(tmp_path))
  try:
    first = loop.data_stage(setup, loop.initial_state(setup))
    assert [s.name for s in first.sources] == ["ground_truth", "judge_ground_truth"]
    assert first.weights == pytest.approx((0.75, 0.25))
    later = loop.data_stage(setup, loop.restore(setup, 1))
    names = [s.name for s in later.sources]
    assert names[-1] == "generations/001/judge.jsonl" and "judge_ground_truth" not in names
    assert later.sources[-1].size == len(lessons) and later.weights[-1] == pytest.approx(0.25)
  finally:
    setup.close()


def own_answers(n=40):
  """Training problems at difficulties 1-2 and their answers: problem i answered right
  (twice, once as a repeat), and wrong in one or two ways every third problem."""
  problems = [TASK.generate(np.random.default_rng([9, i]), 1 + i % 2) for i in range(n)]
  answers = []
  for i, p in enumerate(problems):
    wrong = [p.answer + "x", p.answer + "yy"][:1 + i % 2] if i % 3 == 0 else []
    answers.append([p.answer, p.answer] + wrong)
  return problems, answers


def test_own_answer_lessons_are_the_models_answers_checked_and_balanced():
  problems, answers = own_answers()
  lessons = judge.own_answer_lessons(TASK, problems, answers, 0.3, np.random.default_rng(0))
  by_prompt = {p.prompt: p for p in problems}
  sampled = {(p.prompt, a) for p, given in zip(problems, answers) for a in given}
  for x in lessons:
    p = by_prompt[x["about"]]
    assert x["prompt"] == judge.question(x["about"], x["proposed"])
    # Its verdict is the checker's, and a real answer is one the models gave.
    assert (x["completion"] == judge.YES) == TASK.verify(p, x["proposed"])
    assert (x["origin"] == "near_miss") != ((x["about"], x["proposed"]) in sampled)
    assert x["origin"] == {"y": "right"}.get(x["completion"], x["origin"])
    assert x["kept"] != x["heldout"] and x["generation"] == 0
  for heldout in (False, True):
    part = [x for x in lessons if x["heldout"] == heldout]
    assert part
    for d in (1, 2):  # as many yes as no at every difficulty
      verdicts = [x["completion"] for x in part if x["difficulty"] == d]
      assert verdicts.count("y") == verdicts.count("n") > 0
    near = sum(x["origin"] == "near_miss" for x in part)
    assert 2 * near <= sum(x["origin"] == "wrong" for x in part)  # a third of the "n" at most
  # A problem is held out whole.
  held = {x["about"] for x in lessons if x["heldout"]}
  assert held and not held & {x["about"] for x in lessons if not x["heldout"]}
  again = judge.own_answer_lessons(TASK, problems, answers, 0.3, np.random.default_rng(0))
  assert again == lessons


def test_mistakes_made_part_way_join_the_trained_lessons_and_never_the_held_out_ones():
  problems, answers = own_answers()
  plain = judge.own_answer_lessons(TASK, problems, answers, 0.3, np.random.default_rng(0))
  none_early = [[] for _ in problems]
  assert judge.own_answer_lessons(TASK, problems, answers, 0.3, np.random.default_rng(0),
                                  none_early) == plain
  # Part way, every problem was also answered wrong ("z" appended), once with a final
  # answer again: a mistake it made at the end too is no early one.
  early = [[p.answer + "z", p.answer + "z"] + given[2:3] for p, given in zip(problems, answers)]
  lessons = judge.own_answer_lessons(TASK, problems, answers, 0.3, np.random.default_rng(0),
                                     early)
  by_origin = lambda origin, heldout: {(x["about"], x["proposed"]) for x in lessons
                                       if x["origin"] == origin and x["heldout"] == heldout}
  assert by_origin("early", False)
  assert by_origin("early", False) <= {(p.prompt, p.answer + "z") for p in problems}
  assert not by_origin("early", True)
  # Held out: the same problems and the same lessons as without early answers.
  held = lambda xs: [x for x in xs if x["heldout"]]
  assert {x["about"] for x in held(lessons)} == {x["about"] for x in held(plain)}
  finals = {(p.prompt, a) for p, given in zip(problems, answers) for a in given}
  assert not by_origin("early", False) & finals
  for d in (1, 2):  # still as many "y" as "n"
    verdicts = [x["completion"] for x in lessons if not x["heldout"] and x["difficulty"] == d]
    assert verdicts.count("y") == verdicts.count("n") > 0
  # With more real mistakes, fewer near misses are needed.
  count = lambda xs, o: sum(x["origin"] == o and not x["heldout"] for x in xs)
  assert count(lessons, "near_miss") < count(plain, "near_miss")


def test_a_difficulty_the_models_never_get_wrong_teaches_nothing():
  problems, answers = own_answers()
  right_only = [[p.answer] for p in problems]
  assert judge.own_answer_lessons(TASK, problems, right_only, 0.3,
                                  np.random.default_rng(0)) == []
  del answers


@pytest.mark.parametrize("p, right, precision, want", [
    ([0.9, 0.8, 0.7, 0.6, 0.5], [1, 1, 0, 1, 0], 0.75, 0.6),  # 3 of 4 right from 0.6 up
    ([0.9, 0.8, 0.7, 0.6, 0.5], [1, 1, 0, 1, 0], 0.9, 0.8),
    ([0.9, 0.8, 0.7, 0.6, 0.5], [1, 1, 0, 1, 0], 0.5, 0.5),
    ([0.9, 0.9, 0.8], [1, 0, 1], 0.9, None),  # the tie at 0.9 keeps a wrong one
    ([0.9, 0.9, 0.8], [1, 0, 1], 0.6, 0.8),
    ([0.4, 0.3], [0, 0], 0.5, None),
])
def test_calibrate_finds_the_lowest_threshold_that_is_precise_enough(p, right, precision, want):
  got = judge.calibrate(np.array(p), np.array(right, bool), precision)
  assert got == want


def vote_rows(prompt, answers):
  """Examples-file rows of one prompt's samples, the answers given with their votes."""
  counts = {}
  for a in answers:
    counts[a] = counts.get(a, 0) + 1
  return [dict(generation=2, difficulty=3, prompt=prompt, completion=a, finished=a != "cut",
               votes=v, kept=True, score=v / len(answers), correct=True)
          for a, v in counts.items()]


def test_consensus_lessons_are_what_the_vote_settled_and_never_read_the_truth():
  rows = (vote_rows("abc>", ["cba"] * 4) + vote_rows("xyz>", ["zyx"] * 3 + ["zxy"])
          + vote_rows("pq>", ["qp", "qp", "pq", "pp"]) + vote_rows("de>", ["ed"] * 4))
  lessons = judge.consensus_examples(TASK, rows, 4, np.random.default_rng(0), 2)
  pairs = lambda origin: sorted((x["about"], x["proposed"]) for x in lessons
                                if x["origin"] == origin)
  assert pairs("unanimous") == [("abc>", "cba"), ("de>", "ed")]
  assert pairs("outvoted") == [("xyz>", "zxy")]  # "pq>" had no majority: nothing settled
  assert len(pairs("near_miss")) == 1
  verdicts = [x["completion"] for x in lessons]
  assert verdicts.count("y") == verdicts.count("n") == 2
  flipped = [dict(r, correct=not r["correct"]) for r in rows]
  no_truth = [{k: v for k, v in r.items() if k != "correct"} for r in rows]
  for other in (flipped, no_truth):
    assert judge.consensus_examples(TASK, other, 4, np.random.default_rng(0), 2) == lessons


def test_a_short_run_judges_with_lessons_from_its_own_answers(tmp_path):
  import json

  from selfimprove_jax.run import loop
  from test_loop import tiny
  steps, judge_steps = 60, 10
  config = tiny(scorer="length,majority_vote,self_judge", generations=1,
                **{"judge.lessons": "own_answers", "judge.problems": 64, "judge.samples": 2,
                   "judge.steps": judge_steps, "judge.later": "consensus",
                   "judge.combine": "either", "judge.precision": 0.5, "judge.early_steps": "15"})
  history = loop.run(config, str(tmp_path))
  read = lambda name: [json.loads(x) for x in (tmp_path / name).open()]
  first = read("generations/000/judge.jsonl")
  assert first and {x["origin"] for x in first} <= {"right", "wrong", "early", "near_miss"}
  for x in first:  # generation 0's verdicts are the checker's, on the models' answers
    problem = TASK_RA.parse(x["about"])
    assert (x["completion"] == judge.YES) == TASK_RA.verify(problem, x["proposed"])
  trained = [x for x in first if x["kept"]]
  gen0, gen1 = history
  assert gen0["judge_lessons"] == len(trained) and 0 < len(trained) < len(first)
  # The answers after step 15, to the same problems: its mistakes are lessons, never held out.
  rows = read("generations/000/judge_answers_step15.jsonl")
  early = {r["prompt"]: r["answers"] for r in rows}
  assert len(rows) == 64 and {x["about"] for x in first} <= set(early)
  from_early = [x for x in first if x["origin"] == "early"]
  assert from_early and all(x["kept"] and x["proposed"] in early[x["about"]] for x in from_early)
  assert gen0["judge_lessons_by_origin"]["early"] == len(from_early)
  assert gen0["judge_threshold"] is not None and gen0["judge_heldout_auc"] is not None
  assert gen1["judge_threshold"] is not None and gen1["judge_questions"] > 0
  # Generation 0 trains judge.steps more, the lessons joining after train.steps.
  log = [r["step"] for r in read("train_log.jsonl") if r["generation"] == 0]
  assert log[-1] == steps + judge_steps
  # Later: generation 0's trained lessons replayed, plus what the vote settled.
  later = read("generations/001/judge.jsonl")
  assert {x["origin"] for x in later} <= {"unanimous", "outvoted", "near_miss"}
  setup = loop.build(config, str(tmp_path))
  try:
    assert [s.name for s in loop.data_stage(setup, loop.initial_state(setup)).sources] == [
        "ground_truth"]
    mixture = loop.data_stage(setup, loop.restore(setup, 1))
    lessons = mixture.sources[-1]
    assert lessons.name == "judge" and lessons.size == len(trained) + len(later)
    drawn = {(x.prompt, x.completion) for x in lessons.get(range(lessons.size))}
    heldout = {(x["prompt"], x["completion"]) for x in first if x["heldout"]}
    assert drawn == {(x["prompt"], x["completion"]) for x in trained + later}
    assert heldout and not drawn & heldout  # the threshold's lessons are never trained on
  finally:
    setup.close()
  # Kept labels passed one bar or the other: the vote's, or the judge's calibrated one.
  examples = read("generations/001/examples.jsonl")
  bar = gen1["judge_threshold"]
  for r in examples:
    if r["kept"]:
      assert r["score"] >= 1 and (r["votes"] / 8 >= 0.1 or r["judge"] >= bar)


def test_a_separate_judge_is_a_copy_trained_on_lessons_the_models_never_see(tmp_path):
  import json

  from selfimprove_jax.run import loop
  from test_loop import tiny
  common = dict(scorer="length,majority_vote,self_judge", generations=1,
                **{"judge.lessons": "own_answers", "judge.problems": 64, "judge.samples": 2,
                   "judge.steps": 10, "judge.combine": "gate", "judge.precision": 0.5})
  shared, separate = tmp_path / "shared", tmp_path / "separate"
  loop.run(tiny(**common, **{"judge.later": "frozen"}), str(shared))
  config = tiny(**common, **{"judge.later": "consensus", "judge.weights": "separate"})
  history = loop.run(config, str(separate))
  read = lambda d, name: [json.loads(x) for x in (d / name).open()]
  # The models train train.steps alone; the judge its judge.steps a generation, apart.
  assert max(r["step"] for r in read(separate, "train_log.jsonl") if r["generation"] == 0) == 60
  assert max(r["step"] for r in read(shared, "train_log.jsonl") if r["generation"] == 0) == 70
  judged = [(r["generation"], r["step"]) for r in read(separate, "judge_log.jsonl")]
  assert judged == [(0, 10), (1, 10)]
  assert history[0]["judge_lessons"] > 0 and history[1]["judge_threshold"] is not None
  setup = loop.build(config, str(separate))
  try:
    for g in (0, 1):
      state = loop.restore(setup, g)
      assert state.judge is not None
      # No lesson in the models' batches.
      names = [s.name for s in loop.data_stage(setup, state).sources]
      assert not any("judge" in n for n in names)
    zero, one = loop.restore(setup, 0), loop.restore(setup, 1)
    changed = lambda a, b: any(not np.array_equal(x, y) for x, y in zip(
        jax.tree.leaves(jax.device_get(a)), jax.tree.leaves(jax.device_get(b))))
    assert changed(zero.judge.params, zero.train.params)  # the copy was taught
    assert changed(one.judge.params, zero.judge.params)  # and taught again (consensus)
  finally:
    setup.close()
  # Frozen, a separate judge after generation 0 is the judge that generation 0 left.
  frozen = tmp_path / "frozen"
  loop.run(tiny(**common, **{"judge.later": "frozen", "judge.weights": "separate"}), str(frozen))
  setup = loop.build(tiny(**common, **{"judge.later": "frozen", "judge.weights": "separate"}),
                     str(frozen))
  try:
    a, b = loop.restore(setup, 0).judge.params, loop.restore(setup, 1).judge.params
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(jax.device_get(a)),
                                                    jax.tree.leaves(jax.device_get(b))))
  finally:
    setup.close()


def test_settled_lessons_are_the_votes_labels_and_what_they_outvoted_never_the_truth():
  from selfimprove_jax.grading.scoring import Candidates
  from selfimprove_jax.grading.tasks import Problem
  prompts = ["abc>", "xyz>", "pq>"]
  completions = [["cba", "cba", "cab", "cba"], ["zyx", "zxy", "zzz", "cut"], ["qp", "pq", "qp", "pp"]]
  finished = np.array([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1]], bool)
  cands = Candidates(prompts=prompts, completions=completions, finished=finished,
                     mean_logprob=np.zeros((3, 4)))
  settled = np.zeros((3, 4), bool)
  settled[0, 1] = settled[1, 0] = True  # "pq>" settled nothing
  problems = [Problem(p, "?", 3) for p in prompts]  # answers never read: none is right here
  lessons = judge.settled_examples(TASK, problems, cands, settled, np.random.default_rng(0), 2)
  pairs = lambda origin: sorted((x["about"], x["proposed"]) for x in lessons
                                if x["origin"] == origin)
  assert pairs("settled") == [("abc>", "cba"), ("xyz>", "zyx")]
  # Each other finished answer at a settled prompt once; the cut-off one is no answer.
  outvoted = pairs("outvoted")
  assert len(outvoted) == 2 and set(outvoted) <= {("abc>", "cab"), ("xyz>", "zxy"), ("xyz>", "zzz")}
  assert [x["completion"] for x in lessons].count("y") == 2
  assert all(x["generation"] == 2 and x["difficulty"] == 3 and x["kept"] for x in lessons)
  truth = [Problem(p, TASK.parse(p).answer, 3) for p in prompts]
  assert judge.settled_examples(TASK, truth, cands, settled, np.random.default_rng(0), 2) == lessons
  none = judge.settled_examples(TASK, problems, cands, np.zeros((3, 4), bool),
                                np.random.default_rng(0), 2)
  assert none == []


def test_a_settled_judge_is_taught_the_generations_vote_before_it_judges_it(tmp_path):
  import json

  from selfimprove_jax.run import loop
  from test_loop import tiny
  config = tiny(scorer="length,majority_vote,self_judge", generations=1,
                **{"judge.lessons": "own_answers", "judge.problems": 64, "judge.samples": 2,
                   "judge.steps": 10, "judge.combine": "gate", "judge.precision": 0.5,
                   "judge.later": "settled", "judge.weights": "separate",
                   "judge.later_steps": 5, "filter.threshold": 0.125})
  loop.run(config, str(tmp_path))
  read = lambda name: [json.loads(x) for x in (tmp_path / name).open()]
  examples, later = read("generations/001/examples.jsonl"), read("generations/001/judge.jsonl")
  # "y": each prompt's plausible answer that one of the 8 samples gave (the first
  # sampled of equal ones), the vote's label on its own.
  settled = sorted((x["about"], x["proposed"]) for x in later if x["origin"] == "settled")
  top = {}
  for r in examples:
    lo, hi = TASK_RA.answer_lengths(r["prompt"])
    if (r["finished"] and lo <= len(r["completion"]) <= hi
        and r["votes"] > top.get(r["prompt"], (0, ""))[0]):
      top[r["prompt"]] = (r["votes"], r["completion"])
  assert settled and settled == sorted((p, c) for p, (v, c) in top.items() if v >= 1)
  assert {x["origin"] for x in later} <= {"settled", "outvoted", "near_miss"}
  # Trained once in generation 1, its later_steps (by the labelling), and its verdicts
  # are the examples'.
  assert [(r["generation"], r["step"]) for r in read("judge_log.jsonl")] == [(0, 10), (1, 5)]
  setup = loop.build(config, str(tmp_path))
  try:
    zero, one = loop.restore(setup, 0), loop.restore(setup, 1)
    rows = [r for r in examples if r["finished"]][:16]
    saved = judge.p_yes(setup.devices, one.judge.params, [r["prompt"] for r in rows],
                        [r["completion"] for r in rows])
    np.testing.assert_allclose(saved, [r["judge"] for r in rows], atol=2e-6)
    before = judge.p_yes(setup.devices, zero.judge.params, [r["prompt"] for r in rows],
                         [r["completion"] for r in rows])
    assert np.abs(before - saved).max() > 1e-3
    # A resumed generation, whose labelling ran before, trains the same judge from its lessons.
    again = loop._train_judge(setup, zero, 1, one.train, None, loop.Stopwatch(), {})
    assert all(np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves(jax.device_get(again.params)), jax.tree.leaves(jax.device_get(one.judge.params))))
  finally:
    setup.close()


@pytest.mark.parametrize("overrides", [{"judge.weights": "shared"},
                                       {"scorer": "length,self_judge"}])
def test_settled_needs_a_separate_judge_and_another_grader(tmp_path, overrides):
  from selfimprove_jax.run import loop
  from test_loop import tiny
  config = tiny(**{"scorer": "length,majority_vote,self_judge", "judge.later": "settled",
                   "judge.weights": "separate", **overrides})
  with pytest.raises(ValueError, match="judge.later='settled'"):
    loop.run(config, str(tmp_path))
