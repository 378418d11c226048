"""The CPU demo: string reversal learned on 1-5 letters, extended to 8 by self-labelling.

  python -m selfimprove_jax.main --workdir=/tmp/selfimprove_demo

Generation 0 trains three independently seeded models on ground-truth
reversals of 1-5 letter strings. Each later generation has them answer longer
strings, keeps the answers of the right length on which at least half of their
12 pooled samples agree, trains all three on those, and measures accuracy
against ground truth. Takes 8-10 minutes on 2 CPU cores; accuracy at 8 letters goes
from 0.02 after generation 0 to 0.91 after generation 4 (see README).
"""

import dataclasses

import ml_collections
from ml_collections.config_dict import placeholder

from selfimprove_jax.core.train import OptimizerConfig


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  c = ml_collections.ConfigDict()
  # One root seed: model init, data, sampling and batch draws all fold from it.
  c.seed = 0
  # Which procedural task (see selfimprove_jax/tasks.py).
  # String reversal: learned in a few hundred CPU steps, and like reverse addition
  # it reaches only partway past the lengths it was taught.
  c.task = "reversal"
  # Self-improvement generations after generation 0 (ground truth only).
  c.generations = 4
  # Minutes of the loop's own time (its generations' stages, summed over resumes) after
  # which no further generation starts: one that would end past it, at the last
  # generation's pace, is not begun. 0: no limit, `generations` alone decides.
  c.time_budget_minutes = 0.0
  # How to grade samples without the answer, composed left to right (scoring.py):
  # drop answers of implausible length, then score by agreement among the samples.
  # Others: none, confidence, self_judge, round_trip (reversal and copy), verifier (ground
  # truth), feedback.
  c.scorer = "length,majority_vote"
  # What each generation trains on: "accumulate" (ground truth + all kept labels),
  # "replace" (the newest labels only), "mix" (newest labels + data.mix_fraction truth)
  # or "newest" (newest labels + data.mix_fraction of truth and older labels, by difficulty).
  # "mix" gives the new labels half of every batch, so a few hundred steps learn them.
  c.data_policy = "mix"
  # Independently seeded models trained in one program, each in turn; their samples
  # are pooled for majority_vote. A lone model's mistakes repeat across its own
  # samples (kept-label precision fell to 0.3 in our runs); three models' differ.
  c.ensemble_size = 3

  c.model = ml_collections.ConfigDict()
  # Small enough to train three of in minutes on a CPU.
  c.model.num_layers = 4
  c.model.embed_dim = 64
  c.model.num_heads = 4
  # SwiGLU hidden width (4x embed_dim).
  c.model.mlp_dim = 256
  # No positional encoding: the causal mask alone lets the model count (NoPE),
  # which extends to longer operands where RoPE does not (Lee et al. 2025).
  c.model.pos_encoding = "none"
  # float32 on CPU; bfloat16 on accelerators.
  c.model.dtype = "float32"
  # "xla", or "cudnn" for cuDNN's fused attention on NVIDIA GPUs (bfloat16 or
  # float16 only); results agree to bfloat16 precision (tests/test_model.py).
  c.model.attention = "xla"

  c.data = ml_collections.ConfigDict()
  # Ground-truth ("human") data covers these difficulties (string lengths here).
  c.data.min_difficulty = 1
  c.data.max_difficulty = 5
  # Problems in the ground-truth TFDS split.
  c.data.train_size = 10_000
  # data_policy="mix": the share of every batch that is ground truth; "newest": that is
  # ground truth or older generations' labels.
  c.data.mix_fraction = 0.5
  # Where the TFDS datasets are built; "" means <workdir>/tfds.
  c.data.dir = ""

  c.train = ml_collections.ConfigDict()
  # Global batch, split across devices; must be a multiple of the device count.
  c.train.batch_size = 64
  # Generation 0's steps on ground truth, then each later generation's steps.
  c.train.steps = 800
  c.train.steps_per_generation = 200
  # Pack several examples into each batch row, kept apart by the attention mask, so that
  # a step trains on examples instead of padding: the same compute trains on more of them.
  c.train.pack = False
  # With pack: each step's rows hold about this many tokens, so a step costs the same as
  # the examples grow longer (0: train.batch_size rows at every width).
  c.train.pack_tokens = 0
  # With ensemble_size > 1: each member trains on batches of its own (member 0 on the
  # batches a lone model would draw), as separately trained seeded models do; False:
  # every member trains on the same batches, from its own initialization.
  c.train.own_batches = False
  # "continue" from the last generation's weights, or "restart" from generation 0's (ReST-EM).
  c.train.init = "continue"
  # "fresh": every generation's AdamW starts from zero moments; "carried": it takes the
  # moments of the state it starts from, only its learning-rate schedule starting again
  # (Lee et al. resume their optimizer). Generation 0 always starts fresh.
  c.train.optimizer_moments = "fresh"
  c.train.log_every = 50
  # Stop the run when this many steps in a row had a non-finite loss or gradient
  # (each one is skipped, so the weights stay the last finite ones).
  c.train.max_nonfinite_steps = 20

  c.optimizer = ml_collections.ConfigDict()
  # Each generation gets a schedule of its own over its steps (train.optimizer_moments
  # says whether AdamW's moments start afresh).
  c.optimizer.learning_rate = 1e-3
  # "cosine" (warmup then cosine to 10%), "wsd" (warmup-stable-decay) or "constant".
  c.optimizer.schedule = "cosine"
  c.optimizer.warmup_steps = 50
  # Decoupled AdamW decay, applied to weight matrices only.
  c.optimizer.weight_decay = 0.1
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.98
  # Clip the global gradient norm; 0 turns clipping off.
  c.optimizer.grad_clip = 1.0
  # What generations 1 on change of `optimizer` over their own steps, e.g. warmup_steps=0
  # or decay_fraction=0.5 (wsd); a field left None takes `optimizer`'s.
  c.generation_optimizer = ml_collections.ConfigDict(
      {f.name: placeholder(f.type) for f in dataclasses.fields(OptimizerConfig)
       if f.name != "total_steps"})  # set by the code: train.steps_per_generation

  c.sample = ml_collections.ConfigDict()
  # Fresh problems labelled per generation, and samples drawn for each.
  c.sample.prompts_per_generation = 512
  c.sample.samples_per_prompt = 4
  # Also ask each problem in the named equivalent forms of its task, joined by ',' (the
  # addition tasks: "swapped", b+a for a+b; "shifted", (a+c)+(b-c) with c drawn per
  # prompt), samples_per_prompt times each; their answers are pooled with the problem's
  # own for the vote. No answer is looked at: a model is inconsistent, not wrong. "": none.
  c.sample.equivalents = ""
  # Sampling temperature (0: greedy); top_k 0 and top_p 1 mean no truncation.
  c.sample.temperature = 1.0
  c.sample.top_k = 0
  c.sample.top_p = 1.0
  # Sequences per sampler call: bounds the KV cache and paces the progress bar.
  c.sample.rows_per_call = 2048

  c.filter = ml_collections.ConfigDict()
  # Keep a completion whose score reaches this: with majority vote, the share of
  # samples that agree on it (0.5 of 3 models x 4 samples: at least 6 agree).
  c.filter.threshold = 0.5
  # "best": at most one label per prompt; "threshold": every completion that passes.
  c.filter.keep = "best"
  # Train on each distinct (prompt, completion) once.
  c.filter.dedupe = True

  c.judge = ml_collections.ConfigDict()
  # scorer "self_judge": the share of every training batch that teaches the models
  # to judge answers ("<prompt><answer>?" -> y/n, judge.py).
  c.judge.fraction = 0.25
  # Generation 0's lessons: "near_miss" (each training answer and a synthetic near miss
  # of it) or "own_answers" (the models' own answers to training problems, labelled by
  # the task's checker, after train.steps; then judge.steps more steps with them).
  c.judge.lessons = "near_miss"
  # own_answers: training problems answered, answers per member (one greedy, the rest at
  # this temperature), the share of problems held out to set the threshold, and steps.
  c.judge.problems = 1024
  c.judge.samples = 4
  c.judge.temperature = 1.0
  c.judge.holdout = 0.25
  c.judge.steps = 200
  # own_answers: generation 0's train steps (comma-separated, each below train.steps) at
  # which the models answer the same problems the same way too, so that the mistakes they
  # made while learning join the lessons ("" for none; e.g. "200,400,600").
  c.judge.early_steps = ""
  # A separate judge's steps in each later generation (0: judge.steps), as it learns
  # that generation's lessons from where the last left it.
  c.judge.later_steps = 0
  # "shared": the models judge, learning it as judge.fraction of their batches; "separate":
  # a copy of generation 0's trained models judges, trained judge.steps a generation on
  # the lessons alone, saved with each generation (the models never see a lesson).
  c.judge.weights = "shared"
  # Later generations' lessons: "self" (its own verdicts), "frozen" (generation 0's
  # replayed, nothing new), "consensus" (generation 0's replayed, plus answers the
  # vote settled: unanimous ones "y", outvoted ones "n") or "settled" (a separate judge
  # taught the vote's own labels "y" and what they outvoted "n" before it judges the
  # same generation's answers). None reads ground truth.
  c.judge.later = "self"
  # How its verdict combines with the other stages: "product" (one more factor, one
  # threshold), "gate" (each grader against its own bar, both must pass), "either"
  # (either passing keeps an answer the other stages did not veto) or "weighted" (the
  # two measured against their bars, their geometric mean with the judge's share
  # judge.weight must pass).
  c.judge.combine = "product"
  c.judge.weight = 0.5
  # gate and either with own_answers: the judge's bar is the lowest threshold at which
  # its verdicts on the held-out lessons are this precise (0: the bar is 0.5).
  c.judge.precision = 0.0

  c.round_trip = ml_collections.ConfigDict()
  # scorer "round_trip": how the model's probability of getting the prompt back from its
  # answer combines with the other stages: "product" (one more factor, one threshold),
  # "gate" (each against its own bar, both must pass) or "either" (the other stages
  # passing filter.threshold or the round trip passing round_trip.threshold keeps an
  # answer the length filter did not veto).
  c.round_trip.combine = "product"
  c.round_trip.threshold = 0.5

  c.feedback = ml_collections.ConfigDict()
  # scorer "feedback": a JSON-lines file of users' {prompt, completion, rating}
  # (feedback.py); "" for none.
  c.feedback.file = ""
  # A rated answer scores weight * rating + (1 - weight) * its self-score.
  c.feedback.weight = 0.5

  c.noise = ml_collections.ConfigDict()
  # The error-avalanche experiment (Lee et al. 2025, section 8.2): at this
  # generation (0: never), replace this fraction of the kept labels by wrong
  # answers (near misses of the truth) before training on them.
  c.noise.generation = 0
  c.noise.fraction = 0.0

  c.curriculum = ml_collections.ConfigDict()
  # Advance the frontier when the samples at frontier+1 agreed this much on
  # average ("self_consistency"), or when enough prompts kept a label
  # ("kept_fraction"), or every generation ("always").
  c.curriculum.gate = "self_consistency"
  # Past the frontier a fresh model agrees with itself less than half the time.
  c.curriculum.gate_threshold = 0.4
  # Difficulties labelled per generation, starting just past the frontier.
  c.curriculum.window = 1

  c.eval = ml_collections.ConfigDict()
  # Greedy accuracy against ground truth at every difficulty from 1 to this.
  c.eval.max_difficulty = 8
  c.eval.per_difficulty = 128

  c.checkpoint = ml_collections.ConfigDict()
  # Save training progress inside a generation this often (0: only at its end).
  c.checkpoint.every_steps = 500
  # Generation checkpoints to keep (0: all).
  c.checkpoint.max_to_keep = 0
  return c
