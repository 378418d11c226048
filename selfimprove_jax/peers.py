"""What a user would run instead, built to our model's sizes, for `bench`.

The Lee et al. 2025 code self-labels with Hugging Face `generate` and trains a
PyTorch model; these are the same two, same shapes:

  HFSampler:  `LlamaForCausalLM.generate`, greedy, exactly `new_tokens` per row.
  TorchTrain: the same Llama model, eager PyTorch, one AdamW step with gradient
              clipping per call, loss on every token as in `train.train_step`;
              or one step of each of several seeded models, for an ensemble.
  TorchGeneration: one whole self-labelling generation built from those two, at
              the sizes of one of our loop's generations (`bench generation`).

Llama is our architecture up to fusion (RMSNorm pre-norm, SwiGLU, RoPE, no
biases, untied head), so the matmul FLOPs per token are the same. Like ours,
parameters stay float32 and a bfloat16 model computes under autocast. The peers
run on the GPU when torch sees one. torch and transformers come from the
`bench` extra and are imported only here.
"""

import contextlib
import time

import numpy as np

from selfimprove_jax.core import data as data_lib
from selfimprove_jax.core import model as model_lib
from selfimprove_jax.core.mixture import Example
from selfimprove_jax.core.tokenizer import PAD


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


class TorchGeneration:
  """One generation of the loop as a PyTorch user would write it, to a plan of our
  generation's sizes (`generation_bench.generation_plan`):

    sample    each of the plan's seeded Llamas answers the label prompts greedily with
              `generate`, left-padded, `rows_per_call` prompts a call;
    score     the answers every member gives alike are kept (the vote; host code);
    train     each member takes `steps` AdamW steps, each on rows packed as ours are
              (data.pack, or padded when ours are) from the plan's examples: a
              block-causal mask keeps the sequences of a row apart, and their
              positions restart;
    evaluate  member 0 answers the evaluation prompts greedily, in one call.

  Every `generate` call decodes exactly as many tokens as the longest right answer of
  its prompts has, with its EOS: never more than ours, which runs until every row of
  a call has ended. The peer's models are untrained (they would never end a row
  themselves), so what they label is noise; the seconds are what is measured.
  """

  def __init__(self, plan: dict):
    torch, _ = _torch()
    self.torch, self.plan = torch, plan
    self.cfg = model_lib.ModelConfig(**plan["model"])
    self.models = [llama(self.cfg, plan["max_len"], seed=m).train()
                   for m in range(plan["members"])]
    self.opts = [torch.optim.AdamW(m.parameters(), lr=1e-4, betas=(0.9, 0.98), weight_decay=0.1)
                 for m in self.models]

  def generate(self, model, prompts: list[list[int]], rows: int,
               new_tokens: list[int]) -> list[list[int]]:
    """Greedy answers to token prompts, `rows` a call; call c decodes exactly
    `new_tokens[c]` tokens a row."""
    torch = self.torch
    answers = []
    for c, start in enumerate(range(0, len(prompts), rows)):
      chunk = prompts[start:start + rows]
      width = max(len(p) for p in chunk)
      ids = np.full((len(chunk), width), PAD, np.int64)
      mask = np.zeros((len(chunk), width), np.int64)
      for r, p in enumerate(chunk):
        ids[r, width - len(p):], mask[r, width - len(p):] = p, 1
      ids, mask = (torch.from_numpy(x).to(_device(torch)) for x in (ids, mask))
      with torch.inference_mode(), _autocast(torch, self.cfg):
        out = model.generate(ids, attention_mask=mask, do_sample=False,
                             max_new_tokens=new_tokens[c], min_new_tokens=new_tokens[c],
                             use_cache=True, pad_token_id=PAD)
      answers += out[:, width:].cpu().tolist()
    return answers

  def packed_logits(self, model, inputs, segments):
    """[B, T, V] float32 logits of packed rows: a token sees the earlier tokens of its
    own sequence only (padding only padding), and counts its position from that
    sequence's first token, so each sequence computes what it would alone."""
    torch = self.torch
    T = inputs.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool, device=inputs.device).tril()
    mask = ((segments[:, :, None] == segments[:, None, :]) & causal)[:, None]  # [B, 1, T, T]
    index = torch.arange(T, device=inputs.device).expand_as(segments)
    first = torch.nn.functional.pad(segments[:, 1:] != segments[:, :-1], (1, 0), value=True)
    positions = index - torch.where(first, index, 0).cummax(dim=1).values
    with _autocast(torch, self.cfg):
      return model(input_ids=inputs.long(), attention_mask=mask,
                   position_ids=positions).logits.float()

  def train_step(self, member: int, batch: data_lib.Batch) -> float:
    """One clipped AdamW step on packed rows, the loss over the completions only."""
    torch = self.torch
    model, opt = self.models[member], self.opts[member]
    segments = batch.segments if batch.segments is not None else np.ones_like(batch.inputs)
    inputs, targets, weights, segments = (torch.from_numpy(np.asarray(x)).to(_device(torch))
                                          for x in (batch.inputs, batch.targets, batch.weights,
                                                    segments))
    logits = self.packed_logits(model, inputs, segments)
    losses = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.long().flatten(),
                                               reduction="none")
    loss = (losses * weights.flatten()).sum() / weights.sum().clamp(min=1.0)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.item()  # waits for the step

  def __call__(self, tok, rng: np.random.Generator) -> dict:
    """Runs the generation; seconds by stage, as the loop's metrics give ours."""
    plan, seconds = self.plan, {}
    tic = time.perf_counter()
    prompts = [tok.encode(p, bos=True) for p in plan["label_prompts"]]
    answers = [self.generate(m, prompts, plan["rows_per_call"], plan["label_tokens"])
               for m in self.models]
    seconds["sample"] = time.perf_counter() - tic
    tic = time.perf_counter()
    texts = [[tok.decode(a) for a in member] for member in answers]
    kept = [(p, t[0]) for p, *t in zip(plan["label_prompts"], *texts) if len(set(t)) == 1]
    seconds["score"] = time.perf_counter() - tic
    tic = time.perf_counter()
    pool = plan["examples"]
    draw = lambda n: [Example(*pool[i], 0, 0) for i in rng.integers(0, len(pool), n)]
    def batch():
      if plan["pack"]:
        return data_lib.pack(tok, draw, plan["rows"], plan["width"])
      examples = draw(plan["rows"])
      return data_lib.make_batch(tok, [x.prompt for x in examples],
                                 [x.completion for x in examples], plan["width"])
    for _ in range(plan["steps"]):
      for member in range(plan["members"]):
        self.train_step(member, batch())
    seconds["train"] = time.perf_counter() - tic
    tic = time.perf_counter()
    self.models[0].eval()
    self.generate(self.models[0], [tok.encode(p, bos=True) for p in plan["eval_prompts"]],
                  len(plan["eval_prompts"]), plan["eval_tokens"])
    self.models[0].train()
    seconds["evaluate"] = time.perf_counter() - tic
    return dict(seconds=seconds, kept=len(kept))
