"""A compact Llama-style decoder-only transformer in Flax NNX.

Pre-norm blocks (RMSNorm), multi-head causal self-attention through
`jax.nn.dot_product_attention` (XLA's, or cuDNN's fused kernel on NVIDIA GPUs
for full causal passes), a SwiGLU MLP, and positions encoded either with
RoPE or not at all (NoPE: the causal mask alone lets the model count, and Lee
et al. 2025 found it generalizes to longer inputs better).

Parameters are float32; matmuls run in `ModelConfig.dtype` (bfloat16 on
accelerators). Logits are returned in float32.

Decoding uses an explicit KV cache: a list with one `LayerCache` per layer,
passed in and returned, so the sampler owns the buffers and can donate them.
The cache keeps heads before slots ([B, H, S, D]): attention then reads it in
the layout its matmuls want, where [B, S, H, D] made XLA copy-transpose the
whole cache at every decode step (more than half the decode time on CPU).
Shapes use B batch, T new tokens, S cache slots, H heads, D head dim, V vocab.

The dense layers see tokens as rows, [B*T, E]: a weight's gradient is then one
2-D matmul contracting over B*T, which XLA's CPU backend runs 1.6x faster than
the same contraction over two axes (B, T), through transposes and copies.
"""

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx
from flax import struct

from selfimprove_jax.base.fields import Int, OneOf, Real, check_dataclass, spec

POS_ENCODINGS = ("none", "rope")
DTYPES = ("float32", "bfloat16", "float16")
# jax.nn.dot_product_attention implementations. "cudnn" serves the full causal
# passes (training, evaluation, scoring); cached decoding, with its padding
# mask over cache slots, stays on XLA.
ATTENTIONS = ("xla", "cudnn")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
  vocab_size: int = dataclasses.field(metadata=spec(Int(1)))
  num_layers: int = dataclasses.field(default=4, metadata=spec(Int(1)))
  embed_dim: int = dataclasses.field(default=128, metadata=spec(Int(1)))
  num_heads: int = dataclasses.field(default=4, metadata=spec(Int(1)))
  # Hidden width of the gated MLP.
  mlp_dim: int = dataclasses.field(default=512, metadata=spec(Int(1)))
  pos_encoding: str = dataclasses.field(default="none", metadata=spec(OneOf(POS_ENCODINGS)))
  rope_base: float = dataclasses.field(default=10_000.0, metadata=spec(Real("(0, inf)")))
  # The compute dtype; parameters stay float32.
  dtype: str = dataclasses.field(default="float32", metadata=spec(OneOf(DTYPES)))
  attention: str = dataclasses.field(default="xla", metadata=spec(OneOf(ATTENTIONS)))
  norm_eps: float = dataclasses.field(default=1e-6, metadata=spec(Real("(0, inf)")))

  def __post_init__(self):
    check_dataclass(self, "model")  # each field alone; then how they must relate
    if self.embed_dim % self.num_heads:
      raise ValueError(f"model.embed_dim ({self.embed_dim}) must be divisible by "
                       f"model.num_heads ({self.num_heads})")
    if self.pos_encoding == "rope" and self.head_dim % 2:
      raise ValueError(f"RoPE needs an even head dim, got {self.head_dim} "
                       "(model.embed_dim / model.num_heads)")
    if self.attention == "cudnn" and (self.dtype == "float32" or self.head_dim % 8):
      raise ValueError("model.attention='cudnn' needs model.dtype bfloat16 or float16 and a "
                       f"head dim divisible by 8, got {self.dtype} and {self.head_dim}")

  @property
  def head_dim(self) -> int:
    return self.embed_dim // self.num_heads

  @property
  def compute_dtype(self):
    return jnp.dtype(self.dtype)


@struct.dataclass(kw_only=True)
class LayerCache:
  k: jax.Array  # [B, H, S, D] keys of every cached slot
  v: jax.Array  # [B, H, S, D] values


def init_cache(cfg: ModelConfig, batch: int, length: int) -> list[LayerCache]:
  """Zeroed KV buffers for `batch` rows of `length` slots each."""
  shape = (batch, cfg.num_heads, length, cfg.head_dim)
  return [LayerCache(k=jnp.zeros(shape, cfg.compute_dtype), v=jnp.zeros(shape, cfg.compute_dtype))
          for _ in range(cfg.num_layers)]


def apply_rope(x: jax.Array, positions: jax.Array, base: float) -> jax.Array:
  """Rotates channel pairs (i, i + D/2) of x [B, T, H, D] by angles position * base^(-2i/D)."""
  half = x.shape[-1] // 2
  inv_freq = base ** (-jnp.arange(half, dtype=jnp.float32) / half)  # [D/2]
  angles = positions[..., None].astype(jnp.float32) * inv_freq  # [B, T, D/2]
  sin, cos = jnp.sin(angles)[:, :, None, :], jnp.cos(angles)[:, :, None, :]  # [B, T, 1, D/2]
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


class Attention(nnx.Module):

  def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    dense = dict(use_bias=False, dtype=cfg.compute_dtype, param_dtype=jnp.float32, rngs=rngs)
    self.qkv = nnx.Linear(cfg.embed_dim, 3 * cfg.embed_dim, **dense)  # fused: one matmul, not three
    self.out = nnx.Linear(cfg.embed_dim, cfg.embed_dim, **dense)

  def __call__(self, x, positions, mask, cache: LayerCache | None, cache_index):
    cfg = self.cfg
    B, T, _ = x.shape
    qkv = self.qkv(x.reshape(B * T, cfg.embed_dim))  # [B*T, 3*H*D]
    q, k, v = jnp.moveaxis(qkv.reshape(B, T, 3, cfg.num_heads, cfg.head_dim), 2, 0)
    if cfg.pos_encoding == "rope":
      q = apply_rope(q, positions, cfg.rope_base)
      k = apply_rope(k, positions, cfg.rope_base)
    if cache is not None:
      # Write the T new keys/values at slots [cache_index, cache_index + T), then
      # attend over every slot; `mask` hides slots that are padding or in the future.
      start = (0, 0, cache_index, 0)
      write = lambda buf, new: jax.lax.dynamic_update_slice(
          buf, jnp.swapaxes(new, 1, 2).astype(buf.dtype), start)
      cache = LayerCache(k=write(cache.k, k), v=write(cache.v, v))
      k, v = jnp.swapaxes(cache.k, 1, 2), jnp.swapaxes(cache.v, 1, 2)  # [B, S, H, D] views
    if mask is None:
      y = jax.nn.dot_product_attention(q, k, v, is_causal=True,
                                       implementation=cfg.attention)  # [B, T, H, D]
    else:
      y = jax.nn.dot_product_attention(q, k, v, mask=mask[:, None, :, :])
    return self.out(y.reshape(B * T, cfg.embed_dim)).reshape(B, T, cfg.embed_dim), cache


class MLP(nnx.Module):
  """SwiGLU: down(silu(gate(x)) * up(x)), with gate and up fused into one matmul."""

  def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
    dense = dict(use_bias=False, dtype=cfg.compute_dtype, param_dtype=jnp.float32, rngs=rngs)
    self.gate_up = nnx.Linear(cfg.embed_dim, 2 * cfg.mlp_dim, **dense)
    self.down = nnx.Linear(cfg.mlp_dim, cfg.embed_dim, **dense)

  def __call__(self, x):  # [N, E]: rows of tokens
    gate, up = jnp.split(self.gate_up(x), 2, axis=-1)
    return self.down(jax.nn.silu(gate) * up)


class Block(nnx.Module):

  def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
    norm = dict(epsilon=cfg.norm_eps, dtype=cfg.compute_dtype, param_dtype=jnp.float32, rngs=rngs)
    self.attn_norm = nnx.RMSNorm(cfg.embed_dim, **norm)
    self.attn = Attention(cfg, rngs=rngs)
    self.mlp_norm = nnx.RMSNorm(cfg.embed_dim, **norm)
    self.mlp = MLP(cfg, rngs=rngs)

  def __call__(self, x, positions, mask, cache, cache_index):
    h, cache = self.attn(self.attn_norm(x), positions, mask, cache, cache_index)
    x = x + h
    B, T, E = x.shape
    return x + self.mlp(self.mlp_norm(x).reshape(B * T, E)).reshape(B, T, E), cache


class Transformer(nnx.Module):

  def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.embed = nnx.Embed(cfg.vocab_size, cfg.embed_dim, dtype=cfg.compute_dtype,
                           param_dtype=jnp.float32, rngs=rngs)
    self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
    self.final_norm = nnx.RMSNorm(cfg.embed_dim, epsilon=cfg.norm_eps, dtype=cfg.compute_dtype,
                                  param_dtype=jnp.float32, rngs=rngs)
    self.lm_head = nnx.Linear(cfg.embed_dim, cfg.vocab_size, use_bias=False,
                              dtype=cfg.compute_dtype, param_dtype=jnp.float32, rngs=rngs)

  def __call__(self, tokens, *, positions=None, mask=None, segments=None, cache=None,
               cache_index=0):
    """Logits [B, T, V] (float32) for tokens [B, T], and the updated cache.

    Training calls this with tokens alone: a plain causal mask, positions 0..T-1;
    or, for rows that pack several sequences, with their `segments` [B, T]
    (data.pack): a token then sees only the earlier tokens of its own sequence,
    and positions count from that sequence's start.
    Decoding passes `cache` (a list of LayerCache with S slots), the slot
    `cache_index` where these T tokens go, their `positions` [B, T] (used by
    RoPE), and `mask` [B, T, S]: which cached slots each new token may see.
    """
    if cache is not None and mask is None:
      raise ValueError("decoding with a cache needs an explicit attention mask")
    if segments is not None:
      positions, mask = segment_positions_and_mask(segments)
    if positions is None:
      positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
    x = self.embed(tokens)
    new_cache = []
    for i, block in enumerate(self.blocks):
      x, layer_cache = block(x, positions, mask, None if cache is None else cache[i], cache_index)
      new_cache.append(layer_cache)
    B, T, E = x.shape
    logits = self.lm_head(self.final_norm(x).reshape(B * T, E)).reshape(B, T, -1)
    logits = logits.astype(jnp.float32)
    return logits, (new_cache if cache is not None else None)


def segment_positions_and_mask(segments: jax.Array) -> tuple[jax.Array, jax.Array]:
  """For rows of packed sequences, segments [B, T] (1, 2, ... per sequence, 0 padding):
  each token's position within its sequence [B, T], and the causal mask [B, T, T] that
  lets a token see only its own sequence."""
  T = segments.shape[1]
  t = jnp.arange(T)
  starts = segments != jnp.pad(segments, ((0, 0), (1, 0)), constant_values=-1)[:, :-1]
  first = jax.lax.cummax(jnp.where(starts, t, 0), axis=1)  # where each token's sequence began
  same = segments[:, :, None] == segments[:, None, :]
  return t - first, same & (t[:, None] >= t[None, :])


def create(cfg: ModelConfig, seed: int = 0):
  """A freshly initialized model, split into its static graph and its parameters."""
  return nnx.split(Transformer(cfg, rngs=nnx.Rngs(seed)))


def apply(graphdef, params, tokens, **kwargs):
  """Pure forward pass over (graphdef, params): the form jitted code calls."""
  return nnx.merge(graphdef, params)(tokens, **kwargs)


def num_params(params) -> int:
  return sum(x.size for x in jax.tree.leaves(params))
