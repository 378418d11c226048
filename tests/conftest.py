"""Eight fake CPU devices for every test, set before JAX starts."""

import os

os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=8"]).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402  (must come after the flags above)
import pytest  # noqa: E402

from selfimprove_jax import sharding  # noqa: E402


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
  what killed, preempted and two-process runs must reproduce."""
  import crash_harness
  workdir = tmp_path_factory.mktemp("harness") / "reference"
  assert crash_harness.attempt(workdir) == 0
  return workdir, crash_harness.outputs(workdir)
