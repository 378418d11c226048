import jax
import numpy as np
import optax
import pytest

from selfimprove_jax.core import data, sharding
from selfimprove_jax.core import model as model_lib
from selfimprove_jax.core import train as train_lib
from selfimprove_jax.core.tokenizer import CharTokenizer

TOK = CharTokenizer()
CFG = model_lib.ModelConfig(vocab_size=TOK.vocab_size, num_layers=2, embed_dim=32, num_heads=4,
                            mlp_dim=64)


def problems(n=16):
  rng = np.random.default_rng(0)
  a, b = rng.integers(0, 1000, n), rng.integers(0, 1000, n)
  return [f"{x}+{y}=" for x, y in zip(a, b)], [str(x + y) for x, y in zip(a, b)]


def setup(mesh, **opt):
  graphdef, params = model_lib.create(CFG, seed=0)
  tx = train_lib.make_optimizer(train_lib.OptimizerConfig(warmup_steps=0, total_steps=100, **opt))
  train_step, eval_step = train_lib.make_steps(graphdef, tx, mesh)
  return sharding.replicate(train_lib.init_state(params, tx), mesh), train_step, eval_step


def sgd_step(graphdef, params, batch, mesh, lr=0.5):
  """(parameters, metrics) on the host after one plain-SGD step from `params` (host copies:
  the step donates what it is given)."""
  tx = optax.sgd(lr)
  train_step, _ = train_lib.make_steps(graphdef, tx, mesh)
  state = sharding.replicate(train_lib.init_state(params, tx), mesh)
  state, metrics = train_step(state, sharding.shard_batch(batch, mesh))
  return jax.device_get(state.params), jax.device_get(metrics)


def test_one_device_and_eight_devices_take_the_same_step(mesh1, mesh8):
  """The gradient itself must match, not only its direction: plain SGD moves the
  parameters by lr * g (AdamW's first step is about lr * sign(g) whatever g's scale,
  so a psum in place of the pmean would pass with it), and grad_norm is compared."""
  batch = data.make_batch(TOK, *problems())
  graphdef, params = model_lib.create(CFG, seed=0)
  params = jax.device_get(params)
  (params1, m1), (params8, m8) = (sgd_step(graphdef, params, batch, mesh)
                                  for mesh in (mesh1, mesh8))
  assert m1["loss"] == pytest.approx(m8["loss"], rel=1e-5)
  assert m1["grad_norm"] == pytest.approx(m8["grad_norm"], rel=1e-5)
  for a, b in zip(jax.tree.leaves(params1), jax.tree.leaves(params8)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  # And the step really moved the parameters, by lr * grad_norm in all.
  moved = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(jax.tree.leaves(params1),
                                                            jax.tree.leaves(params))))
  assert moved == pytest.approx(0.5 * m1["grad_norm"], rel=1e-3)


def test_training_overfits_a_tiny_batch(mesh8):
  batch = sharding.shard_batch(data.make_batch(TOK, *problems()), mesh8)
  state, train_step, eval_step = setup(mesh8, learning_rate=3e-3, schedule="constant")
  first = float(eval_step(state.params, batch)["loss"])
  for _ in range(150):
    state, metrics = train_step(state, batch)
    sharding.wait(metrics, mesh8)  # one step in flight at a time (see its docstring)
  metrics = jax.device_get(eval_step(state.params, batch))
  assert metrics["loss"] < 0.2 * first
  assert metrics["token_accuracy"] > 0.9


def test_non_finite_gradient_leaves_the_state_unchanged(mesh8):
  good = data.make_batch(TOK, *problems())
  poisoned = good.replace(weights=good.weights.copy())
  poisoned.weights[0, 0] = np.nan  # one bad weight makes the loss and every gradient NaN
  state, train_step, _ = setup(mesh8)
  before = jax.device_get((state.params, state.opt_state))
  state, metrics = train_step(state, sharding.shard_batch(poisoned, mesh8))
  assert not np.isfinite(metrics["loss"])
  assert int(metrics["skipped"]) == 1
  after = jax.device_get((state.params, state.opt_state))
  for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
    np.testing.assert_array_equal(a, b)
  # A finite batch afterwards trains normally.
  state, metrics = train_step(state, sharding.shard_batch(good, mesh8))
  assert np.isfinite(metrics["loss"]) and int(metrics["skipped"]) == 1
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(state.params)))


def test_indivisible_batch_is_refused_before_compute(mesh8):
  with pytest.raises(ValueError, match=r"train.batch_size=12 must be a positive multiple of "
                                       r"the device count \(8\)"):
    sharding.check_divisible(12, mesh8, field="train.batch_size")
  with pytest.raises(ValueError, match="global batch=12"):
    sharding.shard_batch(np.zeros((12, 4)), mesh8)


def test_loss_covers_completion_and_eos_only():
  batch = data.make_batch(TOK, ["12+3="], ["15"])
  # inputs: BOS 1 2 + 3 = 1 5 | targets shifted by one; weights on "1", "5", EOS.
  weighted = batch.targets[0][batch.weights[0] == 1]
  assert weighted.tolist() == TOK.encode("15", eos=True)
  assert batch.inputs.shape[1] % data.LENGTH_BUCKET == 0


def test_length_buckets_are_few_and_pad_at_most_a_quarter():
  lengths = range(1, 400)
  for n in lengths:
    b = data.bucket(n)
    assert n <= b <= n + max(data.LENGTH_BUCKET - 1, n // 4) and b % data.LENGTH_BUCKET == 0
  buckets = sorted({data.bucket(n) for n in lengths})
  assert buckets[6:14] == [56, 64, 80, 96, 112, 128, 160, 192]
  assert len(buckets) == 19  # 8 up to 64, then 4 per doubling
  assert data.bucket(33, multiple=16) == 48 and data.bucket(100, multiple=16) == 112


@pytest.mark.parametrize("schedule", train_lib.SCHEDULES)
def test_schedules_warm_up_and_end_where_expected(schedule):
  cfg = train_lib.OptimizerConfig(learning_rate=1.0, schedule=schedule, warmup_steps=10,
                                  total_steps=100, decay_fraction=0.2)
  lr = train_lib.make_schedule(cfg)
  assert float(lr(0)) == 0.0 and float(lr(10)) == pytest.approx(1.0)
  end = {"cosine": 0.1, "wsd": 0.0, "constant": 1.0}[schedule]
  assert float(lr(100)) == pytest.approx(end, abs=1e-6)
  if schedule == "wsd":
    assert float(lr(80)) == pytest.approx(1.0) and float(lr(90)) == pytest.approx(0.5)


def test_an_ensemble_step_trains_each_member_as_if_alone(mesh8):
  """Members stepped in turn inside the data-parallel step = separate models, one program."""
  batch = sharding.shard_batch(data.make_batch(TOK, *problems()), mesh8)
  tx = train_lib.make_optimizer(train_lib.OptimizerConfig(warmup_steps=0, total_steps=100))
  graphdef, ensemble = train_lib.init_ensemble(CFG, [3, 4], tx)
  ensemble = sharding.replicate(ensemble, mesh8)
  step = train_lib.make_ensemble_train_step(graphdef, tx, mesh8)
  for _ in range(2):
    sharding.wait(ensemble, mesh8)
    ensemble, metrics = step(ensemble, batch)
  assert metrics["loss"].shape == (2,)
  single_step, _ = train_lib.make_steps(graphdef, tx, mesh8)
  for member, seed in enumerate([3, 4]):
    state = sharding.replicate(train_lib.init_state(model_lib.create(CFG, seed=seed)[1], tx), mesh8)
    for _ in range(2):
      sharding.wait(state, mesh8)
      state, _ = single_step(state, batch)
    for a, b in zip(jax.tree.leaves(jax.device_get(state.params)),
                    jax.tree.leaves(jax.device_get(ensemble.params))):
      np.testing.assert_allclose(a, b[member], atol=1e-5)
  # Different seeds really are different models.
  first = jax.tree.leaves(jax.device_get(ensemble.params))[0]
  assert not np.allclose(first[0], first[1])


def test_with_own_batches_each_member_trains_on_its_own_as_if_alone(mesh8):
  prompts, completions = problems()
  own = [data.make_batch(TOK, prompts, completions, 16),
         data.make_batch(TOK, prompts[::-1], [c[::-1] for c in completions], 16)]
  stacked = jax.tree.map(lambda *xs: np.stack(xs, 1), *own)  # [B, E, T]: rows first
  tx = train_lib.make_optimizer(train_lib.OptimizerConfig(warmup_steps=0, total_steps=100))
  graphdef, ensemble = train_lib.init_ensemble(CFG, [3, 4], tx)
  step = train_lib.make_ensemble_train_step(graphdef, tx, mesh8, own_batches=True)
  ensemble, metrics = step(sharding.replicate(ensemble, mesh8), sharding.shard_batch(stacked, mesh8))
  single_step, _ = train_lib.make_steps(graphdef, tx, mesh8)
  for member, seed in enumerate([3, 4]):
    state = sharding.replicate(train_lib.init_state(model_lib.create(CFG, seed=seed)[1], tx), mesh8)
    state, alone = single_step(state, sharding.shard_batch(own[member], mesh8))
    np.testing.assert_allclose(metrics["loss"][member], alone["loss"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(jax.device_get(state.params)),
                    jax.tree.leaves(jax.device_get(ensemble.params))):
      np.testing.assert_allclose(a, b[member], atol=1e-5)


def test_nonfinite_guard_stops_on_a_run_of_skips_not_on_scattered_ones():
  guard = train_lib.NonFiniteGuard(3, np.array([0, 0]))
  # [E=2] running totals of skipped steps: member 1 skips steps 1, 3, 4; member 0 never.
  for total in ([0, 1], [0, 1], [0, 2], [0, 3]):
    guard.update(np.array(total), "here")
  with pytest.raises(train_lib.Diverged, match=r"^here: 3 steps in a row .*max_nonfinite_steps=3"):
    guard.update(np.array([0, 4]), "here")
