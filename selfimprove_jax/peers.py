"""What a user would run instead, built to our model's sizes, for `bench`.

The Lee et al. 2025 code self-labels with Hugging Face `generate` and trains a
PyTorch model; these are the same two, same shapes:

  HFSampler:  `LlamaForCausalLM.generate`, greedy, exactly `new_tokens` per row.
  TorchTrain: the same Llama model, eager PyTorch, one AdamW step with gradient
              clipping per call, loss on every token as in `train.train_step`;
              or one step of each of several seeded models, for an ensemble.

Llama is our architecture up to fusion (RMSNorm pre-norm, SwiGLU, RoPE, no
biases, untied head), so the matmul FLOPs per token are the same. Like ours,
parameters stay float32 and a bfloat16 model computes under autocast. The peers
run on the GPU when torch sees one. torch and transformers come from the
`bench` extra and are imported only here.
"""

import contextlib

import numpy as np

from selfimprove_jax.core import model as model_lib


def _torch():
  try:
    import torch
    import transformers
  except ImportError:
    raise SystemExit("the PyTorch peers need the bench extra (pip install -e '.[bench]'); "
                     "--nopeers skips them") from None
  return torch, transformers


def versions() -> str:
  torch, transformers = _torch()
  return f"torch {torch.__version__} ({torch.get_num_threads()} threads), " \
         f"transformers {transformers.__version__}"


def llama(cfg: model_lib.ModelConfig, max_len: int, seed: int = 0):
  """A randomly initialized LlamaForCausalLM of cfg's sizes, in cfg's dtype."""
  torch, transformers = _torch()
  config = transformers.LlamaConfig(
      vocab_size=cfg.vocab_size, hidden_size=cfg.embed_dim, intermediate_size=cfg.mlp_dim,
      num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
      num_key_value_heads=cfg.num_heads, max_position_embeddings=max_len,
      rms_norm_eps=cfg.norm_eps, rope_theta=cfg.rope_base, tie_word_embeddings=False,
      pad_token_id=0, bos_token_id=1, eos_token_id=2)
  torch.manual_seed(seed)
  return transformers.LlamaForCausalLM(config).to(_device(torch))


def _device(torch) -> str:
  return "cuda" if torch.cuda.is_available() else "cpu"


def _autocast(torch, cfg: model_lib.ModelConfig):
  """Compute in cfg.dtype with float32 parameters, as model.py does."""
  if cfg.dtype == "float32":
    return contextlib.nullcontext()
  return torch.autocast(_device(torch), dtype=getattr(torch, cfg.dtype))


class HFSampler:
  """Greedy `generate` of `new_tokens` per row (EOS cannot end a row early)."""

  def __init__(self, cfg: model_lib.ModelConfig, new_tokens: int, max_len: int):
    self.torch, _ = _torch()
    self.cfg, self.new_tokens = cfg, new_tokens
    self.model = llama(cfg, max_len).eval()

  def __call__(self, prompts: np.ndarray):
    torch = self.torch
    ids = torch.from_numpy(prompts.astype(np.int64)).to(_device(torch))
    with torch.inference_mode(), _autocast(torch, self.cfg):
      out = self.model.generate(
          ids, attention_mask=torch.ones_like(ids), do_sample=False,
          max_new_tokens=self.new_tokens, min_new_tokens=self.new_tokens, use_cache=True)
    return out.cpu()  # waits for the device, as block_until_ready does for ours


class TorchTrain:
  """One eager AdamW step (clipped at 1.0, as optimizer.grad_clip) on a fixed batch, for
  each of `models` independently seeded models in turn (an ensemble, PyTorch-style)."""

  def __init__(self, cfg: model_lib.ModelConfig, tokens: np.ndarray, models: int = 1):
    torch, _ = _torch()
    self.torch, self.cfg = torch, cfg
    self.models = [llama(cfg, tokens.shape[1], seed=m).train() for m in range(models)]
    self.opts = [torch.optim.AdamW(m.parameters(), lr=1e-4, betas=(0.9, 0.98), weight_decay=0.1)
                 for m in self.models]
    tokens = torch.from_numpy(tokens.astype(np.int64)).to(_device(torch))
    self.inputs, self.targets = tokens[:, :-1], tokens[:, 1:]

  def __call__(self) -> list[float]:
    torch = self.torch
    losses = []
    for model, opt in zip(self.models, self.opts):
      with _autocast(torch, self.cfg):
        logits = model(input_ids=self.inputs).logits.float()  # [B, T, V]
      loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), self.targets.flatten())
      opt.zero_grad(set_to_none=True)
      loss.backward()
      torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
      opt.step()
      losses.append(loss.item())  # waits for the step, as block_until_ready does for ours
    return losses
