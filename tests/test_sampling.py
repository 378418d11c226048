import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selfimprove_jax.core import sampling, sharding
from selfimprove_jax.core import model as model_lib
from selfimprove_jax.core.tokenizer import BOS, EOS, PAD

V = 32  # fake vocabulary
LIMIT = 8  # the fake model says EOS once it sees this many real tokens


def counting_model(params, tokens, *, positions, mask, cache, cache_index):
  """A fake LM: after seeing n real tokens it predicts EOS if n >= LIMIT, else last token + 1.

  It sees the prompt only through `mask`, so the expected outputs below check
  that padding is hidden and that every step attends to the right slots.
  """
  del params, positions
  cache = jax.lax.dynamic_update_slice(cache, tokens, (0, cache_index))
  seen = jnp.sum(mask, axis=-1)  # [B, T] real tokens visible to each new token
  nxt = jnp.where(seen >= LIMIT, EOS, jnp.minimum(tokens + 1, V - 1))
  return 10.0 * jax.nn.one_hot(nxt, V), cache


def fake_sampler(mesh, method=sampling.Greedy(), max_new_tokens=6, prompt_bucket=8):
  init = lambda batch, slots: jnp.zeros((batch, slots), jnp.int32)
  return sampling.Sampler(counting_model, init, mesh, max_new_tokens=max_new_tokens,
                          method=method, prompt_bucket=prompt_bucket)


def test_fake_model_gives_exact_tokens_eos_and_padding(mesh8):
  sampler = fake_sampler(mesh8)
  prompts = [[BOS, 3, 4], [BOS, 3, 3, 3, 10], [BOS, 20]]
  out = sampler(None, prompts, jax.random.key(0))
  np.testing.assert_array_equal(out.tokens, [
      [5, 6, 7, 8, 9, EOS],  # 3 prompt tokens seen, EOS once 8 are
      [11, 12, 13, EOS, PAD, PAD],  # EOS stops the row; later slots are padding
      [21, 22, 23, 24, 25, 26],  # never reaches 8 tokens within max_new_tokens
  ])
  np.testing.assert_array_equal(out.lengths, [6, 4, 6])
  np.testing.assert_array_equal(out.done, [True, True, False])
  np.testing.assert_array_equal(out.mask[1], [1, 1, 1, 1, 0, 0])
  # log p of a one-hot logit of 10 over V tokens, and 0 after EOS.
  want = 10.0 - np.log(np.exp(10.0) + V - 1)
  np.testing.assert_allclose(out.logprobs[1], [want] * 4 + [0, 0], atol=1e-6)


def test_same_bucket_does_not_recompile(mesh8):
  sampler = fake_sampler(mesh8)
  sampler(None, [[BOS, 3, 4]] * 5, jax.random.key(0))
  sampler(None, [[BOS, 5]] * 7, jax.random.key(1))  # other prompts, same bucket
  assert sampler.num_traces == 1
  sampler(None, [[BOS] + [3] * 9], jax.random.key(0))  # longer prompts: a new bucket
  assert sampler.num_traces == 2


def fixed_logits(params, tokens, *, positions, mask, cache, cache_index):
  """The same distribution at every step: logits 0.3 * token id (EOS is unlikely)."""
  del params, positions, mask, cache_index
  return jnp.broadcast_to(0.3 * jnp.arange(V, dtype=jnp.float32), tokens.shape + (V,)), cache


def draw(mesh, method, rows=64, steps=16):
  sampler = sampling.Sampler(fixed_logits, lambda b, s: jnp.zeros((b,), jnp.int32), mesh,
                             max_new_tokens=steps, method=method)
  return sampler(None, [[BOS, 3]] * rows, jax.random.key(0)).tokens


def test_top_k_never_leaves_the_top_k(mesh8):
  tokens = draw(mesh8, sampling.Sample(temperature=1.0, top_k=3))
  assert set(np.unique(tokens)) == {V - 1, V - 2, V - 3}


def test_top_p_never_leaves_the_nucleus(mesh8):
  top_p = 0.6
  probs = jax.nn.softmax(0.3 * np.arange(V))[::-1]  # most likely first
  nucleus = {V - 1 - i for i in range(V) if np.cumsum(probs)[i] - probs[i] < top_p}
  assert 1 < len(nucleus) < V
  tokens = draw(mesh8, sampling.Sample(temperature=1.0, top_p=top_p))
  assert set(np.unique(tokens)) == nucleus


def test_greedy_is_deterministic_and_sampling_follows_the_key(mesh8):
  cfg = model_lib.ModelConfig(vocab_size=V, num_layers=1, embed_dim=16, num_heads=2, mlp_dim=32)
  graphdef, params = model_lib.create(cfg)
  prompts = [[BOS, 3, 4, 5], [BOS, 9]] * 8
  greedy = sampling.Sampler.for_model(graphdef, cfg, mesh8, max_new_tokens=8)
  a = greedy(params, prompts, jax.random.key(0)).tokens
  b = greedy(params, prompts, jax.random.key(1)).tokens
  np.testing.assert_array_equal(a, b)
  sample = sampling.Sampler.for_model(graphdef, cfg, mesh8, max_new_tokens=8,
                                      method=sampling.Sample(temperature=1.0))
  c = sample(params, prompts, jax.random.key(0)).tokens
  np.testing.assert_array_equal(c, sample(params, prompts, jax.random.key(0)).tokens)
  assert not np.array_equal(c, sample(params, prompts, jax.random.key(1)).tokens)


def test_samples_do_not_depend_on_the_device_count(mesh1, mesh8):
  cfg = model_lib.ModelConfig(vocab_size=V, num_layers=1, embed_dim=16, num_heads=2, mlp_dim=32)
  graphdef, params = model_lib.create(cfg)
  prompts = [[BOS, 3 + i % 7] for i in range(16)]
  outs = [sampling.Sampler.for_model(graphdef, cfg, mesh, max_new_tokens=8,
                                     method=sampling.Sample(temperature=1.0))
          (sharding.replicate(params, mesh), prompts, jax.random.key(3)) for mesh in (mesh1, mesh8)]
  np.testing.assert_array_equal(outs[0].tokens, outs[1].tokens)
  np.testing.assert_allclose(outs[0].logprobs, outs[1].logprobs, atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(temperature=0.0), "temperature must be > 0"),
    (dict(top_k=-1), "top_k must be >= 0"),
    (dict(top_p=1.5), r"top_p must be in \(0, 1\]"),
])
def test_bad_sampling_settings_are_refused(kwargs, message):
  with pytest.raises(ValueError, match=message):
    sampling.Sample(**kwargs)


def test_in_chunks_is_one_call_per_chunk_keyed_by_chunk(mesh8):
  sampler = fake_sampler(mesh8, method=sampling.Sample(temperature=1.0))
  prompts = [[BOS, 3 + i] for i in range(5)]
  key = jax.random.key(3)
  seen = []
  whole = sampler.in_chunks(None, prompts, key, rows_per_call=2, on_chunk=seen.append)
  assert seen == [2, 2, 1] and whole.tokens.shape[0] == 5
  # Chunk c is the sampler's own call on those rows with fold_in(key, c).
  second = sampler(None, prompts[2:4], jax.random.fold_in(key, 1))
  np.testing.assert_array_equal(whole.tokens[2:4], second.tokens)
  np.testing.assert_array_equal(whole.mean_logprob[2:4], second.mean_logprob)
  # Greedy fake outputs give known statistics: 6 tokens each for prompts that never end.
  greedy = fake_sampler(mesh8).in_chunks(None, prompts, key, rows_per_call=4)
  assert greedy.token_stats()["tokens_sampled"] == int(greedy.lengths.sum()) == 30


def test_long_runs_score_their_tokens_as_a_full_forward_pass_does(mesh8):
  # 70 new tokens from prompts of different lengths (left-padded in one bucket): each
  # sampled token's log-probability must be what one causal forward pass over the
  # finished row, without a cache or padding, gives it.
  cfg = model_lib.ModelConfig(vocab_size=V, num_layers=2, embed_dim=16, num_heads=2, mlp_dim=32,
                              pos_encoding="none")
  graphdef, params = model_lib.create(cfg, seed=1)
  new = 70
  no_eos = lambda logits: logits.at[..., EOS].set(-jnp.inf)

  def apply(params, tokens, **kwargs):
    logits, cache = model_lib.apply(graphdef, params, tokens, **kwargs)
    return no_eos(logits), cache

  sampler = sampling.Sampler(apply, lambda b, s: model_lib.init_cache(cfg, b, s), mesh8,
                             max_new_tokens=new, prompt_bucket=8,
                             method=sampling.Sample(temperature=1.0))
  prompts = [[BOS, 3, 4, 5, 6], [BOS, 9]] * 4
  out = sampler(sharding.replicate(params, mesh8), prompts, jax.random.key(0))
  for row, prompt in enumerate(prompts[:2]):
    tokens = out.tokens[row]
    assert len(set(tokens.tolist())) > 10  # a varied row, so that attention matters
    logits, _ = apply(params, jnp.asarray([prompt + tokens.tolist()]))
    log_p = jax.nn.log_softmax(logits[0, len(prompt) - 1:-1])  # [new, V]
    expected = np.take_along_axis(np.asarray(log_p), tokens[:, None], axis=-1)[:, 0]
    np.testing.assert_allclose(out.logprobs[row], expected, atol=1e-4)
