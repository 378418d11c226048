"""Task mode: sample -> score -> filter, the self-judge's lessons, and measurement.

A generation samples K answers from each ensemble member for fresh problems just
past the frontier, scores them (scoring.py, judge.py, users' ratings), keeps the
labels the filter lets through, and writes every distinct answer to its examples
file (run/workdir.py) with its score, where the score came from, whether it was
kept, and whether ground truth says it is right (measurement only). Greedy
accuracy on the fixed evaluation problems is the measurement; the curriculum's
gate decides whether the frontier moves.
"""

import dataclasses
import time
from pathlib import Path

import jax
import numpy as np

from selfimprove_jax.base import preemption, progress
from selfimprove_jax.base.modes import Labels
from selfimprove_jax.core import data, sampling
from selfimprove_jax.core import mixture as mixture_lib
from selfimprove_jax.core.mixture import Example, Source
from selfimprove_jax.core.train import member
from selfimprove_jax.grading import evaluate, filtering, judge, judge_lessons, label_truth, report
from selfimprove_jax.grading import round_trip, scoring
from selfimprove_jax.grading import ratings as ratings_lib
from selfimprove_jax.grading.curriculum import Curriculum, gate_passes
from selfimprove_jax.grading.tasks import Task

# Labelling statistics copied into metrics.jsonl when a run produces them.
_LABEL_METRICS = ("score_auc", "injected", "judge_auc", "judge_precision", "judge_recall",
                  "judge_lessons", "judge_lesson_precision", "judge_lessons_by_origin",
                  "judge_threshold", "judge_heldout_auc", "judge_heldout_precision",
                  "judge_questions", "round_trip_auc", "round_trip_questions",
                  "feedback_rated", "kept_by_source")


@dataclasses.dataclass(eq=False)
class TaskMode:
  """Problems with answers (modes.py has the interface), and the world they come from."""
  task: Task
  ground_truth: Source  # the TFDS train split, read by index
  eval_problems: list  # the TFDS eval split, in memory
  judging: bool  # the models learn and use the self-judge (judge.py)
  ratings: ratings_lib.Ratings | None = None  # users' ratings, when the scorer has `feedback`

  def curriculum(self, setup, frontier: int | None) -> Curriculum:
    cfg = setup.config
    return Curriculum(cfg.data.max_difficulty if frontier is None else frontier,
                      cfg.curriculum.window)

  def start(self, setup) -> None:
    del setup

  def batches(self, setup, mixture):
    longest = max(s.longest for s in mixture.sources) + 1  # BOS ... EOS, inputs drop one
    cfg, tok, seq_len = setup.config.train, setup.devices.tok, data.bucket(longest)
    if cfg.pack:  # rows as wide as the longest example, each filled with whole examples
      rows, devices = cfg.batch_size, setup.devices.mesh.size
      if cfg.pack_tokens:  # as many tokens a step whatever the width
        rows = max(devices, cfg.pack_tokens // seq_len // devices * devices)
      return lambda rng: data.pack(tok, lambda n: mixture.draw(rng, n), rows, seq_len)
    def batch(rng):
      examples = mixture.draw(rng, cfg.batch_size)
      return data.make_batch(tok, [x.prompt for x in examples], [x.completion for x in examples],
                             seq_len)
    return batch

  def lessons(self, setup, label_files: tuple[str, ...]) -> Source | None:
    if not self.judging:
      return None
    cfg = setup.config.judge
    if not label_files:  # generation 0: near misses from the start, own answers later
      return self._first_lessons(setup) if cfg.lessons == "near_miss" else None
    if cfg.later == "frozen":
      return self._first_lessons(setup)
    # The newest generation's lessons: its own verdicts (self), or what the vote settled.
    relative = str(Path(label_files[-1]).with_name("judge.jsonl"))
    newest = setup.workdir.read_labels(relative)
    if cfg.later == "self":
      return Source.from_list(relative, newest)
    return self.replayed_with(setup, newest)

  def replayed_with(self, setup, newest: list[Example]) -> Source:
    """Generation 0's judge lessons replayed, then `newest` (a generation's settled ones)."""
    return mixture_lib.concat("judge", [self._first_lessons(setup),
                                        Source.from_list("judge_newest", newest)])

  def _first_lessons(self, setup) -> Source:
    """Generation 0's judge lessons, replayed."""
    if setup.config.judge.lessons == "near_miss":
      return judge.ground_truth_source(self.task, self.ground_truth, setup.config.seed)
    return judge_lessons.replayed(setup)

  def lessons_join_at(self, setup, g: int) -> int | None:
    """The step of generation g after which the models' own-answer lessons are made and
    join its batches (generation 0 with judge.lessons="own_answers"), or None."""
    if g == 0 and self.judging and setup.config.judge.lessons == "own_answers":
      return setup.config.train.steps
    return None

  def early_answer_steps(self, setup, g: int) -> tuple[int, ...]:
    """The steps of generation g after which the models' answers are sampled for the
    judge's own-answer lessons as well (judge.early_steps, generation 0 only)."""
    cfg = setup.config.judge
    if g or not self.judging or cfg.lessons != "own_answers":
      return ()
    return judge_lessons.early_steps(cfg.early_steps)

  def own_answers(self, setup, params, key) -> tuple[Source, dict]:
    """Generation 0's lessons from the models' own answers to training problems, and what
    they hold (judge_lessons.py)."""
    return judge_lessons.from_own_answers(setup, params, key, self.task, self.ground_truth,
                                          self.max_answer_tokens)

  def early_answers(self, setup, params, key, step: int) -> None:
    """The models' answers after generation 0's step `step`, for those lessons."""
    judge_lessons.write_early(setup, params, key, step, self.ground_truth,
                              self.max_answer_tokens)

  def judge_threshold(self, setup, params) -> tuple[float | None, dict]:
    """The judge's bar, set on generation 0's held-out own-answer lessons (judge_lessons.py)."""
    return judge_lessons.threshold(setup, params)

  def evaluate(self, setup, params, curriculum: Curriculum, stats: dict, g: int, key,
               judge_params=None):
    """`judge_params`: the separate judge's weights (default: the models' own)."""
    del key  # greedy
    cfg = setup.config
    judge_params = params if judge_params is None else judge_params
    evaluation = self.accuracy(setup, params, judge_params)
    passed = None
    if g > 0:
      passed = gate_passes(cfg.curriculum.gate, cfg.curriculum.gate_threshold,
                           stats["self_consistency"], stats["kept_fraction"])
    after = curriculum.advance(bool(passed))
    if g == 0 and self.judging and cfg.judge.lessons == "own_answers":
      stats = stats | self.judge_threshold(setup, judge_params)[1]  # the bar after generation 0
    metrics = dict(
        difficulty=curriculum.next_difficulties()[0] if g > 0 else None, scorer=cfg.scorer,
        **evaluation,
        kept_precision=stats.get("kept_precision"), kept_recall=stats.get("kept_recall"),
        sample_accuracy=stats.get("sample_accuracy"),
        self_consistency=stats.get("self_consistency"), gate_passed=passed,
        frontier=after.frontier, distinct_answers=stats.get("distinct_answers"),
        **{k: stats[k] for k in _LABEL_METRICS if k in stats})
    return metrics, after

  def report(self, setup, history: list[dict]) -> None:
    print(report.table(history, trained_max=setup.config.data.max_difficulty), flush=True)
    report.plot(history, setup.workdir.path / "report.png")

  def max_answer_tokens(self, problems) -> int:
    # The longest plausible answer, one character of slack to see overruns, and EOS;
    # bucketed, so a sampler serves several generations' difficulties. A row
    # stops at its EOS, so the extra room costs only cache slots.
    return data.bucket(max(self.task.answer_lengths(p.prompt)[1] for p in problems) + 2)

  def accuracy(self, setup, params, judge_params=None) -> dict:
    """Greedy accuracy of member 0 on the fixed evaluation set, by difficulty; with the
    self-judge, also how well it tells each answer from a near miss (AUC by difficulty)."""
    [accuracy] = self.accuracy_of_members(setup, params, self.eval_problems, members=[0])
    out = dict(accuracy={str(d): a for d, a in accuracy.items()})
    if self.judging:
      out["judge_eval_auc"] = judge.evaluate(
          setup.devices, self.task, setup.config.seed,
          params if judge_params is None else judge_params, self.eval_problems)
    return out

  def accuracy_of_members(self, setup, params, problems, members=None,
                          rows_per_call: int = 0) -> list[dict[int, float]]:
    """Greedy accuracy by difficulty of each of `members` (default: all) on `problems`,
    `rows_per_call` rows a sampler call (0: all at once)."""
    devices = setup.devices
    sampler = devices.sampler(sampling.Greedy(), self.max_answer_tokens(problems))
    members = range(setup.config.ensemble_size) if members is None else members
    return [evaluate.accuracy_by_difficulty(evaluate.grade(
                sampler, member(params, e), devices.tok, self.task, problems, jax.random.key(0),
                rows_per_call)) for e in members]

  def label(self, setup, params, curriculum: Curriculum, g: int, key, rng,
            judge_params=None, refit_judge=None) -> Labels:
    """Sample -> score -> filter: generation g's examples-file rows, and the judge's
    lessons (None without the self-judge); `judge_params` the separate judge's weights.
    With judge.later="settled", `refit_judge(lessons)` trains the judge on the lessons
    the other stages settled and returns its new weights, which then judge."""
    cfg = setup.config
    judge_params = params if judge_params is None else judge_params
    seconds, tic = {}, time.perf_counter()
    problems, cands, stats = self.sample(setup, params, curriculum, g, key, rng)
    seconds["sample"] = time.perf_counter() - tic
    tic = time.perf_counter()
    p_yes, threshold, lessons = None, cfg.filter.threshold, None
    p_back = None
    if "round_trip" in scoring.parse(cfg.scorer):
      p_back = round_trip.probabilities(setup.devices, self.task, params, cands)
      stats["round_trip_questions"] = len(cands.distinct_answers())  # each asked once a member
    # The stages other than the judge, where the judge is weighed against them.
    rest = (self._other_scores(setup, problems, cands, "self_judge", p_back=p_back)
            if self.judging and (cfg.judge.later == "settled" or cfg.judge.combine != "product")
            else None)
    if self.judging and cfg.judge.later == "settled":
      settled = filtering.select(rest, threshold, "best")
      lessons = judge.settled_examples(self.task, problems, cands, settled, rng, g)
      seconds["score"] = time.perf_counter() - tic
      judge_params = refit_judge(lessons)
      tic = time.perf_counter()
    if self.judging:
      p_yes = judge.verdicts(setup.devices, judge_params, cands)
      bar, judge_stats = self.judge_threshold(setup, judge_params)
      stats |= judge_stats
      stats["judge_questions"] = stats.get("judge_questions", 0) + len(cands.distinct_answers())
    if self.judging and cfg.judge.combine != "product":
      # Each grader against its own bar: the other stages' against filter.threshold,
      # the judge's against its calibrated one; kept from 1 on.
      scores, threshold = scoring.combine(cfg.judge.combine, rest, cfg.filter.threshold, p_yes,
                                          bar, cfg.judge.weight), 1.0
      stats["judge_threshold"] = bar
    elif p_back is not None and cfg.round_trip.combine != "product":
      # The other stages against filter.threshold, the round trip against its own bar.
      scores, threshold = scoring.combine(
          cfg.round_trip.combine,
          self._other_scores(setup, problems, cands, "round_trip", p_yes=p_yes),
          cfg.filter.threshold, p_back, cfg.round_trip.threshold), 1.0
    else:
      # Only `verifier` receives the problems: make_scorer hands them to nobody else.
      scores = scoring.make_scorer(cfg.scorer, self.task, problems, p_yes, p_back)(cands)
    scores, source = self._with_ratings(setup, cands, scores, stats)
    seconds["score"] = seconds.get("score", 0.0) + time.perf_counter() - tic
    tic = time.perf_counter()
    judge_bar = None  # the judge's precision is measured at the one threshold (filter's default)
    if self.judging and cfg.judge.combine != "product":  # or at its own bar (inf: none reached)
      judge_bar = np.inf if bar is None else bar
    rows, filter_stats = self.filter(setup, g, problems, cands, scores, source, rng, p_yes,
                                     threshold, judge_bar, p_back)
    seconds["filter"] = time.perf_counter() - tic
    if self.ratings:
      filter_stats["kept_by_source"] = {s: sum(r["kept"] and r["score_source"] == s for r in rows)
                                        for s in ("self", "feedback", "blend")}
    if self.judging:
      lessons = self._later_lessons(setup, rows, cands, threshold, rng, g, lessons)
      stats |= self._lesson_truth(problems, lessons)
    return Labels(rows=rows, lessons=lessons, stats=stats | filter_stats, seconds=seconds)

  def _with_ratings(self, setup, cands: scoring.Candidates, scores, stats: dict):
    """The scores with users' ratings blended in (when the scorer has `feedback`), and
    [N, K] where each came from: "self", "feedback" or "blend"."""
    source = np.full(cands.shape, "self", object)
    if not self.ratings:
      return scores, source
    has_self = any(n != "feedback" for n in scoring.parse(setup.config.scorer))
    valid = cands.initially_valid() & ((scores > 0) if has_self else True)
    rating, rated = self.ratings.lookup(cands.prompts, cands.completions)
    stats["feedback_rated"] = int((rated & valid).sum())
    return ratings_lib.blend(scores, valid, rating, rated, setup.config.feedback.weight,
                             has_self)

  def _lesson_truth(self, problems, lessons: list[dict]) -> dict:
    """Measurement only: marks each judge lesson `correct` when its verdict is true, and
    returns how many lessons there are and how many of them are true."""
    by_prompt = {p.prompt: p for p in problems}
    for lesson in lessons:
      right = self.task.verify(by_prompt[lesson["about"]], lesson["proposed"])
      lesson["correct"] = right == (lesson["completion"] == judge.YES)
    return dict(judge_lessons=len(lessons),
                judge_lesson_precision=(float(np.mean([x["correct"] for x in lessons]))
                                        if lessons else None))

  def _later_lessons(self, setup, rows, cands, threshold, rng, g, settled):
    """The judge's lessons from this generation's rows, as judge.later says (`settled`:
    those it was taught before it judged)."""
    later = setup.config.judge.later
    if later == "self":
      return judge.self_examples(self.task, rows, threshold, rng, g)
    if later == "consensus":
      return judge.consensus_examples(self.task, rows, cands.shape[1], rng, g)
    if later == "frozen":  # no lessons after generation 0
      return []
    return settled

  def _other_scores(self, setup, problems, cands: scoring.Candidates, without: str,
                    p_yes=None, p_back=None) -> np.ndarray:
    """[N, K] the scorer's stages other than `without` (every valid answer 1 if none)."""
    others = [n for n in scoring.parse(setup.config.scorer) if n != without]
    return (scoring.make_scorer(",".join(others), self.task, problems, p_yes, p_back)(cands)
            if others else cands.initially_valid().astype(float))

  def forms(self, setup, problem) -> list[str]:
    """The prompts a problem is asked as: itself, then in each of its task's equivalent
    forms that sample.equivalents names."""
    forms = self.task.parse_forms(setup.config.sample.equivalents)
    return [problem.prompt, *self.task.equivalents(problem.prompt, forms)]

  def sample(self, setup, params, curriculum: Curriculum, g: int, key, rng):
    """K samples from each ensemble member for fresh problems just past the frontier."""
    cfg, tok = setup.config.sample, setup.devices.tok
    difficulties = curriculum.next_difficulties()
    # Prompts users rated at these difficulties come first, so the ratings meet fresh answers.
    rated = self.ratings.at(difficulties)[:cfg.prompts_per_generation] if self.ratings else []
    problems = rated + self.task.batch(
        rng, np.resize(difficulties, cfg.prompts_per_generation - len(rated)))
    forms = [self.forms(setup, p) for p in problems]
    # Problem i's samples are rows i*K .. i*K+K-1 of each member's calls, its forms'
    # samples one after another (K = forms x samples_per_prompt).
    k, members = len(forms[0]) * cfg.samples_per_prompt, setup.config.ensemble_size
    rows = [t for f in forms for t in data.prompt_tokens(tok, f)
            for _ in range(cfg.samples_per_prompt)]
    sampler = setup.devices.sampler(setup.sample_method, self.max_answer_tokens(problems))
    with progress.bar(total=len(rows) * members, desc=f"gen {g} sample", unit="seq") as bar:
      def on_chunk(rows):
        bar.update(rows)
        preemption.stop_if_requested(f"while sampling generation {g}")
      outs = [sampler.in_chunks(member(params, e), rows, jax.random.fold_in(key, e),
                                cfg.rows_per_call, on_chunk) for e in range(members)]
    out = jax.tree.map(lambda *xs: np.concatenate(xs), *outs)
    n = len(problems)
    # [E * N * K] in member-major order -> [N, E * K]
    regroup = lambda x: (np.asarray(x).reshape(members, n, k).transpose(1, 0, 2)
                         .reshape(n, members * k))
    texts = regroup(np.array([tok.decode(t) for t in out.tokens], dtype=object))
    cands = scoring.Candidates(prompts=[p.prompt for p in problems], completions=texts.tolist(),
                               finished=regroup(out.done), mean_logprob=regroup(out.mean_logprob))
    return problems, cands, out.token_stats()

  def filter(self, setup, g: int, problems, cands: scoring.Candidates, scores, source,
             rng, p_yes=None, threshold: float | None = None, judge_bar: float | None = None,
             p_back=None):
    """Kept labels, plus what ground truth says about them (measurement only).

    `source` [N, K] says where each score came from; `p_yes` [N, K] holds the
    self-judge's verdicts and `p_back` the round trip's (None without them), recorded
    with each row. Scores of at least `threshold` (default filter.threshold) pass; the
    judge's own precision is measured at `judge_bar` (default filter.threshold).
    """
    cfg = setup.config.filter
    threshold = cfg.threshold if threshold is None else threshold
    valid = cands.initially_valid()
    votes = scoring.vote_counts(cands, valid)
    kept = filtering.select(scores, threshold, cfg.keep)
    if cfg.dedupe:
      kept = filtering.dedupe(cands.prompts, cands.completions, kept)
    correct = np.array([[self.task.verify(p, c) for c in row]
                        for p, row in zip(problems, cands.completions)]) & valid
    rows = []
    for i, p in enumerate(problems):
      seen = {}
      for j, c in enumerate(cands.completions[i]):
        if c in seen:  # one row per distinct answer; kept if any copy was kept
          rows[seen[c]]["kept"] |= bool(kept[i, j])
          continue
        seen[c] = len(rows)
        rows.append(dict(generation=g, difficulty=p.difficulty, prompt=p.prompt, completion=c,
                         finished=bool(cands.finished[i, j]), votes=int(votes[i, j]),
                         score=round(float(scores[i, j]), 6), score_source=source[i, j],
                         kept=bool(kept[i, j]), correct=bool(correct[i, j])))
        if p_yes is not None:
          rows[-1]["judge"] = round(float(p_yes[i, j]), 6)
        if p_back is not None:
          rows[-1]["round_trip"] = round(float(p_back[i, j]), 6)
    noise = setup.config.noise
    injected = label_truth.inject_errors(self.task, problems, rows, noise.fraction, rng) if (
        g == noise.generation and noise.fraction > 0) else 0
    stats = label_truth.kept_label_stats(rows, scores, kept, correct, valid, cands, injected)
    if p_yes is not None:
      bar = cfg.threshold if judge_bar is None else judge_bar
      stats |= judge.quality(p_yes[valid], correct[valid], bar)
    if p_back is not None:
      stats["round_trip_auc"] = scoring.auc(p_back[valid], correct[valid])
    return rows, stats
