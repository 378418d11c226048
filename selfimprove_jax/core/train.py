"""Training: an optax optimizer, and pure per-device train and eval steps.

The loss is next-token cross-entropy on completion tokens only: `Batch.weights`
is 1 where the target is part of the answer (EOS included) and 0 on the prompt
and on padding. The loss is averaged over every such token of the *global*
batch, so one device and eight devices take exactly the same step.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import PartitionSpec as P

from selfimprove_jax.base.errors import UserError
from selfimprove_jax.base.fields import Int, OneOf, Real, check_dataclass, spec
from selfimprove_jax.core import sharding
from selfimprove_jax.core import model as model_lib
from selfimprove_jax.core.data import Batch
from selfimprove_jax.core.sharding import DATA

SCHEDULES = ("cosine", "wsd", "constant")


@struct.dataclass(kw_only=True)
class TrainState:
  step: jax.Array  # [] int32 optimizer steps taken (skipped ones included)
  params: object  # nnx.State of the model's parameters
  opt_state: optax.OptState
  skipped: jax.Array  # [] int32 updates skipped for a non-finite loss or gradient


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptimizerConfig:
  learning_rate: float = dataclasses.field(default=1e-3, metadata=spec(Real("(0, inf)")))
  schedule: str = dataclasses.field(default="cosine", metadata=spec(OneOf(SCHEDULES)))
  warmup_steps: int = dataclasses.field(default=100, metadata=spec(Int(0)))
  total_steps: int = dataclasses.field(default=1000, metadata=spec(Int(1)))
  # wsd: the last fraction of steps, which decays to 0.
  decay_fraction: float = dataclasses.field(default=0.2, metadata=spec(Real("(0, 1]")))
  weight_decay: float = dataclasses.field(default=0.1, metadata=spec(Real("[0, inf)")))
  b1: float = dataclasses.field(default=0.9, metadata=spec(Real("[0, 1)")))
  b2: float = dataclasses.field(default=0.98, metadata=spec(Real("[0, 1)")))
  # Global-norm clipping.
  grad_clip: float = dataclasses.field(default=1.0, metadata=spec(Real("[0, inf)"), "0: off"))

  def __post_init__(self):
    check_dataclass(self, "optimizer")


def make_schedule(cfg: OptimizerConfig) -> optax.Schedule:
  lr, warmup = cfg.learning_rate, min(cfg.warmup_steps, cfg.total_steps)
  if cfg.schedule == "cosine":
    # optax counts the warmup inside decay_steps, so it needs at least one step after it.
    return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(cfg.total_steps, warmup + 1),
                                              end_value=lr * 0.1)
  ramp = optax.linear_schedule(0.0, lr, warmup)
  if cfg.schedule == "constant":
    return optax.join_schedules([ramp, optax.constant_schedule(lr)], [warmup])
  # wsd: warmup, stable, then a linear decay to 0 (OptimizerConfig admits no other name).
  decay = max(1, int(cfg.total_steps * cfg.decay_fraction))
  stable_end = max(warmup, cfg.total_steps - decay)
  return optax.join_schedules([ramp, optax.constant_schedule(lr),
                               optax.linear_schedule(lr, 0.0, decay)], [warmup, stable_end])


def make_optimizer(cfg: OptimizerConfig) -> optax.GradientTransformation:
  # Decay matrices only: norm scales are 1-D and should stay free.
  decay_mask = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)
  adamw = optax.adamw(make_schedule(cfg), b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay,
                      mask=decay_mask)
  if cfg.grad_clip > 0:
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), adamw)
  return adamw


def init_state(params, tx: optax.GradientTransformation) -> TrainState:
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                    skipped=jnp.zeros((), jnp.int32))


def carry_moments(fresh: TrainState, previous: TrainState) -> TrainState:
  """`fresh` with AdamW's moments (and their step count) taken from `previous`: the
  learning-rate schedule starts again, the gradient statistics go on. Both optimizers
  must be built alike (one chain, the same clipping: config_check refuses others)."""
  is_adam = lambda node: isinstance(node, optax.ScaleByAdamState)
  opt_state = jax.tree.map(lambda new, old: old if is_adam(new) else new,
                           fresh.opt_state, previous.opt_state, is_leaf=is_adam)
  return fresh.replace(opt_state=opt_state)


def _token_sums(graphdef, params, batch: Batch):
  """Summed cross-entropy and correct-token count over this device's weighted targets."""
  logits, _ = model_lib.apply(graphdef, params, batch.inputs, segments=batch.segments)  # [B, T, V]
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch.targets)  # [B, T]
  correct = (jnp.argmax(logits, axis=-1) == batch.targets) * batch.weights
  return jnp.sum(ce * batch.weights), jnp.sum(correct)


def train_step(graphdef, tx, state: TrainState, batch: Batch):
  """One device's part of an optimizer step; devices meet in the pmeans."""
  # Normalize by the mean token count per device: after the gradient pmean this
  # is exactly the mean loss over all weighted tokens of the global batch.
  tokens_per_device = jax.lax.pmean(jnp.sum(batch.weights), DATA)

  def loss_fn(params):
    ce_sum, _ = _token_sums(graphdef, params, batch)
    return ce_sum / tokens_per_device

  local_loss, grads = jax.value_and_grad(loss_fn)(state.params)
  loss, grads = jax.lax.pmean((local_loss, grads), DATA)

  grad_norm = optax.tree.norm(grads)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)

  # A non-finite loss or gradient would poison the parameters and Adam's
  # moments for good: keep the old ones, count the skip, and move on.
  finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
  keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
  state = TrainState(step=state.step + 1, params=keep(params, state.params),
                     opt_state=keep(opt_state, state.opt_state),
                     skipped=state.skipped + (~finite).astype(jnp.int32))
  metrics = dict(loss=loss, grad_norm=grad_norm, skipped=state.skipped)
  return state, metrics


def eval_step(graphdef, params, batch: Batch):
  """Teacher-forced loss and token accuracy over the global batch's weighted targets."""
  ce_sum, correct = _token_sums(graphdef, params, batch)
  ce_sum, correct, count = jax.lax.psum((ce_sum, correct, jnp.sum(batch.weights)), DATA)
  return dict(loss=ce_sum / count, token_accuracy=correct / count)


def sequence_logprobs(graphdef, params, batch: Batch):
  """Per row: the summed log-probability of its weighted targets, and their count ([B] each).

  Rows stay on their device (no collectives): LM mode scores held-out and
  sampled texts with it, one value per text.
  """
  logits, _ = model_lib.apply(graphdef, params, batch.inputs, segments=batch.segments)  # [B, T, V]
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch.targets)  # [B, T]
  return -jnp.sum(ce * batch.weights, axis=1), jnp.sum(batch.weights, axis=1)


class Diverged(UserError):
  """Too many non-finite steps in a row: said in one line, like a user error."""


class NonFiniteGuard:
  """Counts, per ensemble member, the skipped (non-finite) steps in a row.

  Fed the `skipped` totals that train_step reports; raises Diverged when a
  member's run of skips reaches `limit`. A skipped step leaves the weights
  alone, so whatever was saved before stays good.
  """

  def __init__(self, limit: int, skipped_before):
    self.limit = limit
    self._last = np.asarray(skipped_before)  # [E] totals before the first step watched
    self._streak = np.zeros_like(self._last)

  def update(self, skipped_total, where: str) -> None:
    skipped_total = np.asarray(skipped_total)  # [E]
    self._streak = np.where(skipped_total > self._last, self._streak + 1, 0)
    self._last = skipped_total
    if self._streak.max() >= self.limit:
      raise Diverged(f"{where}: {self._streak.max()} steps in a row had a non-finite loss or "
                     f"gradient (train.max_nonfinite_steps={self.limit}); the run stopped and "
                     "its last checkpoint is intact. Lower optimizer.learning_rate, or find the "
                     "first NaN with JAX_DEBUG_NANS=True")


def make_steps(graphdef, tx, mesh):
  """The jitted data-parallel train step (state donated) and eval step."""
  rows = P(DATA)
  train = sharding.data_parallel(
      lambda state, batch: train_step(graphdef, tx, state, batch), mesh,
      in_specs=(P(), rows), out_specs=(P(), P()), donate_argnums=0)
  evaluate = sharding.data_parallel(
      lambda params, batch: eval_step(graphdef, params, batch), mesh,
      in_specs=(P(), rows), out_specs=P())
  return train, evaluate


def make_ensemble_train_step(graphdef, tx, mesh, own_batches: bool = False):
  """The train step for E models stacked on a leading axis of the state: the members
  step one after another (`lax.map`) inside each device's step, so an ensemble of
  independently seeded models costs one program, not E processes. The pmeans inside
  are over devices, once per member. All members train on the same batch [B, T], or
  with `own_batches` each on its own, stacked [B, E, T] (rows first, so the rows split
  across devices).

  A `jax.vmap` over the members would turn every matmul into a batched one; on CPU
  that ran 1.5-1.7x slower than stepping them in turn (BENCHMARKS.md)."""
  per_member = lambda state, batch: train_step(graphdef, tx, state, batch)

  def per_device(state, batch):
    if own_batches:  # member e trains on rows [:, e]
      batch = jax.tree.map(lambda x: jnp.moveaxis(x, 1, 0), batch)
      return jax.lax.map(lambda member_and_rows: per_member(*member_and_rows), (state, batch))
    return jax.lax.map(lambda member_state: per_member(member_state, batch), state)

  return sharding.data_parallel(per_device, mesh, in_specs=(P(), P(DATA)),
                                out_specs=(P(), P()), donate_argnums=0)


def member(params, e: int):
  """Ensemble member e's parameters (every leaf is stacked [E, ...])."""
  return jax.tree.map(lambda x: x[e], params)


def init_ensemble(cfg: model_lib.ModelConfig, seeds, tx: optax.GradientTransformation):
  """(graphdef, TrainState with every leaf stacked [E, ...]), member e initialized from seeds[e]."""
  members = [model_lib.create(cfg, seed=int(s)) for s in seeds]
  params = jax.tree.map(lambda *xs: jnp.stack(xs), *[p for _, p in members])
  return members[0][0], jax.vmap(lambda p: init_state(p, tx))(params)
