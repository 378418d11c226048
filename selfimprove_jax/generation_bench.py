"""`python -m selfimprove_jax.bench generation`: loop generations timed by stage, with the
XLA compilations each caused, and each labelling generation done again by a PyTorch
pipeline of the same sizes (peers.TorchGeneration) in a process of its own.

The flags are bench.py's (--config, --workdir, --peers, and the internal --contestant
and --plan of the PyTorch pipeline's process).
"""

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
from absl import app, flags

from selfimprove_jax import peers
from selfimprove_jax.base import files
from selfimprove_jax.base.errors import UserError
from selfimprove_jax.core import sharding
from selfimprove_jax.core.tokenizer import CharTokenizer
from selfimprove_jax.grading import labelling
from selfimprove_jax.run import loop

FLAGS = flags.FLAGS


class CompileCounter:
  """Records XLA compilations (JAX reports each through jax.monitoring)."""

  def __init__(self):
    self.names = []  # the compiled functions' names, in order
    jax.monitoring.register_event_duration_secs_listener(self._event)

  @property
  def count(self) -> int:
    return len(self.names)

  def _event(self, event: str, duration: float, fun_name: str = "?", **_):
    if event == "/jax/core/compile/backend_compile_duration":
      self.names.append(fun_name)


def generation_plan(setup, before: "loop.LoopState", after: "loop.LoopState") -> dict:
  """The sizes of the generation that took `before` to `after`, for the PyTorch pipeline
  (peers.TorchGeneration): its members and steps; label prompts at its difficulties,
  each with the tokens a right answer has; the evaluation prompts; the shape of its
  packed rows; and examples to pack, drawn from the mixture it trained on."""
  cfg, task, tok = setup.config, setup.mode.task, setup.devices.tok
  rng = np.random.default_rng([cfg.seed, after.generation, 99])
  problems = task.batch(rng, np.resize(before.curriculum.next_difficulties(),
                                       cfg.sample.prompts_per_generation))
  asked = [(q, p) for p in problems for q in setup.mode.forms(setup, p)
           for _ in range(cfg.sample.samples_per_prompt)]
  rows = cfg.sample.rows_per_call
  answer_tokens = lambda ps: max(len(tok.encode(p.answer)) for p in ps) + 1  # and its EOS
  mixture = loop.data_stage(setup, after)
  batch = setup.mode.batches(setup, mixture)(rng)
  model = dataclasses.asdict(setup.devices.model_cfg)
  evaluation = setup.mode.eval_problems
  return dict(
      model=model, members=cfg.ensemble_size, steps=cfg.train.steps_per_generation,
      pack=bool(cfg.train.pack), rows=batch.inputs.shape[0], width=batch.inputs.shape[1],
      examples=[(x.prompt, x.completion) for x in mixture.draw(rng, 4096)],
      label_prompts=[q for q, _ in asked], rows_per_call=rows,
      label_tokens=[answer_tokens([p for _, p in asked[i:i + rows]])
                    for i in range(0, len(asked), rows)],
      eval_prompts=[p.prompt for p in evaluation], eval_tokens=[answer_tokens(evaluation)],
      max_len=max(batch.inputs.shape[1], max(len(p.prompt) for p in problems + evaluation) + 2
                  + max(len(p.answer) for p in problems + evaluation)))


def bench_generation():
  """Each generation's stage seconds and compilations, generation after generation; with
  --peers, each labelling generation also done by a PyTorch pipeline of the same sizes
  (peers.TorchGeneration), in a process of its own once ours has finished it."""
  if FLAGS.contestant == "torch_generation":
    plan = files.read_json(Path(FLAGS.plan))
    result = peers.TorchGeneration(plan)(CharTokenizer(), np.random.default_rng(0))
    print(json.dumps(result))
    return
  if FLAGS.config is None or FLAGS.workdir is None:
    raise app.UsageError("generation needs --config and --workdir")
  compiles = CompileCounter()
  try:
    setup = loop.build(FLAGS.config, FLAGS.workdir)
  except UserError as e:
    sys.exit(f"error: {e}")
  state, _ = loop.resume(setup)
  try:
    while state.generation < FLAGS.config.generations:
      before_count, tic, before = compiles.count, time.perf_counter(), state
      state, metrics = loop.generation_step(setup, state)
      seconds = time.perf_counter() - tic
      if sharding.is_writer():  # the workdir stays a run's, resumable by main
        files.append_jsonl(setup.workdir.path / "metrics.jsonl", metrics)
      result = dict(bench="generation", generation=state.generation, seconds=round(seconds, 2),
                    stages={k: round(v, 2) for k, v in metrics["seconds"].items()},
                    compilations=compiles.count - before_count,
                    compiled=sorted(set(compiles.names[before_count:])))
      if FLAGS.peers and state.generation > 0 and isinstance(setup.mode, labelling.TaskMode):
        result |= peer_generation(generation_plan(setup, before, state), seconds)
      print(json.dumps(result), flush=True)
  finally:
    setup.close()


def peer_generation(plan: dict, ours_seconds: float) -> dict:
  """The PyTorch pipeline's seconds for `plan`, timed in a process of its own."""
  path = Path(FLAGS.workdir) / "peer_plan.json"
  files.atomic_write(path, json.dumps(plan))
  child = subprocess.run([sys.executable, "-m", "selfimprove_jax.bench", "generation",
                          "--contestant=torch_generation", f"--plan={path}"],
                         capture_output=True, text=True)
  if child.returncode:
    sys.exit(f"error: the torch_generation process failed:\n{child.stderr[-2000:]}")
  peer = json.loads(child.stdout.strip().splitlines()[-1])
  total = sum(peer["seconds"].values())
  return dict(torch_seconds=round(total, 2),
              torch_stages={k: round(v, 2) for k, v in peer["seconds"].items()},
              ours_vs_torch=round(total / ours_seconds, 2))
