"""The benchmark's own arithmetic and instruments; the PyTorch peers where torch is installed."""

import types

import jax
import numpy as np
import pytest

from selfimprove_jax import bench, generation_bench
from selfimprove_jax.core import model as model_lib

CFG = model_lib.ModelConfig(vocab_size=49, num_layers=2, embed_dim=64, num_heads=4, mlp_dim=128,
                            pos_encoding="rope")


def test_train_flops_count_every_weight_matmul_and_half_the_attention():
  _, params = model_lib.create(CFG)
  # Matmul weights: everything but the embedding table (a gather) and the norm scales.
  norms = (2 * CFG.num_layers + 1) * CFG.embed_dim
  weights = model_lib.num_params(params) - CFG.vocab_size * CFG.embed_dim - norms
  seq = 32
  attention = CFG.num_layers * 2 * seq * CFG.embed_dim  # QK^T and AV, causal half
  assert bench.train_flops_per_token(CFG, seq) == 3 * (2 * weights + attention)


def test_decode_reads_the_weights_once_and_every_cache_slot():
  _, params = model_lib.create(CFG)
  one = bench.decode_step_bytes(CFG, params, batch=1, slots=10)
  two = bench.decode_step_bytes(CFG, params, batch=2, slots=10)
  cache_per_row = 10 * CFG.num_layers * 2 * CFG.embed_dim * 4  # keys and values, float32
  assert two - one == cache_per_row and one == model_lib.num_params(params) * 4 + cache_per_row


def test_compile_counter_sees_new_shapes_only():
  counter = generation_bench.CompileCounter()
  f = jax.jit(lambda x: x * 2 + 1)
  f(np.ones(3, np.float32))
  after_first = counter.count
  f(np.ones(3, np.float32))
  assert counter.count == after_first >= 1  # same shape: cached
  f(np.ones(4, np.float32))
  assert counter.count == after_first + 1


def test_the_llama_peer_has_our_parameter_count_and_generates_exactly_the_tokens_asked():
  pytest.importorskip("transformers")
  from selfimprove_jax import peers
  _, params = model_lib.create(CFG)
  sampler = peers.HFSampler(CFG, new_tokens=7, max_len=32)
  assert sum(p.numel() for p in sampler.model.parameters()) == model_lib.num_params(params)
  prompts = np.full((3, 5), 5)
  assert tuple(sampler(prompts).shape) == (3, 12)
  step = peers.TorchTrain(CFG, np.random.default_rng(0).integers(3, 49, (4, 9)), models=2)
  first = np.array(step())
  assert first.shape == (2,) and np.isfinite(first).all()
  assert first[0] != first[1]  # each model from its own seed
  assert (np.array(step()) < first).all()  # each trains


def test_isolated_medians_time_each_contestant_in_its_own_process_taking_turns():
  calls = []

  def run(cmd, **_):  # stands in for subprocess.run: one bench process per call
    name = cmd[-1].removeprefix("--contestant=")
    calls.append((name, cmd))
    seconds = {"ours": [1.0, 5.0, 2.0], "peer": [3.0, 4.0, 9.0]}[name][sum(c[0] == name for c in calls) - 1]
    return types.SimpleNamespace(returncode=0, stderr="", stdout=f'# header\n{{"seconds": {seconds}}}\n')

  medians = bench.isolated_medians(["ours", "peer"], ["train", "--batch=64"], rounds=3, run=run)
  assert medians == {"ours": 2.0, "peer": 4.0}
  assert [name for name, _ in calls] == ["ours", "peer", "peer", "ours", "ours", "peer"]
  assert all(cmd[1:] == ["-m", "selfimprove_jax.bench", "train", "--batch=64", f"--contestant={name}"]
             for name, cmd in calls)


def test_a_failed_contestant_process_stops_the_benchmark_with_its_error():
  failed = lambda cmd, **_: types.SimpleNamespace(returncode=1, stdout="", stderr="boom")
  with pytest.raises(SystemExit, match="the peer process failed:\nboom"):
    bench.isolated_medians(["peer"], ["train"], rounds=1, run=failed)


def test_the_pytorch_generation_computes_each_packed_sequence_as_alone_and_runs_every_stage():
  torch = pytest.importorskip("torch")
  pytest.importorskip("transformers")
  import dataclasses

  from selfimprove_jax import peers
  from selfimprove_jax.core import data
  from selfimprove_jax.core.mixture import Example
  from selfimprove_jax.core.tokenizer import CharTokenizer
  tok = CharTokenizer()
  plan = dict(model=dataclasses.asdict(CFG), max_len=32, members=2, steps=2, pack=True, rows=2,
              width=16, examples=[("12+3=", "51"), ("7+8=", "51"), ("123+45=", "861")],
              label_prompts=["12+34=", "5+6=", "99+1="], rows_per_call=2, label_tokens=[4, 3],
              eval_prompts=["1+1=", "22+22="], eval_tokens=[3])
  pipeline = peers.TorchGeneration(plan)

  # Two sums in one row: each computes what it computes alone, positions from 0.
  examples = [Example("12+3=", "51", 0, 0), Example("7+8=", "51", 0, 0)]
  packed = data.pack(tok, lambda n: examples, rows=1, width=16)
  assert packed.segments[0].max() == 2  # both in the one row
  model = pipeline.models[0].eval()
  t = lambda x: torch.from_numpy(np.asarray(x))
  with torch.no_grad():
    together = pipeline.packed_logits(model, t(packed.inputs), t(packed.segments))[0]
    for s in (1, 2):
      at = np.nonzero(packed.segments[0] == s)[0]
      alone = model(input_ids=t(packed.inputs[:, at]).long()).logits[0]
      np.testing.assert_allclose(together[at].numpy(), alone.numpy(), atol=1e-5)

  # generate decodes exactly the tokens asked, call by call (2 prompts, then 1).
  answers = pipeline.generate(model, [tok.encode(p, bos=True) for p in plan["label_prompts"]],
                              plan["rows_per_call"], plan["label_tokens"])
  assert [len(a) for a in answers] == [4, 4, 3]
  result = pipeline(tok, np.random.default_rng(0))
  assert set(result["seconds"]) == {"sample", "score", "train", "evaluate"}
  assert 0 <= result["kept"] <= len(plan["label_prompts"])
