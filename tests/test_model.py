import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selfimprove_jax.core import model as model_lib

TOL = 1e-5  # float32: cached and full attention differ only by summation order
# Jitted, as the sampler and the train step run it (op by op, each primitive would
# compile on its own: seconds of a test's time).
apply = jax.jit(model_lib.apply, static_argnums=0)


def tiny(pos_encoding, **kw):
  return model_lib.ModelConfig(vocab_size=20, num_layers=2, embed_dim=32, num_heads=4,
                               mlp_dim=64, pos_encoding=pos_encoding, **kw)


@pytest.mark.parametrize("pos_encoding", ["none", "rope"])
def test_cached_decoding_matches_full_forward(pos_encoding):
  """Left-padded prefill plus token-by-token decode equals one causal pass over the real tokens."""
  cfg = tiny(pos_encoding)
  graphdef, params = model_lib.create(cfg, seed=1)
  seq = jax.random.randint(jax.random.key(0), (2, 9), 3, cfg.vocab_size)
  full, _ = apply(graphdef, params, seq)  # [2, 9, V]

  # 12 slots: row 0 holds its 9 tokens after 3 pads, row 1 holds them first
  # (its last 3 slots are filler that only later slots could see).
  pad = jnp.array([3, 0])
  buf = jnp.zeros((2, 12), jnp.int32).at[0, 3:].set(seq[0]).at[1, :9].set(seq[1])
  slot = jnp.arange(12)
  positions = jnp.maximum(slot[None] - pad[:, None], 0)  # [2, 12]
  visible = (slot[None, None, :] <= slot[None, :, None]) & (slot[None, None, :] >= pad[:, None, None])
  cache = model_lib.init_cache(cfg, 2, 12)

  n0 = 8  # prefill slots 0..7 at once, then decode slots 8..11 one at a time
  logits, cache = apply(graphdef, params, buf[:, :n0], positions=positions[:, :n0],
                        mask=visible[:, :n0], cache=cache, cache_index=0)
  steps = [logits]
  for s in range(n0, 12):
    logits, cache = apply(graphdef, params, buf[:, s:s + 1],
                          positions=positions[:, s:s + 1], mask=visible[:, s:s + 1],
                          cache=cache, cache_index=s)
    steps.append(logits)
  got = jnp.concatenate(steps, axis=1)  # [2, 12, V]
  np.testing.assert_allclose(got[0, 3:], full[0], atol=TOL, rtol=TOL)
  np.testing.assert_allclose(got[1, :9], full[1], atol=TOL, rtol=TOL)


def test_bfloat16_compute_keeps_float32_params_and_logits():
  cfg = tiny("rope", dtype="bfloat16")
  graphdef, params = model_lib.create(cfg)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
  logits, _ = apply(graphdef, params, jnp.ones((1, 4), jnp.int32))
  assert logits.dtype == jnp.float32


@pytest.mark.parametrize("field, value, message", [
    ("num_layers", 0, "model.num_layers must be a positive integer"),
    ("num_heads", 5, "must be divisible by model.num_heads"),
    ("pos_encoding", "alibi", "model.pos_encoding must be one of"),
    ("dtype", "float8", "model.dtype must be one of"),
    ("attention", "flash", "model.attention must be one of"),
    ("attention", "cudnn", "model.attention='cudnn' needs model.dtype bfloat16"),
])
def test_bad_model_config_names_the_field(field, value, message):
  kw = dict(vocab_size=20, num_layers=2, embed_dim=32, num_heads=4, mlp_dim=64)
  kw[field] = value
  with pytest.raises(ValueError, match=message):
    model_lib.ModelConfig(**kw)


def gpus() -> list:
  """The NVIDIA GPUs JAX brought up beside the CPU (conftest.py), or none."""
  try:
    return jax.devices("gpu")
  except RuntimeError:
    return []


@pytest.mark.skipif(not gpus(), reason="cuDNN attention needs an NVIDIA GPU")
def test_cudnn_attention_matches_xla():
  """Same parameters, same tokens: cuDNN's fused kernel and XLA agree in loss and gradients."""
  with jax.default_device(gpus()[0]):
    tokens = jax.random.randint(jax.random.key(0), (4, 64), 3, 20)
    outputs = {attention: _loss_and_grads(attention, tokens) for attention in ("xla", "cudnn")}
  for out in outputs.values():
    assert jax.tree.leaves(out)[0].devices() == {gpus()[0]}
  (loss_x, logits_x), grads_x = outputs["xla"]
  (loss_c, logits_c), grads_c = outputs["cudnn"]
  # bfloat16 keeps 8 bits of mantissa: the kernels' sums may differ in the last of them.
  np.testing.assert_allclose(logits_c, logits_x, atol=3e-2, rtol=3e-2)
  np.testing.assert_allclose(loss_c, loss_x, rtol=1e-2)
  for gc, gx in zip(jax.tree.leaves(grads_c), jax.tree.leaves(grads_x)):
    np.testing.assert_allclose(gc, gx, atol=5e-3, rtol=5e-2)


def _loss_and_grads(attention: str, tokens):
  """((loss, logits), gradients) of a small bfloat16 model with one attention kernel."""
  cfg = model_lib.ModelConfig(vocab_size=20, num_layers=2, embed_dim=128, num_heads=2,
                              mlp_dim=256, dtype="bfloat16", attention=attention)
  graphdef, params = model_lib.create(cfg, seed=1)

  def loss(params):
    logits, _ = model_lib.apply(graphdef, params, tokens[:, :-1])
    logp = jax.nn.log_softmax(logits)
    return -jnp.take_along_axis(logp, tokens[:, 1:, None], -1).mean(), logits

  return jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
