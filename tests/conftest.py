"""Eight fake CPU devices for every test, set before JAX starts, and one compilation
cache for the session."""

import atexit
import fcntl
import importlib.util
import os
import shutil
import tempfile

os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=8"]).strip()
# The CPU is the default backend: the fake devices above are what most tests run
# on. Where JAX has its CUDA plugin, the GPU comes up too (JAX skips it when no
# NVIDIA GPU is visible), so GPU-only tests such as the cuDNN one run there.
_HAS_CUDA = any(importlib.util.find_spec(f"jax_cuda{v}_plugin") for v in (12, 13))
os.environ.setdefault("JAX_PLATFORMS", "cpu,cuda" if _HAS_CUDA else "cpu")
# Many tests run the loop on configs/tiny.py, each with its own jitted closures
# but the same programs: JAX's persistent cache compiles each program once per
# session instead of once per run. The pytest process makes the cache; the test
# workers it starts (pyproject.toml: -n 2) inherit its environment and share it.
if "SELFIMPROVE_JAX_TEST_CACHE" not in os.environ:
  os.environ["SELFIMPROVE_JAX_TEST_CACHE"] = tempfile.mkdtemp(prefix="selfimprove_jax_cache_")
  atexit.register(shutil.rmtree, os.environ["SELFIMPROVE_JAX_TEST_CACHE"], ignore_errors=True)
os.environ.update(JAX_COMPILATION_CACHE_DIR=os.environ["SELFIMPROVE_JAX_TEST_CACHE"],
                  JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                  JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")

import jax  # noqa: E402  (must come after the flags above)
import pytest  # noqa: E402

from selfimprove_jax.core import sharding  # noqa: E402


@pytest.fixture(scope="session")
def mesh8():
  assert jax.device_count() == 8, "tests expect 8 fake CPU devices"
  return sharding.make_mesh()


@pytest.fixture(scope="session")
def mesh1():
  return sharding.make_mesh(jax.devices()[:1])


@pytest.fixture(scope="session")
def crash_reference(tmp_path_factory):
  """One uninterrupted run of the crash harness's config, on 4 CPU devices in one process:
  what killed, preempted and two-process runs must reproduce. Made once a session: test
  workers share their base directory's parent, and the first to need the run makes it
  while the others wait on the lock."""
  import crash_harness
  root = tmp_path_factory.getbasetemp()
  base = (root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root) / "harness"
  base.mkdir(exist_ok=True)
  workdir = base / "reference"
  with open(base / "made.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
    if not (base / "made").exists():
      assert crash_harness.attempt(workdir) == 0
      (base / "made").touch()
  return workdir, crash_harness.outputs(workdir)


class StopRun(Exception):
  """What `stop_at` raises: a run interrupted where a test chose."""


@pytest.fixture
def stop_at(monkeypatch):
  """stop_at(g, step): the next run raises StopRun right after training step `step` of
  generation g (and any progress checkpoint due there), as a crash would leave it."""
  from selfimprove_jax.run import training

  def arm(g: int, step: int) -> None:
    original = training.Progress.after_step
    def after_step(self, done, train_state, tokens):
      original(self, done, train_state, tokens)
      if (self.g, done) == (g, step):
        raise StopRun(f"stopped after generation {g}, step {step}")
    monkeypatch.setattr(training.Progress, "after_step", after_step)
  return arm


@pytest.fixture(scope="session")
def two_members(mesh8):
  """Two differently seeded 1-layer models on the eight devices: `members` [(graphdef,
  params)], their params stacked as an ensemble's, and the `Devices` that serve them."""
  import types

  import jax.numpy as jnp

  from selfimprove_jax.core import model as model_lib
  from selfimprove_jax.core.devices import Devices
  from selfimprove_jax.core.tokenizer import CharTokenizer
  tok = CharTokenizer()
  cfg = model_lib.ModelConfig(vocab_size=tok.vocab_size, num_layers=1, embed_dim=16,
                              num_heads=2, mlp_dim=32)
  members = [model_lib.create(cfg, seed=s) for s in (0, 1)]
  graphdef = members[0][0]
  return types.SimpleNamespace(
      tok=tok, graphdef=graphdef, members=members,
      params=jax.tree.map(lambda *xs: jnp.stack(xs), *[p for _, p in members]),
      devices=Devices(mesh8, graphdef, cfg, tok))
