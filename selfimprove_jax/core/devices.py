"""What a run keeps for the devices: the mesh, the model's structure, and the programs
compiled for them, each built once and reused by every generation.

Everything here is a function of (mesh, graphdef, tokenizer); the parameters
always come in as arguments, so one `Devices` serves every ensemble member and
every generation.
"""

import dataclasses
import functools

import jax
import numpy as np
import optax
from jax.sharding import PartitionSpec as P

from selfimprove_jax.core import data, sampling, sharding
from selfimprove_jax.core import model as model_lib
from selfimprove_jax.core import train as train_lib
from selfimprove_jax.core.tokenizer import CharTokenizer


@dataclasses.dataclass(eq=False)
class Devices:
  mesh: jax.sharding.Mesh
  graphdef: object  # the model's structure (nnx.split); parameters are passed to each call
  model_cfg: model_lib.ModelConfig
  tok: CharTokenizer
  _programs: dict = dataclasses.field(default_factory=dict)

  def compiled(self, name: str, make):
    """The program `make()` returns, built once: `name` must identify it."""
    if name not in self._programs:
      self._programs[name] = make()
    return self._programs[name]

  def sampler(self, method, max_new_tokens: int) -> sampling.Sampler:
    return self.compiled(("sampler", method, max_new_tokens), lambda: sampling.Sampler.for_model(
        self.graphdef, self.model_cfg, self.mesh, max_new_tokens=max_new_tokens, method=method))

  def train_step(self, name: str, tx: optax.GradientTransformation, own_batches: bool = False):
    """The ensemble's train step with optimizer `tx`, known by `name` once built."""
    return self.compiled(("train", name, own_batches), lambda: train_lib.make_ensemble_train_step(
        self.graphdef, tx, self.mesh, own_batches))

  def train_state(self, params, tx: optax.GradientTransformation) -> train_lib.TrainState:
    """A fresh optimizer state for the ensemble's `params` ([E, ...] leaves), on every device."""
    params = jax.device_get(params)  # initialized on the host, then placed on every device
    return sharding.replicate(jax.vmap(lambda p: train_lib.init_state(p, tx))(params), self.mesh)

  def logprobs(self, params, texts: list[str], width: int, rows_per_call: int = 512,
               prompts: list[str] | None = None):
    """([N] total log-probability, [N] tokens) of each text under one model, EOS included,
    each after its prompt (default: none); every call is `width` tokens wide, so one
    program serves texts of any length up to it."""
    step = self.compiled("logprobs", lambda: sharding.data_parallel(
        functools.partial(train_lib.sequence_logprobs, self.graphdef), self.mesh,
        in_specs=(P(), P(sharding.DATA)), out_specs=(P(sharding.DATA), P(sharding.DATA))))
    if not texts:
      return np.zeros(0), np.zeros(0)
    prompts = [""] * len(texts) if prompts is None else list(prompts)
    batch = data.make_batch(self.tok, prompts, list(texts), width)
    return sharding.map_rows(lambda rows: step(params, rows), batch, self.mesh, rows_per_call)
