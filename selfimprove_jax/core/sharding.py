"""Data parallelism, pmap-style: one `('data',)` mesh, per-device functions, explicit collectives.

Every device (of every process) holds a full copy of the parameters and a slice
of each batch. Train and sample steps are written for one device's slice and
run with `jax.shard_map` under `jax.jit`; where devices must agree (gradients,
metrics) the step says so with `jax.lax.pmean` / `psum` over `DATA`.
"""

import functools
import os
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA = "data"  # the one mesh axis


def one_cpu_device_per_core() -> int | None:
  """Before any JAX backend starts: makes the CPU backend one JAX device per core (the
  largest power of two not above the cores this process may use, so that batch sizes,
  powers of two, split evenly), and returns that count; None, changing nothing, where
  JAX_NUM_CPU_DEVICES or XLA_FLAGS' --xla_force_host_platform_device_count already chose.

  On a CPU the data-parallel steps then run one core's share of the rows each, pmap-style,
  and the small operations of a decode step no longer split across cores, each split
  costing a thread handoff: sampling ran 1.8-2.1x faster on 2 cores (BENCHMARKS.md).
  Accelerators are unaffected; results then differ from a one-device run's within float
  rounding only (the same layout stays bit-exact).
  """
  if (os.environ.get("JAX_NUM_CPU_DEVICES")
      or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")):
    return None
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
  count = 1 << (cores.bit_length() - 1)
  jax.config.update("jax_num_cpu_devices", count)
  return count


def make_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D mesh over `devices` (default: every device of every process)."""
  devices = jax.devices() if devices is None else list(devices)
  return jax.make_mesh((len(devices),), (DATA,), axis_types=(jax.sharding.AxisType.Explicit,),
                       devices=devices)


def check_divisible(batch_size: int, mesh: jax.sharding.Mesh, field: str = "batch_size") -> None:
  """Refuses, before any compute, a global batch the devices cannot split evenly."""
  n = mesh.size
  if batch_size <= 0 or batch_size % n:
    raise ValueError(f"{field}={batch_size} must be a positive multiple of the device count "
                     f"({n}); try {max(n, batch_size // n * n)}")


def data_parallel(per_device_fn: Callable, mesh, in_specs, out_specs, donate_argnums=()):
  """jit(shard_map(fn)): `fn` sees one device's shard and communicates explicitly.

  check_vma=False gives pmap's semantics: differentiating a per-device loss with
  respect to the replicated parameters yields that device's local gradient, and
  the step itself averages gradients with `jax.lax.pmean`. (With check_vma=True
  shard_map would insert that sum implicitly, hiding where devices talk.)
  """
  mapped = jax.shard_map(per_device_fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                         check_vma=False)
  return jax.jit(mapped, donate_argnums=donate_argnums,
                 compiler_options=compiler_options(mesh.devices.flat[0].platform))


# XLA's CPU backend hands matmuls and reductions to YNNPACK fusions by default. At our
# sizes XLA's own kernels were faster: the train step by 4-9%, decoding by 17% at batch
# 64 and equal at 256 (BENCHMARKS.md).
CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


@functools.cache
def compiler_options(platform: str) -> dict:
  """XLA options for the steps run on `platform`: CPU_OPTIONS on CPU, where this XLA
  knows them (they are experimental, so a later one may not); none elsewhere."""
  if platform != "cpu":
    return {}
  try:
    jax.jit(lambda x: x + 1, compiler_options=CPU_OPTIONS).lower(1.0).compile()
  except jax.errors.JaxRuntimeError:  # an XLA without these options: its defaults
    return {}
  return dict(CPU_OPTIONS)


def replicate(tree, mesh):
  """Places a pytree (parameters, optimizer state) in full on every device.

  Always a copy: steps donate their state, and donating an alias of the
  caller's arrays would delete them under the caller. Device arrays are copied before
  they are placed: `device_put(..., may_alias=False)` is not enough, since JAX 0.10,
  placing one device's array on several, reuses its buffer as the first device's copy.
  """
  tree = jax.tree.map(lambda a: a.copy() if isinstance(a, jax.Array) else a, tree)
  return jax.device_put(tree, NamedSharding(mesh, P()))


def shard_batch(tree, mesh):
  """Splits a global batch of host arrays along the leading axis across the mesh.

  Every process passes the same global batch (the loop draws it from the same
  seeded generator everywhere) and contributes the rows its own devices hold.
  With a single process that is simply the whole batch.
  """
  sharding = NamedSharding(mesh, P(DATA))
  process, processes = jax.process_index(), jax.process_count()

  def put(x):
    x = np.asarray(x)
    check_divisible(x.shape[0], mesh, field="global batch")
    rows = x.shape[0] // processes
    return jax.make_array_from_process_local_data(sharding, x[process * rows:(process + 1) * rows],
                                                  x.shape)

  return jax.tree.map(put, tree)


def call_rows(n: int, mesh, limit: int | None = None) -> int:
  """Rows of one device call for n rows (at most `limit` of them a call): a power of two
  per device, so that calls of many sizes compile few programs, times the devices."""
  per_device = -(-max(1, min(n, limit or n)) // mesh.size)
  return (1 << (per_device - 1).bit_length()) * mesh.size


def map_rows(fn, inputs, mesh, limit: int):
  """fn(inputs) for a pytree of host arrays [N, ...], at most `limit` rows a call, on
  every device: each call's rows are padded with zeros to `call_rows`, and what fn
  returns for the padding is dropped. fn maps rows to rows ([R, ...] -> [R, ...])."""
  n = len(jax.tree.leaves(inputs)[0])
  rows = call_rows(n, mesh, limit)
  pad = lambda x: np.concatenate([x, np.zeros((rows - len(x),) + x.shape[1:], x.dtype)])
  outs = []
  for start in range(0, n, rows):
    chunk = jax.tree.map(lambda x: np.asarray(x)[start:start + rows], inputs)
    count = len(jax.tree.leaves(chunk)[0])
    out = to_host(fn(shard_batch(jax.tree.map(pad, chunk), mesh)))
    outs.append(jax.tree.map(lambda x: x[:count], out))
  return jax.tree.map(lambda *xs: np.concatenate(xs), *outs)


def wait(outputs, mesh) -> None:
  """On a multi-device CPU mesh, blocks until a step's outputs exist.

  Call it before dispatching the next step. Simulated CPU devices share a few
  cores: if a second step that holds collectives is dispatched while the first
  still runs, some devices' threads wait in the second step's all-reduce while
  the first starves for threads, and XLA aborts the deadlocked rendezvous after
  40 s. Accelerators and a single device have no such limit, so there the host
  keeps running ahead; blocking every step cost the 1-device CPU demo ~50%.
  """
  if mesh.size > 1 and mesh.devices.flat[0].platform == "cpu":
    jax.block_until_ready(outputs)


def is_writer() -> bool:
  """Process 0 writes the workdir's files (config, datasets, labels, logs, plots); the
  others read them after a barrier (`sync`), so no two processes write one file."""
  return jax.process_index() == 0


def sync(name: str) -> None:
  """With several processes, waits until all reach this point (after process 0 wrote a file)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def process_0_first(fn: Callable, name: str):
  """fn() on process 0, then on the others: process 0 builds what they will open
  (a dataset, a file), so no two processes write one file."""
  if is_writer():
    try:
      return fn()
    finally:  # also when fn fails: the others then meet the same error, not a hang
      sync(name)
  sync(name)
  return fn()


def process_0_says(flag: bool) -> bool:
  """Process 0's `flag`, on every process: what it alone decided (it holds the workdir lock)."""
  if jax.process_count() == 1:
    return flag
  return bool(multihost_utils.broadcast_one_to_all(np.array(flag)))


def all_processes_see(path) -> bool:
  """Whether every process finds `path`, which process 0 wrote: is the directory shared?"""
  found = Path(path).exists()
  if jax.process_count() == 1:
    return found
  return bool(np.all(multihost_utils.process_allgather(np.array(found))))


def to_host(tree):
  """Global arrays back to numpy on every process (gathering across hosts if needed)."""
  def get(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)

  return jax.tree.map(get, tree)
