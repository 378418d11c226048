"""The self-judge: its lessons (ground truth in generation 0, its own verdicts after),
its verdicts on a real model, and how its quality is measured."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selfimprove_jax.core import model as model_lib
from selfimprove_jax.core.devices import Devices
from selfimprove_jax.core.mixture import Example, Source
from selfimprove_jax.core.tokenizer import CharTokenizer
from selfimprove_jax.grading import judge
from selfimprove_jax.grading.tasks import get_task

TASK = get_task("reversal")


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


def test_p_yes_is_the_share_of_y_against_n_after_the_question(mesh8):
  tok = CharTokenizer()
  cfg = model_lib.ModelConfig(vocab_size=tok.vocab_size, num_layers=1, embed_dim=16,
                              num_heads=2, mlp_dim=32)
  members = [model_lib.create(cfg, seed=s) for s in (0, 1)]
  graphdef = members[0][0]
  params = jax.tree.map(lambda *xs: jnp.stack(xs), *[p for _, p in members])
  devices = Devices(mesh8, graphdef, cfg, tok)
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
