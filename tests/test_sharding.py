"""Rows split across devices: call sizes, and row-wise functions over many rows in few shapes."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from selfimprove_jax.core import sharding


@pytest.mark.parametrize("n, limit, rows", [
    (1, None, 8), (8, None, 8), (9, None, 16), (24, None, 32), (100, None, 128),
    (100, 16, 16), (100, 20, 32), (0, None, 8)])
def test_a_call_has_a_power_of_two_rows_per_device(mesh8, n, limit, rows):
  assert sharding.call_rows(n, mesh8, limit) == rows


def test_map_rows_pads_each_call_and_drops_what_the_padding_gave(mesh8):
  calls = []
  def per_device(x, y):
    return x * 2 + y[:, None], jnp.sum(x, axis=1)
  step = sharding.data_parallel(per_device, mesh8, in_specs=(P(sharding.DATA),) * 2,
                                out_specs=(P(sharding.DATA),) * 2)
  def fn(rows):
    calls.append(rows[0].shape)
    return step(*rows)
  x = np.arange(37 * 3, dtype=np.float32).reshape(37, 3)
  y = np.arange(37, dtype=np.float32)
  doubled, sums = sharding.map_rows(fn, (x, y), mesh8, limit=16)
  np.testing.assert_array_equal(doubled, x * 2 + y[:, None])
  np.testing.assert_array_equal(sums, x.sum(axis=1))
  assert calls == [(16, 3)] * 3  # 16 + 16 + 5 rows, the last call padded to the same shape


def test_cpu_steps_compile_with_the_cpu_options_where_this_xla_has_them(mesh8, monkeypatch):
  step = sharding.data_parallel(lambda a, b: a @ b, mesh8, in_specs=(P(sharding.DATA), P()),
                                out_specs=P(sharding.DATA))
  a, b = np.ones((64, 32), np.float32), np.ones((32, 16), np.float32)
  placed = sharding.shard_batch(a, mesh8), sharding.replicate(b, mesh8)
  np.testing.assert_array_equal(step(*placed), a @ b)
  compiled = step.lower(*placed).compile().as_text()
  assert sharding.compiler_options("cpu") == sharding.CPU_OPTIONS
  assert "ynn_fusion" not in compiled  # the matmul is XLA's own
  assert sharding.compiler_options("gpu") == {}
  # An XLA that does not know an option compiles with its defaults instead of failing.
  monkeypatch.setattr(sharding, "CPU_OPTIONS", {"xla_cpu_no_such_option": ""})
  sharding.compiler_options.cache_clear()
  try:
    assert sharding.compiler_options("cpu") == {}
  finally:
    sharding.compiler_options.cache_clear()


def _cpu_devices_in_a_fresh_process(env_update: dict, cores: int) -> list:
  """[what one_cpu_device_per_core returned, the cores, the devices] in a new process that
  may use at most `cores` of this one's cores."""
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
  env.update(env_update, JAX_PLATFORMS="cpu")
  code = ("import os, sys, jax; from selfimprove_jax.core import sharding; "
          f"os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:{cores}]); "
          "print(sharding.one_cpu_device_per_core(), len(os.sched_getaffinity(0)), "
          "jax.device_count())")
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       check=True).stdout.split()
  return [None if out[0] == "None" else int(out[0]), int(out[1]), int(out[2])]


def test_the_cpu_becomes_one_device_per_core_unless_the_user_chose():
  chosen, cores, devices = _cpu_devices_in_a_fresh_process({}, 3)
  assert chosen == devices == (2 if cores >= 2 else 1)  # 3 cores: the power of two below
  chosen, cores, devices = _cpu_devices_in_a_fresh_process({}, 1)
  assert (chosen, devices) == (1, 1)
  chosen, _, devices = _cpu_devices_in_a_fresh_process({"JAX_NUM_CPU_DEVICES": "3"}, 2)
  assert (chosen, devices) == (None, 3)
  chosen, _, devices = _cpu_devices_in_a_fresh_process(
      {"XLA_FLAGS": "--xla_force_host_platform_device_count=5"}, 2)
  assert (chosen, devices) == (None, 5)


def test_replicate_copies_so_a_donating_step_leaves_the_callers_arrays(mesh8):
  params = {"w": jnp.ones((16, 16)), "b": np.zeros(16, np.float32)}
  placed = sharding.replicate(params, mesh8)
  step = jax.jit(lambda t: jax.tree.map(lambda a: a + 1, t), donate_argnums=0)
  step(placed)
  assert not params["w"].is_deleted()
  np.testing.assert_array_equal(np.asarray(params["w"]), 1.0)
