"""Benchmarks: `python -m selfimprove_jax.bench {sample,train,pack,generation} [--flags]`.

sample: new tokens/s of the KV-cached sampler, of Hugging Face
  `LlamaForCausalLM.generate` at the same sizes (peers.py), and of the same
  model recomputing the whole prefix for every new token (one jitted
  fori_loop). Greedy, EOS disabled: every row gets exactly --new_tokens.
train:  train-step tokens/s and MFU, against an eager PyTorch AdamW step of the
  same Llama model; with --ensemble=E, E seeded models a call on either side.
pack:   train steps on a task's examples one per row, padded, against packed rows
  (data.pack): tokens with loss per second.
generation: one loop generation after another (--config, --workdir), each
  split by stage, with the XLA compilations it caused; each labelling generation
  is then done again by a PyTorch pipeline of the same sizes (Hugging Face
  `generate` to label and evaluate, eager AdamW steps on the same packed rows;
  peers.TorchGeneration) in a process of its own, and the two totals compared
  (generation_bench.py).

Figures are medians of --runs timed runs after --warmup untimed ones. Where
sample and train time peers, each contestant runs alone in a process of its own,
--rounds times, taking turns (--isolate, the default): PyTorch's OpenMP threads
spin for a while after its call returns, and in a shared process they would be
timed as part of ours. The figure is the median over rounds of each process's
median, so a machine that slows down mid-way slows every contestant alike.
--noisolate times them in one process, taking turns run by run (biased: the
spinning threads of one slow the other; kept to compare against older figures).
"""

import dataclasses
import functools
import json
import logging
import os
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from selfimprove_jax import generation_bench, peers
from selfimprove_jax.core import sampling, sharding
from selfimprove_jax.core import data as data_lib
from selfimprove_jax.core import model as model_lib
from selfimprove_jax.core import train as train_lib
from selfimprove_jax.core.tokenizer import BOS, EOS, CharTokenizer

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command line's flags, defined only when run as a program (the CLI's --config
  and --workdir would clash with these in a process that imports both)."""
  flags.DEFINE_integer("num_layers", 4, "Transformer layers.")
  flags.DEFINE_integer("embed_dim", 128, "Model width.")
  flags.DEFINE_integer("num_heads", 4, "Attention heads.")
  flags.DEFINE_integer("mlp_dim", 512, "Gated-MLP hidden width.")
  flags.DEFINE_integer("vocab_size", 49, "Vocabulary (the character tokenizer has 49).")
  flags.DEFINE_string("dtype", "float32", "Compute dtype.")
  flags.DEFINE_string("pos_encoding", "rope", "none or rope (rope, as the Llama peers).")
  flags.DEFINE_string("attention", "xla", "Attention implementation: xla or cudnn.")
  flags.DEFINE_bool("peers", True, "Also time the PyTorch / Hugging Face peers (bench extra).")
  flags.DEFINE_list("batch", ["64"], "Batch sizes to measure.")
  flags.DEFINE_integer("prompt_len", 32, "sample: prompt tokens per row.")
  flags.DEFINE_integer("new_tokens", 128, "sample: new tokens per row.")
  flags.DEFINE_integer("seq_len", 32, "train: tokens per row.")
  flags.DEFINE_integer("ensemble", 1, "train: models stepped per call, each its own seed: ours "
                       "in one ensemble step (ensemble_size), PyTorch's one after another.")
  flags.DEFINE_string("task", "reverse_addition", "pack: the task whose examples are trained on.")
  flags.DEFINE_list("digits", ["1", "6"], "pack: the ground truth's difficulties, low,high.")
  flags.DEFINE_integer("label_digits", 0, "pack: half of each batch at this difficulty (0: none).")
  flags.DEFINE_integer("runs", 5, "Timed runs; the median is reported.")
  flags.DEFINE_bool("isolate", True, "sample, train: each contestant in a process of its own.")
  flags.DEFINE_integer("rounds", 5, "sample, train with --isolate: processes per contestant, "
                       "taking turns; the median of their medians is reported.")
  flags.DEFINE_string("contestant", "", "Internal: the one contestant this process times.")
  flags.DEFINE_integer("warmup", 1, "Untimed runs first (compilation happens here).")
  flags.DEFINE_float("peak_tflops", 0.0, "Peak TFLOP/s for MFU; 0 measures a large matmul instead.")
  flags.DEFINE_float("peak_tbs", 0.0, "sample: memory bandwidth in TB/s (H200: 4.8 on paper, 4.3 "
                     "in our targets); if given, "
                     "the decode loop's bandwidth utilisation is reported against it.")
  flags.DEFINE_bool("skip_recompute", False, "sample: skip the (slow) no-cache baseline.")
  config_flags.DEFINE_config_file("config", None, "generation: the run's config file.")
  flags.DEFINE_string("workdir", None, "generation: the run's directory (resumed if it holds one).")
  flags.DEFINE_string("plan", None, "Internal: generation's plan for the PyTorch pipeline.")


def interleaved_medians(contestants: dict) -> dict[str, float]:
  """Median seconds of each zero-argument function, taking turns run by run."""
  for _ in range(FLAGS.warmup):
    for fn in contestants.values():
      jax.block_until_ready(fn())
  times = {name: [] for name in contestants}
  for _ in range(FLAGS.runs):
    for name, fn in contestants.items():
      start = time.perf_counter()
      jax.block_until_ready(fn())
      times[name].append(time.perf_counter() - start)
  return {name: statistics.median(t) for name, t in times.items()}


def isolated(factories: dict) -> bool:
  """Whether fair_medians times these contestants each in its own process."""
  return FLAGS.isolate and len(factories) > 1


def fair_medians(command: str, factories: dict, batch: int) -> dict[str, float]:
  """Median seconds of each contestant, from factories name -> (() -> function to time).

  With --isolate, every round starts one process per contestant, in turn (the order
  alternating between rounds), and each builds and times only its own; nothing of
  one contestant runs while another's timer does."""
  if FLAGS.contestant:  # this process is one round of one contestant
    seconds = interleaved_medians({FLAGS.contestant: factories[FLAGS.contestant]()})
    print(json.dumps({"contestant": FLAGS.contestant, "seconds": seconds[FLAGS.contestant]}))
    sys.exit(0)
  if not isolated(factories):
    return interleaved_medians({name: make() for name, make in factories.items()})
  passed = [f.serialize() for f in FLAGS.get_flags_for_module(sys.modules[__name__])
            if f.present and f.name not in ("batch", "contestant", "rounds")]
  return isolated_medians(list(factories), [command, *passed, f"--batch={batch}"], FLAGS.rounds)


def isolated_medians(names: list[str], argv: list[str], rounds: int,
                     run=subprocess.run) -> dict[str, float]:
  """Median over `rounds` of each contestant's seconds, each round starting one bench
  process per contestant (`argv` plus --contestant), in an order that alternates."""
  times = {name: [] for name in names}
  for r in range(rounds):
    for name in (names if r % 2 == 0 else names[::-1]):
      child = run([sys.executable, "-m", "selfimprove_jax.bench", *argv, f"--contestant={name}"],
                  capture_output=True, text=True)
      if child.returncode:
        sys.exit(f"error: the {name} process failed:\n{child.stderr[-2000:]}")
      times[name].append(json.loads(child.stdout.strip().splitlines()[-1])["seconds"])
  return {name: statistics.median(t) for name, t in times.items()}


def model_config() -> model_lib.ModelConfig:
  return model_lib.ModelConfig(vocab_size=FLAGS.vocab_size, num_layers=FLAGS.num_layers,
                               embed_dim=FLAGS.embed_dim, num_heads=FLAGS.num_heads,
                               mlp_dim=FLAGS.mlp_dim, dtype=FLAGS.dtype,
                               pos_encoding=FLAGS.pos_encoding, attention=FLAGS.attention)


def report(**fields):
  print(json.dumps(fields), flush=True)


# ----------------------------------------------------------------------------- sample


def no_eos(apply_fn):
  """Wraps an apply function so EOS is never chosen: every row runs to the end."""
  def wrapped(*args, **kwargs):
    logits, cache = apply_fn(*args, **kwargs)
    return logits.at[..., EOS].set(-jnp.inf), cache
  return wrapped


def recompute_generate(graphdef, params, prompts, new_tokens):
  """Greedy decoding without a cache: a full causal forward pass per new token."""
  B, P = prompts.shape
  buf = jnp.zeros((B, P + new_tokens), jnp.int32).at[:, :P].set(prompts)
  apply = no_eos(functools.partial(model_lib.apply, graphdef))

  def step(i, buf):
    logits, _ = apply(params, buf)  # [B, P + N, V]: every position, every step
    token = jnp.argmax(logits[:, P + i - 1], axis=-1).astype(jnp.int32)
    return buf.at[:, P + i].set(token)

  return jax.lax.fori_loop(0, new_tokens, step, buf)[:, P:]


def bench_sample():
  cfg = model_config()
  graphdef, params = model_lib.create(cfg)
  for batch in map(int, FLAGS.batch):
    prompts = np.random.default_rng(0).integers(3, cfg.vocab_size, (batch, FLAGS.prompt_len))
    prompts[:, 0] = BOS

    def cached():
      mesh = sharding.make_mesh()
      sampler = sampling.Sampler(no_eos(functools.partial(model_lib.apply, graphdef)),
                                 functools.partial(model_lib.init_cache, cfg), mesh,
                                 max_new_tokens=FLAGS.new_tokens, prompt_bucket=FLAGS.prompt_len)
      placed, key = sharding.replicate(params, mesh), jax.random.key(0)
      return lambda: sampler(placed, prompts.tolist(), key).tokens

    def hf_generate():
      hf = peers.HFSampler(cfg, FLAGS.new_tokens, FLAGS.prompt_len + FLAGS.new_tokens)
      return lambda: hf(prompts)

    def recompute():
      run = jax.jit(functools.partial(recompute_generate, graphdef), static_argnums=2)
      return lambda: run(params, jnp.asarray(prompts), FLAGS.new_tokens)

    factories = {"cached": cached}
    if FLAGS.peers:
      factories["hf_generate"] = hf_generate
    if not FLAGS.skip_recompute:
      factories["recompute"] = recompute
    seconds = fair_medians("sample", factories, batch)
    tokens = batch * FLAGS.new_tokens
    result = dict(bench="sample", batch=batch, prompt_len=FLAGS.prompt_len,
                  new_tokens=FLAGS.new_tokens, isolated=isolated(factories))
    for name, s in seconds.items():
      result[f"{name}_tokens_per_s"] = round(tokens / s, 1)
      if name != "cached":
        result[f"cached_vs_{name}"] = round(s / seconds["cached"], 2)
    decode_bytes = FLAGS.new_tokens * decode_step_bytes(cfg, params, batch,
                                                        FLAGS.prompt_len + FLAGS.new_tokens)
    result["decode_tb_per_s"] = round(decode_bytes / seconds["cached"] / 1e12, 4)
    if FLAGS.peak_tbs:
      result["bandwidth_utilisation"] = round(result["decode_tb_per_s"] / FLAGS.peak_tbs, 3)
    report(**result)


def decode_step_bytes(cfg: model_lib.ModelConfig, params, batch: int, slots: int) -> int:
  """Bytes one decode step must read at least: every parameter once (float32 as
  stored), and every row's whole KV cache (attention spans all slots)."""
  weights = model_lib.num_params(params) * 4
  cache = batch * slots * cfg.num_layers * 2 * cfg.embed_dim * cfg.compute_dtype.itemsize
  return weights + cache


# ----------------------------------------------------------------------------- train


def train_flops_per_token(cfg: model_lib.ModelConfig, seq_len: int) -> float:
  """Matmul FLOPs per trained token: forward plus backward (2x forward).

  Each weight matmul costs 2 FLOPs per parameter per token. Attention scores
  and the weighted sum cost 2 * 2 * T * D per token over all T keys; a causal
  mask needs half of them, and half is what we count.
  """
  d, m = cfg.embed_dim, cfg.mlp_dim
  weights = cfg.num_layers * (4 * d * d + 3 * d * m) + d * cfg.vocab_size
  attention = cfg.num_layers * 2 * 2 * seq_len * d / 2
  return 3 * (2 * weights + attention)


def measured_peak_flops(dtype) -> float:
  """FLOP/s of one large square matmul: the best this device does on dense work."""
  n = 2048
  a = jnp.ones((n, n), dtype)
  matmul = jax.jit(lambda a: a @ a)
  return 2 * n ** 3 / interleaved_medians({"matmul": lambda: matmul(a)})["matmul"]


def bench_train():
  cfg = model_config()
  graphdef, params = model_lib.create(cfg)
  if FLAGS.contestant:
    peak, peak_source = 0.0, ""  # the parent reports the MFU
  elif FLAGS.peak_tflops:
    peak, peak_source = FLAGS.peak_tflops * 1e12, "given"
  else:
    # CPU devices share the host's cores, which the one matmul measured already used.
    chips = 1 if jax.devices()[0].platform == "cpu" else jax.device_count()
    peak, peak_source = measured_peak_flops(cfg.compute_dtype) * chips, "measured"
  for batch in map(int, FLAGS.batch):
    rng = np.random.default_rng(0)
    tokens = rng.integers(3, cfg.vocab_size, (batch, FLAGS.seq_len + 1)).astype(np.int32)

    def ours():
      mesh = sharding.make_mesh()
      tx = train_lib.make_optimizer(train_lib.OptimizerConfig())
      if FLAGS.ensemble == 1:
        train_step, _ = train_lib.make_steps(graphdef, tx, mesh)
        state = train_lib.init_state(params, tx)
      else:  # the loop's ensemble: every member on the same batch, as ensemble_size gives
        _, state = train_lib.init_ensemble(cfg, range(FLAGS.ensemble), tx)
        train_step = train_lib.make_ensemble_train_step(graphdef, tx, mesh)
      data = sharding.shard_batch(data_lib.Batch(
          inputs=tokens[:, :-1], targets=tokens[:, 1:],
          weights=np.ones((batch, FLAGS.seq_len), np.float32)), mesh)
      state = [sharding.replicate(state, mesh)]

      def step():
        state[0], metrics = train_step(state[0], data)
        return metrics
      return step

    factories = {"ours": ours}
    if FLAGS.peers:
      factories["torch_eager"] = lambda: peers.TorchTrain(cfg, tokens, models=FLAGS.ensemble)
    seconds = fair_medians("train", factories, batch)
    tokens_per_s = FLAGS.ensemble * batch * FLAGS.seq_len / seconds["ours"]
    flops = tokens_per_s * train_flops_per_token(cfg, FLAGS.seq_len)
    result = dict(bench="train", batch=batch, seq_len=FLAGS.seq_len, models=FLAGS.ensemble,
                  isolated=isolated(factories),
                  step_ms=round(seconds["ours"] * 1e3, 1), tokens_per_s=round(tokens_per_s, 1),
                  model_tflops=round(flops / 1e12, 4), peak_tflops=round(peak / 1e12, 4),
                  peak=peak_source, mfu=round(flops / peak, 3))
    if FLAGS.peers:
      result.update(torch_step_ms=round(seconds["torch_eager"] * 1e3, 1),
                    torch_tokens_per_s=round(FLAGS.ensemble * batch * FLAGS.seq_len
                                             / seconds["torch_eager"], 1),
                    ours_vs_torch=round(seconds["torch_eager"] / seconds["ours"], 2))
    report(**result)


# ----------------------------------------------------------------------------- pack


def bench_pack():
  """Train steps on one task's examples, one per row (padded to the longest) against
  packed rows of the same width: tokens with loss per second, and their ratio."""
  from selfimprove_jax.core.mixture import Example
  from selfimprove_jax.grading.tasks import get_task
  task, tok = get_task(FLAGS.task), CharTokenizer()
  rng = np.random.default_rng(0)
  lo, hi = (int(x) for x in FLAGS.digits)
  def draw(n):  # half ground truth at lo..hi, half labels at --label_digits (if any)
    half = n // 2 if FLAGS.label_digits else 0
    difficulties = list(rng.integers(lo, hi + 1, n - half)) + [FLAGS.label_digits] * half
    return [Example(p.prompt, p.answer, p.difficulty, 0) for p in task.batch(rng, difficulties)]
  cfg = dataclasses.replace(model_config(), vocab_size=tok.vocab_size)
  graphdef, params = model_lib.create(cfg, seed=0)
  tx = train_lib.make_optimizer(train_lib.OptimizerConfig(warmup_steps=0, total_steps=1000))
  mesh = sharding.make_mesh()
  train_step, _ = train_lib.make_steps(graphdef, tx, mesh)
  for batch in (int(b) for b in FLAGS.batch):
    examples = draw(batch)
    width = data_lib.bucket(max(len(tok.encode(e.prompt + e.completion)) for e in examples) + 1)
    batches = dict(padded=data_lib.make_batch(tok, [e.prompt for e in examples],
                                              [e.completion for e in examples], width),
                   packed=data_lib.pack(tok, draw, batch, width))
    def stepper(rows):  # one train state per contestant, stepped on its own placed rows
      state = [sharding.replicate(train_lib.init_state(params, tx), mesh)]
      placed = sharding.shard_batch(rows, mesh)
      def step():
        state[0], metrics = train_step(state[0], placed)
        return metrics
      return step
    contestants = {name: stepper(b) for name, b in batches.items()}
    seconds = interleaved_medians(contestants)
    per_s = {k: float(b.weights.sum()) / seconds[k] for k, b in batches.items()}
    report(bench="pack", task=FLAGS.task, batch=batch, width=width,
           digits=f"{lo}-{hi}", label_digits=FLAGS.label_digits,
           examples=dict(padded=batch, packed=int(sum(len(set(r) - {0}) for r in
                                                      batches["packed"].segments.tolist()))),
           step_ms={k: round(v * 1e3, 1) for k, v in seconds.items()},
           loss_tokens_per_s={k: round(v, 1) for k, v in per_s.items()},
           packed_vs_padded=round(per_s["packed"] / per_s["padded"], 2))


def main(argv):
  commands = {"sample": bench_sample, "train": bench_train, "pack": bench_pack,
              "generation": generation_bench.bench_generation}
  if len(argv) != 2 or argv[1] not in commands:
    raise app.UsageError(f"usage: python -m selfimprove_jax.bench {{{','.join(commands)}}} [--flags]")
  logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax's lines per checkpoint
  sharding.one_cpu_device_per_core()  # as the loop runs (main.py)
  device = f"{jax.device_count()} x {jax.devices()[0].device_kind}"
  if argv[1] == "generation" and not FLAGS.contestant:
    print(f"# jax {jax.__version__}, {device}, "
          f"config {config_flags.get_config_filename(FLAGS['config'])}", flush=True)
  elif not FLAGS.contestant:  # a contestant's process prints only its timing
    print(f"# jax {jax.__version__}, {device}, model {model_config()}", flush=True)
    if FLAGS.peers:
      print(f"# {peers.versions()}", flush=True)
  commands[argv[1]]()


if __name__ == "__main__":
  # JAX would otherwise take 75% of a GPU's memory up front, leaving too little
  # for the PyTorch peers that share it.
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  define_flags()
  app.run(main)
